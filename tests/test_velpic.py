"""VeLPIC (Ketha & Ramaswamy 2026) against its definition, against MASC at one component, and
MASC as a quadratic rule (masc.squared_cosines)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import check_estimator

import published_masc as published
from memnotebooks import decoding
from memnotebooks.activations import extract_activations
from memnotebooks.masc import MASC, squared_cosines
from memnotebooks.probes import PROBE_NAMES, fit_probe
from memnotebooks.velpic import VeLPIC


def reference_velpic(X, y):
    """The definition, plainly in numpy: per class the top eigenvector of X_cᵀX_c, its sign
    chosen by the mean of v_c·h over every training point, prediction argmax_c v_c·x."""
    X = np.asarray(X, dtype=np.float64)
    classes = np.unique(y)
    directions = []
    for c in classes:
        points = X[y == c]
        _, vectors = np.linalg.eigh(points.T @ points)
        v = vectors[:, -1]
        directions.append(-v if np.mean(X @ v) < 0 else v)
    return classes, np.array(directions)


def reference_predict(X, classes, directions):
    return classes[np.argmax(np.asarray(X, dtype=np.float64) @ directions.T, axis=1)]


def top_two_gap(scores):
    ordered = np.sort(scores, axis=1)
    return ordered[:, -1] - ordered[:, -2]


@pytest.fixture(scope="module")
def digits():
    """The digits' raw pixels (0-16, never negative; 64 features, about 180 points a class, so the d x d Gram)."""
    X, y = load_digits(return_X_y=True)
    return X[::2], y[::2], X[1::2], y[1::2]


@pytest.fixture(scope="module")
def hidden(memorized):
    """A memorizing MLP's hidden layers (fc1: 128 features, fc2: 512, fc4: 2048; 40 points a class:
    the n_c x n_c Gram), with the corrupted labels it was trained on."""
    layers = ["fc1", "fc2", "fc4"]
    train = extract_activations(memorized.model, memorized.dataset.x_train, layers)
    test = extract_activations(memorized.model, memorized.dataset.x_test, layers)
    return {layer: (train[layer].numpy(), memorized.train_labels.numpy(), test[layer].numpy(), memorized.dataset.y_test.numpy()) for layer in train}


def test_passes_check_estimator_but_the_documented_failure():
    reason = "standardized 2-D blobs: the mean over all points that fixes each sign is zero"
    results = check_estimator(VeLPIC(), on_fail=None, expected_failed_checks={"check_classifiers_train": reason})
    statuses = {(r["check_name"], r["status"]) for r in results}
    assert {status for _, status in statuses} <= {"passed", "xfail", "skipped"}
    assert {name for name, status in statuses if status == "xfail"} == {"check_classifiers_train"}
    assert "check_classifiers_train" in VeLPIC.__doc__


def assert_matches_the_definition(X_fit, y_fit, X_eval):
    clf = VeLPIC().fit(X_fit, y_fit)
    classes, directions = reference_velpic(X_fit, y_fit)
    np.testing.assert_array_equal(clf.classes_, classes)
    np.testing.assert_allclose(clf.components_, directions, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(clf.components_, axis=1), 1.0, atol=1e-10)
    expected = reference_predict(X_eval, classes, directions)
    predicted = clf.predict(X_eval)
    # float32 input is scored in float32: only points whose two best scores tie to rounding may differ
    differ = predicted != expected
    gap = top_two_gap(np.asarray(X_eval, dtype=np.float64) @ directions.T)
    assert np.all(gap[differ] < 1e-4 * np.abs(np.asarray(X_eval)).max()), gap[differ]
    assert differ.mean() <= 0.001
    return clf


def test_matches_the_definition_on_the_digits_pixels(digits):
    X_fit, y_fit, X_eval, _ = digits
    clf = assert_matches_the_definition(X_fit, y_fit, X_eval)
    assert np.array_equal(clf.predict(X_eval), reference_predict(X_eval, *reference_velpic(X_fit, y_fit)))  # float64: exact


@pytest.mark.parametrize("layer", ["fc1", "fc2"])  # fc4's 2048 x 2048 eigh would take seconds a class
def test_matches_the_definition_on_a_memorizing_networks_layers(hidden, layer):
    X_fit, y_fit, X_eval, _ = hidden[layer]
    assert_matches_the_definition(X_fit, y_fit, X_eval)


@pytest.mark.parametrize("n, d, mean", [(2000, 30, 0.0), (600, 200, 0.0), (1500, 20, 1.0), (1500, 20, -1.0)])
def test_matches_the_definition_on_random_data(n, d, mean):
    if mean == 0.0:  # class-structured ReLU features, as in test_masc
        X, y = published.synthetic_relu_activations(2 * n, d, n_classes=5, seed=7)
    else:  # Gaussian classes around means of either sign: the sign rule decides
        rng = np.random.default_rng(8)
        y = rng.integers(0, 4, size=2 * n)
        X = mean + rng.normal(size=(4, d))[y] + 0.5 * rng.normal(size=(2 * n, d))
    assert_matches_the_definition(X[:n], y[:n], X[n:])


def test_the_sign_follows_the_mean_over_all_training_points():
    # Class 0 lies along -e1, class 1 along (5, 1): the mean of all points has a positive e1 part,
    # so v_0 is turned to +e1, away from its own class.
    rng = np.random.default_rng(0)
    scale = rng.uniform(1, 3, size=(50, 1))
    X = np.vstack([scale * [-1.0, 0.0], scale * [5.0, 1.0]]) + 0.01 * rng.normal(size=(100, 2))
    y = np.repeat([0, 1], 50)
    clf = VeLPIC().fit(X, y)
    assert np.all(clf.components_ @ X.mean(axis=0) >= 0)
    assert clf.components_[0] @ [1.0, 0.0] > 0.99
    assert np.all(X[y == 0] @ clf.components_[0] < 0)


def test_agrees_with_masc_at_one_component_except_where_the_sign_decides(digits, hidden):
    # MASC at k = 1 predicts argmax |v_c . x|, VeLPIC argmax v_c . x: the same class wherever both
    # rules pick the same one, and only there.
    for X_fit, y_fit, X_eval, _ in [digits, *hidden.values()]:
        velpic, masc = VeLPIC().fit(X_fit, y_fit), MASC(max_components=1).fit(X_fit, y_fit)
        for line, direction in zip(masc.components_, velpic.components_):
            assert abs(line[0] @ direction) == pytest.approx(1.0)
        scores = np.asarray(X_eval, dtype=np.float64) @ velpic.components_.T
        signed, unsigned = scores.argmax(axis=1), np.abs(scores).argmax(axis=1)
        clear = (top_two_gap(scores) > 1e-5) & (top_two_gap(np.abs(scores)) > 1e-5)  # no float ties
        np.testing.assert_array_equal(velpic.predict(X_eval)[clear], velpic.classes_[signed][clear])
        np.testing.assert_array_equal(masc.predict(X_eval)[clear], masc.classes_[unsigned][clear])
        same = clear & (signed == unsigned)
        np.testing.assert_array_equal(velpic.predict(X_eval)[same], masc.predict(X_eval)[same])


def test_where_masc_and_velpic_differ_a_constructed_example():
    # Class "a" along e1, class "b" along e2, both with positive coordinates. A point far along -e2
    # makes the smallest angle with b's line (MASC), but v_b . x is very negative (VeLPIC: a).
    X = np.array([[1.0, 0.1], [2.0, -0.1], [3.0, 0.0], [0.1, 1.0], [-0.1, 3.0], [0.0, 2.0]])
    y = np.array(["a", "a", "a", "b", "b", "b"])
    point = np.array([[0.2, -4.0]])
    assert VeLPIC().fit(X, y).predict(point)[0] == "a"
    assert MASC(max_components=1).fit(X, y).predict(point)[0] == "b"
    # Along +e2 they agree.
    assert VeLPIC().fit(X, y).predict([[0.2, 4.0]])[0] == MASC(max_components=1).fit(X, y).predict([[0.2, 4.0]])[0] == "b"


def test_masc_is_quadratic(hidden, digits):
    # argmax_c x^T P_c x / x^T x is MASC's prediction (ties aside), and the quotient is cos^2 of its angle.
    for X_fit, y_fit, X_eval, _ in [digits, *hidden.values()]:
        masc = MASC().fit(X_fit, y_fit)
        quotients = squared_cosines(masc, X_eval)
        assert quotients.shape == (len(X_eval), len(masc.classes_)) and np.all((quotients >= 0) & (quotients <= 1))
        np.testing.assert_allclose(quotients, np.cos(np.deg2rad(masc.angles(X_eval))) ** 2, atol=1e-4)
        clear = top_two_gap(quotients) > 1e-5
        assert clear.mean() > 0.99
        np.testing.assert_array_equal(masc.classes_[quotients.argmax(axis=1)][clear], masc.predict(X_eval)[clear])
    with pytest.raises(NotFittedError):
        squared_cosines(MASC(), np.ones((1, 2)))
    clf = MASC().fit(np.eye(2), [0, 1])
    assert squared_cosines(clf, np.zeros((1, 2))).tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="X has 3 features, but MASC is expecting 2 features"):
        squared_cosines(clf, np.ones((1, 3)))


def test_torch_input_matches_numpy_input(hidden):
    X_fit, y_fit, X_eval, _ = hidden["fc1"]
    from_numpy = VeLPIC().fit(X_fit, y_fit)
    from_torch = VeLPIC().fit(torch.from_numpy(X_fit), torch.from_numpy(y_fit))
    np.testing.assert_allclose(from_numpy.components_, from_torch.components_, atol=1e-12)
    np.testing.assert_array_equal(from_numpy.predict(X_eval), from_torch.predict(torch.from_numpy(X_eval)))
    np.testing.assert_allclose(from_numpy.decision_function(X_eval), from_torch.decision_function(torch.from_numpy(X_eval)), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_give_the_cpu_predictions(hidden):
    X_fit, y_fit, X_eval, _ = hidden["fc1"]
    clf = VeLPIC().fit(torch.from_numpy(X_fit).cuda(), y_fit)
    np.testing.assert_array_equal(clf.predict(torch.from_numpy(X_eval).cuda()), VeLPIC().fit(X_fit, y_fit).predict(X_eval))


def test_params_scores_and_two_classes():
    assert VeLPIC().get_params() == {"device": None}
    X = np.array([[1.0, 0.1], [2.0, -0.1], [0.1, 1.0], [-0.1, 3.0]])
    clf = VeLPIC().fit(X, ["a", "a", "b", "b"])
    assert clf.score(X, ["a", "a", "b", "b"]) == 1.0 and clf.n_features_in_ == 2
    margin = clf.decision_function([[3.0, 0.0], [0.0, 3.0]])
    assert margin.shape == (2,) and margin[0] < 0 < margin[1]  # positive: classes_[1]
    assert clf.explained_variance_ratio_.shape == (2,) and np.all(clf.explained_variance_ratio_ > 0.99)
    # A class whose points are all zero has no direction: a zero row, score 0.
    zero = VeLPIC().fit(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]), [0, 0, 1])
    np.testing.assert_array_equal(zero.components_[0], [0.0, 0.0])


def test_bad_input():
    with pytest.raises(NotFittedError):
        VeLPIC().predict(np.ones((2, 2)))
    with pytest.raises(NotFittedError):
        VeLPIC().decision_function(np.ones((2, 2)))
    with pytest.raises(ValueError, match="VeLPIC requires y to be passed"):
        VeLPIC().fit(np.ones((2, 2)), None)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        VeLPIC().fit(np.ones((4, 2)), [0, 1, 1])
    with pytest.raises(ValueError, match=r"one label per row of X \(4\)"):
        VeLPIC().fit(torch.ones(4, 2), [0, 1, 1])
    with pytest.raises(ValueError, match="Expected a 2-D floating-point tensor"):
        VeLPIC().fit(torch.ones(4, 2, 2), [0, 1, 1, 0])
    with pytest.raises(ValueError, match="Unknown label type"):
        VeLPIC().fit(np.ones((4, 2)), [0.5, 1.5, 0.25, 2.0])
    bad = np.ones((4, 2))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        VeLPIC().fit(bad, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="NaN or infinity"):
        VeLPIC().fit(torch.from_numpy(bad), [0, 0, 1, 1])
    clf = VeLPIC().fit(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match="X has 2 features, but VeLPIC is expecting 3 features"):
        clf.predict(np.ones((1, 2)))
    with pytest.raises(ValueError, match="X has 2 features, but VeLPIC is expecting 3 features"):
        clf.predict(torch.ones(1, 2))
    with pytest.raises(ValueError, match="Unknown device 'gpu'"):
        VeLPIC(device="gpu").fit(np.eye(2), [0, 1])


def test_a_probe_by_name_decoded_layer_by_layer(memorized, hidden):
    assert PROBE_NAMES["velpic"] == "VeLPIC"
    X_fit, y_fit, X_eval, y_eval = hidden["fc1"]
    assert fit_probe("velpic", torch.from_numpy(X_fit), y_fit).score(X_eval, y_eval) == VeLPIC().fit(X_fit, y_fit).score(X_eval, y_eval)
    table = decoding.layerwise_evaluation(memorized, probes=["velpic", "masc"], layers=["fc1", "fc4"], max_components=1)
    test = table[(table.split == "test") & (table.fit_labels == "corrupted")].set_index(["probe", "layer"]).accuracy
    assert test["velpic", "fc1"] == pytest.approx(VeLPIC().fit(X_fit, y_fit).score(X_eval, y_eval))
    assert table.accuracy.notna().all()


def test_rule_checks_of_a_run_agree_with_the_probes_fitted_here(memorized, hidden):
    from memnotebooks import decoding

    table = decoding.rule_checks(memorized, layers=["input", "fc1", "fc4"]).set_index("layer")
    assert list(table.index) == ["input", "fc1", "fc4"] and (table.n_points == len(memorized.dataset.y_test)).all()
    assert (table.quadratic_same == 1).all() and (table.quadratic_gap < 1e-4).all()
    # ReLU layers are never negative: no negative projection, so VeLPIC is MASC with one component.
    assert (table.loc[["fc1", "fc4"], ["negative_features", "negative_projections", "sign_differs"]] == 0).all().all()
    assert table.loc["input", "negative_features"] > 0  # normalized pixels lie in [-1, 1]
    X, y, X_test, y_test = hidden["fc1"]
    assert table.loc["fc1", "velpic_accuracy"] == pytest.approx((VeLPIC().fit(X, y).predict(X_test) == y_test).mean())
    assert table.loc["fc1", "masc_one_accuracy"] == pytest.approx((MASC(max_components=1).fit(X, y).predict(X_test) == y_test).mean())
