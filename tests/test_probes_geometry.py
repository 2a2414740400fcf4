import numpy as np
import pandas as pd
import pytest
from scipy.linalg import subspace_angles

import published_masc as published
from memnotebooks import experiments
from memnotebooks.activations import extract_activations
from memnotebooks.masc import MASC
from memnotebooks.geometry import class_geometry, participation_ratio, principal_angle_matrix
from memnotebooks.probes import PROBES, is_well_posed, make_probe, probe_accuracies


@pytest.fixture(scope="module")
def memorized_runs(tmp_path_factory):
    """A small CNN on digits at degrees 0 and 0.6 (not trained to the target: fast)."""
    config = experiments.RunConfig(model="cnn", max_epochs=15, subset=600)
    cache = tmp_path_factory.mktemp("artifacts")
    return experiments.run_grid(config, degrees=(0.0, 0.6), artifacts_dir=cache, device="cpu", progress=False)


def test_every_probe_fits_and_scores():
    X, y = published.synthetic_relu_activations(1200, 20, n_classes=3, rank=4, seed=0)
    for name in PROBES:
        table = probe_accuracies(make_probe(name), X[::2], y[::2], {("test", "true"): (X[1::2], y[1::2])})
        assert table.accuracy.iloc[0] > 0.8, name
    with pytest.raises(ValueError, match="'svm'.*masc, logistic, knn"):
        make_probe("svm")


def test_qda_only_where_every_class_has_more_points_than_features():
    X = np.random.default_rng(0).normal(size=(30, 10))
    assert is_well_posed("qda", X, np.repeat([0, 1], 15)) and not is_well_posed("qda", X, np.repeat([0, 1, 2], 10))
    assert is_well_posed("lda", X, np.repeat([0, 1, 2], 10))
    table = probe_accuracies(None, X, np.repeat([0, 1], 15), {("test", "true"): (X, np.repeat([0, 1], 15))})
    assert table.accuracy.isna().all()


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


def test_layerwise_evaluation_table_and_cache(memorized_runs):
    run = memorized_runs[1]
    table = experiments.layerwise_evaluation(run)
    layers = list(run.model.probe_layers)
    assert set(table.layer) == set(layers) and set(table.subspace_labels) == {"corrupted", "true"}
    assert set(zip(table.split, table.target)) == {
        ("test", "true"), ("test_validation", "true"), ("test_holdout", "true"),
        ("train_clean", "true"), ("train_corrupted", "true"), ("train_corrupted", "given"),
    }
    assert table.accuracy.between(0, 1).all() and (table.corruption_degree == 0.6).all()
    n_test = len(run.dataset.y_test)
    sizes = table[table.layer == "fc1"].groupby("split").n_points.first()
    assert sizes["test"] == n_test and sizes["test_validation"] + sizes["test_holdout"] == n_test
    assert sizes["train_corrupted"] == run.wrong_labels.sum()
    # MASC fitted on the corrupted labels reproduces them on the corrupted training points more
    # than by chance, while the true-label fit predicts their true labels.
    fc1 = table[(table.layer == "fc1") & (table.split == "train_corrupted")].set_index(["subspace_labels", "target"]).accuracy
    assert fc1["true", "true"] > fc1["corrupted", "true"]
    # A second call reads the cached tables: identical.
    pd.testing.assert_frame_equal(experiments.layerwise_evaluation(run), table)
    assert sorted(p.name for p in run.path.glob("evaluation-*.csv")) == [
        "evaluation-masc-0.99-corrupted.csv", "evaluation-masc-0.99-true.csv",
    ]


def test_layerwise_evaluation_with_another_variance_threshold(memorized_runs):
    run = memorized_runs[1]
    with pytest.raises(ValueError, match=r"variance_threshold must be a number in \(0, 1\], got 1.5"):
        experiments.layerwise_evaluation(run, variance_threshold=1.5)
    table = experiments.layerwise_evaluation(run, layers=["fc1"], subspace_labels=["true"], variance_threshold=0.5)
    assert (run.path / "evaluation-masc-0.5-true.csv").exists()
    # The cached accuracy is that of a MASC with this threshold fitted on the layer directly, which
    # differs from the default threshold's.
    train, test = (extract_activations(run.model, x, ["fc1"])["fc1"] for x in (run.dataset.x_train, run.dataset.x_test))
    accuracy = {t: MASC(variance_threshold=t).fit(train, run.dataset.y_train).score(test, run.dataset.y_test) for t in (0.5, 0.99)}
    assert accuracy[0.5] != accuracy[0.99]
    assert table.set_index(["split", "target"]).accuracy["test", "true"] == pytest.approx(accuracy[0.5])


def test_best_layers_and_headline(memorized_runs):
    evaluation = pd.concat([experiments.layerwise_evaluation(r) for r in memorized_runs])
    best = experiments.best_layers(evaluation)
    assert len(best) == 4  # 2 degrees x 2 label sets
    test = evaluation[evaluation.split == "test"]
    for _, row in best.iterrows():
        same = test[(test.corruption_degree == row.corruption_degree) & (test.subspace_labels == row.subspace_labels)]
        assert row.paper_accuracy == same.accuracy.max()
        validation = evaluation[(evaluation.split == "test_validation") & (evaluation.corruption_degree == row.corruption_degree)
                                & (evaluation.subspace_labels == row.subspace_labels)]
        assert row.validated_layer == validation.loc[validation.accuracy.idxmax(), "layer"]
    headline = experiments.headline_table(evaluation, experiments.summary_table(memorized_runs))
    assert list(headline.corruption_degree) == [0.0, 0.6]
    assert {"model_test", "masc_corrupted", "masc_true_validated", "masc_true_validated_layer"} <= set(headline.columns)


def test_validation_split_is_stratified_and_fixed():
    y = np.repeat(np.arange(10), 50)
    mask = experiments.validation_split(y)
    assert mask.sum() == 100 and np.all(np.bincount(y[mask]) == 10)
    np.testing.assert_array_equal(mask, experiments.validation_split(y))


def test_geometry_table_and_bad_names(memorized_runs):
    run = memorized_runs[0]
    table = experiments.geometry_table(run, layers=["fc1", "fc3"])
    assert set(table.layer) == {"fc1", "fc3"} and len(table) == 20 and (table.n_features == 250).all()
    with pytest.raises(ValueError, match=r"'fc9'.*choose from: input, flatten, fc1, fc2, fc3"):
        experiments.layerwise_evaluation(run, layers=["fc9"])
    with pytest.raises(ValueError, match="Unknown probe"):
        experiments.layerwise_evaluation(run, probes=["svm"])
    with pytest.raises(ValueError, match="Unknown subspace_labels 'noisy'"):
        experiments.layerwise_evaluation(run, subspace_labels=["noisy"])
    with pytest.raises(ValueError, match="Unknown subspace_labels 'noisy'; choose from: corrupted, true"):
        experiments.geometry_table(run, subspace_labels="noisy")


def test_paper_table_uses_our_names():
    table = experiments.paper_table()
    assert len(table) == 32 and table.model.notna().all() and table.dataset.notna().all()
    row = table[(table.model == "cnn") & (table.dataset == "fashion_mnist") & (table.corruption_degree == 0.6)].iloc[0]
    assert row.masc_corrupted > row.model_test
