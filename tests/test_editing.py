"""Weight editing: linear readouts of the last hidden layer written into the last layer, scored at
checkpoints and trained on (memnotebooks.editing)."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from memnotebooks import editing, runs
from memnotebooks.activations import extract_activations
from memnotebooks.data import validation_split
from memnotebooks.probes import probe_predictions
from memnotebooks.training import predict
from memnotebooks.uncertainty import unpack_hits
from memnotebooks.velpic import VeLPIC

# The logistic probe (max_iter=300) does not always converge on 2048 features: not what is tested.
pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    """The MLP (last layer with bias) at a quarter of its width (fc4: 512) on 400 digits at degree
    0.6, checkpoints at epochs 0, 2 and 5 (the session's full-width MLP would make each logistic
    readout on its 2048 features take seconds)."""
    config = runs.RunConfig(corruption_degree=0.6, subset=400, width=0.25, max_epochs=12, checkpoint_epochs=(0, 2, 5))
    return runs.run(config, artifacts_dir=tmp_path_factory.mktemp("artifacts"), device="cpu", progress=False)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """The CNN (last layer without bias) on 300 digits at degree 0.6, checkpoints at epochs 0 and 10."""
    config = runs.RunConfig(model="cnn", corruption_degree=0.6, subset=300, learning_rate=1e-3, batch_size=32, max_epochs=20, checkpoint_epochs=(0, 10))
    return runs.run(config, artifacts_dir=tmp_path_factory.mktemp("artifacts"), device="cpu", progress=False)


def final_epoch(run_):
    return run_.summary["epochs"]


def assert_predicts_what_the_readout_predicts(run_, readout, epoch):
    """The edited network's test predictions equal the readout's own on the layer's test
    activations; where they do not, the readout's two best scores tie to float32 rounding."""
    fitted = editing.run_readout(run_, readout, epoch)
    network = editing.edited_model(run_, readout, epoch)
    layer = editing.last_hidden_layer(network)
    activations = extract_activations(network, run_.dataset.x_test, [layer])[layer]
    ours = predict(network, run_.dataset.x_test).numpy()
    theirs = probe_predictions(fitted.estimator, activations)
    scores = np.sort(fitted.decision_function(activations), axis=1)
    relative_gap = (scores[:, -1] - scores[:, -2]) / np.abs(scores).max(axis=1)
    # The linear map (in float64) is the probe; both are the network, except at ties to a few
    # float32 units, the precision of the network and of the float32 activations.
    linear_differs = fitted.predict(activations) != theirs
    differ = ours != theirs
    assert np.all(relative_gap[differ | linear_differs] < 1e-6), relative_gap[differ | linear_differs]
    return differ


@pytest.mark.parametrize("readout", list(editing.READOUTS))
def test_the_edited_mlp_predicts_exactly_what_the_readout_predicts(mlp_run, readout):
    assert not assert_predicts_what_the_readout_predicts(mlp_run, readout, None).any()


@pytest.mark.parametrize("readout", list(editing.READOUTS))
def test_the_edited_cnn_predicts_what_the_readout_predicts(cnn_run, readout):
    assert not assert_predicts_what_the_readout_predicts(cnn_run, readout, 10).any()
    assert not assert_predicts_what_the_readout_predicts(cnn_run, readout, None).any()


def test_float_ties_are_only_where_the_scores_tie(cnn_run):
    # The untrained CNN's fc3 outputs barely vary from image to image, so the nearest class mean's
    # scores (about ||mu||^2 / 2) differ by a few float32 units: there the float32 network and the
    # float64 probe may pick different classes, and only there.
    differ = assert_predicts_what_the_readout_predicts(cnn_run, "nearest_mean", 0)
    assert differ.mean() < 0.5  # measured: 125 of 450 at this untrained checkpoint, all within 4e-7
    assert not assert_predicts_what_the_readout_predicts(cnn_run, "velpic", 0).any()


def test_the_edit_is_the_papers_and_leaves_the_run_alone(mlp_run, cnn_run):
    for run_, layer, name in ((mlp_run, "fc4", "classifier"), (cnn_run, "fc3", "classifier")):
        before = {key: value.clone() for key, value in run_.model.state_dict().items()}
        network = editing.edited_model(run_, "velpic")
        assert editing.last_hidden_layer(run_.model) == layer
        hidden = extract_activations(run_.model, run_.dataset.x_train, [layer])[layer]
        expected = VeLPIC().fit(hidden, run_.train_labels.numpy()).components_
        edited = network.get_submodule(name)
        np.testing.assert_array_equal(edited.weight.detach().numpy(), expected.astype(np.float32))
        if run_ is mlp_run:  # the MLP's bias is zeroed, as the published code does
            assert torch.equal(edited.bias, torch.zeros(10))
        else:  # the CNN's layer has none, and gets none
            assert edited.bias is None
        kept = {key: value for key, value in network.state_dict().items() if not key.startswith(name)}
        assert all(torch.equal(value, before[key]) for key, value in kept.items())
        assert all(torch.equal(value, before[key]) for key, value in run_.model.state_dict().items())
        assert not network.training
    # A readout with a bias gives the CNN's bias-free layer one in the copy only.
    network = editing.edited_model(cnn_run, "nearest_mean")
    fitted = editing.run_readout(cnn_run, "nearest_mean")
    np.testing.assert_allclose(network.classifier.bias.detach().numpy(), -0.5 * np.square(fitted.estimator.centroids_).sum(axis=1), rtol=1e-6)
    assert cnn_run.model.classifier.bias is None


def test_editing_table(mlp_run):
    final = final_epoch(mlp_run)
    table = editing.editing_table(mlp_run, epochs=[2, final])
    assert list(table.columns[:4]) == ["dataset", "model", "corruption_degree", "seed"]
    assert set(table.readout) == {"unedited", *editing.READOUTS} and set(table.epoch) == {2, final}
    assert len(table) == 2 * 5 * 2 and set(table.split) == set(editing.EDIT_SPLITS)
    history = mlp_run.history.set_index("epoch")
    for row in table.itertuples():
        if row.readout == "dfr" and row.split == "test_validation":  # fitted there: not scored
            assert np.isnan(row.accuracy) and row.hits == ""
            continue
        hits = unpack_hits(row.hits)
        assert len(hits) == row.n_points and hits.mean() == pytest.approx(row.accuracy)
        if row.readout == "unedited":  # the network as it was trained, scored the same way
            assert row.accuracy == pytest.approx(history.loc[row.epoch, f"{row.split}_accuracy"], abs=1e-6)
            assert row.layer == ""
        else:
            assert row.layer == "fc4"
    assert table.groupby("split").n_points.first().to_dict() == {"test_holdout": 360, "test_validation": 90}
    # The edited network's holdout accuracy is VeLPIC's on the layer's holdout activations.
    velpic = table[(table.readout == "velpic") & (table.epoch == final) & (table.split == "test_holdout")].accuracy.item()
    fitted = editing.run_readout(mlp_run, "velpic")
    hidden = extract_activations(mlp_run.model, mlp_run.dataset.x_test, ["fc4"])["fc4"].numpy()
    holdout = ~validation_split(mlp_run.dataset.y_test.numpy())
    assert velpic == pytest.approx(np.mean(fitted.estimator.predict(hidden[holdout]) == mlp_run.dataset.y_test.numpy()[holdout]))


def test_editing_table_is_cached(mlp_run, monkeypatch):
    final = final_epoch(mlp_run)
    first = editing.editing_table(mlp_run, readouts=["velpic", "nearest_mean"], epochs=[final])
    monkeypatch.setattr(editing, "fit_readout", lambda *args, **kwargs: pytest.fail("recomputed a cached table"))
    again = editing.editing_table(mlp_run, readouts=["nearest_mean"], epochs=[final])
    assert again.equals(first[first.readout.isin(["unedited", "nearest_mean"])].reset_index(drop=True))
    assert any(mlp_run.path.glob("editing-*/recipe.json"))


def test_default_epochs_are_every_checkpoint_and_the_final_model(cnn_run):
    table = editing.editing_table(cnn_run, readouts="velpic")
    assert sorted(set(table.epoch)) == [0, 10, final_epoch(cnn_run)]


def test_edit_during_training(mlp_run, monkeypatch):
    table = editing.edit_during_training(mlp_run, "velpic", [2], epochs=2)
    assert set(table.readout) == {"velpic", "unedited"} and set(table.edit_epoch) == {2}
    for _, one in table.groupby("readout"):
        assert one.epoch.tolist() == list(range(len(one))) and 1 <= len(one) <= 3
        assert (one.run_epoch == one.edit_epoch + one.epoch).all()
    start = table[table.epoch == 0].set_index("readout")
    # Epoch 0 is the edited checkpoint before training: the editing table's network, and the run's own.
    scored = editing.editing_table(mlp_run, readouts=["velpic"], epochs=[2])
    scored = scored[scored.split == "test_holdout"].set_index("readout").accuracy
    assert start.test_holdout_accuracy["velpic"] == pytest.approx(scored["velpic"], abs=1e-6)
    assert start.test_holdout_accuracy["unedited"] == pytest.approx(mlp_run.history.set_index("epoch").test_holdout_accuracy[2], abs=1e-6)
    for column in ("test_holdout_accuracy", "corrupted_accuracy_given", "clean_accuracy"):
        assert table[column].between(0, 1).all()
    # Cached: the unedited continuation is shared by every readout, the edited ones by recipe.
    monkeypatch.setattr(editing, "train", lambda *args, **kwargs: pytest.fail("retrained a cached continuation"))
    assert editing.edit_during_training(mlp_run, "velpic", 2, epochs=2).equals(table)


def test_edit_during_training_of_a_bias_free_layer_with_a_biased_readout(cnn_run):
    table = editing.edit_during_training(cnn_run, "logistic", [10], epochs=1)
    assert sorted(table.readout.unique()) == ["logistic", "unedited"] and table.epoch.max() == 1
    assert cnn_run.model.classifier.bias is None


def test_errors(mlp_run):
    readouts = "velpic, nearest_mean, logistic, dfr"
    with pytest.raises(ValueError, match=f"Probe 'masc' is not a linear readout.*The linear readouts are: {readouts}"):
        editing.edited_model(mlp_run, "masc")
    with pytest.raises(ValueError, match=f"Unknown readout 'svm'; choose one of: {readouts}"):
        editing.editing_table(mlp_run, readouts=["velpic", "svm"])
    with pytest.raises(ValueError, match="Probe 'knn' is not a linear readout"):
        editing.edit_during_training(mlp_run, "knn", [2])
    kept = rf"it kept epochs \[0, 2, 5\] \(RunConfig.checkpoint_epochs\) and its final model \(epoch {final_epoch(mlp_run)}\)"
    with pytest.raises(ValueError, match=r"Epoch\(s\) \[3\] of \w+ were never checkpointed: " + kept):
        editing.edited_model(mlp_run, "velpic", epoch=3)
    with pytest.raises(ValueError, match=r"Epoch\(s\) \[1\] .* never checkpointed"):
        editing.editing_table(mlp_run, epochs=[1, 2])
    with pytest.raises(ValueError, match=r"Epoch\(s\) \[4\] .* never checkpointed"):
        editing.edit_during_training(mlp_run, "velpic", [2, 4])
    with pytest.raises(ValueError, match="No epochs to train after an edit at epoch .*: the run ended at epoch"):
        editing.edit_during_training(mlp_run, "velpic", [final_epoch(mlp_run)])
    with pytest.raises(ValueError, match=r"epochs \(of training after the edit\) must be an integer >= 1, got 0"):
        editing.edit_during_training(mlp_run, "velpic", [2], epochs=0)
    with pytest.raises(ValueError, match="No readouts given"):
        editing.editing_table(mlp_run, readouts=[])
    with pytest.raises(ValueError, match=r"no train point is labelled \[2\] of the 3 classes"):
        editing.fit_readout("velpic", np.eye(3), [0, 1, 1], n_classes=3)


class _ConvolutionalHead(nn.Module):
    """A model whose output comes from a convolution (``flatten=False``) or from a tensor method
    after it: nothing linear to write a readout into."""

    def __init__(self, flatten: bool):
        super().__init__()
        self.flatten = flatten
        self.features = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 10, 8)
        self.probe_layers = {"input": "x", "features": "features"}

    def forward(self, x):
        out = self.head(self.features(x))
        return out.flatten(1) if self.flatten else out


def test_a_model_whose_last_layer_is_not_linear():
    with pytest.raises(ValueError, match=r"The last layer of _ConvolutionalHead is 'head', a Conv2d \(Conv2d\(4, 10.*not an nn.Linear"):
        editing.last_hidden_layer(_ConvolutionalHead(flatten=False))
    with pytest.raises(ValueError, match="The last layer of _ConvolutionalHead is not a module but call_method flatten"):
        editing.last_hidden_layer(_ConvolutionalHead(flatten=True))


def test_edit_agreement_says_the_edited_network_is_the_readout(mlp_run, cnn_run):
    for run_ in (mlp_run, cnn_run):
        table = editing.edit_agreement(run_, readouts=["velpic", "nearest_mean"])
        assert table.readout.tolist() == ["velpic", "nearest_mean"] and (table.epoch == final_epoch(run_)).all()
        assert (table.same == 1).all() and (table.largest_gap < 1e-3).all() and (table.n_points == len(run_.dataset.y_test)).all()
    early = editing.edit_agreement(mlp_run, readouts=["velpic"], epoch=2)
    assert early.epoch.tolist() == [2]
    with pytest.raises(ValueError, match="never checkpointed"):
        editing.edit_agreement(mlp_run, epoch=3)


def test_grids_and_rememorization(mlp_run):
    assert editing.editing_grid([mlp_run], readouts=["velpic"], epochs=[2]).equals(editing.editing_table(mlp_run, readouts=["velpic"], epochs=[2]))
    table = editing.edit_training_grid([mlp_run], "velpic", [2, 5, 99], epochs=2)  # 99: not a checkpoint of this run, skipped
    assert set(table.edit_epoch) == {2, 5}
    with pytest.raises(ValueError, match="None of the edit epochs"):
        editing.edit_training_grid([mlp_run], "velpic", [99])
    summary = editing.rememorization(table, level=0.0001)
    assert len(summary) == 4 and set(summary.readout) == {"velpic", "unedited"}
    one = table[(table.readout == "velpic") & (table.edit_epoch == 2)].set_index("epoch")
    row = summary[(summary.readout == "velpic") & (summary.edit_epoch == 2)].iloc[0]
    assert row.holdout_at_edit == one.test_holdout_accuracy[0] and row.holdout_last == one.test_holdout_accuracy.iloc[-1]
    assert row.corrupted_at_edit == one.corrupted_accuracy_given[0] and row.epochs == one.index.max()
    reached = one.index[one.corrupted_accuracy_given >= 0.0001]
    assert (np.isnan(row.epochs_to_level) and not len(reached)) or row.epochs_to_level == reached[0]
    assert np.isnan(editing.rememorization(table, level=1.0).query("corrupted_last < 1").epochs_to_level).all()
    with pytest.raises(ValueError, match="level must be in"):
        editing.rememorization(table, level=1.5)


def test_edit_differences_pair_each_edit_with_the_unedited_network_at_the_same_epoch(mlp_run):
    table = editing.editing_table(mlp_run, readouts=["velpic", "nearest_mean"])
    last = editing.edit_differences(table).set_index("readout")
    assert list(last.index) == ["velpic", "nearest_mean"]
    holdout = table[(table.split == "test_holdout") & (table.epoch == final_epoch(mlp_run))].set_index("readout").accuracy
    assert last.loc["velpic", "difference"] == pytest.approx(holdout["velpic"] - holdout["unedited"], abs=1e-6)
    first = editing.edit_differences(table, epoch="first").set_index("readout")
    at_zero = table[(table.split == "test_holdout") & (table.epoch == 0)].set_index("readout").accuracy
    assert first.loc["velpic", "difference"] == pytest.approx(at_zero["velpic"] - at_zero["unedited"], abs=1e-6)
    with pytest.raises(ValueError, match="'last' or 'first'"):
        editing.edit_differences(table, epoch="middle")


def test_scored_at_keeps_each_runs_last_or_first_epoch(mlp_run):
    table = editing.editing_table(mlp_run, readouts=["velpic"])
    assert set(editing.scored_at(table).epoch) == {final_epoch(mlp_run)} and set(editing.scored_at(table, "first").epoch) == {0}
    assert set(editing.scored_at(table, split="test_validation").split) == {"test_validation"}
    with pytest.raises(ValueError, match="split must be one of"):
        editing.scored_at(table, split="train")
