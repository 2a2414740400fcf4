"""The class manifolds of a run's layers, by layer, group and checkpoint, measured at one size."""

import pandas as pd
import pytest

from memnotebooks import layer_manifolds, runs


def test_manifold_table(memorized):
    table = layer_manifolds.manifold_table(memorized, layers=["input", "fc4"], epochs=[0, 5], points_per_class=10, n_t=50)
    assert set(table.group) == set(layer_manifolds.MANIFOLD_GROUPS) and set(table.epoch) == {0, 5}
    assert (table.n_points <= 10).all() and (table.capacity > 0).all()
    # The input layer does not depend on the weights: the same points give the same measures.
    first, second = (table[(table.layer == "input") & (table.epoch == e)].drop(columns="epoch").reset_index(drop=True) for e in (0, 5))
    pd.testing.assert_frame_equal(first, second)
    final = layer_manifolds.manifold_table(memorized, layers=["fc4"], points_per_class=10, n_t=50)
    assert set(final.epoch) == {memorized.summary["epochs"]}
    change = layer_manifolds.manifold_change(table, "dimension")  # epoch 5 against epoch 0
    assert list(change.columns) == ["input", "fc4"] and (change["input"] == 1).all()  # the input does not train
    epoch_zero, last = (table[(table.epoch == e) & (table.layer == "fc4") & (table.group == "clean")].dimension.mean() for e in (0, 5))
    assert change.loc[(0.6, "clean"), "fc4"] == round(last / epoch_zero, 2)
    with pytest.raises(ValueError, match="no epoch 0"):
        layer_manifolds.manifold_change(final)
    with pytest.raises(ValueError, match="Unknown measure 'width'"):
        layer_manifolds.manifold_change(table, "width")
    with pytest.raises(ValueError, match="points_per_class must be an integer >= 2, got 1"):
        layer_manifolds.manifold_table(memorized, points_per_class=1)


def test_manifold_groups_are_measured_at_one_size(memorized):
    table = layer_manifolds.manifold_table(memorized, layers=["input", "fc4"], epochs=[0, 5], points_per_class=40, n_t=30)
    sizes = table.n_points.unique()
    assert len(sizes) == 1 and 2 <= sizes[0] <= 40
    unequal = layer_manifolds.manifold_table(memorized, layers=["input"], epochs=[0], points_per_class=40, n_t=30, equal_sizes=False)
    # Unequal, the groups differ in size (the clean examples are fewer per class at p = 0.6) and
    # the smallest manifold is the size of every equal one.
    assert unequal.n_points.nunique() > 1 and unequal.n_points.min() == sizes[0] and (unequal.n_points <= 40).all()
    ratios = layer_manifolds.manifold_ratios(table, "radius")
    change = layer_manifolds.manifold_change(table, "radius")
    for row in ratios.itertuples():
        assert round(row.ratio, 2) == change.loc[(row.corruption_degree, row.group), row.layer]
        assert row.fell + row.rose <= row.n == table[(table.epoch == 0) & (table.group == row.group) & (table.layer == row.layer)].shape[0]
    on_input = ratios[ratios.layer == "input"]
    assert (on_input.ratio == 1).all() and (on_input.fell == 0).all() and (on_input.rose == 0).all()  # the input does not train


def test_manifold_grid_measures_the_final_network_once(memorized, short):
    options = dict(layers=["fc4"], points_per_class=5, n_t=20)
    # short's checkpoint at epoch 3 is its final network: measured once, as the final network.
    alone = layer_manifolds.manifold_grid([short], epochs=[0, 1, 3, 9], **options)
    assert alone.epoch.unique().tolist() == [0, 1, 3] and alone.groupby("epoch").size().nunique() == 1
    assert set(layer_manifolds.manifold_grid([short], **options).epoch) == {3}  # no epochs: the final network only
    table = layer_manifolds.manifold_grid([short, memorized], epochs=[0], **options)
    end = memorized.summary["epochs"]
    assert table.groupby("max_epochs").epoch.apply(lambda e: sorted(e.unique())).to_dict() == {3: [0, 3], 60: [0, end]}
    first = layer_manifolds.manifold_table(short, epochs=[0], **options)
    pd.testing.assert_frame_equal(table.iloc[: len(first)], first)  # every run's checkpoints first, then every final network
    assert table.max_epochs.iloc[len(first)] == 60 and table.epoch.iloc[-1] == end


def test_width_manifolds_set_the_untrained_network_beside_the_memorized_one(short, tmp_path):
    narrow = runs.run(short.config.replace(width=0.125), artifacts_dir=tmp_path, device="cpu", progress=False)
    table = layer_manifolds.width_manifolds([narrow, short], layers=["fc4"], points_per_class=5, n_t=20)
    # Every run's width, the default's included (a run at another width has it as a configuration column too).
    assert list(table.columns[:2]) == ["width", "network"] and table.width.unique().tolist() == [0.125, 1.0] and not table.width.isna().any()
    assert table.groupby(["width", "network"], sort=False).epoch.unique().map(list).to_dict() == {
        (0.125, "untrained"): [0], (0.125, "memorized"): [3], (1.0, "untrained"): [0], (1.0, "memorized"): [3]}
    untrained = table[(table.network == "untrained") & (table.width == 1.0)].drop(columns=["width", "network"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(untrained, layer_manifolds.manifold_table(short, layers=["fc4"], epochs=[0], points_per_class=5, n_t=20), check_like=True)
