import json

import numpy as np
import pytest
import torch

from memnotebooks import report, runs, stacked
from memnotebooks.models import build_model
from memnotebooks.runs import RunConfig
from memnotebooks.stacked import _Stack

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
    assert stacked.train_stacked(GRID, artifacts_dir=cache / "stacked", device="cpu", progress=False) == {}
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
    stacked.train_stacked(grid, artifacts_dir=tmp_path / "stacked", device="cpu", progress=False)
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
    assert runs.summary_table(both[0])["epochs"].tolist() == [r.summary["epochs"] for r in both[0]]


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
    monkeypatch.setattr(stacked, "_train_group", no_training)
    again = runs.run_grid(config, degrees=(0.0, 0.4), stacked=True, artifacts_dir=tmp_path, device="cpu")
    assert [r.path for r in again] == [r.path for r in grid]


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"dropout": 0.5}, "dropout 0.5: vmap would draw other dropout masks"),
        ({"model": "resnet18", "subset": 100, "test_subset": 100}, r"model resnet18 has buffers \(BatchNorm statistics\)"),
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
    groups, one_by_one = stacked.stacking_groups([*GRID, other, BASE.replace(dropout=0.1)])
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
        stacked.train_stacked(configs, artifacts_dir=tmp_path, device="cpu")


def seeded_mlps(seeds):
    models = []
    with torch.random.fork_rng(devices=[]):
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(build_model("mlp", (1, 8, 8), 10))
    return models


def test_leaving_the_stack_keeps_each_remaining_runs_adam_state():

    x, y = torch.randn(3, 4, 32, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.randint(0, 10, (3, 4, 32))
    config, cpu = RunConfig(optimizer="adam", learning_rate=1e-3), torch.device("cpu")

    def step(stack, runs_, i):
        logits = stack.logits(x[runs_, i], shared=False)
        stack.optimizer.zero_grad()
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[runs_, i].flatten(), reduction="none").view(len(runs_), -1).mean(1).sum().backward()
        stack.optimizer.step()

    three, two = _Stack(config, seeded_mlps([0, 1, 2]), x[0, 0], cpu), _Stack(config, seeded_mlps([0, 2]), x[0, 0], cpu)
    for i in range(3):
        step(three, [0, 1, 2], i)
        step(two, [0, 2], i)
    three.keep(torch.tensor([0, 2]))
    step(three, [0, 2], 3)
    step(two, [0, 2], 3)
    assert three.runs.tolist() == [0, 2]
    for name, value in two.params.items():
        torch.testing.assert_close(three.params[name], value, rtol=1e-5, atol=1e-6)


def test_the_command_line_trains_a_grid_stacked_that_the_report_reads(tmp_path, capsys):
    stacked.main([str(tmp_path), "--degrees", "0", "0.4", "--seeds", "0", "1", "--subset", "200", "--max-epochs", "2", "--no-progress"])
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
        stacked.main(["unused", "--dataset", "imagenet"])
    assert "imagenet" in capsys.readouterr().err
