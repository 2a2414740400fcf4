import numpy as np
import pandas as pd
import pytest
import torch

import published_masc as published
from memnotebooks import evaluation, runs
from memnotebooks.activations import extract_activations
from memnotebooks.masc import MASC


@pytest.fixture(scope="module")
def memorized_runs(tmp_path_factory):
    """A small CNN on digits at degrees 0 and 0.6 (not trained to the target: fast)."""
    config = runs.RunConfig(model="cnn", max_epochs=15, subset=600)
    cache = tmp_path_factory.mktemp("artifacts")
    return runs.run_grid(config, degrees=(0.0, 0.6), artifacts_dir=cache, device="cpu", progress=False)


def test_evaluate_layer_is_a_function_of_the_activations_alone():
    X, y = published.synthetic_relu_activations(1200, 20, n_classes=3, rank=4, seed=0)
    given = y.copy()
    given[:100] = (y[:100] + 1) % 3
    wrong = given != y
    sets = {("test", "true"): ("test", np.ones(600, dtype=bool), y[600:]), ("train_corrupted", "given"): ("train", wrong[:600], given[:600][wrong[:600]])}
    activations = {"train": X[:600], "test": X[600:]}
    table = evaluation.evaluate_layer(activations, sets, "masc", given[:600], variance_threshold=0.9)
    expected = MASC(variance_threshold=0.9).fit(X[:600], given[:600])
    assert table.accuracy.tolist() == [expected.score(X[600:], y[600:]), expected.score(X[:600][wrong[:600]], given[:600][wrong[:600]])]
    as_tensors = {k: torch.from_numpy(v) for k, v in activations.items()}
    pd.testing.assert_frame_equal(evaluation.evaluate_layer(as_tensors, sets, "masc", given[:600], variance_threshold=0.9), table)


def test_layerwise_evaluation_table_and_cache(memorized_runs, monkeypatch):
    run = memorized_runs[1]
    table = evaluation.layerwise_evaluation(run)
    layers = list(run.model.probe_layers)
    assert set(table.layer) == set(layers) and set(table.fit_labels) == {"corrupted", "true"}
    assert [f"{s}/{t}" for s, t in evaluation.evaluation_sets(run)] == evaluation.PROTOCOL["sets"]
    assert set(zip(table.split, table.target)) == set(evaluation.evaluation_sets(run))
    assert table.accuracy.between(0, 1).all() and (table.corruption_degree == 0.6).all()
    n_test = len(run.dataset.y_test)
    sizes = table[table.layer == "fc1"].groupby("split").n_points.first()
    assert sizes["test"] == n_test and sizes["test_validation"] + sizes["test_holdout"] == n_test
    assert sizes["train_corrupted"] == run.corrupted.sum() > 0
    # MASC fitted on the true labels predicts the corrupted points' true labels better than
    # MASC fitted on the corrupted labels does.
    fc1 = table[(table.layer == "fc1") & (table.split == "train_corrupted")].set_index(["fit_labels", "target"]).accuracy
    assert fc1["true", "true"] > fc1["corrupted", "true"]

    def no_extraction(*args, **kwargs):
        raise AssertionError("a cached evaluation was computed again")

    # A second call reads the cached tables: nothing is extracted, the table is identical.
    monkeypatch.setattr(evaluation, "extract_activations", no_extraction)
    pd.testing.assert_frame_equal(evaluation.layerwise_evaluation(run), table)
    pd.testing.assert_frame_equal(
        evaluation.layerwise_evaluation(run, layers=["fc1"], fit_labels="true"),
        table[(table.layer == "fc1") & (table.fit_labels == "true")].reset_index(drop=True),
    )


def test_layerwise_evaluation_with_another_variance_threshold(memorized_runs):
    run = memorized_runs[1]
    with pytest.raises(ValueError, match=r"variance_threshold must be a number in \(0, 1\], got 1.5"):
        evaluation.layerwise_evaluation(run, variance_threshold=1.5)
    table = evaluation.layerwise_evaluation(run, layers=["fc1"], fit_labels=["true"], variance_threshold=0.5)
    # The accuracy is that of a MASC with this threshold fitted on the layer directly, which
    # differs from the default threshold's: the threshold is part of the table's recipe.
    train, test = (extract_activations(run.model, x, ["fc1"])["fc1"] for x in (run.dataset.x_train, run.dataset.x_test))
    accuracy = {t: MASC(variance_threshold=t).fit(train, run.dataset.y_train).score(test, run.dataset.y_test) for t in (0.5, 0.99)}
    assert accuracy[0.5] != accuracy[0.99]
    assert table.set_index(["split", "target"]).accuracy["test", "true"] == pytest.approx(accuracy[0.5])
    default = evaluation.layerwise_evaluation(run, layers=["fc1"], fit_labels=["true"])
    assert default.set_index(["split", "target"]).accuracy["test", "true"] == pytest.approx(accuracy[0.99])


def test_best_layers_and_headline(memorized_runs):
    decoding = pd.concat([evaluation.layerwise_evaluation(r) for r in memorized_runs])
    best = evaluation.best_layers(decoding)
    assert len(best) == 4  # 2 degrees x 2 label sets
    test = decoding[decoding.split == "test"]
    for _, row in best.iterrows():
        same = test[(test.corruption_degree == row.corruption_degree) & (test.fit_labels == row.fit_labels)]
        assert row.paper_accuracy == same.accuracy.max()
        validation = decoding[(decoding.split == "test_validation") & (decoding.corruption_degree == row.corruption_degree)
                              & (decoding.fit_labels == row.fit_labels)]
        assert row.validated_layer == validation.loc[validation.accuracy.idxmax(), "layer"]
    headline = evaluation.headline_table(decoding, runs.summary_table(memorized_runs))
    assert list(headline.corruption_degree) == [0.0, 0.6]
    assert {"model_test", "masc_corrupted", "masc_true_validated", "masc_true_validated_layer"} <= set(headline.columns)


def test_best_layers_of_a_probe_that_is_never_well_posed_are_nan(memorized_runs):
    run = memorized_runs[1]
    # QDA needs more points per class than features: not well posed on any layer of this run.
    decoding = evaluation.layerwise_evaluation(run, probes=["masc", "qda"], fit_labels="corrupted", layers=["fc1", "fc2"])
    assert decoding[decoding.probe == "qda"].accuracy.isna().all()
    best = evaluation.best_layers(decoding).set_index("probe")
    assert np.isnan(best.loc["qda", "paper_accuracy"]) and pd.isna(best.loc["qda", "validated_layer"])
    assert best.loc["masc", "paper_accuracy"] > 0


def test_validation_split_is_stratified_and_fixed():
    y = np.repeat(np.arange(10), 50)
    mask = evaluation.validation_split(y)
    assert mask.sum() == 100 and np.all(np.bincount(y[mask]) == 10)
    np.testing.assert_array_equal(mask, evaluation.validation_split(y))


def test_geometry_table_and_bad_names(memorized_runs):
    run = memorized_runs[0]
    table = evaluation.geometry_table(run, layers=["fc1", "fc3"])
    assert set(table.layer) == {"fc1", "fc3"} and len(table) == 20 and (table.n_features == 250).all()
    with pytest.raises(ValueError, match=r"'fc9'.*choose from: input, flatten, fc1, fc2, fc3"):
        evaluation.layerwise_evaluation(run, layers=["fc9"])
    with pytest.raises(ValueError, match="Unknown probe"):
        evaluation.layerwise_evaluation(run, probes=["svm"])
    with pytest.raises(ValueError, match="Unknown fit_labels 'noisy'; choose from: corrupted, true"):
        evaluation.layerwise_evaluation(run, fit_labels=["noisy"])
    with pytest.raises(ValueError, match="Unknown fit_labels 'noisy'; choose from: corrupted, true"):
        evaluation.geometry_table(run, fit_labels="noisy")
