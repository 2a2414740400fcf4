import json

import numpy as np
import pytest
import torch

from memnotebooks import report, runs, stacked, training
from memnotebooks.models import build_model
from memnotebooks.runs import RunConfig

# SGD: Adam divides by the root of the squared gradient's average, which turns the rounding of
# near-zero gradients into whole steps, so stacked and single Adam runs drift apart by more than
# rounding (0.012 in one run's weights after six epochs on digits); SGD keeps them within it.
BASE = RunConfig(dataset="digits", model="mlp", subset=500, optimizer="sgd", learning_rate=0.05, momentum=0.9, target_accuracy=0.5, max_epochs=5, checkpoint_epochs=range(6))
GRID = [
    BASE.replace(seed=0, corruption_degree=0.0),  # reaches the target first and leaves the stack
    BASE.replace(seed=1, corruption_degree=0.4),
    BASE.replace(seed=2, corruption_degree=0.8, corruption_mode="random_inputs"),  # its own inputs
]


def no_training(*args, **kwargs):
    raise AssertionError("a cached run was trained again")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The grid trained stacked, then read back by runs.run (no training allowed), and one by one."""
    cache = tmp_path_factory.mktemp("cache")
    assert runs.train_missing_stacked(GRID, artifacts_dir=cache / "stacked", device="cpu", progress=False) == {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "train", no_training)
        stacked_runs = [runs.run(c, artifacts_dir=cache / "stacked", device="cpu") for c in GRID]
    single_runs = [runs.run(c, artifacts_dir=cache / "single", device="cpu", progress=False) for c in GRID]
    return stacked_runs, single_runs


def test_stacked_runs_are_the_runs_trained_one_by_one(both):
    for s, o in zip(*both):
        assert s.summary["epochs"] == o.summary["epochs"] and s.summary["reached_target"] == o.summary["reached_target"]
        assert s.summary["test_accuracy"] == o.summary["test_accuracy"]
        np.testing.assert_array_equal(s.learned_epoch, o.learned_epoch)
        assert list(s.history.columns) == list(o.history.columns)
        np.testing.assert_allclose(s.history["loss"], o.history["loss"], rtol=1e-5)
        accuracies = [c for c in s.history.columns if c.endswith("_accuracy")]
        # Within one point of the smallest set scored.
        sizes = [s.corrupted.sum(), (~s.corrupted).sum(), runs.test_parts(s.dataset)["test_validation"][1].sum()]
        np.testing.assert_allclose(s.history[accuracies], o.history[accuracies], atol=1 / min(n for n in sizes if n) + 1e-6)
        for name, value in o.model.state_dict().items():
            torch.testing.assert_close(s.model.state_dict()[name], value, rtol=1e-4, atol=1e-4)


def test_over_one_epoch_adam_runs_stacked_are_the_runs_trained_one_by_one(tmp_path):
    # One epoch (15 Adam steps per run) stays within rounding; the drift described above comes later.
    grid = [c.replace(optimizer="adam", learning_rate=1e-3, momentum=None, max_epochs=1, checkpoint_epochs=()) for c in GRID]
    runs.train_missing_stacked(grid, artifacts_dir=tmp_path / "stacked", device="cpu", progress=False)
    for config in grid:
        s = runs.run(config, artifacts_dir=tmp_path / "stacked", device="cpu")
        o = runs.run(config, artifacts_dir=tmp_path / "single", device="cpu", progress=False)
        np.testing.assert_allclose(s.history["loss"], o.history["loss"], rtol=1e-5)
        for name, value in o.model.state_dict().items():
            torch.testing.assert_close(s.model.state_dict()[name], value, rtol=1e-4, atol=1e-4)


def test_a_run_that_reached_its_target_stops_changing(both):
    stacked_runs, _ = both
    epochs = [r.summary["epochs"] for r in stacked_runs]
    assert stacked_runs[0].summary["reached_target"] and epochs[0] < BASE.max_epochs == max(epochs[1:])
    assert len(stacked_runs[0].history) == epochs[0] + 1
    first = stacked_runs[0]
    for name, value in first.checkpoint(epochs[0]).state_dict().items():
        assert torch.equal(value, first.model.state_dict()[name])  # bitwise: the stack went on without it


def test_stacked_summaries_say_so(both):
    for s, o in zip(*both):
        assert s.summary["stacked_with"] == len(GRID) and "stacked_with" not in o.summary
        assert set(o.summary) <= set(s.summary)
        assert s.summary["epochs"] == s.history.epoch.iloc[-1] == len(s.history) - 1


def test_a_report_counts_a_stacks_wall_time_once(both):
    stacked_runs, single_runs = both
    seconds = [r.summary["seconds"] for r in stacked_runs]
    assert len({r.summary["stack"] for r in stacked_runs}) == 1
    assert report.training_seconds(stacked_runs) == pytest.approx(max(seconds)) and max(seconds) < sum(seconds)
    assert report.training_seconds(single_runs) == pytest.approx(sum(r.summary["seconds"] for r in single_runs))
    assert report.training_seconds([*stacked_runs, *single_runs]) == pytest.approx(max(seconds) + sum(r.summary["seconds"] for r in single_runs))


def test_run_grid_stacks_and_then_reads_from_the_cache(tmp_path, monkeypatch):
    config = BASE.replace(max_epochs=1, checkpoint_epochs=())
    grid = runs.run_grid(config, degrees=(0.0, 0.4), stacked=True, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert [r.summary["stacked_with"] for r in grid] == [2, 2]
    monkeypatch.setattr(runs, "train", no_training)
    monkeypatch.setattr(runs, "train_stacked", no_training)
    again = runs.run_grid(config, degrees=(0.0, 0.4), stacked=True, artifacts_dir=tmp_path, device="cpu")
    assert [r.path for r in again] == [r.path for r in grid]


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"dropout": 0.5}, "dropout 0.5: vmap would draw other dropout masks"),
        ({"model": "resnet18", "subset": 100, "test_subset": 100}, r"the model \(ResNet18\) has buffers \(BatchNorm statistics\)"),
    ],
)
def test_runs_that_cannot_be_stacked_train_one_by_one_and_say_why(changes, reason, tmp_path):
    config = BASE.replace(max_epochs=1, checkpoint_epochs=(), **changes)
    with pytest.warns(UserWarning, match=rf"2 run\(s\) cannot be stacked and train one by one. Because {reason}.*: {config.key()} \("):
        grid = runs.run_grid(config, seeds=(0, 1), stacked=True, artifacts_dir=tmp_path, device="cpu", progress=False)
    assert all("stacked_with" not in r.summary for r in grid)
    assert all(json.loads((r.path / "summary.json").read_text())["epochs"] == 1 for r in grid)


def test_runs_stack_with_the_runs_that_share_their_settings():
    other = BASE.replace(learning_rate=0.1)
    groups, one_by_one = runs.stacking_groups([*GRID, other, BASE.replace(dropout=0.1)])
    assert groups == [GRID, [other]]
    assert list(one_by_one) == [BASE.replace(dropout=0.1)]


@pytest.mark.parametrize(
    "configs, error, message",
    [
        ([], ValueError, "No runs to train: configs is empty"),
        ([BASE, "digits"], TypeError, "configs must be RunConfig instances, got 'digits' \\(str\\)"),
        ([BASE, BASE], ValueError, "Each run must be given once; repeated"),
    ],
)
def test_bad_grids_are_refused(configs, error, message, tmp_path):
    with pytest.raises(error, match=message):
        runs.train_missing_stacked(configs, artifacts_dir=tmp_path, device="cpu")


def seeded_mlps(seeds):
    models = []
    with torch.random.fork_rng(devices=[]):
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(build_model("mlp", (1, 8, 8), 10))
    return models


def stacked_result(seeds, max_epochs, x, y):
    """The MLPs of ``seeds`` trained stacked with Adam on their own labels ``y`` (runs, n)."""
    models = seeded_mlps(seeds)
    results = stacked.train_stacked(
        models, x, y, y_true=y[0], corrupted=torch.zeros_like(y, dtype=torch.bool), seeds=seeds, max_epochs=max_epochs,
        stops=[lambda history: False] * len(seeds), optimizer="adam", learning_rate=1e-3, batch_size=16, device="cpu", progress=False,
    )
    return models, results


def test_leaving_the_stack_keeps_each_remaining_runs_adam_state():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=generator), torch.randint(0, 10, (3, 64), generator=generator)
    # Run 1 leaves after 2 epochs; runs 0 and 2 go on to 4, as a stack of those two alone does.
    three, results = stacked_result([0, 1, 2], [4, 2, 4], x, y)
    two, _ = stacked_result([0, 2], 4, x, y[[0, 2]])
    assert [r.epochs for r in results] == [4, 2, 4]
    for kept, alone in zip([three[0], three[2]], two):
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(kept.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_a_stacked_run_is_the_run_trained_alone_from_the_same_tensors():
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 1, 8, 8, generator=generator), torch.randint(0, 10, (2, 64), generator=generator)
    models, results = stacked_result([3, 4], 3, x, y)
    alone = seeded_mlps([4])[0]
    result = training.train(alone, x, y[1], stop=lambda history: False, optimizer="adam", learning_rate=1e-3, batch_size=16, max_epochs=3, seed=4, device="cpu", progress=False)
    np.testing.assert_allclose(results[1].history["loss"], result.history["loss"], rtol=1e-5)
    torch.testing.assert_close(results[1].learned_epoch, result.learned_epoch)
    for name, value in alone.state_dict().items():
        torch.testing.assert_close(models[1].state_dict()[name], value, rtol=1e-4, atol=1e-4)  # Adam: see the note above


@pytest.mark.parametrize("dropout, message", [(0.3, "dropout 0.3: vmap would draw other dropout masks")])
def test_the_stacked_trainer_refuses_models_it_would_train_otherwise(dropout, message):
    models = [build_model("mlp", (1, 8, 8), 10, dropout=dropout) for _ in range(2)]
    y = torch.zeros(2, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match=message):
        stacked.train_stacked(models, torch.zeros(8, 1, 8, 8), y, y_true=y[0], corrupted=y.bool(), seeds=[0, 1], device="cpu")
    with pytest.raises(ValueError, match="seeds gives 1 values for 2 runs"):
        stacked.train_stacked(seeded_mlps([0, 1]), torch.zeros(8, 1, 8, 8), y, y_true=y[0], corrupted=y.bool(), seeds=[0], device="cpu")


def test_the_command_line_trains_a_grid_stacked_that_the_report_reads(tmp_path, capsys):
    runs.main([str(tmp_path), "--degrees", "0", "0.4", "--seeds", "0", "1", "--subset", "200", "--max-epochs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert "4 runs in" in out and "0.4" in out
    found = report.trained_runs(tmp_path)
    assert [(r.config.corruption_degree, r.config.seed, r.summary["stacked_with"]) for r in found] == [(0.0, 0, 4), (0.0, 1, 4), (0.4, 0, 4), (0.4, 1, 4)]
    report.main([str(tmp_path), "--output", str(tmp_path / "report")])
    record = report.load_report(tmp_path / "report")[1]
    assert {run["stack"] for run in record["runs"]} == {found[0].summary["stack"]}
    assert record["total_seconds"] == pytest.approx(max(run["seconds"] for run in record["runs"]))


def test_the_command_line_names_a_bad_dataset(capsys):
    with pytest.raises(SystemExit):
        runs.main(["unused", "--dataset", "imagenet"])
    assert "imagenet" in capsys.readouterr().err
