import pytest
import torch

from memnotebooks.corruption import corrupt_labels
from memnotebooks.data import load_dataset
from memnotebooks.models import build_model
from memnotebooks.training import paper_settings, resolve_device, train

DIGITS = load_dataset("digits")


def corrupted(degree, seed=0):
    return torch.from_numpy(corrupt_labels(DIGITS.y_train, degree, 10, seed=seed).labels)


def fit(labels, model="cnn", **kwargs):
    torch.manual_seed(0)
    settings = {**paper_settings(model, "digits"), "max_epochs": 300, "device": "cpu", "progress": False, **kwargs}
    network = build_model(model, DIGITS.input_shape, 10)
    result = train(network, DIGITS.x_train, labels, y_true=DIGITS.y_train, x_test=DIGITS.x_test, y_test=DIGITS.y_test, **settings)
    return network, result


def test_memorizes_corrupted_digits_to_the_target():
    _, result = fit(corrupted(0.4))
    last = result.history.iloc[-1]
    assert result.reached_target and last.train_accuracy == 1.0
    assert last.corrupted_accuracy_given == 1.0  # the wrong labels are memorized
    assert last.test_accuracy < 0.85  # and the network no longer generalizes as a clean one does
    assert result.epochs < 300
    # Clean points are learned before the corrupted ones are memorized (Arpit et al. 2017).
    clean_learned = result.history[result.history.clean_accuracy > 0.8].iloc[0]
    assert clean_learned.corrupted_accuracy_given < 0.3


def test_history_checkpoints_and_determinism():
    labels = corrupted(0.2)
    model_a, a = fit(labels, max_epochs=3, checkpoint_epochs=[0, 2])
    _, b = fit(labels, max_epochs=3, checkpoint_epochs=[0, 2])
    assert list(a.history.epoch) == [0, 1, 2, 3] and not a.reached_target
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))
    assert sorted(a.checkpoints) == [0, 2]
    final = model_a.state_dict()["fc1.0.weight"].cpu()
    assert not torch.equal(a.checkpoints[0]["fc1.0.weight"], a.checkpoints[2]["fc1.0.weight"])
    assert not torch.equal(a.checkpoints[2]["fc1.0.weight"], final)


@pytest.mark.parametrize("target", [0, 1.5, -1, "high", True])
def test_target_accuracy_outside_unit_interval_is_rejected(target):
    with pytest.raises(ValueError, match=r"target_accuracy must be a number in \(0, 1\]"):
        fit(DIGITS.y_train, target_accuracy=target)


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
