"""Execute the chapters headless with papermill and build the HTML book from the executed copies.

The repository stores notebooks without outputs. ``python -m memnotebooks.book`` runs every
chapter in ``book/`` with papermill into ``_build/executed/``, stages those executed copies with
the book's configuration in ``_build/source/``, and runs Jupyter Book on that (warnings are
errors) into ``_build/html/``, so the rendered pages show the papermill outputs. ``make book``
calls it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .progress import without_progress_bars
from .store import atomic_write

__all__ = ["chapters", "chapter_parameters", "check_parameters", "execute_chapter", "execute_chapters", "stage", "build_html", "main"]

BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")


def chapters(root: str | os.PathLike = ".") -> list[Path]:
    """The chapter notebooks in ``root/book``, in reading order."""
    found = sorted(Path(root, "book").glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"No chapter notebooks (book/NN_*.ipynb) under {Path(root).resolve()}.")
    return found


def execute_chapter(notebook: Path, output: Path, parameters: dict | None = None, kernel_name: str | None = None) -> Path:
    """Run one notebook with papermill (headless), writing it to ``output`` atomically."""
    import papermill

    def execute(tmp: Path) -> None:
        with without_progress_bars():  # the kernel inherits it: no bar's refreshes in the outputs
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters=parameters or {},
                kernel_name=kernel_name,
                cwd=str(notebook.parent),
                progress_bar=False,
            )

    return atomic_write(output, execute)


def chapter_parameters(notebook: Path) -> set[str]:
    """The names a chapter's ``parameters`` cell declares."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def _kind(default) -> tuple[type, ...] | None:
    """The types a parameter with this default may take (None: any)."""
    if default is None:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float):
        return (int, float)
    return (type(default),) if not isinstance(default, (list, tuple)) else (list, tuple)


def _is(value, kinds: tuple[type, ...]) -> bool:
    # bool is an int to Python; neither stands for the other here.
    return isinstance(value, kinds) and isinstance(value, bool) == (kinds == (bool,))


def _kind_name(kinds: tuple[type, ...]) -> str:
    return {(bool,): "True or False", (int,): "an integer", (int, float): "a number", (str,): "a string", (list, tuple): "a list", (dict,): "a mapping"}.get(kinds, kinds[0].__name__)


def check_parameters(notebook: str | os.PathLike, values: dict) -> None:
    """Refuse a chapter parameter of another type than its default's, naming what was expected.

    A chapter calls it first, with its own file name and ``globals()``, so that a value of the
    wrong type (papermill's ``-p`` passes ``'[1.5]'`` as text; lists go with ``-y``) is an error
    that says so rather than a traceback from deep inside the chapter. Parameters whose default is
    ``None`` take any value; lists are checked element by element against the default's first.

    Parameters
    ----------
    notebook : path
        The chapter (its ``parameters`` cell gives the defaults).
    values : dict
        The chapter's namespace (``globals()``), holding the parameters' values.

    Raises
    ------
    TypeError
        Naming the parameter, what it takes, the value given and how to pass a list.
    """
    import ast

    import papermill

    for name, declared in papermill.inspect_notebook(str(notebook)).items():
        default, value = ast.literal_eval(declared["default"]), values[name]
        kinds = _kind(default)
        if kinds is None:
            continue
        wrong = not _is(value, kinds)
        kinds_text = _kind_name(kinds)
        element = _kind(default[0]) if kinds == (list, tuple) and default else None
        if element is not None:
            kinds_text = f"a list of {_kind_name(element).removeprefix('a ').removeprefix('an ')}s"
            wrong = wrong or not all(_is(v, element) for v in value)
        if wrong:
            hint = ""
            if isinstance(value, str):
                hint = f" papermill's -p passes text; pass it as YAML with -y, e.g. papermill {Path(notebook).name} out.ipynb -y '{name}: {default!r}'."
            raise TypeError(f"Parameter {name} of {Path(notebook).name} takes {kinds_text} like its default {default!r}, got {value!r} ({type(value).__name__}).{hint}")


def execute_chapters(
    root: str | os.PathLike = ".",
    output_dir: str | os.PathLike = "_build/executed",
    parameters: dict | None = None,
    kernel_name: str | None = None,
) -> list[Path]:
    """Execute every chapter in order; returns the executed notebooks' paths.

    Each chapter gets the ``parameters`` its ``parameters`` cell declares, and no others; a
    parameter that no chapter declares is an error (a misspelt name would otherwise change
    nothing, silently).
    """
    notebooks = chapters(root)
    parameters = dict(parameters or {})
    declared = {notebook: chapter_parameters(notebook) for notebook in notebooks}
    known = set().union(*declared.values())
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ValueError(f"No chapter declares the parameter(s) {', '.join(unknown)}; the chapters declare: {', '.join(sorted(known))}.")
    executed = []
    for notebook in notebooks:
        own = {name: value for name, value in parameters.items() if name in declared[notebook]}
        start = time.perf_counter()
        executed.append(execute_chapter(notebook, Path(output_dir) / notebook.name, own, kernel_name))
        given = f" with {own}" if own else ""
        print(f"executed {notebook.name}{given} in {time.perf_counter() - start:.0f} s", flush=True)
    return executed


def stage(root: str | os.PathLike, executed: list[Path], source_dir: str | os.PathLike) -> Path:
    """Lay out a buildable book: configuration, markdown pages and the executed notebooks."""
    root, source_dir = Path(root), Path(source_dir)
    shutil.rmtree(source_dir, ignore_errors=True)
    (source_dir / "book").mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(root / name, source_dir / name)
    for page in (root / "book").glob("*.md"):
        shutil.copy2(page, source_dir / "book" / page.name)
    for notebook in executed:
        shutil.copy2(notebook, source_dir / "book" / notebook.name)
    return source_dir


def build_html(source_dir: str | os.PathLike, output_dir: str | os.PathLike = ".") -> Path:
    """Run ``jupyter-book build -W`` on a staged source; the HTML lands in ``output_dir/_build/html``."""
    command = ["jupyter-book", "build", str(source_dir), "--path-output", str(output_dir), "-W", "-n", "--keep-going"]
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if jupyter_book.exists():
        command[0] = str(jupyter_book)
    subprocess.run(command, check=True)
    return Path(output_dir) / "_build" / "html"


def _parameter(text: str) -> tuple[str, object]:
    """``name=value`` with ``value`` read as a Python literal where it is one (as papermill -p does)."""
    import ast

    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"parameters look like name=value, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memnotebooks.book", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="repository root (holds book/, _config.yml, _toc.yml)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebooks' own)")
    parser.add_argument("-p", "--parameter", action="append", type=_parameter, default=[], help="name=value, passed to every chapter that declares the name")
    args = parser.parse_args(argv)
    build = Path(args.root) / "_build"
    executed = execute_chapters(args.root, build / "executed", dict(args.parameter), args.kernel)
    html = build_html(stage(args.root, executed, build / "source"), args.root)
    print(f"book: {html.resolve() / 'index.html'}")


if __name__ == "__main__":
    main()
