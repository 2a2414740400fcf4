"""Decoding a run's layers: the pure per-layer evaluation, the cached layerwise tables, best layers
and their comparisons."""

import numpy as np
import pandas as pd
import pytest
import torch

import published_masc as published
from memnotebooks import baselines, decoding, tables
from memnotebooks.activations import extract_activations
from memnotebooks.masc import MASC
from memnotebooks.data import validation_split
from test_tables import scores_of


def test_evaluate_layer_is_a_function_of_the_activations_alone():
    X, y = published.synthetic_relu_activations(1200, 20, n_classes=3, rank=4, seed=0)
    given = y.copy()
    given[:100] = (y[:100] + 1) % 3
    wrong = given != y
    sets = {("test", "true"): ("test", np.ones(600, dtype=bool), y[600:]), ("train_corrupted", "given"): ("train", wrong[:600], given[:600][wrong[:600]])}
    activations = {"train": X[:600], "test": X[600:]}
    table = decoding.evaluate_layer(activations, sets, "masc", given[:600], variance_threshold=0.9)
    expected = MASC(variance_threshold=0.9).fit(X[:600], given[:600])
    assert table.accuracy.tolist() == [expected.score(X[600:], y[600:]), expected.score(X[:600][wrong[:600]], given[:600][wrong[:600]])]
    as_tensors = {k: torch.from_numpy(v) for k, v in activations.items()}
    pd.testing.assert_frame_equal(decoding.evaluate_layer(as_tensors, sets, "masc", given[:600], variance_threshold=0.9), table)


def test_layerwise_evaluation_table_and_cache(memorized_runs, monkeypatch):
    run = memorized_runs[1]
    table = decoding.layerwise_evaluation(run)
    layers = list(run.model.probe_layers)
    assert set(table.layer) == set(layers) and set(table.fit_labels) == {"corrupted", "true"}
    assert [f"{s}/{t}" for s, t in decoding.evaluation_sets(run)] == decoding.PROTOCOL["sets"]
    assert set(zip(table.split, table.target)) == set(decoding.evaluation_sets(run))
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
    monkeypatch.setattr(decoding, "extract_activations", no_extraction)
    pd.testing.assert_frame_equal(decoding.layerwise_evaluation(run), table)
    pd.testing.assert_frame_equal(
        decoding.layerwise_evaluation(run, layers=["fc1"], fit_labels="true"),
        table[(table.layer == "fc1") & (table.fit_labels == "true")].reset_index(drop=True),
    )


def test_layerwise_evaluation_with_another_variance_threshold(memorized_runs):
    run = memorized_runs[1]
    with pytest.raises(ValueError, match=r"variance_threshold must be a number in \(0, 1\], got 1.5"):
        decoding.layerwise_evaluation(run, variance_threshold=1.5)
    table = decoding.layerwise_evaluation(run, layers=["fc1"], fit_labels=["true"], variance_threshold=0.5)
    # The accuracy is that of a MASC with this threshold fitted on the layer directly, which
    # differs from the default threshold's: the threshold is part of the table's recipe.
    train, test = (extract_activations(run.model, x, ["fc1"])["fc1"] for x in (run.dataset.x_train, run.dataset.x_test))
    accuracy = {t: MASC(variance_threshold=t).fit(train, run.dataset.y_train).score(test, run.dataset.y_test) for t in (0.5, 0.99)}
    assert accuracy[0.5] != accuracy[0.99]
    assert table.set_index(["split", "target"]).accuracy["test", "true"] == pytest.approx(accuracy[0.5])
    default = decoding.layerwise_evaluation(run, layers=["fc1"], fit_labels=["true"])
    assert default.set_index(["split", "target"]).accuracy["test", "true"] == pytest.approx(accuracy[0.99])


def test_layerwise_evaluation_refuses_bad_names(memorized_runs):
    run = memorized_runs[0]
    with pytest.raises(ValueError, match=r"'fc9'.*choose from: input, flatten, fc1, fc2, fc3"):
        decoding.layerwise_evaluation(run, layers=["fc9"])
    with pytest.raises(ValueError, match="Unknown probe"):
        decoding.layerwise_evaluation(run, probes=["svm"])
    with pytest.raises(ValueError, match="Unknown fit_labels 'noisy'; choose from: corrupted, true"):
        decoding.layerwise_evaluation(run, fit_labels=["noisy"])


def test_best_layers(memorized_runs):
    decoded = pd.concat([decoding.layerwise_evaluation(r) for r in memorized_runs])
    best = decoding.best_layers(decoded)
    assert len(best) == 4  # 2 degrees x 2 label sets
    test = decoded[decoded.split == "test"]
    for _, row in best.iterrows():
        same = test[(test.corruption_degree == row.corruption_degree) & (test.fit_labels == row.fit_labels)]
        assert row.paper_accuracy == same.accuracy.max()
        validation = decoded[(decoded.split == "test_validation") & (decoded.corruption_degree == row.corruption_degree)
                              & (decoded.fit_labels == row.fit_labels)]
        assert row.validated_layer == validation.loc[validation.accuracy.idxmax(), "layer"]
    hidden = decoding.best_layers(decoded, layers=decoding.hidden_layers(memorized_runs[0]))
    assert "input" not in set(hidden.paper_layer) | set(hidden.validated_layer)


def test_the_control_fits_the_labels_of_another_degree(memorized_runs):
    generalized, memorized = memorized_runs
    np.testing.assert_array_equal(generalized.fit_labels("corrupted", 0.6), memorized.train_labels.numpy())
    control = decoding.layerwise_evaluation(generalized, layers=["fc1"], fit_labels="corrupted", fit_corruption_degree=0.6)
    own = decoding.layerwise_evaluation(generalized, layers=["fc1"], fit_labels="corrupted")
    assert (control.fit_corruption_degree == 0.6).all() and (own.fit_corruption_degree == 0.0).all()
    train, test = (extract_activations(generalized.model, x, ["fc1"])["fc1"] for x in (generalized.dataset.x_train, generalized.dataset.x_test))
    expected = MASC().fit(train, memorized.train_labels).score(test, generalized.dataset.y_test)
    assert control.set_index(["split", "target"]).accuracy["test", "true"] == pytest.approx(expected)


def test_best_layers_of_a_probe_that_is_never_well_posed_are_nan(memorized_runs):
    run = memorized_runs[1]
    # QDA needs more points per class than features: not well posed on any layer of this run.
    decoded = decoding.layerwise_evaluation(run, probes=["masc", "qda"], fit_labels="corrupted", layers=["fc1", "fc2"])
    assert decoded[decoded.probe == "qda"].accuracy.isna().all()
    best = decoding.best_layers(decoded).set_index("probe")
    assert np.isnan(best.loc["qda", "paper_accuracy"]) and pd.isna(best.loc["qda", "validated_layer"])
    assert best.loc["masc", "paper_accuracy"] > 0


def test_evaluation_grid_stacks_each_runs_evaluation(memorized_runs):
    grid = decoding.evaluation_grid(memorized_runs, layers=["fc1"], fit_labels=["true"])
    one_by_one = [decoding.layerwise_evaluation(r, layers=["fc1"], fit_labels=["true"]) for r in memorized_runs]
    pd.testing.assert_frame_equal(grid, pd.concat(one_by_one, ignore_index=True))
    assert grid.corruption_degree.unique().tolist() == [0.0, 0.6]


def test_layer_profile_finds_the_peak_and_compares_the_last_layer_with_it():
    scores = scores_of({("fc1", 0.4): 0.6, ("fc2", 0.4): 0.8, ("fc3", 0.4): 0.5, ("fc1", 0.8): 0.7, ("fc2", 0.8): 0.6, ("fc3", 0.8): 0.6})
    profile = decoding.layer_profile(scores, ["fc1", "fc2", "fc3"])
    assert profile.highest.tolist() == ["fc2", "fc1"] and profile.lowest.tolist() == ["fc3", "fc2"] and profile.falls_steadily.tolist() == [False, True]
    assert profile.loc[0.4, ["highest_accuracy", "lowest_accuracy", "last_accuracy"]].tolist() == pytest.approx([0.8, 0.5, 0.5])
    drop = tables.paired_differences(scores[scores.corruption_degree == 0.4], "fc2", others=["fc3"]).iloc[0]
    assert profile.loc[0.4, ["difference", "low", "high", "sign"]].tolist() == pytest.approx(drop[["difference", "low", "high", "sign"]].tolist())
    # Where the last layer is the highest there is nothing to compare.
    rising = decoding.layer_profile(scores_of({("fc1", 0.4): 0.5, ("fc2", 0.4): 0.9}), ["fc1", "fc2"])
    assert rising.loc[0.4, "highest"] == rising.loc[0.4, "last_layer"] == "fc2" and np.isnan(rising.loc[0.4, "difference"]) and not rising.loc[0.4, "falls_steadily"]


def test_best_setting_is_the_highest_mean_and_is_compared_with_the_reference():
    scores = scores_of({("0.99", 0.4): 0.6, ("0.5", 0.4): 0.7, ("chosen on validation", 0.4): 0.9, ("0.99", 0.8): 0.6, ("0.5", 0.8): 0.55})
    best = decoding.best_setting(scores, "0.99")
    assert best.best.tolist() == ["0.5", "0.99"]  # "chosen on validation" is not a setting
    assert best.loc[0.4, ["best_accuracy", "reference_accuracy"]].tolist() == pytest.approx([0.7, 0.6]) and best.loc[0.4, "sign"] == 1
    assert best.loc[0.4, "difference"] == pytest.approx(0.1) and np.isnan(best.loc[0.8, "difference"])


def test_threshold_scores(memorized_runs):
    scores = decoding.threshold_scores(memorized_runs, thresholds=(0.5, 0.99))
    assert list(dict.fromkeys(scores.subspaces)) == ["0.5", "0.99", "single direction", "chosen on validation"]
    single = scores[(scores.subspaces == "single direction") & (scores.selection == "validated") & (scores.fit_labels == "true")]
    direct = decoding.layerwise_evaluation(memorized_runs[1], layers=decoding.hidden_layers(memorized_runs[1]), fit_labels="true", max_components=1)
    chosen = single[single.corruption_degree == 0.6].iloc[0]
    holdout = direct[(direct.layer == chosen.layer) & (direct.split == "test_holdout")].accuracy.iloc[0]
    assert chosen.accuracy == holdout
    joint = scores[scores.subspaces == "chosen on validation"]
    assert (joint.selection == "validated").all() and joint.layer.str.contains(" @ ").all()


def test_threshold_sweep_draws_a_single_direction_apart(memorized_runs):
    from memnotebooks import plotting

    scores = decoding.threshold_scores(memorized_runs, thresholds=(0.5, 0.99))
    figure = plotting.threshold_sweep(scores)
    for ax in figure.axes:
        joined = [line for line in ax.get_lines() if len(line.get_xdata()) > 1 and line.get_linestyle() != "None"]
        # Lines join the thresholds only; the single direction is a marker at t = 0, alone.
        assert joined and all(set(np.round(line.get_xdata(), 6)) <= {0.5, 0.99} for line in joined)
        markers = [line for line in ax.get_lines() if list(line.get_xdata()) == [0] and line.get_marker() == "D"]
        assert len(markers) == 2  # one per degree
        assert ax.get_xticklabels()[0].get_text().startswith("single")


def test_layers_and_probes_are_compared_image_by_image(memorized_runs):
    run = memorized_runs[1]
    decoded = decoding.layerwise_evaluation(run, probes=["masc", "nearest_mean"], fit_labels="corrupted", layers=["input", "fc1", "fc2"])
    layers = decoding.layer_scores(decoded)
    assert layers.baseline.tolist() == ["input", "fc1", "fc2"]  # in forward order
    holdout = decoded[(decoded.probe == "masc") & (decoded.split == "test_holdout")].set_index("layer")
    assert layers.set_index("layer").accuracy.to_dict() == holdout.accuracy.to_dict()
    network = baselines.network_scores([run])
    table = tables.paired_differences(pd.concat([layers, network]), "network, final", others=["fc1", "fc2"]).set_index("baseline")
    final = network.set_index("baseline").accuracy["network, final"]
    assert table.difference.to_dict() == pytest.approx({layer: holdout.accuracy[layer] - final for layer in ("fc1", "fc2")})
    probes = decoding.probe_differences(decoded).set_index(["layer", "probe"])
    scored = decoded[decoded.split == "test_holdout"].set_index(["layer", "probe"]).accuracy
    assert probes.index.tolist() == [("input", "nearest_mean"), ("fc1", "nearest_mean"), ("fc2", "nearest_mean")]
    assert probes.loc[("fc1", "nearest_mean"), "difference"] == pytest.approx(scored["fc1", "nearest_mean"] - scored["fc1", "masc"])
    assert (probes.n_images == (~validation_split(run.dataset.y_test.numpy())).sum()).all() and (probes.n_seeds == 1).all()
    with pytest.raises(ValueError, match="No rows of probe 'lda'"):
        decoding.layer_scores(decoded, probe="lda")


def test_masc_at_a_checkpoint(memorized):
    at_two = decoding.layerwise_evaluation(memorized, layers=["fc1"], fit_labels="true", epoch=2)
    final = decoding.layerwise_evaluation(memorized, layers=["fc1"], fit_labels="true")
    assert (at_two.epoch == 2).all() and "epoch" not in final
    assert not np.allclose(at_two.accuracy, final.accuracy)
    with pytest.raises(ValueError, match=r"No checkpoint at epoch 3; this run kept \[0, 2, 5\]"):
        decoding.layerwise_evaluation(memorized, layers=["fc1"], epoch=3)
