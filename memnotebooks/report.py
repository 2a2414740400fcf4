"""Results beside the paper's: the reference table of Ketha & Ramaswamy (2025), and reports of
what a sweep's runs measured against it.

``python -m memnotebooks.report runs/<sweep>`` reads every trained run a sweep cached, computes
(or reads) MASC's layerwise accuracies, and writes ``comparison.csv`` (per model, dataset, degree
and measure: mean ± std over seeds, the paper's number and the difference), ``runs.csv`` (per
run) and ``provenance.json`` (device, torch version, commit, command, wall time per run).

The paper's table ships with the package (``memnotebooks/reference/paper_table.csv``, read with
:mod:`importlib.resources`): per model, dataset and corruption degree, the network's test
accuracy and MASC's at the best layer (chosen on the test set) with corrupted and with true
subspaces, each the mean of 3 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pandas as pd

from .evaluation import best_layer_scores, layerwise_evaluation
from .runs import Run, RunConfig, config_columns, run
from .store import CACHE_VERSION, StaleArtifactError, atomic_write, git_commit

__all__ = [
    "MEASURES",
    "PAPER_NAMES",
    "REPORT_VERSION",
    "comparison",
    "gather",
    "chosen_layers",
    "load_report",
    "load_reports",
    "load_runs",
    "main",
    "paper_table",
    "provenance",
    "provenance_commands",
    "provenance_overview",
    "provenance_table",
    "side_by_side",
    "trained_runs",
    "write_report",
]

PAPER_NAMES = {
    "model": {"mlp": "MLP", "cnn": "CNN", "alexnet": "AlexNet", "resnet18": "ResNet18"},
    "dataset": {
        "mnist": "MNIST",
        "fashion_mnist": "FashionMNIST",
        "cifar10": "CIFAR10",
        "cifar100": "CIFAR100",
        "tiny_imagenet": "TinyImageNet",
    },
}
"""This package's model and dataset names, and the paper's."""


def paper_table() -> pd.DataFrame:
    """The paper's table with this package's model and dataset names.

    Returns
    -------
    DataFrame
        Columns ``model``, ``dataset``, ``corruption_degree``, ``model_test``,
        ``masc_corrupted``, ``masc_true`` (accuracies in [0, 1]).
    """
    with resources.files("memnotebooks").joinpath("reference/paper_table.csv").open() as file:
        table = pd.read_csv(file, comment="#")
    for column, names in PAPER_NAMES.items():
        table[column] = table[column].map({paper: ours for ours, paper in names.items()})
    return table


MEASURES = {"model_test": "network, final", "masc_corrupted": "MASC, corrupted", "masc_true": "MASC, true"}
"""The paper's columns and what they measure."""

REPORT_VERSION = 1
"""Version of a report folder's layout (its files and their columns), recorded in its
``provenance.json``. A report is a record of what was run, so it does not go stale when the run
cache's version changes (it keeps the commit and cache version that produced it); it is rejected
only when this code cannot read it."""


def trained_runs(artifacts_dir: str | os.PathLike, device: str = "cpu", data_root=None) -> list[Run]:
    """Every finished, trained run in a cache (its ``config.json`` and ``summary.json``), read back
    with :func:`memnotebooks.runs.run` (so its labels are checked), in a fixed order."""
    configs = []
    for path in sorted(Path(artifacts_dir).glob("*/summary.json")):
        config = RunConfig(**json.loads((path.parent / "config.json").read_text()))
        if config.max_epochs > 0 and config.corruption_mode == "uniform":
            configs.append(config)
    configs.sort(key=lambda c: (c.model, c.dataset, c.corruption_degree, c.seed))
    return [run(c, artifacts_dir=artifacts_dir, data_root=data_root, device=device, progress=False) for c in configs]


def gather(runs_, variance_threshold: float = 0.99) -> pd.DataFrame:
    """The paper's three measures for each run, tidy.

    ``model_test`` is the network's final test accuracy; ``masc_corrupted`` and ``masc_true`` are
    MASC at the best probe layer (all of them, the input included, as the paper), chosen on the
    test set as the paper does (``selection = "test-selected"``) and on the validation part,
    scored on the holdout (``"validated"``); see :func:`memnotebooks.evaluation.best_layer_scores`.
    MASC tables come from the run's cache where a chapter computed them.

    Returns
    -------
    DataFrame
        Columns ``model``, ``dataset``, ``corruption_degree``, ``seed``, ``measure``,
        ``selection``, ``layer``, ``accuracy``.
    """
    keys = ["model", "dataset", "corruption_degree", "seed"]
    network = pd.DataFrame(
        [{**config_columns(r), "measure": "model_test", "selection": "final", "layer": "output", "accuracy": r.summary["test_accuracy"]} for r in runs_]
    )
    decoding = pd.concat([layerwise_evaluation(r, variance_threshold=variance_threshold) for r in runs_], ignore_index=True)
    masc = best_layer_scores(decoding).assign(measure=lambda t: "masc_" + t.fit_labels)
    columns = keys + ["measure", "selection", "layer", "accuracy"]
    return pd.concat([network[columns], masc[columns]], ignore_index=True)


def comparison(gathered: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of :func:`gather`'s measures beside the paper's number.

    Returns
    -------
    DataFrame
        Columns ``model``, ``dataset``, ``corruption_degree``, ``measure``, ``selection``,
        ``mean``, ``std``, ``seeds``, ``paper`` (NaN where the paper has no such row) and
        ``difference`` (ours minus the paper's).
    """
    keys = ["model", "dataset", "corruption_degree", "measure", "selection"]
    stats = gathered.groupby(keys, as_index=False)["accuracy"].agg(mean="mean", std="std", seeds="count")
    paper = paper_table().melt(["model", "dataset", "corruption_degree"], list(MEASURES), var_name="measure", value_name="paper")
    table = stats.merge(paper, on=["model", "dataset", "corruption_degree", "measure"], how="left")
    return table.assign(difference=table["mean"] - table["paper"])


def provenance(runs_, command: str, **extra) -> dict:
    """What produced the runs: per run its configuration key, device, torch version, epochs, wall
    time and stack, if stacked (from its ``summary.json``); their training time
    (:func:`training_seconds`); the git commit of the code, the command, the cache version and
    ``extra``."""
    return {
        "command": command,
        "commit": git_commit(),
        "report_version": REPORT_VERSION,
        "cache_version": CACHE_VERSION,
        **extra,
        "runs": [
            {"key": r.path.name, **config_columns(r), **{k: r.summary.get(k) for k in ("device", "torch", "epochs", "reached_target", "seconds", "stack")}}
            for r in runs_
        ],
        "total_seconds": training_seconds(runs_),
    }


def training_seconds(runs_) -> float:
    """The wall time spent training ``runs_``: the sum over runs trained alone, plus, per stack
    (:mod:`memnotebooks.stacked`), the time of its last run to stop, as its runs shared it."""
    alone, stacks = 0.0, {}
    for r in runs_:
        seconds, stack = float(r.summary.get("seconds", 0.0)), r.summary.get("stack")
        if stack is None:
            alone += seconds
        else:
            stacks[stack] = max(stacks.get(stack, 0.0), seconds)
    return alone + sum(stacks.values())


def write_report(folder: str | os.PathLike, runs_, command: str, **extra) -> Path:
    """Write ``comparison.csv``, ``runs.csv`` (:func:`gather`) and ``provenance.json`` into
    ``folder``, all at once (:func:`memnotebooks.store.atomic_write`)."""
    gathered = gather(runs_)
    table = comparison(gathered)
    record = provenance(runs_, command, **extra)

    def write(tmp: Path) -> None:
        tmp.mkdir()
        table.to_csv(tmp / "comparison.csv", index=False)
        gathered.to_csv(tmp / "runs.csv", index=False)
        (tmp / "provenance.json").write_text(json.dumps(record, indent=2))

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)  # a report is rewritten whole
    return atomic_write(folder, write)


def load_report(folder: str | os.PathLike, sweep: str | None = None) -> tuple[pd.DataFrame, dict]:
    """A report folder's comparison table and provenance.

    Parameters
    ----------
    folder : path
        Written by :func:`write_report`.
    sweep : str, optional
        The sweep the report must come from (its ``sweep.json`` name, recorded in the provenance).

    Raises
    ------
    StaleArtifactError
        If it was written in another report layout (by older code), or by another sweep.
    FileNotFoundError
        If ``folder`` holds no report.
    """
    folder = Path(folder)
    if not (folder / "provenance.json").is_file():
        raise FileNotFoundError(f"No report in {folder} (comparison.csv and provenance.json): write one with python -m memnotebooks.report.")
    record = json.loads((folder / "provenance.json").read_text())
    if record.get("report_version") != REPORT_VERSION:
        raise StaleArtifactError(
            f"The report in {folder} was written in report layout {record.get('report_version')}, this code reads layout "
            f"{REPORT_VERSION}: rerun its command ({record.get('command')})."
        )
    written_by = record.get("sweep", {}).get("name")
    if sweep is not None and written_by != sweep:
        raise StaleArtifactError(f"The report in {folder} comes from sweep {written_by!r}, not {sweep!r}: its command was {record.get('command')}.")
    return pd.read_csv(folder / "comparison.csv"), record


def load_runs(folder: str | os.PathLike, sweep: str | None = None) -> pd.DataFrame:
    """A report folder's per-run table (:func:`gather`'s: each run's measures and the layers
    chosen), checked as :func:`load_report` checks the folder."""
    load_report(folder, sweep)
    return pd.read_csv(Path(folder) / "runs.csv")


def load_reports(reports: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Several report folders at once, each checked against the sweep it must come from.

    Parameters
    ----------
    reports : dict of str to path
        Sweep name (``None`` for any) to report folder.

    Returns
    -------
    comparison : DataFrame
        The folders' :func:`comparison` tables, stacked, with a ``sweep`` column.
    runs : DataFrame
        Their per-run tables (:func:`load_runs`), stacked, with a ``sweep`` column.
    records : dict
        Sweep name to provenance record.
    """
    if not reports:
        raise ValueError("reports is empty: give at least one sweep name and report folder, e.g. {'fashion_mnist_subset': '../results/fashion_mnist_subset'}.")
    tables, runs_, records = [], [], {}
    for sweep, folder in reports.items():
        table, record = load_report(folder, sweep)
        name = sweep or record.get("sweep", {}).get("name") or str(folder)
        tables.append(table.assign(sweep=name))
        runs_.append(pd.read_csv(Path(folder) / "runs.csv").assign(sweep=name))
        records[name] = record
    return pd.concat(tables, ignore_index=True), pd.concat(runs_, ignore_index=True), records


def chosen_layers(runs_table: pd.DataFrame) -> pd.DataFrame:
    """The layer MASC read at each degree, per fitting labels and selection (the seeds of a
    degree share it: it is chosen on their mean), from :func:`load_runs`'s table."""
    masc = runs_table[runs_table.measure.isin(["masc_corrupted", "masc_true"])].assign(measure=lambda t: t.measure.map(MEASURES))
    layers = masc.pivot_table(index=["model", "dataset", "corruption_degree"], columns=["measure", "selection"], values="layer", aggfunc="first")
    return layers.rename_axis(index={"corruption_degree": "p"})


def provenance_overview(records: dict) -> pd.DataFrame:
    """One column per report: its runs, device(s), torch version(s), the training time
    (:func:`training_seconds`), the sweep's wall time, and the commits the sweep started from and
    the report was written at (:func:`provenance_commands` gives the commands themselves)."""
    rows = []
    for sweep, record in records.items():
        invocations = record.get("invocations", [])
        rows.append(
            {
                "sweep": sweep,
                "runs": len(record["runs"]),
                "devices": "; ".join(sorted({str(r["device"]) for r in record["runs"]})),
                "torch": "; ".join(sorted({str(r["torch"]) for r in record["runs"]})),
                "training hours": round(record["total_seconds"] / 3600, 2),
                "sweep wall hours": round(sum(i.get("wall_seconds", 0.0) for i in invocations) / 3600, 2) if invocations else None,
                "sweep commit(s)": ", ".join(sorted({(i.get("commit") or "unknown")[:10] for i in invocations})) or "unknown",
                "report commit": (record.get("commit") or "unknown")[:10],
            }
        )
    return pd.DataFrame(rows).set_index("sweep").T


def provenance_commands(records: dict, width: int = 78) -> str:
    """The commands behind each report, as typed (each sweep invocation with its start and wall
    time, then the report's), and the note recorded with it, as text of lines at most ``width``
    long (commands wrapped with shell line continuations)."""

    def command(text: str) -> str:
        lines = textwrap.wrap(text, width - 2, break_long_words=False, break_on_hyphens=False, subsequent_indent="    ")
        return " \\\n".join(lines)

    blocks = []
    for sweep, record in records.items():
        lines = [f"# {sweep}"]
        for invocation in record.get("invocations", []):
            lines.append(f"# started {invocation.get('started', '?')}, {invocation.get('wall_seconds', float('nan')) / 60:.0f} min:")
            lines.append(command(invocation["command"]))
        lines += ["# then:", command(record["command"])]
        if record.get("note"):
            lines.append(textwrap.fill(f"# note: {record['note']}", width=width, subsequent_indent="#   "))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def side_by_side(table: pd.DataFrame, selection: str = "test-selected") -> pd.DataFrame:
    """:func:`comparison`'s rows as a display table: one row per model, dataset, degree and measure,
    with ours as mean ± std, the paper's number and the difference in percentage points.

    Both numbers are rounded to 0.1 points before they are subtracted, so the difference is that
    of the numbers shown. Index levels and columns that hold one value only (one model, one
    dataset, one seed count) are left out; say what they are around the table.

    Parameters
    ----------
    table : DataFrame
        :func:`comparison`'s (or :func:`load_report`'s) table.
    selection : {"test-selected", "validated"}
        How MASC's best layer was chosen; the network's own accuracy has one row either way.
    """
    selections = {"test-selected", "validated"}
    if selection not in selections:
        raise ValueError(f"selection must be one of {sorted(selections)}, got {selection!r}.")
    rows = table[table.selection.isin(["final", selection])].copy()
    ours, paper = (100 * rows["mean"]).round(1), (100 * rows.paper).round(1)
    spread = (" ± " + (100 * rows["std"]).round(1).map("{:.1f}".format)).where(rows.seeds > 1, "")
    shown = pd.DataFrame(
        {
            "model": rows.model,
            "dataset": rows.dataset,
            "p": rows.corruption_degree,
            "measure": pd.Categorical(rows.measure.map(MEASURES), list(MEASURES.values())),
            "ours (%)": ours.map("{:.1f}".format) + spread,
            "seeds": rows.seeds,
            "paper (%)": paper,
            "difference (points)": (ours - paper).round(1),
        }
    )
    shown = _without_constant(shown, ["model", "dataset", "seeds"])
    keys = [key for key in ("model", "dataset") if key in shown] + ["p", "measure"]
    return shown.sort_values(keys).set_index(keys)


def _without_constant(table: pd.DataFrame, columns) -> pd.DataFrame:
    """``table`` without those of ``columns`` that hold a single value (for display)."""
    return table.drop(columns=[column for column in columns if table[column].nunique() == 1])


def provenance_table(record: dict) -> pd.DataFrame:
    """One row per run of a report's provenance: what it ran on, how many epochs and minutes it
    trained, and whether it reached its training-accuracy target (see :func:`provenance_overview`
    for the commands, commit and torch version). The model and dataset are index levels only
    where the report holds several."""
    runs_ = pd.DataFrame(record["runs"])
    runs_["minutes"] = (runs_.pop("seconds") / 60).round(1)
    columns = ["model", "dataset", "corruption_degree", "seed", "device", "epochs", "reached_target", "minutes"]
    shown = _without_constant(runs_[columns], ["model", "dataset"]).rename(columns={"corruption_degree": "p", "reached_target": "reached target"})
    return shown.set_index([key for key in ("model", "dataset") if key in shown] + ["p", "seed"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memnotebooks.report", description="Compare a sweep's runs with the paper's table.")
    parser.add_argument("sweep_dir", help="a sweep's folder, runs/<sweep> (its runs are in artifacts/), or any run cache")
    parser.add_argument("--output", default=None, help="report folder (default <sweep_dir>/report)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default $MEMNOTEBOOKS_DATA)")
    parser.add_argument("--device", default="cpu", help="where the runs' activations and MASC are computed (default cpu)")
    parser.add_argument("--note", default=None, help="free text kept in provenance.json (e.g. how the runs were launched)")
    args = parser.parse_args(argv)
    sweep_dir = Path(args.sweep_dir)
    artifacts = sweep_dir / "artifacts" if (sweep_dir / "artifacts").is_dir() else sweep_dir
    runs_ = trained_runs(artifacts, device=args.device, data_root=args.data_root)
    if not runs_:
        parser.error(f"no finished trained runs under {artifacts}")
    sweep_file = sweep_dir / "sweep.json"
    extra = json.loads(sweep_file.read_text()) if sweep_file.is_file() else {}  # the sweep and its invocations
    if args.note:
        extra["note"] = args.note
    typed = list(sys.argv[1:] if argv is None else argv)
    if args.note:  # its text is kept as the note, not twice
        note_at = next(i for i, word in enumerate(typed) if word == "--note" or word.startswith("--note="))
        typed[note_at : note_at + (1 if "=" in typed[note_at] else 2)] = ["--note", "NOTE"]
    command = "python -m memnotebooks.report " + shlex.join(typed)
    folder = write_report(args.output or sweep_dir / "report", runs_, command, **extra)
    print(load_report(folder)[0].to_string(index=False))
    print(f"report: {folder}")


if __name__ == "__main__":
    main()
