"""The package's module map (DESIGN §3): imports run one way, from layer to layer, without a
cycle, at the top of each module, and never reach a private name of another module."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "memnotebooks"

LAYERS = {
    "leaves": ["checks", "store", "devices", "progress", "prose", "uncertainty", "corruption", "models", "data", "paper"],
    "arrays": ["masc", "velpic", "probes", "subspaces", "manifolds", "activations"],
    "training": ["training", "gradients", "stacked"],
    "runs": ["runs"],
    "analyses": ["tables", "decoding", "baselines", "layer_geometry", "layer_manifolds", "relabel", "dynamics", "rewinding", "editing", "recovery"],
    "outputs": ["report", "sweep", "book", "plotting", "holds", "explorers"],
}
"""Every module of the package, by layer, bottom-up. Within a layer a module may import another
of the same layer (DESIGN's "only from layers below" would forbid relabel's use of decoding);
the graph must stay acyclic."""

LAYER_OF = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}


def package_imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(module imported, names imported, at the module's top level) for each import of the package."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("memnotebooks")):
            module = (node.module or "").removeprefix("memnotebooks").lstrip(".")
            if not module:  # from . import x
                found.extend((alias.name, [], id(node) in top) for alias in node.names)
            else:
                found.append((module.split(".")[0], [alias.name for alias in node.names], id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("memnotebooks."):
                    found.append((alias.name.split(".")[1], [], id(node) in top))
    return found


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def test_every_module_has_a_layer():
    assert sorted(LAYER_OF) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_down_the_layers_at_the_top_and_to_public_names(module):
    for imported, names, at_top in package_imports(PACKAGE / f"{module}.py"):
        assert at_top, f"{module} imports {imported} inside a function: imports belong at the top"
        assert LAYER_OF[imported] <= LAYER_OF[module], f"{module} ({LAYER_OF[module]}) imports {imported} from a layer above ({LAYER_OF[imported]})"
        private = [name for name in names if name.startswith("_")]
        assert not private, f"{module} imports private name(s) {private} of {imported}"


def test_the_import_graph_has_no_cycle():
    graph = {module: {imported for imported, _, _ in package_imports(PACKAGE / f"{module}.py")} for module in MODULES}
    visiting, done = set(), set()

    def visit(module, path):
        if module in visiting:
            raise AssertionError(f"import cycle: {' -> '.join([*path, module])}")
        if module not in done:
            visiting.add(module)
            for imported in graph[module]:
                visit(imported, [*path, module])
            visiting.discard(module)
            done.add(module)

    for module in MODULES:
        visit(module, [])


@pytest.mark.parametrize("module", MODULES)
def test_each_module_says_in_its_first_sentence_what_it_holds(module):
    docstring = ast.get_docstring(ast.parse((PACKAGE / f"{module}.py").read_text()))
    assert docstring, f"{module} has no docstring"
    first = re.split(r"(?<=\.)\s", docstring.strip(), maxsplit=1)[0]
    assert 20 <= len(first) <= 300, f"{module}'s first sentence: {first!r}"


def test_the_test_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""A bad module."""\ndef f():\n    from .runs import _summary\n')
    assert package_imports(bad) == [("runs", ["_summary"], False)]
