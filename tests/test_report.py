"""Reports: a cache's runs gathered, set beside the paper's table, written with their provenance."""

import json

import numpy as np
import pandas as pd
import pytest

from memnotebooks import paper, report, runs
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
    published = paper.paper_table().set_index(["model", "dataset", "corruption_degree"]).loc[("cnn", "fashion_mnist", 0.2), "model_test"]
    assert row["mean"] == pytest.approx(0.82) and row["std"] == pytest.approx(np.std([0.80, 0.84], ddof=1)) and row.seeds == 2
    assert row.paper == published and row.difference == pytest.approx(0.82 - published)
    digits = report.comparison(gathered.assign(dataset="digits", model="mlp")).iloc[0]
    assert np.isnan(digits.paper)  # the paper has no such row
    # The displayed difference is that of the displayed (rounded) numbers.
    shown = report.side_by_side(report.comparison(gathered.assign(accuracy=[0.80, 0.80]))).iloc[0]
    assert shown["ours (%)"] == "80.0 ± 0.0" and shown["difference (points)"] == round(80.0 - round(100 * published, 1), 1)


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
        assert len(shown) == 2 * len(paper.MEASURES)
        row = table[(table.measure == "masc_true") & (table.selection == selection) & (table.corruption_degree == 0.6)].iloc[0]
        # One model and dataset: those levels are left out.
        ours = shown.loc[(0.6, paper.MEASURES["masc_true"]), "ours (%)"]
        assert ours == f"{round(100 * row['mean'], 1):.1f} ± {round(100 * row['std'], 1):.1f}"
    with pytest.raises(ValueError, match=r"selection must be one of \['test-selected', 'validated'\], got 'best'"):
        report.side_by_side(table, "best")
    runs_table = report.provenance_table(record).reset_index()
    assert len(runs_table) == 4 and list(runs_table.p) == [0.2, 0.2, 0.6, 0.6]
    assert runs_table.minutes.tolist() == [round(r.summary["seconds"] / 60, 1) for r in found]
    # Several reports: a table each, in order, named by its sweep.
    both = report.provenance_tables({"a": record, "b": {**record, "runs": record["runs"][:1]}})
    assert [t.columns.name for t in both] == ["a", "b"] and [len(t) for t in both] == [4, 1]
    pd.testing.assert_frame_equal(both[0].rename_axis(columns=None), report.provenance_table(record))
    # Where each run trained, as its summary records it.
    where = report.environment_table(found)
    assert list(where.corruption_degree) == [r.config.corruption_degree for r in found] and list(where.seed) == [r.config.seed for r in found]
    assert where.device.str.startswith("CPU: ").all() and (where.torch == __import__("torch").__version__).all()


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


def _comparison_rows(rows):
    """A comparison table (report.comparison's columns) from (p, measure, selection, mean, std, seeds, paper)."""
    table = pd.DataFrame(rows, columns=["corruption_degree", "measure", "selection", "mean", "std", "seeds", "paper"])
    return table.assign(model="cnn", dataset="fashion_mnist", difference=table["mean"] - table.paper)


def test_agreement_with_the_paper_is_judged_on_the_numbers_shown_and_the_seeds_spread():
    table = _comparison_rows(
        [
            (0.2, "model_test", "final", 0.8049, np.nan, 1, 0.7750),  # 80.5 − 77.5 = 3.0 shown: within, not beyond
            (0.4, "model_test", "final", 0.6500, np.nan, 1, 0.6100),  # +4.0: above
            (0.6, "model_test", "final", 0.4000, np.nan, 1, 0.4500),  # −5.0: below
            (0.8, "model_test", "final", 0.3000, 0.05, 3, 0.2500),  # +5.0, but 3 seeds spread by 5 points: within
            (0.2, "masc_corrupted", "test-selected", 0.84, np.nan, 1, 0.83),
            (0.2, "masc_corrupted", "validated", 0.90, np.nan, 1, 0.83),
        ]
    )
    rows = report.paper_agreement(table, "test-selected", tolerance=3.0)
    network = rows[rows.measure == "model_test"].set_index("corruption_degree")
    assert network.points.tolist() == [3.0, 4.0, -5.0, 5.0] and network.sign.tolist() == [0, 1, -1, 0]
    assert network.margin[0.8] == pytest.approx(1.96 * 5.0 * np.sqrt(1 / 3 + 1 / paper.PAPER_SEEDS)) and network.margin[0.2] == 3.0
    assert report.agreement_words(network.reset_index(), 3.0) == (
        "within 3 points (or the seeds' spread, where wider) of the paper's at 2 of 4 degrees (+3.0 to +5.0 points); "
        "4.0 points above it at $p = 0.4$ and 5.0 points below it at $p = 0.6$"
    )
    assert report.agreement_counts(table, "test-selected", 3.0) == (3, 5) and report.agreement_counts(table, "validated", 3.0) == (2, 5)
    # A wider tolerance takes them all in; the list names each measure once.
    assert report.agreement_counts(table, "test-selected", 6.0) == (5, 5)
    listing = report.agreement_list(table, "test-selected", 3.0).splitlines()
    assert listing[0].startswith("- **The network itself** is within 3 points") and listing[1].startswith("- **MASC with corrupted-label subspaces** is within 3 points")
    assert report.tolerance_crossings(table, 3.0).endswith(
        "it moves one across: MASC with corrupted-label subspaces at $p = 0.2$, 90.0 against the paper's 83.0\u00a0% (+7.0 points)."
    )
    assert report.largest_miss(table).corruption_degree == 0.2 and report.largest_miss(table, "validated").points == 7.0
    with pytest.raises(ValueError, match="selection must be one of"):
        report.paper_agreement(table, "final")


def test_masc_over_the_network_pairs_seeds_and_widens_the_margin_by_their_spread():
    def runs_rows(p, network, masc):
        return [
            {"model": "cnn", "dataset": "fashion_mnist", "corruption_degree": p, "seed": s, "measure": m, "selection": sel, "layer": "fc1", "accuracy": a}
            for s, (n, k) in enumerate(zip(network, masc))
            for m, sel, a in (("model_test", "final", n), ("masc_corrupted", "test-selected", k))
        ]

    # p = 0.2: +10 and +20 points (mean 15, SE 5, margin 9.8): above. p = 0.8: +2 and +4: within 3 points.
    runs_table = pd.DataFrame(runs_rows(0.2, [0.70, 0.60], [0.80, 0.80]) + runs_rows(0.8, [0.20, 0.20], [0.22, 0.24]))
    over = report.masc_over_network(runs_table).set_index("corruption_degree")
    assert over.points.tolist() == pytest.approx([15.0, 3.0]) and over.sign.tolist() == [1, 0]
    assert over.margin[0.2] == pytest.approx(1.96 * np.std([10, 20], ddof=1) / np.sqrt(2)) and over.margin[0.8] == 3.0
    assert report.margin_words(over.reset_index(), "the network") == (
        "more than 3 points (or the seeds' spread, where wider) above the network at 1 of 2 degrees (+15.0 points at $p = 0.2$); "
        "within 3 points of the network at 1 of 2 degrees (+3.0 points at $p = 0.8$)"
    )
    with pytest.raises(ValueError, match="No 'masc_true' rows"):
        report.masc_over_network(runs_table, measure="masc_true")


def test_the_two_selections_are_compared_layer_by_layer():
    keys = {"model": "cnn", "dataset": "fashion_mnist", "seed": 0}
    layers = {(0.2, "masc_corrupted"): ("fc3", "fc3"), (0.8, "masc_corrupted"): ("flatten", "flatten"), (0.2, "masc_true"): ("fc3", "fc2"), (0.8, "masc_true"): ("fc1", "fc1")}
    runs_table = pd.DataFrame(
        [{**keys, "corruption_degree": p, "measure": m, "selection": sel, "layer": layer, "accuracy": 0.8} for (p, m), pair in layers.items() for sel, layer in zip(("test-selected", "validated"), pair)]
    )
    means = _comparison_rows([(p, m, sel, 0.80 + 0.002 * (sel == "validated"), np.nan, 1, 0.8) for (p, m) in layers for sel in ("test-selected", "validated")])
    same = report.selection_agreement(runs_table, means)
    assert same.same.tolist() == [True, False, True, True]  # by degree, then measure
    assert same["shift"].tolist() == pytest.approx([0.2] * 4)
    words = report.selection_words(same)
    assert words.startswith("The two ways chose the same layer in 3 of 4 cases: with corrupted-label subspaces at both degrees and with true-label subspaces at 1 of 2 degrees.")
    assert "there the comparison measures that scoring, not the choice of layer" in words
    assert "both ways read `fc3` at $p = 0.2$ and `flatten` at $p = 0.8$" in words
    assert "the choices differ at $p = 0.2$: the test set chose `fc3` at $p = 0.2$, the validation part `fc2` at $p = 0.2$" in words
    assert words.endswith("within 0.2 points of the test-selected one, and 4 of the 4 are higher: the holdout part alone can score a layer higher than the whole test set does.")


def test_devices_and_provenance_in_words():
    assert report.device_label("CPU: AMD EPYC, 1 thread(s)") == "CPU: AMD EPYC, 1 thread"
    assert report.device_label("CPU: AMD EPYC, 4 thread(s)") == "CPU: AMD EPYC, 4 threads"
    assert report.device_label("cpu") == "CPU, model and threads not recorded" and report.device_label("NVIDIA H200") == "NVIDIA H200"
    run = {"model": "cnn", "dataset": "fashion_mnist", "seed": 0, "torch": "2", "reached_target": True}
    record = {
        "runs": [
            {**run, "corruption_degree": 0.2, "device": "CPU: AMD EPYC, 1 thread(s)", "epochs": 172, "seconds": 1590.0},
            {**run, "corruption_degree": 0.8, "device": "cpu", "epochs": 184, "seconds": 1890.0, "reached_target": False},
        ],
        "total_seconds": 3480.0,
        "invocations": [{"wall_seconds": 1890.0}],
        "note": "why",
        "sweep": {"parameters": {"subset": 10000}},
    }
    assert report.provenance_table(record).device.tolist() == ["CPU: AMD EPYC, 1 thread", "CPU, model and threads not recorded"]
    assert report.provenance_overview({"s": record}).loc["devices", "s"] == "CPU, model and threads not recorded; CPU: AMD EPYC, 1 thread"
    assert report.provenance_summary(record) == (
        "1 of 2 runs reached the training target, in 172 to 184 epochs and 26.5 to 31.5 minutes each, on CPU: AMD EPYC, 1 thread (1 run) "
        "and CPU, model and threads not recorded (1 run): 0.97 hours of training, 0.53 hours of wall time for the sweep. "
        "Of them, 1 records the device only as `cpu`, without the CPU's model and thread count; the note printed above says why."
    )
    table = _comparison_rows([(0.2, "model_test", "final", 0.75, np.nan, 1, 0.78), (0.8, "model_test", "final", 0.26, np.nan, 1, 0.26)])
    assert report.describe_sweep("s", record, table) == (
        "`s`: `cnn` on `fashion_mnist`, trained on a stratified 10,000-image subset of the training set, at $p$ = $0.2$ and $0.8$, with one seed (0) where the paper averages 3."
    )
    # The network's fall with p beside the fall of the share of right labels, 1 − p (C − 1) / C.
    assert report.correct_label_share(0.2, "fashion_mnist") == pytest.approx(0.82) and report.correct_label_share(0.5, "cifar100") == pytest.approx(0.505)
    fall = report.network_follows_degree(table).iloc[0]
    assert fall["labels"] == pytest.approx(54.0) and fall.ours == pytest.approx(49.0) and fall.paper == pytest.approx(52.0)


def test_editing_report_round_trip(memorized, tmp_path, capsys):
    from memnotebooks import editing

    folder = report.write_editing_report(tmp_path / "edits", [memorized], "a command", readouts=["velpic", "dfr"], note="one run")
    table, agreement, record = report.load_editing_report(folder)
    expected = editing.editing_grid([memorized], readouts=["velpic", "dfr"])
    pd.testing.assert_frame_equal(table[expected.columns].reset_index(drop=True), expected, check_dtype=False)
    assert agreement.readout.tolist() == ["velpic", "dfr"] and (agreement.same == 1).all()
    assert record["command"] == "a command" and record["readouts"] == ["velpic", "dfr"] and record["note"] == "one run" and record["editing_seconds"] >= 0
    assert [r["key"] for r in record["runs"]] == [memorized.path.name]
    # The editing table reads back ready for the comparisons (hits of the DFR rows not scored on validation stay empty).
    assert editing.edit_differences(table).readout.tolist() == ["velpic", "dfr"]
    with pytest.raises(FileNotFoundError, match="No editing report"):
        report.load_editing_report(tmp_path / "none")
    report.main([str(memorized.path.parent), "--editing", "velpic", "--output", str(tmp_path / "cli")])
    assert "editing report: " in capsys.readouterr().out and report.load_editing_report(tmp_path / "cli")[2]["readouts"] == ["velpic"]
    with pytest.raises(SystemExit):
        report.main([str(memorized.path.parent), "--editing", "masc"])
