"""The chapters: stored without outputs, parameterized, executed by papermill, built as a book."""

import ast
import json
import re
import shutil
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
    assert (nb.metadata.kernelspec.name, nb.metadata.kernelspec.display_name) == ("memnotebooks", "Python (memnotebooks)")  # make install registers it
    # The parameters' types are checked first, at the top of the imports cell (papermill's -p passes text).
    first, second = ast.parse(code[1].source).body[:2]
    assert ast.unparse(first) == "from memnotebooks import book" and ast.unparse(second) == f"book.check_parameters('{notebook.name}', globals())"


# What keeps a chapter thin (DESIGN §3: narrative, math, figures and a few high-level calls; the
# logic in the package, tested). A code cell holds at most MAX_STATEMENTS statements, nested ones
# included (logical lines: a call written over several lines is one). Twelve one-line statements
# fit on a screen beside the prose that explains them: enough for an imports cell (imports, the
# parameter check, the runs) and for a hidden sentence cell that looks a few numbers up and shows
# them, not for one that also computes them (the house model, chapter 07, has one to three a
# cell). The parameters cell is exempt: one literal a line, each with its comment.
MAX_STATEMENTS = 12
# A comprehension over runs iterates what the package should have one function for: its loop
# variable is used as a run (one of these attributes of it), or it iterates a name holding runs.
RUN_ATTRIBUTES = {"checkpoint", "config", "corrupted", "dataset", "fit_labels", "history", "learned_epoch", "model", "path", "summary", "test_predictions", "train_labels"}
RUN_NAMES = re.compile(r"grid|\w+_grid|runs_\w*|\w+_runs|checkpointed")
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
BLOCKS = {ast.FunctionDef: "def", ast.AsyncFunctionDef: "def", ast.ClassDef: "class", ast.For: "for", ast.AsyncFor: "for", ast.While: "while"}


def _iterated_names(node: ast.expr) -> set[str]:
    """The names an iterable goes over: ``grid``, ``grid[1:]``, the arguments of ``zip(degrees,
    grid)``; not a name that is only reached through an attribute (``grid[0].model.parameters()``
    iterates a model's parameters)."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, (ast.Subscript, ast.Starred)):
        return _iterated_names(node.value)
    if isinstance(node, ast.Call):
        return set().union(*(_iterated_names(a) for a in [*node.args, *(k.value for k in node.keywords)]))
    if isinstance(node, ast.BinOp):
        return _iterated_names(node.left) | _iterated_names(node.right)
    return set()


def cell_problems(source: str, parameters: bool = False) -> list[str]:
    """What makes one code cell's ``source`` too thick for a chapter, each as "line N: what"."""
    tree = ast.parse(source)
    problems = []
    statements = sum(isinstance(node, ast.stmt) for node in ast.walk(tree))
    if statements > MAX_STATEMENTS and not parameters:
        problems.append(f"{statements} statements (at most {MAX_STATEMENTS})")
    for node in ast.walk(tree):
        if type(node) in BLOCKS:
            problems.append(f"line {node.lineno}: a {BLOCKS[type(node)]} statement")
        elif isinstance(node, COMPREHENSIONS):
            variables = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            as_runs = {n.value.id for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr in RUN_ATTRIBUTES and isinstance(n.value, ast.Name)}
            over = {name for g in node.generators for name in _iterated_names(g.iter) if RUN_NAMES.fullmatch(name)}
            if variables & as_runs or over:
                problems.append(f"line {node.lineno}: a comprehension over runs ({', '.join(sorted(variables & as_runs or over))})")
    return problems


def chapter_problems(notebook: Path) -> list[str]:
    """:func:`cell_problems` of every code cell of a chapter, each as "chapter, cell i, what"."""
    nb = nbformat.read(notebook, as_version=4)
    return [
        f"{notebook.name}, cell {index}, {problem}"
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for problem in cell_problems(cell.source, parameters="parameters" in cell.metadata.get("tags", []))
    ]


def test_chapters_stay_thin():
    problems = [problem for notebook in CHAPTERS for problem in chapter_problems(notebook)]
    assert not problems, "Move these into the package:\n" + "\n".join(problems)


def test_the_thinness_check_finds_what_it_should(tmp_path):
    bad = """\
def helper(x):
    return x
for r in grid:
    print(r)
while False:
    pass
final = [r.test_predictions[-1] for r in runs_by_degree]
epochs = {s: run.summary["epochs"] for s, run in pairs}
kept = [f(g) for g in width_runs]
pairs = list(zip(degrees, checkpointed))
both = [x for x in zip(degrees, checkpointed)]
a = b = c = 1
d = 2
"""
    found = cell_problems(bad)
    assert [p.split(": ", 1)[1] for p in found if p.startswith("line")] == [
        "a def statement", "a for statement", "a while statement",
        "a comprehension over runs (r)", "a comprehension over runs (run)", "a comprehension over runs (width_runs)", "a comprehension over runs (checkpointed)",
    ]
    assert found[0] == "13 statements (at most 12)" and "statements" not in cell_problems(bad, parameters=True)[0]
    allowed = """\
prose.show(f"At {prose.listing(f'$p = {p:g}$' for p in degrees)} the network "
           f"has {sum(p.numel() for p in grid[0].model.parameters()):,} parameters; "
           + "; ".join(f"{name}: {row.accuracy:.3f}" for name, row in table.iterrows()))
"""
    assert cell_problems(allowed) == []
    chapter = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_markdown_cell("for r in grid:"), nbformat.v4.new_code_cell(bad)])
    path = tmp_path / "99_bad.ipynb"
    nbformat.write(chapter, path)
    problems = chapter_problems(path)
    assert len(problems) == len(found) and all(p.startswith("99_bad.ipynb, cell 2, ") for p in problems)


def test_chapters_are_listed_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for notebook in CHAPTERS:
        assert f"file: book/{notebook.stem}" in toc


def test_parameters_reach_only_the_chapters_that_declare_them(monkeypatch, tmp_path):
    received = {}
    monkeypatch.setattr(book, "execute_chapter", lambda notebook, output, parameters, kernel: received.setdefault(notebook.name, parameters))
    book.execute_chapters(ROOT, tmp_path, {"seeds": [0, 1], "example_degree": 0.4, "probe_degree": 0.6, "fine_tune_epochs": 5})
    # Every chapter that trains takes `seeds`; chapter 07 only reads committed reports, chapter 11 the other chapters' results.
    readers = ("07_reproducing_the_paper.ipynb", "11_what_holds.ipynb")
    assert all(received[name]["seeds"] == [0, 1] for name in received if name not in readers)
    assert all(received[name] == {} for name in readers)
    assert [name for name in received if "example_degree" in received[name]] == ["01_corruption.ipynb"]
    assert [name for name in received if "probe_degree" in received[name]] == ["05_masc_decoding.ipynb"]
    assert [name for name in received if "fine_tune_epochs" in received[name]] == ["06_relabel_retraining.ipynb"]
    with pytest.raises(ValueError, match="No chapter declares the parameter.* seed; the chapters declare: .*seeds"):
        book.execute_chapters(ROOT, tmp_path, {"seed": 1})


def test_no_source_holds_a_control_character():
    # e.g. "\b" in a non-raw string eats the backslash of \bar and renders as a box
    control = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
    for path in sorted((ROOT / "book").glob("*.md")) + CHAPTERS:
        text = path.read_text() if path.suffix == ".md" else "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
        found = [repr(text[max(m.start() - 20, 0) : m.end() + 5]) for m in control.finditer(text)]
        assert not found, f"{path.name}: control characters in {found}"


@pytest.mark.notebooks
def test_a_parameter_of_the_wrong_type_stops_the_chapter_saying_how_to_pass_it(tmp_path):
    import papermill

    notebook = ROOT / "book" / "01_corruption.ipynb"
    # As `papermill book/01_corruption.ipynb out.ipynb -p degrees '[1.5]'` gives it: text, not a list.
    with pytest.raises(papermill.PapermillExecutionError) as failed:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters={"degrees": "[1.5]"}, cwd=str(notebook.parent), progress_bar=False)
    assert failed.value.ename == "TypeError"
    assert re.search(r"Parameter degrees of 01_corruption\.ipynb takes a list of numbers like its default \[.*\], got '\[1\.5\]' \(str\)\. "
                     r"papermill's -p passes text; pass it as YAML with -y, e.g\. papermill 01_corruption\.ipynb out\.ipynb -y 'degrees: \[", failed.value.evalue)
    assert "pass it as YAML with -y" in str(failed.value)


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """Every chapter executed with its defaults by papermill, and the HTML book built from them."""
    tmp_path = tmp_path_factory.mktemp("book")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMNOTEBOOKS_ARTIFACTS", str(tmp_path / "artifacts"))
        executed = book.execute_chapters(ROOT, tmp_path / "executed")
    html = book.build_html(book.stage(ROOT, executed, tmp_path / "source"), tmp_path)
    return tmp_path, executed, html


@pytest.mark.notebooks
def test_every_chapter_runs_with_papermill_and_the_book_builds(built_book):
    tmp_path, executed, html = built_book
    for notebook in executed:
        nb = nbformat.read(notebook, as_version=4)
        images = [o for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"{notebook.name} drew no figure"
        errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
    # Later chapters reuse chapter 02's runs: the cache holds one trained run per distinct
    # configuration (the chapters' default degrees 0, 0.4 and 0.8, each seed, and chapter 08's
    # random labels at degree 1, each seed), beside chapter 05's untrained networks (0 epochs);
    # chapter 09 reuses chapter 08's runs with checkpoints.
    configs = [json.loads(p.read_text()) for p in (tmp_path / "artifacts").glob("*/config.json")]
    plain = [c for c in configs if c["max_epochs"] == 300 and c["corruption_mode"] == "uniform" and not (c["checkpoint_epochs"] or c["dropout"] or c["weight_decay"])]
    assert sorted((c["corruption_degree"], c["seed"]) for c in plain if c["width"] == 1) == sorted([(p, s) for p in (0, 0.4, 0.8, 1.0) for s in (0, 1, 2)])
    assert sum(c["max_epochs"] == 0 for c in configs) == 9
    checkpointed = sorted((c["corruption_degree"], c["width"]) for c in configs if c["checkpoint_epochs"])
    assert checkpointed == [(0.4, 1.0), (0.8, 0.125), (0.8, 0.5), (0.8, 1.0)]
    for notebook in executed:
        page = (html / "book" / f"{notebook.stem}.html").read_text()
        assert page.count("<img") >= 2, f"{notebook.stem}.html shows no figures"


CHROMIUM = shutil.which("chromium")

PAGE_CHECKS = """() => {
  const column = document.querySelector('article.bd-article');
  const width = column.getBoundingClientRect().width;
  const wide = [...column.querySelectorAll('table, img, figure')]
    .map(e => [e.tagName, Math.round(e.getBoundingClientRect().width), (e.innerText || e.getAttribute('src') || '').slice(0, 80)])
    .filter(([, w]) => w > width + 1);
  const images = [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);
  const links = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  return {width, wide, images, links, ids};
}"""


@pytest.mark.notebooks
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)")
def test_the_built_book_in_a_real_browser(built_book):
    from playwright.sync_api import sync_playwright

    _, _, html = built_book
    pages = sorted(html.glob("book/*.html"))  # index.html only redirects to the intro
    found, problems = {}, []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for path in pages:
            page.goto(path.as_uri(), wait_until="load")
            found[path.resolve()] = page.evaluate(PAGE_CHECKS)
        browser.close()
    for path, checks in found.items():
        name = path.relative_to(html.resolve())
        problems += [f"{name}: image {src} not drawn" for src, drawn in checks["images"] if not drawn]
        problems += [f"{name}: {tag} {w} px wide in a {checks['width']:.0f} px column ({text!r})" for tag, w, text in checks["wide"]]
        for href in checks["links"]:
            if re.match(r"[a-z]+:", href) or href == "#":
                continue
            target, _, anchor = href.partition("#")
            target_path = (path.parent / target).resolve() if target else path
            if not target_path.exists():
                problems.append(f"{name}: link {href} to a missing file")
            elif anchor and target_path in found and anchor not in found[target_path]["ids"]:
                problems.append(f"{name}: link {href} to a missing anchor")
    assert len(found) == len(pages) and not problems, "\n".join(problems)
