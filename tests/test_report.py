"""Reports: a cache's runs gathered, set beside the paper's table, written with their provenance."""

import json

import numpy as np
import pandas as pd
import pytest

from memnotebooks import report, runs
from memnotebooks.models import probe_layers
from memnotebooks.store import StaleArtifactError


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("artifacts")
    config = runs.RunConfig(subset=400, max_epochs=4)
    runs.run_grid(config, degrees=(0.2, 0.6), seeds=(0, 1), artifacts_dir=artifacts, device="cpu", progress=False)
    runs.run(config.replace(max_epochs=0), artifacts_dir=artifacts, device="cpu", progress=False)  # untrained: left out
    return artifacts


def test_gather_reads_every_trained_run_and_its_best_layers(cache):
    found = report.trained_runs(cache)
    assert [(r.config.corruption_degree, r.config.seed) for r in found] == [(0.2, 0), (0.2, 1), (0.6, 0), (0.6, 1)]
    gathered = report.gather(found)
    network = gathered[gathered.measure == "model_test"].set_index(["corruption_degree", "seed"]).accuracy
    for r in found:
        assert network[r.config.corruption_degree, r.config.seed] == r.summary["test_accuracy"]
    masc = gathered[gathered.measure != "model_test"]
    assert set(masc.measure) == {"masc_corrupted", "masc_true"} and set(masc.selection) == {"test-selected", "validated"}
    # One layer per degree, measure and selection, shared by the seeds (chosen on their mean).
    assert (masc.groupby(["corruption_degree", "measure", "selection"]).layer.nunique() == 1).all()


def test_comparison_sets_the_paper_beside_the_mean_over_seeds():
    gathered = pd.DataFrame(
        {
            "model": "cnn", "dataset": "fashion_mnist", "corruption_degree": 0.2, "seed": [0, 1],
            "measure": "model_test", "selection": "final", "layer": "output", "accuracy": [0.80, 0.84],
        }
    )
    row = report.comparison(gathered).iloc[0]
    paper = report.paper_table().set_index(["model", "dataset", "corruption_degree"]).loc[("cnn", "fashion_mnist", 0.2), "model_test"]
    assert row["mean"] == pytest.approx(0.82) and row["std"] == pytest.approx(np.std([0.80, 0.84], ddof=1)) and row.seeds == 2
    assert row.paper == paper and row.difference == pytest.approx(0.82 - paper)
    digits = report.comparison(gathered.assign(dataset="digits", model="mlp")).iloc[0]
    assert np.isnan(digits.paper)  # the paper has no such row
    # The displayed difference is that of the displayed (rounded) numbers.
    shown = report.side_by_side(report.comparison(gathered.assign(accuracy=[0.80, 0.80]))).iloc[0]
    assert shown["ours (%)"] == "80.0 ± 0.0" and shown["difference (points)"] == round(80.0 - round(100 * paper, 1), 1)


def test_write_and_load_a_report(cache, tmp_path):
    found = report.trained_runs(cache)
    folder = report.write_report(tmp_path / "report", found, "python -m memnotebooks.report test", sweep={"name": "tiny"})
    table, provenance = report.load_report(folder)
    assert set(table.corruption_degree) == {0.2, 0.6}
    assert provenance["sweep"] == {"name": "tiny"} and len(provenance["runs"]) == 4
    assert all(run["device"] and run["torch"] and run["seconds"] > 0 for run in provenance["runs"])
    assert provenance["total_seconds"] == pytest.approx(sum(run["seconds"] for run in provenance["runs"]))
    assert not list(tmp_path.glob(".tmp-*"))

    record = json.loads((folder / "provenance.json").read_text())
    assert report.load_report(folder, sweep="tiny")[1] == record
    with pytest.raises(StaleArtifactError, match=r"comes from sweep 'tiny', not 'fashion_mnist_subset'"):
        report.load_report(folder, sweep="fashion_mnist_subset")
    # A report outlives the run cache's version (it records it), not a change of its own layout.
    (folder / "provenance.json").write_text(json.dumps({**record, "cache_version": -1}))
    assert report.load_report(folder)[1]["cache_version"] == -1
    (folder / "provenance.json").write_text(json.dumps({**record, "report_version": 0}))
    with pytest.raises(StaleArtifactError, match=r"written in report layout 0.*rerun its command \(python -m memnotebooks.report test\)"):
        report.load_report(folder)
    with pytest.raises(FileNotFoundError, match="No report in"):
        report.load_report(tmp_path / "nothing")


def test_side_by_side_and_provenance_tables(cache, tmp_path):
    found = report.trained_runs(cache)
    folder = report.write_report(tmp_path / "report", found, "python -m memnotebooks.report test")
    table, record = report.load_report(folder)
    pd.testing.assert_frame_equal(report.load_runs(folder), report.gather(found), check_dtype=False)
    for selection in ("test-selected", "validated"):
        shown = report.side_by_side(table, selection)
        # One row per degree and measure: the network's final accuracy and MASC's two.
        assert len(shown) == 2 * len(report.MEASURES)
        row = table[(table.measure == "masc_true") & (table.selection == selection) & (table.corruption_degree == 0.6)].iloc[0]
        # One model and dataset: those levels are left out.
        ours = shown.loc[(0.6, report.MEASURES["masc_true"]), "ours (%)"]
        assert ours == f"{round(100 * row['mean'], 1):.1f} ± {round(100 * row['std'], 1):.1f}"
    with pytest.raises(ValueError, match=r"selection must be one of \['test-selected', 'validated'\], got 'best'"):
        report.side_by_side(table, "best")
    runs_table = report.provenance_table(record).reset_index()
    assert len(runs_table) == 4 and list(runs_table.p) == [0.2, 0.2, 0.6, 0.6]
    assert runs_table.minutes.tolist() == [round(r.summary["seconds"] / 60, 1) for r in found]


def test_report_command_line(cache, tmp_path, capsys):
    (cache / "sweep.json").write_text(json.dumps({"sweep": {"name": "tiny"}, "invocations": [{"wall_seconds": 12.0}]}))
    try:
        report.main([str(cache), "--output", str(tmp_path / "out"), "--note", "2 kernels x 1 thread"])
    finally:
        (cache / "sweep.json").unlink()
    _, record = report.load_report(tmp_path / "out", sweep="tiny")
    assert record["note"] == "2 kernels x 1 thread" and record["invocations"] == [{"wall_seconds": 12.0}]
    assert record["command"] == f"python -m memnotebooks.report {cache} --output {tmp_path / 'out'} --note NOTE"
    assert "report: " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "empty")])


def test_several_reports_read_together(cache, tmp_path):
    found = report.trained_runs(cache)
    invocations = [{"command": "memnotebooks-sweep tiny.yaml", "wall_seconds": 1800.0, "commit": "abcdef1234567", "started": "2026-11-26T15:05:38"}]
    for name in ("first", "second"):
        report.write_report(tmp_path / name, found, f"python -m memnotebooks.report {name}", sweep={"name": name}, invocations=invocations)
    table, runs_table, records = report.load_reports({"first": tmp_path / "first", "second": tmp_path / "second"})
    assert set(table.sweep) == set(runs_table.sweep) == set(records) == {"first", "second"}
    assert len(table) == 2 * len(report.load_report(tmp_path / "first")[0])
    overview = report.provenance_overview(records)
    assert list(overview.columns) == ["first", "second"]
    assert overview.loc["sweep wall hours", "first"] == 0.5 and overview.loc["runs", "second"] == 4
    assert overview.loc["sweep commit(s)", "first"] == "abcdef1234"
    commands = report.provenance_commands(records)
    assert "# started 2026-11-26T15:05:38, 30 min:\nmemnotebooks-sweep tiny.yaml" in commands
    assert max(len(line) for line in commands.splitlines()) <= 78
    assert "# second" in commands and "python -m memnotebooks.report second" in commands
    layers = report.chosen_layers(runs_table[runs_table.sweep == "first"])
    assert layers.shape == (2, 4) and set(layers.stack(level=[0, 1]).unique()) <= {"input", *probe_layers(found[0].model)}
    with pytest.raises(StaleArtifactError, match="comes from sweep 'first', not 'second'"):
        report.load_reports({"second": tmp_path / "first"})
    with pytest.raises(ValueError, match="reports is empty"):
        report.load_reports({})
