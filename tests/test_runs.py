import dataclasses
import json

import numpy as np
import pytest
import torch

from memnotebooks import runs
from memnotebooks.corruption import corrupt_labels
from memnotebooks.runs import RunConfig
from memnotebooks.store import StaleArtifactError

FAST = RunConfig(model="cnn", corruption_degree=0.4, subset=400, max_epochs=3, checkpoint_epochs=(0, 2))


def test_config_fills_the_papers_settings():
    config = RunConfig(dataset="fashion_mnist", model="cnn")
    assert (config.optimizer, config.learning_rate, config.batch_size, config.target_accuracy) == ("adam", 2e-4, 128, 0.991)
    assert RunConfig(model="mlp", dataset="mnist").optimizer == "sgd"
    assert config.key() == RunConfig(dataset="fashion_mnist", model="cnn", learning_rate=2e-4).key()
    assert len({FAST.key(), FAST.replace(seed=1).key(), FAST.replace(corruption_degree=0.2).key()}) == 3


def test_keys_normalize_values():
    assert RunConfig(learning_rate=1).key() == RunConfig(learning_rate=1.0).key()
    config = RunConfig(seed=np.int64(2), subset=np.float64(400), corruption_degree=np.float32(0.5))
    assert config.key() == RunConfig(seed=2, subset=400, corruption_degree=0.5).key()
    assert type(config.seed) is int and type(config.subset) is int
    assert RunConfig(checkpoint_epochs=[2, 0, 2]).checkpoint_epochs == (0, 2)


def test_adding_a_defaulted_field_keeps_existing_keys():
    extended = dataclasses.make_dataclass("Extended", [("label_smoothing", float, 0.0)], bases=(RunConfig,), frozen=True)
    assert extended(seed=3).key() == RunConfig(seed=3).key()
    assert extended(seed=3, label_smoothing=0.5).key() != RunConfig(seed=3).key()


def test_the_default_key_is_stable():
    # Changing this key orphans every cached run: it must change only with CACHE_VERSION.
    assert RunConfig().key() == "d90d6bd336ddf4a0"  # CACHE_VERSION 4: runs keep each epoch's test predictions


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dataset": "svhn"}, "Unknown dataset 'svhn'; choose one of: digits, fashion_mnist"),
        ({"model": "vit"}, "Unknown model 'vit'; choose one of: mlp, cnn, alexnet, resnet18"),
        ({"corruption_mode": "flip"}, "Unknown corruption_mode 'flip'"),
        ({"corruption_degree": 2}, r"corruption degree must be a number in \[0, 1\], got 2"),
        ({"seed": 0.5}, "seed must be an integer, got 0.5"),
        ({"learning_rate": "fast"}, "learning_rate must be a number, got 'fast'"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
        ({"model": "resnet18", "dropout": 0.5}, "dropout 0.5 is an option of models mlp, cnn only, not of 'resnet18'"),
        ({"weight_decay": -0.1}, "weight_decay must be a number >= 0, got -0.1"),
        ({"width": 0}, r"width \(a multiplier of the hidden layers' widths\) must be a number > 0, got 0.0"),
        ({"model": "alexnet", "width": 2}, "width 2 is an option of models mlp, cnn only, not of 'alexnet'"),
        ({"max_epochs": -1}, "max_epochs must be an integer >= 0, got -1"),
        ({"checkpoint_epochs": 5}, r"checkpoint_epochs must be a list of epochs \(integers >= 0\), got 5"),
    ],
)
def test_bad_configs_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**changes)


def test_run_trains_once_then_comes_from_the_cache(tmp_path, monkeypatch):
    assert not runs.is_complete(FAST, tmp_path)
    first = runs.run(FAST, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert runs.is_complete(FAST, tmp_path)
    assert json.loads((first.path / "config.json").read_text())["corruption_degree"] == 0.4
    assert first.summary["epochs"] == 3 and len(first.history) == 4
    assert {"test_accuracy", "test_validation_accuracy", "test_holdout_accuracy"} <= set(first.history.columns)
    assert 0 <= first.summary["full_pass_train_accuracy"] <= 1
    assert first.corrupted.mean() == pytest.approx(0.4 * 0.9, abs=0.08)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(runs, "train", no_training)
    again = runs.run(FAST, artifacts_dir=tmp_path, device="cpu")
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name])
    rewound = again.checkpoint(2)
    assert not torch.equal(rewound.fc1[0].weight, again.model.fc1[0].weight)
    with pytest.raises(ValueError, match=r"No checkpoint at epoch 1; this run kept \[0, 2\]"):
        again.checkpoint(1)


def test_stored_labels_equal_the_labels_the_code_derives(tmp_path):
    result = runs.run(FAST.replace(max_epochs=1), artifacts_dir=tmp_path, device="cpu", progress=False)
    with np.load(result.path / "labels.npz") as stored:
        stored_labels, stored_mask = stored["train_labels"], stored["corruption_mask"]
    derived = corrupt_labels(result.dataset.y_train, 0.4, 10, seed=FAST.seed)
    np.testing.assert_array_equal(stored_labels, derived.labels)
    np.testing.assert_array_equal(stored_mask, derived.mask)
    assert (stored_labels != result.dataset.y_train.numpy()).any()


def test_a_cached_run_whose_labels_no_longer_match_the_code_is_refused(tmp_path, monkeypatch):
    config = FAST.replace(max_epochs=1)
    cached = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)

    def changed_corruption(labels, degree, n_classes, seed=0, mode="uniform"):  # as if the code had changed
        new, mask = corrupt_labels(labels, degree, n_classes, seed=seed + 1, mode=mode)
        return new, mask

    monkeypatch.setattr(runs, "corrupt_labels", changed_corruption)
    with pytest.raises(StaleArtifactError, match=rf"{cached.path}.*labels that differ.*Delete {cached.path}, or bump"):
        runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)


def test_a_cached_run_of_another_configuration_is_refused(tmp_path):
    config = FAST.replace(max_epochs=1)
    cached = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    stored = json.loads((cached.path / "config.json").read_text())
    (cached.path / "config.json").write_text(json.dumps({**stored, "max_epochs": 2}))
    with pytest.raises(StaleArtifactError, match="made by another configuration"):
        runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)


def test_is_complete_loads_no_data(tmp_path, monkeypatch):
    config = FAST.replace(max_epochs=1)
    runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)

    def no_data(*args, **kwargs):
        raise AssertionError("is_complete loaded a dataset")

    monkeypatch.setattr(runs, "load_dataset", no_data)
    monkeypatch.setattr(runs, "training_data", no_data)
    assert runs.is_complete(config, tmp_path) and not runs.is_complete(config.replace(seed=1), tmp_path)


def test_same_config_same_result_in_another_cache(tmp_path):
    a = runs.run(FAST, artifacts_dir=tmp_path / "a", device="cpu", progress=False)
    b = runs.run(FAST, artifacts_dir=tmp_path / "b", device="cpu", progress=False)
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))


def test_building_a_run_model_leaves_the_global_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    dataset, _, _ = runs.training_data(FAST)
    runs.build_run_model(FAST.replace(seed=9), dataset)
    assert torch.equal(torch.rand(3), expected)


def test_artifacts_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMNOTEBOOKS_ARTIFACTS", str(tmp_path / "cache"))
    result = runs.run(FAST.replace(max_epochs=1), device="cpu", progress=False)
    assert result.path.parent == tmp_path / "cache"


def test_an_interrupted_run_leaves_nothing_a_later_run_trusts(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    config = FAST.replace(max_epochs=1)
    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", interrupted)
        with pytest.raises(KeyboardInterrupt):
            runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert list(tmp_path.iterdir()) == [] and not runs.is_complete(config, tmp_path)
    result = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert runs.is_complete(config, tmp_path) and result.summary["epochs"] == 1


def test_random_inputs_replace_the_masked_inputs_and_count_as_corrupted(tmp_path):
    config = FAST.replace(corruption_mode="random_inputs", max_epochs=1)
    result = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    clean = runs.run(config.replace(corruption_degree=0.0), artifacts_dir=tmp_path, device="cpu", progress=False)
    mask = torch.from_numpy(result.corruption_mask)
    assert torch.equal(result.train_labels, result.dataset.y_train)
    assert torch.equal(result.dataset.x_train[~mask], clean.dataset.x_train[~mask])
    assert not torch.equal(result.dataset.x_train[mask], clean.dataset.x_train[mask])
    # The noise inputs are the corrupted subset, so its curve is not empty.
    np.testing.assert_array_equal(result.corrupted, result.corruption_mask)
    assert result.history.corrupted_accuracy_given.notna().all()


def test_tables_stack_runs(tmp_path):
    grid = runs.run_grid(FAST.replace(max_epochs=1), degrees=(0.0, 0.4), artifacts_dir=tmp_path, device="cpu", progress=False)
    summary = runs.summary_table(grid)
    assert list(summary.corruption_degree) == [0.0, 0.4] and summary.epochs.eq(1).all()
    assert summary.full_pass_train_accuracy.between(0, 1).all()
    history = runs.history_table(grid)
    assert len(history) == 4 and set(history.corruption_degree) == {0.0, 0.4}


def test_width_builds_a_narrower_model_and_only_a_changed_width_changes_the_key():
    assert RunConfig(width=1).key() == RunConfig().key()
    narrow = RunConfig(width=0.25)
    assert narrow.key() != RunConfig().key()
    dataset, _, _ = runs.training_data(narrow)
    model = runs.build_run_model(narrow, dataset)
    assert [model.get_submodule(f"fc{i}")[0].out_features for i in range(1, 5)] == [32, 128, 512, 512]


def test_a_run_stored_before_a_field_was_added_is_still_the_same_run(tmp_path):
    config = FAST.replace(max_epochs=1)
    cached = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    stored = json.loads((cached.path / "config.json").read_text())
    assert stored["dropout"] == 0.0
    (cached.path / "config.json").write_text(json.dumps({k: v for k, v in stored.items() if k not in ("dropout", "weight_decay")}))
    again = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert again.path == cached.path
    with pytest.raises(StaleArtifactError, match="made by another configuration"):  # not at the default: another run
        (cached.path / "config.json").write_text(json.dumps({**stored, "dropout": 0.5}))
        runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)


def test_per_example_learning_epochs_are_stored(tmp_path):
    cached = runs.run(FAST, artifacts_dir=tmp_path, device="cpu", progress=False)
    learned = cached.learned_epoch
    assert learned.shape == (400,) and learned.min() >= -1 and learned.max() <= cached.summary["epochs"]
    # A point counts as learned iff its running prediction fits its label at the last epoch.
    assert np.mean(learned >= 0) == pytest.approx(cached.history.train_accuracy.iloc[-1])
    (cached.path / "examples.npz").unlink()
    with pytest.raises(FileNotFoundError, match="stored before per-example records"):
        cached.learned_epoch


def test_regularized_runs_are_other_runs(tmp_path):
    config = FAST.replace(model="mlp", max_epochs=2)
    plain = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    dropped = runs.run(config.replace(dropout=0.5), artifacts_dir=tmp_path, device="cpu", progress=False)
    decayed = runs.run(config.replace(weight_decay=0.01), artifacts_dir=tmp_path, device="cpu", progress=False)
    assert len({plain.path, dropped.path, decayed.path}) == 3
    assert any(isinstance(m, torch.nn.Dropout) for m in dropped.model.modules())
    assert not plain.history.drop(columns="seconds").equals(decayed.history.drop(columns="seconds"))


def test_padded_history_carries_each_run_to_the_longest_runs_last_epoch():
    import pandas as pd

    rows = [{"corruption_degree": d, "seed": s, "epoch": e, "test_accuracy": 0.1 * e + s} for d, lengths in ((0.0, (2, 4)), (0.4, (3, 3))) for s, n in enumerate(lengths) for e in range(n + 1)]
    padded = runs.padded_history(pd.DataFrame(rows))
    counts = padded.groupby(["corruption_degree", "seed"]).epoch.agg(["count", "max"])
    assert counts["max"].tolist() == [4, 4, 3, 3] and counts["count"].tolist() == [5, 5, 4, 4]
    short = padded[(padded.corruption_degree == 0.0) & (padded.seed == 0)].set_index("epoch")
    assert short.padded.tolist() == [False, False, False, True, True]
    assert short.loc[[3, 4], "test_accuracy"].eq(short.loc[2, "test_accuracy"]).all()
    assert not padded[padded.corruption_degree == 0.4].padded.any()
    with pytest.raises(ValueError, match=r"needs the column\(s\) \['seed'\]"):
        runs.padded_history(pd.DataFrame(rows).drop(columns="seed"))


def test_summary_at_the_early_stopped_epoch(tmp_path):
    grid = runs.run_grid(FAST, degrees=(0.4,), artifacts_dir=tmp_path, device="cpu", progress=False)
    stopped = runs.summary_table(grid, at="early-stopped")
    history = grid[0].history
    best = history.loc[history.test_validation_accuracy.idxmax()]
    assert stopped.epochs.item() == best.epoch and stopped.test_accuracy.item() == pytest.approx(best.test_accuracy)
    with pytest.raises(ValueError, match="Unknown at='peak'"):
        runs.summary_table(grid, at="peak")


def test_every_config_field_says_what_it_sets_and_training_settings_carry_every_training_field():
    named = set(runs.TRAINING_FIELDS) | set(runs.DATA_FIELDS) | set(runs.MODEL_FIELDS)
    assert named == set(RunConfig.__dataclass_fields__)  # a new field must say where it goes
    config = FAST.replace(weight_decay=0.01, checkpoint_epochs=(1,), seed=3)
    settings = config.training_settings()
    for name in runs.TRAINING_FIELDS:
        if name != "target_accuracy":
            assert settings[name] == getattr(config, name)
    assert settings["stop"].target_accuracy == config.target_accuracy
    assert set(settings) - set(runs.TRAINING_FIELDS) == {"stop"}


def test_runs_that_differ_only_in_dropout_never_share_a_mean(tmp_path):
    from memnotebooks import tables

    config = FAST.replace(model="mlp", max_epochs=2)
    plain = runs.run(config, artifacts_dir=tmp_path, device="cpu", progress=False)
    dropped = runs.run(config.replace(dropout=0.5), artifacts_dir=tmp_path, device="cpu", progress=False)
    assert "dropout" not in runs.config_columns(plain) and runs.config_columns(dropped)["dropout"] == 0.5
    summary = runs.summary_table([plain, dropped])
    assert runs.run_columns(summary) == ["dataset", "model", "corruption_degree", "subset", "max_epochs", "dropout"]
    means = summary.groupby(runs.run_columns(summary), dropna=False).test_accuracy.mean()
    assert len(means) == 2 and sorted(means) == sorted(summary.test_accuracy)
    with pytest.raises(ValueError, match=r"seed 0 twice.*give them different row names"):
        tables.mean_std_table(summary.assign(row="network"), "row", "test_accuracy")
    with pytest.raises(ValueError, match=r"differ in more than their degree and seed \(dropout 0.0 and 0.5\)"):
        runs.check_one_setting([plain, dropped])
    runs.check_one_setting([plain, runs.run(config.replace(seed=1), artifacts_dir=tmp_path, device="cpu", progress=False)])
    padded = runs.padded_history(runs.history_table([plain, dropped]))
    assert len(padded) == len(plain.history) + len(dropped.history)
