import json

import numpy as np
import pytest
import torch

from memnotebooks import experiments
from memnotebooks.experiments import RunConfig

FAST = RunConfig(model="cnn", corruption_degree=0.4, subset=400, max_epochs=3, checkpoint_epochs=(0, 2))


def test_config_fills_the_papers_settings_and_keys_differ_by_field():
    config = RunConfig(dataset="fashion_mnist", model="cnn")
    assert (config.optimizer, config.learning_rate, config.batch_size, config.target_accuracy) == ("adam", 2e-4, 128, 0.991)
    assert RunConfig(model="mlp", dataset="mnist").optimizer == "sgd"
    assert config.key() == RunConfig(dataset="fashion_mnist", model="cnn", learning_rate=2e-4).key()
    assert len({FAST.key(), FAST.replace(seed=1).key(), FAST.replace(corruption_degree=0.2).key()}) == 3


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dataset": "svhn"}, "Unknown dataset 'svhn'; choose one of: digits, fashion_mnist"),
        ({"model": "vit"}, "Unknown model 'vit'; choose one of: mlp, cnn, alexnet, resnet18"),
        ({"corruption_mode": "flip"}, "Unknown corruption_mode 'flip'"),
        ({"corruption_degree": 2}, r"corruption degree must be a number in \[0, 1\], got 2"),
    ],
)
def test_bad_configs_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**changes)


def test_run_trains_once_then_comes_from_the_cache(tmp_path, monkeypatch):
    first = experiments.run(FAST, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert sorted(p.name for p in first.path.iterdir()) == [
        "checkpoints.pt", "config.json", "history.csv", "labels.npz", "model.pt", "summary.json"
    ]
    assert json.loads((first.path / "config.json").read_text())["corruption_degree"] == 0.4
    assert first.summary["epochs"] == 3 and len(first.history) == 4
    assert first.wrong_labels.mean() == pytest.approx(0.4 * 0.9, abs=0.08)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(experiments, "train", no_training)
    again = experiments.run(FAST, artifacts_dir=tmp_path, device="cpu")
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name])
    assert torch.equal(again.train_labels, first.train_labels)
    rewound = again.checkpoint(2)
    assert not torch.equal(rewound.fc1[0].weight, again.model.fc1[0].weight)
    with pytest.raises(ValueError, match=r"No checkpoint at epoch 1; this run kept \[0, 2\]"):
        again.checkpoint(1)


def test_same_config_same_result_in_another_cache(tmp_path):
    a = experiments.run(FAST, artifacts_dir=tmp_path / "a", device="cpu", progress=False)
    b = experiments.run(FAST, artifacts_dir=tmp_path / "b", device="cpu", progress=False)
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))


def test_artifacts_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMNOTEBOOKS_ARTIFACTS", str(tmp_path / "cache"))
    result = experiments.run(FAST.replace(max_epochs=1), device="cpu", progress=False)
    assert result.path.parent == tmp_path / "cache"


def test_an_interrupted_write_leaves_nothing_a_later_run_trusts(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    config = FAST.replace(max_epochs=1)
    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", interrupted)
        with pytest.raises(KeyboardInterrupt):
            experiments.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert list(tmp_path.iterdir()) == []
    result = experiments.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert (result.path / "summary.json").exists() and result.summary["epochs"] == 1


def test_random_inputs_mode_replaces_only_the_masked_training_inputs(tmp_path):
    config = FAST.replace(corruption_mode="random_inputs", max_epochs=1)
    result = experiments.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    clean = experiments.run(config.replace(corruption_degree=0.0), artifacts_dir=tmp_path, device="cpu", progress=False)
    mask = torch.from_numpy(result.corruption_mask)
    assert torch.equal(result.train_labels, result.dataset.y_train)
    assert torch.equal(result.dataset.x_train[~mask], clean.dataset.x_train[~mask])
    assert not torch.equal(result.dataset.x_train[mask], clean.dataset.x_train[mask])


def test_tables_stack_runs(tmp_path):
    runs = experiments.run_grid(FAST.replace(max_epochs=1), degrees=(0.0, 0.4), artifacts_dir=tmp_path, device="cpu", progress=False)
    summary = experiments.summary_table(runs)
    assert list(summary.corruption_degree) == [0.0, 0.4] and summary.epochs.eq(1).all()
    history = experiments.history_table(runs)
    assert len(history) == 4 and set(history.corruption_degree) == {0.0, 0.4}
