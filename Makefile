# Two commands set everything up on a fresh machine: `make book` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
KERNEL := memnotebooks
STAMP := $(VENV)/.installed
export MEMNOTEBOOKS_ARTIFACTS ?= $(CURDIR)/artifacts

.PHONY: install book test lab benchmark clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (memnotebooks)"
	touch $(STAMP)

book: install
	$(BIN)/python -m memnotebooks.book --kernel $(KERNEL)

test: install
	$(BIN)/python -m pytest

benchmark: install
	$(BIN)/python benchmarks/masc_bench.py
	$(BIN)/python benchmarks/training_bench.py

# JupyterLab refuses to start as root without --allow-root (containers run as root).
lab: install
	$(BIN)/jupyter lab book/ --MultiKernelManager.default_kernel_name=$(KERNEL) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean:
	rm -rf _build artifacts
