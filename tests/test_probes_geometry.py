import numpy as np
import pandas as pd
import pytest
from scipy.linalg import subspace_angles

import published_masc as published
from memnotebooks.geometry import class_geometry, participation_ratio, principal_angle_matrix
from memnotebooks.masc import MASC
from memnotebooks.probes import PROBES, fit_probe, is_well_posed, make_probe, probe_accuracies, probe_recipe
from memnotebooks.paper import paper_table


def test_every_probe_fits_and_scores():
    X, y = published.synthetic_relu_activations(1200, 20, n_classes=3, rank=4, seed=0)
    for name in PROBES:
        fitted = fit_probe(name, X[::2], y[::2])
        table = probe_accuracies(fitted, {("test", "true"): (X[1::2], y[1::2]), ("train", "given"): (X[::2], y[::2])})
        assert table.accuracy.iloc[0] > 0.8, name
        # The fitted probe is returned, so its predictions (e.g. on the training set) can be reused.
        assert table.accuracy.iloc[1] == np.mean(fitted.predict(X[::2]) == y[::2])
    with pytest.raises(ValueError, match="'svm'.*masc, logistic, knn"):
        make_probe("svm")


def test_qda_only_where_every_class_has_more_points_than_features():
    X = np.random.default_rng(0).normal(size=(30, 10))
    assert is_well_posed("qda", X, np.repeat([0, 1], 15)) and not is_well_posed("qda", X, np.repeat([0, 1, 2], 10))
    assert is_well_posed("lda", X, np.repeat([0, 1, 2], 10))
    assert fit_probe("qda", X, np.repeat([0, 1, 2], 10)) is None
    table = probe_accuracies(None, {("test", "true"): (X, np.repeat([0, 1], 15))})
    assert table.accuracy.isna().all()


def test_probe_recipes_name_what_changes_predictions_only():
    # Parameters at their defaults are left out, so a new parameter with a default keeps the key.
    assert probe_recipe("masc") == {"probe": "masc", "params": {}}
    assert probe_recipe("masc", variance_threshold=0.5) == {"probe": "masc", "params": {"variance_threshold": 0.5}}
    assert probe_recipe("masc", device="cpu", batch_size=64) == probe_recipe("masc")
    assert probe_recipe("logistic")["params"]["logisticregression__max_iter"] == 300
    assert probe_recipe("knn") != probe_recipe("knn", n_neighbors=3)


def test_participation_ratio_and_principal_angles_on_known_cases():
    rng = np.random.default_rng(0)
    assert participation_ratio(rng.normal(size=(5000, 1)) * [[1, 0, 0]]) == pytest.approx(1.0)
    # Isotropic in 4 dimensions: PR close to 4.
    assert participation_ratio(rng.normal(size=(20000, 4))) == pytest.approx(4.0, rel=0.02)
    e = np.eye(3)
    angles = principal_angle_matrix([e[:1], e[1:2], (e[:1] + e[1:2]) / np.sqrt(2)])
    np.testing.assert_allclose(angles, [[0, 90, 45], [90, 0, 45], [45, 45, 0]], atol=1e-8)
    a, b = np.linalg.qr(rng.normal(size=(6, 2)))[0].T, np.linalg.qr(rng.normal(size=(6, 3)))[0].T
    expected = np.degrees(subspace_angles(a.T, b.T)).mean()
    assert principal_angle_matrix([a, b])[0, 1] == pytest.approx(expected)


def test_class_geometry_finds_each_class_dimension():
    rng = np.random.default_rng(1)
    line = rng.normal(size=(300, 1)) * np.eye(5)[0]
    plane = rng.normal(size=(300, 2)) @ np.eye(5)[1:3]
    table = class_geometry(np.vstack([line, plane]), np.repeat([0, 1], 300))
    assert table.k.tolist() == [1, 2] and table.k_fraction.tolist() == [0.2, 0.4]
    assert table.mean_principal_angle.tolist() == pytest.approx([90, 90])
    assert table.participation_ratio[0] == pytest.approx(1.0)


def test_paper_table_ships_with_the_package_and_uses_our_names():
    table = paper_table()
    assert len(table) == 32 and table.model.notna().all() and table.dataset.notna().all()
    row = table[(table.model == "cnn") & (table.dataset == "fashion_mnist") & (table.corruption_degree == 0.6)].iloc[0]
    assert row.masc_corrupted > row.model_test


def test_first_principal_angle_is_the_smallest_and_random_baseline_has_the_right_law():
    from memnotebooks.geometry import _random_cosines, principal_angles, random_principal_angle_matrix

    e = np.eye(4)
    # Planes sharing one axis: angles 0 and 90; the mean is 45, the first (smallest) 0.
    a, b = e[[0, 1]], e[[0, 2]]
    assert principal_angles(a, b).tolist() == pytest.approx([0, 90])
    assert principal_angle_matrix([a, b], "first")[0, 1] == pytest.approx(0)
    assert principal_angle_matrix([a, b], "mean")[0, 1] == pytest.approx(45)
    with pytest.raises(ValueError, match="Unknown statistic 'median'"):
        principal_angle_matrix([a, b], "median")
    # The Wishart (Bartlett) draw has the law of the direct one: mean sorted cosines agree.
    rng = np.random.default_rng(0)
    fast = np.mean([np.sort(_random_cosines(4, 6, 30, rng)) for _ in range(3000)], axis=0)
    direct = np.mean([np.sort(np.linalg.svd(np.linalg.qr(rng.standard_normal((30, 6)))[0][:4], compute_uv=False)) for _ in range(3000)], axis=0)
    np.testing.assert_allclose(fast, direct, atol=0.01)
    # Larger random subspaces in the same width come closer; subspaces that must meet (k_a + k_b > d) meet.
    small, large = (random_principal_angle_matrix([k, k], 400, "first")[0, 1] for k in (5, 80))
    assert large < small < 90
    assert random_principal_angle_matrix([6, 6], 10, "first")[0, 1] == pytest.approx(0, abs=1e-5)
    with pytest.raises(ValueError, match=r"\[1, n_features=10\]"):
        random_principal_angle_matrix([11, 2], 10)


def test_class_geometry_caps_k_by_the_points_and_layer_changes_need_every_seed():
    from memnotebooks.geometry import layer_changes

    rng = np.random.default_rng(2)
    # 8 points per class in 50 dimensions: k can be at most 8, whatever the width.
    X, y = np.abs(rng.normal(size=(16, 50))), np.repeat([0, 1], 8)
    table = class_geometry(X, y)
    assert (table.k_cap == 8).all() and (table.k <= 8).all()
    assert table.k_over_cap.tolist() == pytest.approx((table.k / 8).tolist())
    assert (table.first_principal_angle <= table.mean_principal_angle).all()
    assert (table.random_first_angle <= table.random_mean_angle).all()
    rows = pd.DataFrame({
        "layer": ["fc1", "fc2"] * 4, "layer_index": [1, 2] * 4, "seed": [0, 0, 1, 1] * 2,
        "corruption_degree": [0.0] * 4 + [0.8] * 4,
        # fc1 rises in both seeds; fc2 rises in seed 0 and falls in seed 1.
        "k": [10, 20, 12, 20, 15, 25, 14, 18],
    })
    changes = layer_changes(rows, "k", 0.0, 0.8)
    assert changes.index.tolist() == ["fc1", "fc2"]
    assert changes.sign.tolist() == [1, 0] and changes.loc["fc1", "change"] == pytest.approx(3.5)
    assert layer_changes(rows.assign(k=-rows.k), "k", 0.0, 0.8).loc["fc1", "sign"] == -1
    with pytest.raises(ValueError, match=r"values 0.0 and 0.4"):
        layer_changes(rows, "k", 0.0, 0.4)
