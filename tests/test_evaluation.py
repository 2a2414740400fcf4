import numpy as np
import pandas as pd
import pytest
import torch

import published_masc as published
from memnotebooks import evaluation, runs
from memnotebooks.activations import extract_activations
from memnotebooks.data import validation_split
from memnotebooks.masc import MASC
from memnotebooks.uncertainty import Difference, pack_hits, unpack_hits


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


def test_best_layers(memorized_runs):
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
    hidden = evaluation.best_layers(decoding, layers=evaluation.hidden_layers(memorized_runs[0]))
    assert "input" not in set(hidden.paper_layer) | set(hidden.validated_layer)


def test_network_scores_choose_the_epoch_on_the_same_holdout_images(memorized_runs):
    run = memorized_runs[1]
    scores = evaluation.network_scores([run]).set_index("baseline")
    history = run.history
    holdout = ~validation_split(run.dataset.y_test.numpy())
    # Every row scored on the holdout, from the per-epoch test predictions the run kept.
    assert (scores.hits.map(lambda h: len(unpack_hits(h))) == holdout.sum()).all()
    assert scores.accuracy.tolist() == scores.hits.map(lambda h: unpack_hits(h).mean()).tolist()
    final = scores.loc["network, final"]
    assert final.epoch == history.epoch.iloc[-1] and final.accuracy == pytest.approx(history.test_holdout_accuracy.iloc[-1])
    early = scores.loc["network, early-stopped (validated)"]
    assert early.epoch == history.epoch[history.test_validation_accuracy.idxmax()]
    assert early.accuracy == pytest.approx(history.test_holdout_accuracy[history.epoch == early.epoch].iloc[0])
    peak = scores.loc["network, peak (holdout-selected)"]
    assert peak.accuracy == pytest.approx(history.test_holdout_accuracy.max())
    # The noisy-validated epoch agrees best with the corrupted validation labels, which differ from the true ones.
    validation = ~holdout
    noisy = evaluation.noisy_validation_labels(run)
    assert (noisy != run.dataset.y_test.numpy()[validation]).mean() > 0.3
    agreement = (run.test_predictions[:, validation] == noisy).mean(axis=1)
    assert agreement[scores.loc["network, early-stopped (noisy-validated)", "epoch"]] == agreement.max()


def test_paired_differences_compare_rows_image_by_image():
    hits = {"a": np.r_[np.ones(90), np.zeros(10)].astype(bool), "b": np.r_[np.ones(60), np.zeros(40)].astype(bool)}
    rows = [{"baseline": name, "corruption_degree": 0.4, "seed": seed, "accuracy": h.mean(), "hits": pack_hits(h)}
            for seed in (0, 1) for name, h in hits.items()]
    rows.append({"baseline": "c", "corruption_degree": 0.4, "seed": 0, "accuracy": 0.9, "hits": pack_hits(hits["a"])})
    table = evaluation.paired_differences(pd.DataFrame(rows), "a").set_index("baseline")
    assert table.loc["b", "difference"] == pytest.approx(-0.3) and table.loc["b", "sign"] == -1 and table.loc["b", "n_seeds"] == 2
    assert table.loc["c", ["difference", "low", "high", "sign"]].tolist() == [0, 0, 0, 0]  # the same hits: no difference
    with pytest.raises(ValueError, match=r"No rows with baseline = 'z'; the table has: a, b, c"):
        evaluation.paired_differences(pd.DataFrame(rows), "z")


def test_headline_table_is_mean_and_std_over_seeds():
    scores = pd.DataFrame({"baseline": ["b", "b", "a", "a", "a"], "corruption_degree": [0.4, 0.4, 0.4, 0.4, 0.8],
                           "seed": [0, 1, 0, 1, 0], "accuracy": [0.5, 0.6, 0.9, 0.7, 0.3]})
    table = evaluation.headline_table(scores)
    assert table.index.tolist() == ["b", "a"] and table.columns.tolist() == ["p = 0.4", "p = 0.8"]
    assert table.loc["b", "p = 0.4"] == "0.550\u00a0±\u00a00.071" and table.loc["a", "p = 0.8"] == "0.300"
    assert table.loc["b", "p = 0.8"] == ""


def test_the_control_fits_the_labels_of_another_degree(memorized_runs):
    generalized, memorized = memorized_runs
    np.testing.assert_array_equal(generalized.fit_labels("corrupted", 0.6), memorized.train_labels.numpy())
    control = evaluation.layerwise_evaluation(generalized, layers=["fc1"], fit_labels="corrupted", fit_corruption_degree=0.6)
    own = evaluation.layerwise_evaluation(generalized, layers=["fc1"], fit_labels="corrupted")
    assert (control.fit_corruption_degree == 0.6).all() and (own.fit_corruption_degree == 0.0).all()
    train, test = (extract_activations(generalized.model, x, ["fc1"])["fc1"] for x in (generalized.dataset.x_train, generalized.dataset.x_test))
    expected = MASC().fit(train, memorized.train_labels).score(test, generalized.dataset.y_test)
    assert control.set_index(["split", "target"]).accuracy["test", "true"] == pytest.approx(expected)


def test_baseline_scores(memorized_runs, tmp_path):
    cache = memorized_runs[0].path.parent
    scores = evaluation.baseline_scores(memorized_runs, probes=["nearest_mean", "lda"], artifacts_dir=cache, device="cpu", progress=False)
    assert scores.accuracy.between(0, 1).all()
    found = scores.groupby("baseline").corruption_degree.unique().map(sorted).to_dict()
    assert found.pop("MASC, generalized, corrupted (validated)") == [0.6]  # the control needs p > 0
    assert len(found) == 12 and all(degrees == [0.0, 0.6] for degrees in found.values())
    # Every row on the same holdout images, with its hits.
    assert (scores.hits.map(lambda h: len(unpack_hits(h))) == (~validation_split(memorized_runs[0].dataset.y_test.numpy())).sum()).all()
    assert np.allclose(scores.accuracy, scores.hits.map(lambda h: unpack_hits(h).mean()))
    masc = scores[scores.baseline.str.startswith("MASC, hidden")]
    assert "input" not in set(masc.layer)
    assert set(scores[scores.baseline.str.startswith("best probe")].layer) <= {"nearest_mean", "lda"}
    assert list(dict.fromkeys(scores.baseline))[4:9] == [
        "MASC, hidden, corrupted (holdout-selected)", "MASC, hidden, corrupted (noisy-validated)", "MASC, hidden, corrupted (validated)",
        "MASC, hidden, true (holdout-selected)", "MASC, hidden, true (validated)",
    ]
    # The untrained networks are runs of 0 epochs, cached beside the trained ones.
    untrained = evaluation.untrained_runs(memorized_runs, artifacts_dir=cache, device="cpu", progress=False)
    assert [r.summary["epochs"] for r in untrained] == [0, 0]


def test_threshold_scores(memorized_runs):
    scores = evaluation.threshold_scores(memorized_runs, thresholds=(0.5, 0.99))
    assert list(dict.fromkeys(scores.subspaces)) == ["0.5", "0.99", "single direction", "chosen on validation"]
    single = scores[(scores.subspaces == "single direction") & (scores.selection == "validated") & (scores.fit_labels == "true")]
    direct = evaluation.layerwise_evaluation(memorized_runs[1], layers=evaluation.hidden_layers(memorized_runs[1]), fit_labels="true", max_components=1)
    chosen = single[single.corruption_degree == 0.6].iloc[0]
    holdout = direct[(direct.layer == chosen.layer) & (direct.split == "test_holdout")].accuracy.iloc[0]
    assert chosen.accuracy == holdout
    joint = scores[scores.subspaces == "chosen on validation"]
    assert (joint.selection == "validated").all() and joint.layer.str.contains(" @ ").all()


def test_best_layers_of_a_probe_that_is_never_well_posed_are_nan(memorized_runs):
    run = memorized_runs[1]
    # QDA needs more points per class than features: not well posed on any layer of this run.
    decoding = evaluation.layerwise_evaluation(run, probes=["masc", "qda"], fit_labels="corrupted", layers=["fc1", "fc2"])
    assert decoding[decoding.probe == "qda"].accuracy.isna().all()
    best = evaluation.best_layers(decoding).set_index("probe")
    assert np.isnan(best.loc["qda", "paper_accuracy"]) and pd.isna(best.loc["qda", "validated_layer"])
    assert best.loc["masc", "paper_accuracy"] > 0


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


def test_difference_table_shows_each_difference_with_its_interval():
    differences = pd.DataFrame({"baseline": ["b", "a", "b"], "corruption_degree": [0.4, 0.4, 0.8], "difference": [0.0123, -0.3, 0.0001],
                                "low": [-0.0041, -0.35, -0.002], "high": [0.028, -0.25, 0.003], "sign": [0, -1, 0]})
    table = evaluation.difference_table(differences)
    assert table.index.tolist() == ["b", "a"] and table.columns.tolist() == ["p = 0.4", "p = 0.8"]
    assert table.loc["b", "p = 0.4"] == "+0.012\u00a0[\u22120.004,\u00a0+0.028]"
    assert table.loc["a", "p = 0.4"] == "\u22120.300\u00a0[\u22120.350,\u00a0\u22120.250]" and table.loc["a", "p = 0.8"] == ""
    assert table.loc["b", "p = 0.8"] == "0.000\u00a0[\u22120.002,\u00a0+0.003]"
    assert evaluation.difference_text(Difference(-0.0123, -0.02, -0.004, 360, 3)) == "\u22120.012\u00a0[\u22120.020,\u00a0\u22120.004]"
    with pytest.raises(ValueError, match="No differences to show"):
        evaluation.difference_table(differences.iloc[:0])


def test_layers_and_probes_are_compared_image_by_image(memorized_runs):
    run = memorized_runs[1]
    decoding = evaluation.layerwise_evaluation(run, probes=["masc", "nearest_mean"], fit_labels="corrupted", layers=["input", "fc1", "fc2"])
    layers = evaluation.layer_scores(decoding)
    assert layers.baseline.tolist() == ["input", "fc1", "fc2"]  # in forward order
    holdout = decoding[(decoding.probe == "masc") & (decoding.split == "test_holdout")].set_index("layer")
    assert layers.set_index("layer").accuracy.to_dict() == holdout.accuracy.to_dict()
    network = evaluation.network_scores([run])
    table = evaluation.paired_differences(pd.concat([layers, network]), "network, final", others=["fc1", "fc2"]).set_index("baseline")
    final = network.set_index("baseline").accuracy["network, final"]
    assert table.difference.to_dict() == pytest.approx({layer: holdout.accuracy[layer] - final for layer in ("fc1", "fc2")})
    probes = evaluation.probe_differences(decoding).set_index(["layer", "probe"])
    scored = decoding[decoding.split == "test_holdout"].set_index(["layer", "probe"]).accuracy
    assert probes.index.tolist() == [("input", "nearest_mean"), ("fc1", "nearest_mean"), ("fc2", "nearest_mean")]
    assert probes.loc[("fc1", "nearest_mean"), "difference"] == pytest.approx(scored["fc1", "nearest_mean"] - scored["fc1", "masc"])
    assert (probes.n_images == (~validation_split(run.dataset.y_test.numpy())).sum()).all() and (probes.n_seeds == 1).all()
    with pytest.raises(ValueError, match="No rows of probe 'lda'"):
        evaluation.layer_scores(decoding, probe="lda")


def test_label_group_subspaces_count_points_and_directions(memorized_runs):
    run = memorized_runs[1]
    table = evaluation.label_group_subspaces(run, layers=["fc1", "fc3"])
    labels = run.fit_labels("corrupted")
    assert table.groupby("layer").n_points.sum().tolist() == [len(labels)] * 2
    assert (table.k <= table.n_points).all() and (table.k >= 1).all() and set(table.width) == {250}
    fc1 = extract_activations(run.model, run.dataset.x_train, ["fc1"])["fc1"]
    np.testing.assert_array_equal(table[table.layer == "fc1"].k, MASC().fit(fc1, labels).n_components_)
    smaller = evaluation.label_group_subspaces(run, layers=["fc1"], variance_threshold=0.5)
    assert (smaller.k.to_numpy() <= table[table.layer == "fc1"].k.to_numpy()).all() and smaller.k.sum() < table[table.layer == "fc1"].k.sum()


def test_threshold_sweep_draws_a_single_direction_apart(memorized_runs):
    from matplotlib.lines import Line2D

    from memnotebooks import plotting

    scores = evaluation.threshold_scores(memorized_runs, thresholds=(0.5, 0.99))
    figure = plotting.threshold_sweep(scores)
    for ax in figure.axes:
        joined = [line for line in ax.get_lines() if len(line.get_xdata()) > 1 and line.get_linestyle() != "None"]
        # Lines join the thresholds only; the single direction is a marker at t = 0, alone.
        assert joined and all(set(np.round(line.get_xdata(), 6)) <= {0.5, 0.99} for line in joined)
        markers = [line for line in ax.get_lines() if list(line.get_xdata()) == [0] and line.get_marker() == "D"]
        assert len(markers) == 2  # one per degree
        assert ax.get_xticklabels()[0].get_text().startswith("single")


def test_subspace_room_sets_subspace_size_beside_the_labels_masc_copies(memorized_runs):
    generalized, memorized = memorized_runs
    room = evaluation.subspace_room(memorized_runs, layers=["fc1", "fc3"])
    assert room.index.tolist() == [(0.6, "fc1"), (0.6, "fc3")]  # p = 0 has no wrong labels to copy
    assert room.columns.tolist() == list(evaluation.SUBSPACE_ROOM.values())
    groups = evaluation.label_group_subspaces(memorized, layers=["fc1"])
    assert room.loc[(0.6, "fc1"), "subspace dimension k"] == groups.k.mean()
    assert room.loc[(0.6, "fc1"), "k / min(points, d)"] == pytest.approx((groups.k / np.minimum(groups.n_points, 250)).mean())
    train = extract_activations(memorized.model, memorized.dataset.x_train, ["fc1"])["fc1"]
    labels, wrong = memorized.fit_labels("corrupted"), memorized.corrupted
    copied = (MASC().fit(train, labels).predict(train[torch.from_numpy(wrong)]) == labels[wrong]).mean()
    assert room.loc[(0.6, "fc1"), "wrong labels reproduced"] == pytest.approx(copied)
    with pytest.raises(ValueError, match="needs a degree p > 0"):
        evaluation.subspace_room([generalized])


def test_hits_matrix_stacks_the_seeds_in_order():
    rows = pd.DataFrame({"baseline": ["a", "a", "b"], "corruption_degree": [0.4] * 3, "seed": [1, 0, 0],
                         "hits": [pack_hits(np.array([1, 1, 0], bool)), pack_hits(np.array([0, 0, 1], bool)), pack_hits(np.ones(3, bool))]})
    np.testing.assert_array_equal(evaluation.hits_matrix(rows, "a", 0.4), [[0, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match=r"No rows with baseline = 'a' at corruption_degree = 0.8"):
        evaluation.hits_matrix(rows, "a", 0.8)
