"""The probes by name, their recipes, and the paper's table shipped with the package."""

import numpy as np
import pytest

import published_masc as published
from memnotebooks.probes import PROBE_NAMES, PROBES, fit_probe, is_well_posed, make_probe, probe_accuracies, probe_recipe
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


def test_paper_table_ships_with_the_package_and_uses_our_names():
    table = paper_table()
    assert len(table) == 32 and table.model.notna().all() and table.dataset.notna().all()
    row = table[(table.model == "cnn") & (table.dataset == "fashion_mnist") & (table.corruption_degree == 0.6)].iloc[0]
    assert row.masc_corrupted > row.model_test


def test_each_probe_entry_says_whether_it_gives_class_probabilities():
    for name, entry in PROBES.items():
        assert entry.probabilistic == hasattr(make_probe(name), "predict_proba"), name
        assert PROBE_NAMES[name] == entry.name
