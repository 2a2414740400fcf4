import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from memnotebooks import probes, relabel, runs
from memnotebooks.activations import extract_activations
from memnotebooks.data import validation_split
from memnotebooks.masc import MASC
from memnotebooks.probes import out_of_fold_predictions
from memnotebooks.tables import paired_differences
from memnotebooks.training import predict
from memnotebooks.uncertainty import unpack_hits

SMALL = {"max_epochs": 6}  # fine-tuning epochs: enough to stop early or not, fast


@pytest.fixture(scope="module")
def memorized(tmp_path_factory):
    """The MLP on 500 digits, labels corrupted at 0.6, trained until it fits them."""
    config = runs.RunConfig(corruption_degree=0.6, subset=500, max_epochs=150)
    return runs.run(config, artifacts_dir=tmp_path_factory.mktemp("artifacts"), device="cpu", progress=False)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    config = runs.RunConfig(corruption_degree=0.0, subset=500, max_epochs=3)
    return runs.run(config, artifacts_dir=tmp_path_factory.mktemp("artifacts"), device="cpu", progress=False)


def test_label_statistics_count_what_each_relabelling_does():
    true = np.array([0, 0, 1, 1, 2, 2])
    given = np.array([0, 1, 1, 0, 2, 0])  # points 1, 3 and 5 wrong
    new = np.array([0, 0, 2, 0, 2, 2])  # fixes 1 and 5, breaks 2, leaves 3 wrong
    stats = relabel.label_statistics(true, given, new)
    assert stats == pytest.approx(
        {"labels_changed": 3 / 6, "wrong_fixed": 2 / 3, "correct_broken": 1 / 3, "wrong_dropped": 0, "correct_dropped": 0, "label_accuracy": 4 / 6}
    )
    kept = np.array([True, True, True, False, False, True])  # drops wrong point 3 and correct point 4
    dropped = relabel.label_statistics(true, given, given, kept)
    assert dropped == pytest.approx(
        {"labels_changed": 2 / 6, "wrong_fixed": 0, "correct_broken": 0, "wrong_dropped": 1 / 3, "correct_dropped": 1 / 3, "label_accuracy": 2 / 4}
    )
    assert np.isnan(relabel.label_statistics(true, true, true)["wrong_fixed"])  # no wrong labels


def test_out_of_fold_predictions_never_fit_a_point_to_itself():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) + np.repeat(np.eye(5)[:3] * 4, 20, axis=0)
    y = np.repeat([0, 1, 2], 20)
    predictions = out_of_fold_predictions("masc", X, y, folds=4, seed=1, variance_threshold=0.9)
    # Recomputing one point's prediction without it, by brute force over the same folds.
    from sklearn.model_selection import StratifiedKFold

    for fit_rows, held_out in StratifiedKFold(4, shuffle=True, random_state=1).split(X, y):
        expected = MASC(variance_threshold=0.9).fit(X[fit_rows], y[fit_rows]).predict(X[held_out])
        np.testing.assert_array_equal(predictions[held_out], expected)
    tensors = out_of_fold_predictions("masc", torch.from_numpy(X), y, folds=4, seed=1, variance_threshold=0.9)
    np.testing.assert_array_equal(tensors, predictions)
    probabilities = out_of_fold_predictions("logistic", X, y, folds=4, seed=1, probabilities=True)
    assert probabilities.shape == (60, 3) and np.allclose(probabilities.sum(axis=1), 1)
    with pytest.raises(ValueError, match="MASC gives no class probabilities; these probes do: logistic"):
        out_of_fold_predictions("masc", X, y, probabilities=True)
    with pytest.raises(ValueError, match="folds must be an integer >= 2, got 1"):
        out_of_fold_predictions("masc", X, y, folds=1)


def test_relabel_table_follows_the_protocol(memorized, monkeypatch):
    methods = ["corrupted_labels", "true_labels", "masc_corrupted", "masc_crossfit", "early_stopped"]
    table = relabel.relabel_table(memorized, methods, **SMALL).set_index("method")
    assert list(table.index) == methods and (table.corruption_degree == 0.6).all()

    y_test = memorized.dataset.y_test.numpy()
    holdout = ~validation_split(y_test)
    memorized_holdout = float((predict(memorized.model, memorized.dataset.x_test).numpy()[holdout] == y_test[holdout]).mean())
    assert (table.accuracy_before == memorized_holdout).all()

    # Labels: the true ones fix every wrong label, the corrupted ones change nothing.
    assert table.loc["true_labels", ["wrong_fixed", "correct_broken", "label_accuracy"]].tolist() == [1, 0, 1]
    assert table.loc["corrupted_labels", "labels_changed"] == 0
    wrong_share = float((memorized.fit_labels("corrupted") != memorized.fit_labels("true")).mean())
    assert table.loc["corrupted_labels", "label_accuracy"] == pytest.approx(1 - wrong_share)

    # In-sample MASC relabels with the subspaces of the points it relabels; out of fold, with
    # subspaces fitted without them. Both on the layer chosen on the validation part.
    layer = table.loc["masc_corrupted", "layer"]
    train = extract_activations(memorized.model, memorized.dataset.x_train, [layer])[layer]
    given = memorized.fit_labels("corrupted")
    in_sample = MASC().fit(train, given).predict(train)
    labels = relabel.relabelled_labels(memorized, "masc_corrupted", **SMALL)
    np.testing.assert_array_equal(labels.new_label, in_sample)
    np.testing.assert_array_equal(labels.given_label, given)
    np.testing.assert_array_equal(labels.true_label, memorized.dataset.y_train.numpy())
    crossfit = out_of_fold_predictions("masc", train, given, folds=5, seed=memorized.config.seed)
    assert table.loc["masc_crossfit", "labels_changed"] == pytest.approx(float((crossfit != given).mean()))
    # Cross-fitting changes more labels than in-sample relabelling, which mostly returns them.
    assert table.loc["masc_crossfit", "labels_changed"] > table.loc["masc_corrupted", "labels_changed"]

    # The kept epoch is the first with the best validation accuracy; its holdout accuracy is
    # reported, and the cached weights score it.
    for method in methods:
        history = pd.read_csv(relabel._folder(memorized, method, SMALL) / "history.csv")
        best = history.loc[history.test_validation_accuracy.idxmax()]
        assert table.loc[method, "best_epoch"] == best.epoch
        assert table.loc[method, "accuracy_after"] == pytest.approx(best.test_holdout_accuracy)
        if method != "early_stopped":
            assert table.loc[method, "epochs"] <= SMALL["max_epochs"]
    model = relabel.relabelled_model(memorized, "true_labels", **SMALL)
    after = (predict(model, memorized.dataset.x_test).numpy()[holdout] == y_test[holdout]).mean()
    assert after == pytest.approx(table.loc["true_labels", "accuracy_after"])
    # The early-stopped network is trained from the initial weights, not fine-tuned.
    history = pd.read_csv(relabel._folder(memorized, "early_stopped", SMALL) / "history.csv")
    assert history.train_accuracy.iloc[0] < 0.5

    # A second call reads everything from the cache.
    def no_training(*args, **kwargs):
        raise AssertionError("a cached relabelling was computed again")

    monkeypatch.setattr(relabel, "train", no_training)
    monkeypatch.setattr(relabel, "extract_activations", no_training)
    pd.testing.assert_frame_equal(relabel.relabel_table(memorized, methods, **SMALL).set_index("method"), table)


def test_same_seed_same_result(memorized):
    first = relabel.relabel_table(memorized, ["masc_crossfit"], **SMALL)
    shutil.rmtree(relabel._folder(memorized, "masc_crossfit", SMALL))
    pd.testing.assert_frame_equal(relabel.relabel_table(memorized, ["masc_crossfit"], **SMALL), first)


def test_cleanlab_drops_mostly_wrong_labels(memorized):
    row = relabel.relabel_table(memorized, ["cleanlab"], **SMALL).iloc[0]
    n_train = len(memorized.train_labels)
    assert 0 < row.n_trained < n_train and row.probe == "logistic"
    assert row.wrong_dropped > row.correct_dropped and row.wrong_fixed == 0
    labels = relabel.relabelled_labels(memorized, "cleanlab", **SMALL)
    assert (~labels.kept).sum() == n_train - row.n_trained and (labels.new_label == labels.given_label).all()


def test_an_interrupted_fine_tuning_leaves_nothing(memorized, monkeypatch):
    real_train = relabel.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(relabel, "train", interrupted)
    before = sorted(memorized.path.iterdir())
    with pytest.raises(KeyboardInterrupt):
        relabel.relabel_table(memorized, ["self_predictions"], **SMALL)
    assert sorted(memorized.path.iterdir()) == before  # no folder, no temporary left
    monkeypatch.setattr(relabel, "train", real_train)
    row = relabel.relabel_table(memorized, ["self_predictions"], **SMALL).iloc[0]
    assert row.labels_changed < 0.05  # the memorized network predicts the labels it memorized


def test_bad_input(memorized, clean):
    with pytest.raises(ValueError, match=r"Unknown relabelling method\(s\) \['masc'\]; choose from: early_stopped, .*masc_crossfit"):
        relabel.relabel_table(memorized, ["masc"])
    for fraction in (0, 1, 1.5):
        with pytest.raises(ValueError, match=rf"validation_fraction must be a number in \(0, 1\), got {fraction}"):
            relabel.relabel_table(memorized, ["true_labels"], validation_fraction=fraction)
    with pytest.raises(ValueError, match="Unknown layer.*'fc9'.*choose from: input, fc1"):
        relabel.relabel_table(memorized, ["masc_crossfit"], layer="fc9")
    with pytest.raises(ValueError, match=r"choose one with class probabilities: logistic, .*qda, or best"):
        relabel.relabel_table(memorized, ["cleanlab"], cleanlab_probe="nearest_mean_typo")
    with pytest.raises(ValueError, match=r"trained on its true labels .*\['masc_corrupted', 'cleanlab'\]"):
        relabel.relabel_table(clean, ["masc_corrupted", "masc_true", "cleanlab"])
    # On a clean run, the true-label methods are still well defined.
    row = relabel.relabel_table(clean, ["masc_true"], layer="fc1", **SMALL).iloc[0]
    assert row.layer == "fc1" and np.isnan(row.wrong_fixed)


def test_fine_tuning_uses_every_training_setting_of_the_run(tmp_path, monkeypatch):
    """Issue 21: fine-tuning rebuilt train's keywords by hand and dropped the run's weight decay."""
    calls = {}
    real_train = runs.train

    def recording(name, real):
        def wrapped(*args, **kwargs):
            calls[name] = kwargs
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(runs, "train", recording("run", real_train))
    config = runs.RunConfig(corruption_degree=0.6, subset=200, max_epochs=2, weight_decay=1e-3, optimizer="sgd", momentum=0.5, batch_size=64)
    run_ = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(relabel, "train", recording("fine-tune", relabel.train))
    relabel.relabel_table(run_, ["corrupted_labels"], max_epochs=1)
    not_settings = {"stop", "max_epochs", "checkpoint_epochs", "evaluation_sets", "evaluation_parts", "y_true", "corrupted", "device", "progress", "keep_best"}
    settings = {name: value for name, value in calls["run"].items() if name not in not_settings}
    assert settings["weight_decay"] == 1e-3 and {"optimizer", "learning_rate", "momentum", "batch_size", "seed"} <= set(settings)
    assert {name: calls["fine-tune"][name] for name in settings} == settings
    # The fixed fine-tuning is cached under its own key, apart from any made before the fix.
    assert relabel._recipe(run_, relabel.RelabelSettings(max_epochs=1), "corrupted_labels")["weight_decay"] == 1e-3


def test_rows_carry_per_image_hits_for_paired_comparisons(memorized):
    methods = ["corrupted_labels", "true_labels"]
    table = relabel.relabel_table(memorized, methods, **SMALL)
    holdout = ~validation_split(memorized.dataset.y_test.numpy())
    for row in table.itertuples():
        before, after = unpack_hits(row.hits_before), unpack_hits(row.hits_after)
        assert len(before) == len(after) == holdout.sum()
        assert before.mean() == pytest.approx(row.accuracy_before) and after.mean() == pytest.approx(row.accuracy_after)
    tidy = relabel.scores(pd.concat([table, table.assign(seed=1)], ignore_index=True))
    assert tidy.baseline.tolist()[:2] == [relabel.BEFORE] * 2 and "true labels" in set(tidy.baseline)
    differences = paired_differences(tidy, relabel.BEFORE).set_index("baseline")
    assert differences.loc["true labels", "sign"] == 1 and differences.loc["true labels", "n_seeds"] == 2
    assert list(relabel.accuracy_table(table).index) == [relabel.BEFORE, "corrupted labels", "true labels"]


def test_retraining_from_scratch_and_the_best_probe_for_cleanlab(memorized):
    fine_tuned = relabel.relabel_table(memorized, ["true_labels"], **SMALL).iloc[0]
    scratch = relabel.relabel_table(memorized, ["true_labels", "early_stopped"], start="scratch", **SMALL)
    assert scratch.start.tolist() == ["scratch", "scratch"] and fine_tuned.start == "memorized"
    history = pd.read_csv(relabel._folder(memorized, "true_labels", {**SMALL, "start": "scratch"}) / "history.csv")
    assert history.train_accuracy.iloc[0] < 0.5  # the initial weights, not the memorized network
    # early_stopped is the same network whichever start is asked for.
    pd.testing.assert_series_equal(scratch.iloc[1], relabel.relabel_table(memorized, ["early_stopped"], **SMALL).iloc[0], check_names=False)
    assert relabel.method_name("true_labels", "scratch") == "true labels, from scratch"
    row = relabel.relabel_table(memorized, ["cleanlab"], cleanlab_probe="best", **SMALL).iloc[0]
    assert row.probe in relabel._PROBABILISTIC and 0 < row.n_trained < len(memorized.train_labels)
    with pytest.raises(ValueError, match="Unknown start 'middle'"):
        relabel.relabel_table(memorized, ["true_labels"], start="middle")


def test_the_best_probe_methods_choose_among_the_probes_their_settings_name():
    default = relabel.RelabelSettings()
    named = [entry["probe"] for entry in default.recipe("best_probe_crossfit")["probes"]]
    assert named == list(default.best_probes) and "velpic" not in named  # a new probe changes nothing by itself
    with_velpic = relabel.RelabelSettings(best_probes=(*default.best_probes, "velpic"))
    assert with_velpic.recipe("best_probe_crossfit") != default.recipe("best_probe_crossfit")
    cleanlab = [entry["probe"] for entry in relabel.RelabelSettings(cleanlab_probe="best").recipe("cleanlab")["probes"]]
    assert cleanlab == [p for p in default.best_probes if probes.PROBES[p].probabilistic]
    with pytest.raises(ValueError, match="Unknown best_probes entry 'masc'; choose one of: logistic"):
        relabel.RelabelSettings(best_probes=("masc",))
