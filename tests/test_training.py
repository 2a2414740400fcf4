import numpy as np
import pytest
import torch

from memnotebooks.corruption import corrupt_labels
from memnotebooks.data import load_dataset
from memnotebooks.models import build_model
from memnotebooks.devices import resolve_device
from memnotebooks.paper import paper_settings
from memnotebooks.training import EarlyStopping, StopAtTarget, epoch_orders, history_row, learned_since, train

DIGITS = load_dataset("digits")


def corrupted(degree, seed=0):
    return torch.from_numpy(corrupt_labels(DIGITS.y_train, degree, 10, seed=seed).labels)


def fit(labels, model="cnn", **kwargs):
    torch.manual_seed(0)
    paper = paper_settings(model, "digits")
    settings = {
        "stop": StopAtTarget(paper.pop("target_accuracy")),
        "evaluation_sets": {"test": (DIGITS.x_test, DIGITS.y_test)},
        **paper, "max_epochs": 300, "device": "cpu", "progress": False, **kwargs,
    }
    network = build_model(model, DIGITS.input_shape, 10)
    result = train(network, DIGITS.x_train, labels, y_true=DIGITS.y_train, **settings)
    return network, result


def test_memorizes_corrupted_digits_to_the_target():
    labels = corrupted(0.4)
    network, result = fit(labels)
    last = result.history.iloc[-1]
    assert result.stopped and last.train_accuracy == 1.0
    # The running accuracy scores each point before its batch's update; the final model, in one
    # pass, need not fit every point (later batches can undo earlier ones), and this records it.
    assert 0.9 < result.full_pass_train_accuracy <= 1.0
    assert not network.training
    assert last.corrupted_accuracy_given == 1.0  # the wrong labels are memorized
    assert last.test_accuracy < 0.85  # and the network no longer generalizes as a clean one does
    assert result.epochs < 300
    # Clean points are learned before the corrupted ones are memorized (Arpit et al. 2017).
    clean_learned = result.history[result.history.clean_accuracy > 0.8].iloc[0]
    assert clean_learned.corrupted_accuracy_given < 0.3
    # Every point is fitted at the end, each from some epoch on; the wrong labels later.
    learned, wrong = result.learned_epoch.numpy(), (labels.numpy() != DIGITS.y_train.numpy())
    assert (learned >= 0).all() and learned.max() <= result.epochs
    assert np.median(learned[wrong]) > np.median(learned[~wrong])


def test_learned_epoch_is_the_start_of_the_last_fitted_streak():
    fitted = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)  # epochs 0, 1, 2 × 4 points
    learned = torch.full((4,), -1)
    for epoch, row in enumerate(fitted):
        learned = learned_since(learned, row, epoch)
    # fitted from epoch 1 on / forgotten at the end / forgotten, then refitted at 2 / never fitted
    assert learned.tolist() == [1, -1, 2, -1]


def test_weight_decay_shrinks_the_weights_and_bad_values_are_rejected():
    labels = corrupted(0.4)
    plain, _ = fit(labels, max_epochs=5)
    decayed, _ = fit(labels, max_epochs=5, weight_decay=0.1)
    norm = lambda network: sum(float(p.detach().norm() ** 2) for p in network.parameters())
    assert norm(decayed) < norm(plain)
    with pytest.raises(ValueError, match="weight_decay must be a number >= 0, got -1"):
        fit(labels, max_epochs=1, weight_decay=-1)


def test_history_checkpoints_and_determinism():
    labels = corrupted(0.2)
    model_a, a = fit(labels, max_epochs=3, checkpoint_epochs=[0, 2])
    _, b = fit(labels, max_epochs=3, checkpoint_epochs=[0, 2])
    assert list(a.history.epoch) == [0, 1, 2, 3] and not a.stopped
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))
    assert sorted(a.checkpoints) == [0, 2]
    final = model_a.state_dict()["fc1.0.weight"].cpu()
    assert not torch.equal(a.checkpoints[0]["fc1.0.weight"], a.checkpoints[2]["fc1.0.weight"])
    assert not torch.equal(a.checkpoints[2]["fc1.0.weight"], final)


@pytest.mark.parametrize("target", [0, 1.5, -1, "high", True])
def test_target_accuracy_outside_unit_interval_is_rejected(target):
    with pytest.raises(ValueError, match=r"target_accuracy must be a number in \(0, 1\]"):
        StopAtTarget(target)


def test_early_stopping_keeps_the_best_epoch_on_the_validation_set():
    half = len(DIGITS.y_test) // 2
    validation = {"validation": (DIGITS.x_test[:half], DIGITS.y_test[:half])}
    stop = EarlyStopping("validation_accuracy", patience=2)
    network, result = fit(corrupted(0.8), model="mlp", evaluation_sets=validation, stop=stop, keep_best="validation_accuracy")
    history = result.history
    best = int(history.loc[history.validation_accuracy.idxmax(), "epoch"])
    assert result.stopped and result.best_epoch == best
    assert result.epochs - best == 2  # stopped after `patience` epochs without a strict improvement
    assert (history.validation_accuracy.iloc[best + 1 :] <= history.validation_accuracy.iloc[best]).all()
    # The returned model holds the best epoch's weights: it scores that epoch's validation accuracy.
    predictions = network(validation["validation"][0]).argmax(1)
    assert (predictions == validation["validation"][1]).float().mean().item() == pytest.approx(history.validation_accuracy[best])
    with pytest.raises(ValueError, match="Unknown history column 'holdout_accuracy'; choose from: epoch, loss"):
        fit(corrupted(0.8), model="mlp", max_epochs=1, keep_best="holdout_accuracy")
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        EarlyStopping(patience=0)


def test_parts_of_an_evaluation_set_are_scored_from_its_predictions():
    mask = torch.arange(len(DIGITS.y_test)) % 3 == 0
    parts = {"first": ("test", mask), "rest": ("test", ~mask)}
    _, result = fit(DIGITS.y_train, model="mlp", max_epochs=2, evaluation_parts=parts)
    history = result.history
    combined = (history.first_accuracy * int(mask.sum()) + history.rest_accuracy * int((~mask).sum())) / len(mask)
    np.testing.assert_allclose(combined, history.test_accuracy, atol=1e-6)
    with pytest.raises(ValueError, match=r"unknown evaluation set\(s\) \['holdout'\]; the sets are: \['test'\]"):
        fit(DIGITS.y_train, model="mlp", max_epochs=1, evaluation_parts={"x": ("holdout", mask)})


def test_the_loss_is_an_argument():
    calls = []

    def counted_loss(logits, labels):
        calls.append(len(labels))
        return torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)

    fit(DIGITS.y_train, model="mlp", max_epochs=1, loss=counted_loss)
    assert sum(calls) == len(DIGITS.y_train)


def test_epoch_orders_depend_on_the_seed_alone_and_history_rows_score_each_subset():
    orders = epoch_orders(10, seed=3)
    first, second = next(orders), next(orders)
    assert sorted(first.tolist()) == list(range(10)) and not torch.equal(first, second)
    assert torch.equal(next(epoch_orders(10, seed=3)), first)
    given = torch.tensor([0, 1, 2, 2])
    true = torch.tensor([0, 1, 2, 0])
    row = history_row(1, 0.5, torch.tensor([0, 1, 1, 2]), given, true, given != true, {"test": (torch.tensor([1]), torch.tensor([1]))})
    assert row == pytest.approx({
        "epoch": 1, "loss": 0.5, "train_accuracy": 0.75, "clean_accuracy": 2 / 3,
        "corrupted_accuracy_given": 1.0, "corrupted_accuracy_true": 0.0, "test_accuracy": 1.0,
    })


def test_bad_optimizer_and_batch_size_are_rejected():
    with pytest.raises(ValueError, match="'rmsprop'.*sgd, adam"):
        fit(DIGITS.y_train, optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        fit(DIGITS.y_train, batch_size=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="device='cuda' was asked for, but no CUDA GPU is available"):
        resolve_device("cuda")


def test_auto_device_and_unknown_device():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="Unknown device 'gpu'"):
        resolve_device("gpu")


def test_test_predictions_are_kept_for_every_epoch():
    labels = corrupted(0.4)
    _, result = fit(labels, max_epochs=3, stop=lambda rows: False)
    predictions = result.test_predictions
    assert predictions.shape == (4, len(DIGITS.y_test)) and predictions.dtype == torch.int16
    accuracies = (predictions == DIGITS.y_test).double().mean(dim=1).numpy()
    np.testing.assert_allclose(accuracies, result.history.test_accuracy)


def test_no_progress_bar_is_drawn_in_a_batch_execution(capsys):
    from memnotebooks.progress import without_progress_bars

    with without_progress_bars():
        fit(corrupted(0.4), max_epochs=2, progress=True)
    assert "epochs" not in capsys.readouterr().err
    fit(corrupted(0.4), max_epochs=2, progress=True)
    assert "epochs" in capsys.readouterr().err


def test_after_epoch_sees_every_epoch_and_training_goes_on_from_its_edits():
    seen = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        donor = build_model("mlp", DIGITS.input_shape, 10)

    def edit(epoch, model, history):
        seen.append((epoch, len(history), history[-1]["epoch"]))
        if epoch == 1:
            model.load_state_dict(donor.state_dict())

    network = build_model("mlp", DIGITS.input_shape, 10)
    # A learning rate too small to move the weights: what the model ends with is the edit.
    result = train(network, DIGITS.x_train, DIGITS.y_train, stop=lambda history: False, after_epoch=edit, optimizer="sgd",
                   learning_rate=1e-12, momentum=0.0, max_epochs=3, device="cpu", progress=False, evaluation_sets={"test": (DIGITS.x_test, DIGITS.y_test)})
    assert seen == [(0, 1, 0), (1, 2, 1), (2, 3, 2), (3, 4, 3)]
    for name, value in donor.state_dict().items():
        torch.testing.assert_close(network.state_dict()[name], value)
    donor_accuracy = float((donor(DIGITS.x_test).argmax(1) == DIGITS.y_test).float().mean())
    assert result.history.test_accuracy.iloc[-1] == pytest.approx(donor_accuracy, abs=1e-6) != result.history.test_accuracy.iloc[1]
