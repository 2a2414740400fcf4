"""The chapters: stored without outputs, parameterized, executed by papermill, built as a book."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from memnotebooks import book

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = book.chapters(ROOT)


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_stored_without_outputs_and_with_a_parameters_cell(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    assert nb.metadata.kernelspec.name == "python3"
    # Notebooks stay thin: no function definitions longer than a few lines.
    for cell in code:
        for body in re.findall(r"^def .*?(?=^\S|\Z)", cell.source, flags=re.M | re.S):
            assert body.count("\n") <= 5


def test_chapters_are_listed_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for notebook in CHAPTERS:
        assert f"file: book/{notebook.stem}" in toc


def test_parameters_reach_only_the_chapters_that_declare_them(monkeypatch, tmp_path):
    received = {}
    monkeypatch.setattr(book, "execute_chapter", lambda notebook, output, parameters, kernel: received.setdefault(notebook.name, parameters))
    book.execute_chapters(ROOT, tmp_path, {"seeds": [0, 1], "example_degree": 0.4, "probe_degree": 0.6})
    assert all(received[name]["seeds"] == [0, 1] for name in received)  # every chapter takes `seeds`
    assert [name for name in received if "example_degree" in received[name]] == ["01_corruption.ipynb"]
    assert [name for name in received if "probe_degree" in received[name]] == ["05_masc_decoding.ipynb"]
    with pytest.raises(ValueError, match="No chapter declares the parameter.* seed; the chapters declare: .*seeds"):
        book.execute_chapters(ROOT, tmp_path, {"seed": 1})


@pytest.mark.notebooks
def test_every_chapter_runs_with_papermill_and_the_book_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMNOTEBOOKS_ARTIFACTS", str(tmp_path / "artifacts"))
    executed = book.execute_chapters(ROOT, tmp_path / "executed")
    for notebook in executed:
        nb = nbformat.read(notebook, as_version=4)
        images = [o for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"{notebook.name} drew no figure"
        errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
    # Later chapters reuse chapter 02's runs: the cache holds one run per distinct configuration,
    # the union of the chapters' default degrees (02: 0, 0.4, 0.8; 05 adds 0.2 and 0.6).
    configs = [json.loads(p.read_text()) for p in (tmp_path / "artifacts").glob("*/config.json")]
    assert sorted(c["corruption_degree"] for c in configs) == [0.0, 0.2, 0.4, 0.6, 0.8]

    html = book.build_html(book.stage(ROOT, executed, tmp_path / "source"), tmp_path)
    for notebook in executed:
        page = (html / "book" / f"{notebook.stem}.html").read_text()
        assert page.count("<img") >= 2, f"{notebook.stem}.html shows no figures"
