"""The class subspaces of a run's layers: the geometry table, its changes with memorization, and the
room each label group's subspace leaves."""

import numpy as np
import pandas as pd
import pytest
import torch

from memnotebooks import layer_geometry
from memnotebooks.activations import extract_activations
from memnotebooks.masc import MASC


def test_geometry_table(memorized_runs):
    run = memorized_runs[0]
    table = layer_geometry.geometry_table(run, layers=["fc1", "fc3"])
    assert set(table.layer) == {"fc1", "fc3"} and len(table) == 20 and (table.n_features == 250).all()
    with pytest.raises(ValueError, match="Unknown fit_labels 'noisy'; choose from: corrupted, true"):
        layer_geometry.geometry_table(run, fit_labels="noisy")


def test_geometry_grid_stacks_each_runs_table(memorized_runs):
    grid = layer_geometry.geometry_grid(memorized_runs, layers=["fc3"], fit_labels="corrupted")
    one_by_one = [layer_geometry.geometry_table(r, layers=["fc3"], fit_labels="corrupted") for r in memorized_runs]
    pd.testing.assert_frame_equal(grid, pd.concat(one_by_one, ignore_index=True))


def test_embedding_table_draws_the_same_test_images_in_every_layer_and_run(memorized_runs):
    points = layer_geometry.embedding_table(memorized_runs, max_points=50, seed=3)
    layers = list(memorized_runs[0].model.probe_layers)
    assert points.groupby(["corruption_degree", "layer"], sort=False).size().to_dict() == {(p, layer): 50 for p in (0.0, 0.6) for layer in layers}
    drawn = points.groupby(["corruption_degree", "layer"]).index.apply(tuple)
    assert drawn.nunique() == 1 and (points.label.to_numpy() == memorized_runs[0].dataset.y_test.numpy()[points["index"]]).all()
    # The input panel is the same images under the same projection in both runs.
    inputs = points[points.layer == "input"].groupby("corruption_degree")[["component_1", "component_2"]]
    np.testing.assert_allclose(*(g.to_numpy() for _, g in inputs))


def test_layer_trend_in_words():
    assert layer_geometry.layer_trend(pd.Series([0.1, 0.2, 0.2, 0.4])) == "rises at every layer"
    assert layer_geometry.layer_trend(pd.Series([0.1, 0.3, 0.2])) == "is higher in the last layer than at the input"
    assert layer_geometry.layer_trend(pd.Series([0.3, 0.5, 0.1])) == "is lower in the last layer than at the input"
    assert layer_geometry.layer_trend(pd.Series([0.3, 0.5, 0.3])) == "is the same in the last layer as at the input"


def test_layer_changes_need_every_seed():
    rows = pd.DataFrame({
        "layer": ["fc1", "fc2"] * 4, "layer_index": [1, 2] * 4, "seed": [0, 0, 1, 1] * 2,
        "corruption_degree": [0.0] * 4 + [0.8] * 4,
        # fc1 rises in both seeds; fc2 rises in seed 0 and falls in seed 1.
        "k": [10, 20, 12, 20, 15, 25, 14, 18],
    })
    changes = layer_geometry.layer_changes(rows, "k", 0.0, 0.8)
    assert changes.index.tolist() == ["fc1", "fc2"]
    assert changes.sign.tolist() == [1, 0] and changes.loc["fc1", "change"] == pytest.approx(3.5)
    assert layer_geometry.layer_changes(rows.assign(k=-rows.k), "k", 0.0, 0.8).loc["fc1", "sign"] == -1
    with pytest.raises(ValueError, match=r"values 0.0 and 0.4"):
        layer_geometry.layer_changes(rows, "k", 0.0, 0.4)
    # In words, the layers grouped by the sign of their change.
    assert layer_geometry.describe_changes(changes) == "rises in `fc1` (11.0 → 14.5); shows no change common to every seed in `fc2` (20.0 → 21.5)"
    assert layer_geometry.describe_changes(changes, layers=["fc1"], digits=None) == "rises in `fc1`"
    with pytest.raises(ValueError, match="no layers to describe"):
        layer_geometry.describe_changes(changes, layers=["fc9"])


def test_label_group_subspaces_count_points_and_directions(memorized_runs):
    run = memorized_runs[1]
    table = layer_geometry.label_group_subspaces(run, layers=["fc1", "fc3"])
    labels = run.fit_labels("corrupted")
    assert table.groupby("layer").n_points.sum().tolist() == [len(labels)] * 2
    assert (table.k <= table.n_points).all() and (table.k >= 1).all() and set(table.width) == {250}
    fc1 = extract_activations(run.model, run.dataset.x_train, ["fc1"])["fc1"]
    np.testing.assert_array_equal(table[table.layer == "fc1"].k, MASC().fit(fc1, labels).n_components_)
    smaller = layer_geometry.label_group_subspaces(run, layers=["fc1"], variance_threshold=0.5)
    assert (smaller.k.to_numpy() <= table[table.layer == "fc1"].k.to_numpy()).all() and smaller.k.sum() < table[table.layer == "fc1"].k.sum()


def test_subspace_room_sets_subspace_size_beside_the_labels_masc_copies(memorized_runs):
    generalized, memorized = memorized_runs
    room = layer_geometry.subspace_room(memorized_runs, layers=["fc1", "fc3"])
    assert room.index.tolist() == [(0.6, "fc1"), (0.6, "fc3")]  # p = 0 has no wrong labels to copy
    assert room.columns.tolist() == list(layer_geometry.SUBSPACE_ROOM.values())
    groups = layer_geometry.label_group_subspaces(memorized, layers=["fc1"])
    assert room.loc[(0.6, "fc1"), "subspace dimension k"] == groups.k.mean()
    assert room.loc[(0.6, "fc1"), "k / min(points, d)"] == pytest.approx((groups.k / np.minimum(groups.n_points, 250)).mean())
    train = extract_activations(memorized.model, memorized.dataset.x_train, ["fc1"])["fc1"]
    labels, wrong = memorized.fit_labels("corrupted"), memorized.corrupted
    copied = (MASC().fit(train, labels).predict(train[torch.from_numpy(wrong)]) == labels[wrong]).mean()
    assert room.loc[(0.6, "fc1"), "wrong labels reproduced"] == pytest.approx(copied)
    with pytest.raises(ValueError, match="needs a degree p > 0"):
        layer_geometry.subspace_room([generalized])
