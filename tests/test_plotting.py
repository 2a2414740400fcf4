"""Figures that draw one panel or one figure per part of a tidy table."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from memnotebooks import layer_manifolds, plotting, report  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_label_matrices_draw_one_titled_panel_per_table_on_one_scale():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 200)
    tables = {name: pd.DataFrame({"true_label": true, "new_label": np.where(rng.random(200) < share, rng.integers(0, 4, 200), true)})
              for name, share in (("corrupted labels", 0.6), ("in-sample MASC", 0.5), ("out of fold", 0.2))}
    figure = plotting.label_matrices(tables, column="new_label")
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == list(tables) and all(ax.get_xlabel() == "new label" for ax in panels)
    assert [ax.collections[0].get_clim() for ax in panels] == [(0, 1)] * 3 and figure.get_size_inches()[0] == pytest.approx(13)
    # Each panel is the label matrix of its own table.
    for ax, table in zip(panels, tables.values()):
        np.testing.assert_allclose(ax.collections[0].get_array().reshape(4, 4), pd.crosstab(table.true_label, table.new_label, normalize="index").to_numpy())


def test_paper_differences_by_pair_draw_one_figure_each():
    gathered = pd.DataFrame([{"model": m, "dataset": d, "corruption_degree": p, "seed": 0, "measure": "model_test", "selection": "final", "layer": "output", "accuracy": 0.5}
                             for m, d in (("cnn", "fashion_mnist"), ("mlp", "mnist")) for p in (0.2, 0.8)])
    comparison = report.comparison(gathered)
    axes = plotting.paper_differences_by_pair(comparison, tolerance=2.0, title="{model} on {dataset}")
    assert [ax.get_title() for ax in axes] == ["cnn on fashion_mnist", "mlp on mnist"] and len({id(ax.figure) for ax in axes}) == 2
    points = axes[1].get_lines()[-1].get_ydata()
    expected = comparison[comparison.model == "mlp"].sort_values("corruption_degree")
    np.testing.assert_allclose(points, (100 * expected["mean"]).round(1) - (100 * expected.paper).round(1))


def test_manifold_layers_by_degree_draw_one_figure_per_degree():
    rows = [{"corruption_degree": p, "seed": 0, "epoch": e, "layer": layer, "layer_index": i, "group": group, "label": c, "capacity": 1 + i, "radius": 0.5 * e, "dimension": 2.0}
            for p in (0.4, 0.8) for e in (0, 5) for i, layer in enumerate(["input", "fc1"]) for group in layer_manifolds.MANIFOLD_GROUPS for c in range(3)]
    figures = plotting.manifold_layers_by_degree(pd.DataFrame(rows), title="p = {corruption_degree}: manifolds")
    assert [f._suptitle.get_text() for f in figures] == ["p = 0.4: manifolds", "p = 0.8: manifolds"]
    assert len(figures[0].axes) == len(plotting.MANIFOLD_MEASURES) * len(layer_manifolds.MANIFOLD_GROUPS)
