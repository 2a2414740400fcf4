"""Results beside the paper's: the reference table of Ketha & Ramaswamy (2025), and reports of
what a sweep's runs measured against it.

``python -m memnotebooks.report runs/<sweep>`` reads every trained run a sweep cached, computes
(or reads) MASC's layerwise accuracies, and writes ``comparison.csv`` (per model, dataset, degree
and measure: mean ± std over seeds, the paper's number and the difference), ``runs.csv`` (per
run) and ``provenance.json`` (device, torch version, commit, command, wall time per run).

The paper's table itself is :func:`memnotebooks.paper.paper_table`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import prose
from .decoding import best_layer_scores, layerwise_evaluation
from .editing import READOUTS, edit_agreement, editing_grid
from .paper import MEASURES, PAPER_SEEDS, paper_table
from .runs import Run, RunConfig, check_one_setting, config_columns, run
from .store import CACHE_VERSION, StaleArtifactError, atomic_write, git_commit

__all__ = [
    "MEASURE_WORDS",
    "N_CLASSES",
    "REPORT_VERSION",
    "TOLERANCE",
    "agreement_counts",
    "agreement_list",
    "agreement_words",
    "comparison",
    "correct_label_share",
    "describe_sweep",
    "device_label",
    "environment_table",
    "gather",
    "chosen_layers",
    "largest_miss",
    "margin_words",
    "masc_over_network",
    "network_follows_degree",
    "paper_agreement",
    "provenance_summary",
    "selection_agreement",
    "selection_words",
    "tolerance_crossings",
    "load_editing_report",
    "load_report",
    "load_reports",
    "load_runs",
    "main",
    "provenance",
    "provenance_commands",
    "provenance_overview",
    "provenance_table",
    "provenance_tables",
    "side_by_side",
    "trained_runs",
    "write_editing_report",
    "write_report",
]

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
    scored on the holdout (``"validated"``); see :func:`memnotebooks.decoding.best_layer_scores`.
    MASC tables come from the run's cache where a chapter computed them.

    Returns
    -------
    DataFrame
        Columns ``model``, ``dataset``, ``corruption_degree``, ``seed``, ``measure``,
        ``selection``, ``layer``, ``accuracy``.
    """
    check_one_setting(runs_)  # the paper's table has one row per model, dataset and degree
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


def environment_table(runs_) -> pd.DataFrame:
    """Where each run trained: one row per run, its configuration columns, ``device`` (as its
    ``summary.json`` records it; :func:`device_label` puts it in one form) and ``torch`` (the
    PyTorch version)."""
    return pd.DataFrame([{**config_columns(r), "device": r.summary.get("device"), "torch": r.summary.get("torch")} for r in runs_])


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


def write_editing_report(folder: str | os.PathLike, runs_, command: str, readouts=tuple(READOUTS), **extra) -> Path:
    """Write the weight edits of ``runs_`` into ``folder``, all at once: ``editing.csv``
    (:func:`memnotebooks.editing.editing_grid`: every checkpoint and final network edited with
    each readout, scored on the test set's validation and holdout parts, with each image's hit),
    ``agreement.csv`` (:func:`memnotebooks.editing.edit_agreement` of each run's final network)
    and ``provenance.json`` (:func:`provenance`, with the editing code's wall time)."""
    start = time.perf_counter()
    table = editing_grid(runs_, readouts=tuple(readouts))
    agreement = pd.concat([edit_agreement(r, readouts=tuple(readouts)) for r in runs_], ignore_index=True)
    record = provenance(runs_, command, readouts=list(readouts), editing_seconds=round(time.perf_counter() - start, 1), **extra)

    def write(tmp: Path) -> None:
        tmp.mkdir()
        table.to_csv(tmp / "editing.csv", index=False)
        agreement.to_csv(tmp / "agreement.csv", index=False)
        (tmp / "provenance.json").write_text(json.dumps(record, indent=2))

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)  # rewritten whole
    return atomic_write(folder, write)


def load_editing_report(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A folder written by :func:`write_editing_report`: the editing table, the agreement table
    and the provenance (the same checks of layout as :func:`load_report`)."""
    folder = Path(folder)
    if not (folder / "editing.csv").is_file() or not (folder / "provenance.json").is_file():
        raise FileNotFoundError(f"No editing report in {folder} (editing.csv and provenance.json): write one with python -m memnotebooks.report CACHE --editing ...")
    record = json.loads((folder / "provenance.json").read_text())
    if record.get("report_version") != REPORT_VERSION:
        raise StaleArtifactError(f"The editing report in {folder} was written in report layout {record.get('report_version')}, this code reads layout {REPORT_VERSION}: rerun its command ({record.get('command')}).")
    table = pd.read_csv(folder / "editing.csv", keep_default_na=False, na_values=[""])
    table[["hits", "layer"]] = table[["hits", "layer"]].fillna("")  # empty cells (not scored; no layer: unedited) read back as NaN
    return table, pd.read_csv(folder / "agreement.csv"), record


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
                "devices": "; ".join(sorted({device_label(r["device"]) for r in record["runs"]})),
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
    runs_["device"] = runs_.device.map(device_label)
    columns = ["model", "dataset", "corruption_degree", "seed", "device", "epochs", "reached_target", "minutes"]
    shown = _without_constant(runs_[columns], ["model", "dataset"]).rename(columns={"corruption_degree": "p", "reached_target": "reached target"})
    return shown.set_index([key for key in ("model", "dataset") if key in shown] + ["p", "seed"])


def provenance_tables(records: dict) -> list[pd.DataFrame]:
    """:func:`provenance_table` of each report (``records``: sweep name to its provenance, as
    :func:`load_reports` returns them), in order, each named by its sweep (the columns' name, shown
    at the table's top left)."""
    return [provenance_table(record).rename_axis(columns=sweep) for sweep, record in records.items()]


TOLERANCE = 3.0
"""How far, in percentage points, one of our numbers may lie from the paper's and still count
as reproducing it (:func:`paper_agreement`). A convention, not a test: the paper gives means
without spreads. On a 10,000-image test set an accuracy's 95 % sampling half-width is at most
:math:`1.96 \\sqrt{0.25 / 10\\,000}`, about 1 point, so the tolerance is wider than test-set
sampling alone; it leaves room for seeds, a smaller training set and other code."""

N_CLASSES = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "tiny_imagenet": 200}
"""Classes per dataset (the ``C`` of :func:`correct_label_share`)."""


def _shown_points(values) -> pd.Series:
    """Accuracies in points, rounded to 0.1 as :func:`side_by_side` shows them."""
    return (100 * values).round(1)


def _margins(points, std_points, seeds, tolerance: float, other_seeds) -> tuple[np.ndarray, np.ndarray]:
    """The margin of each difference (the tolerance, or 1.96 standard errors of the difference
    from the seeds' spread where that is wider; NaN spread, from one seed, adds nothing) and its
    sign (+1 above the margin, −1 below it, 0 within)."""
    spread = 1.96 * np.asarray(std_points, dtype=float) * np.sqrt(1 / np.asarray(seeds, dtype=float) + 1 / np.asarray(other_seeds, dtype=float))
    margin = np.fmax(float(tolerance), np.nan_to_num(spread, nan=0.0))
    points = np.asarray(points, dtype=float)
    return margin, np.where(points > margin, 1, np.where(points < -margin, -1, 0))


def paper_agreement(table: pd.DataFrame, selection: str = "test-selected", tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Each of our numbers against the paper's: is it within ``tolerance`` points of it?

    The difference is that of the numbers :func:`side_by_side` shows (each rounded to 0.1 points).
    Its margin is ``tolerance``, or, where the report has several seeds and that is wider, 1.96
    standard errors of the difference of two means over seeds, ours over ``seeds`` and the
    paper's over :data:`PAPER_SEEDS`, both taken to spread as our seeds do (the paper gives no
    spread). With one seed there is no spread, and the margin is ``tolerance``.

    Parameters
    ----------
    table : DataFrame
        :func:`comparison`'s (or :func:`load_report`'s) table.
    selection : {"test-selected", "validated"}
        How MASC's layer was chosen.
    tolerance : float
        In percentage points.

    Returns
    -------
    DataFrame
        One row per model, dataset, degree and measure the paper has: ``model``, ``dataset``,
        ``corruption_degree``, ``measure``, ``seeds``, ``ours`` and ``paper`` (points),
        ``points`` (ours minus the paper's), ``margin`` and ``sign`` (+1: above the paper's by
        more than the margin, −1: below it, 0: within).
    """
    if selection not in ("test-selected", "validated"):
        raise ValueError(f"selection must be one of ['test-selected', 'validated'], got {selection!r}.")
    rows = table[table.selection.isin(["final", selection]) & table.paper.notna()]
    ours, paper = _shown_points(rows["mean"]), _shown_points(rows.paper)
    points = (ours - paper).round(1)
    margin, sign = _margins(points, 100 * rows["std"], rows.seeds, tolerance, PAPER_SEEDS)
    shown = rows[["model", "dataset", "corruption_degree", "measure", "seeds"]].assign(ours=ours, paper=paper, points=points, margin=margin, sign=sign)
    return shown.sort_values(["model", "dataset", "measure", "corruption_degree"]).reset_index(drop=True)


def _degree(p) -> str:
    return f"$p = {float(p):g}$"


def _count(k: int, n: int, unit: str) -> str:
    """``"all 4 degrees"``, ``"both degrees"``, ``"3 of 4 degrees"``, ``"none of the 4 degrees"``."""
    if n == 1:
        return f"the one {unit.rstrip('s')}" if k else f"not the one {unit.rstrip('s')}"
    if k == n:
        return f"both {unit}" if n == 2 else f"all {n} {unit}"
    return f"none of the {n} {unit}" if k == 0 else f"{k} of {n} {unit}"


def _points(value) -> str:
    return f"{prose.number(abs(value), 1)} point{'' if round(abs(float(value)), 1) == 1 else 's'}"


def agreement_words(rows: pd.DataFrame, tolerance: float = TOLERANCE) -> str:
    """How rows of :func:`paper_agreement` stand against the paper, in words.

    ``"within 3 points of the paper's at all 4 degrees (−2.5 to +0.9 points)"``, or, where some
    miss, ``"within 3 points of the paper's at 3 of 4 degrees; 6.2 points below it at $p = 0.8$"``.
    Where a spread over seeds widened a margin, the words say so.
    """
    if rows.empty:
        raise ValueError("agreement_words needs at least one row of paper_agreement's table.")
    within, missed = rows[rows.sign == 0], rows[rows.sign != 0]
    margin = f"{tolerance:g} points" + (" (or the seeds' spread, where wider)" if (rows.margin > tolerance).any() else "")
    words = f"within {margin} of the paper's at {_count(len(within), len(rows), 'degrees')}"
    if len(within) > 1:
        low, high = within.points.min(), within.points.max()
        words += f" ({prose.signed(low, 1)} to {prose.signed(high, 1)} points)" if low != high else f" ({prose.signed(low, 1)} points at each)"
    elif len(within) == 1:
        words += f" ({_degree(within.corruption_degree.iloc[0])}, {prose.signed(within.points.iloc[0], 1)} points)"
    misses = [f"{_points(r.points)} {prose.verb(int(r.sign), 'above', 'below')} it at {_degree(r.corruption_degree)}" for r in missed.itertuples()]
    return words + ("; " + prose.listing(misses) if misses else "")


def agreement_counts(table: pd.DataFrame, selection: str = "test-selected", tolerance: float = TOLERANCE) -> tuple[int, int]:
    """How many of :func:`paper_agreement`'s numbers are within the margin, of how many."""
    rows = paper_agreement(table, selection, tolerance)
    return int((rows.sign == 0).sum()), len(rows)


def correct_label_share(degree, dataset: str) -> float:
    """The share of training labels that are right after ``uniform`` corruption at ``degree``:
    :math:`1 - p (C - 1) / C` (a corrupted label is drawn from all ``C`` classes, so one in ``C``
    lands on the true class)."""
    n_classes = N_CLASSES[dataset]
    return 1 - float(degree) * (n_classes - 1) / n_classes


def network_follows_degree(table: pd.DataFrame) -> pd.DataFrame:
    """How much of the network's test accuracy the corruption degree alone sets, per model and
    dataset: from the lowest degree to the highest, the fall of the share of right training
    labels (:func:`correct_label_share`) beside the fall of our network's test accuracy and of
    the paper's, in points.

    A network that fits every training label, a fraction of them random, predicts on a test
    image roughly what the labels of the training images like it say, so its test accuracy
    follows the share of right labels; two runs that both memorize agree on it almost whatever
    else differs. Returns columns ``model``, ``dataset``, ``low``, ``high`` (the degrees),
    ``labels``, ``ours``, ``paper`` (each a fall, in points).
    """
    network = table[(table.measure == "model_test") & table.paper.notna()]
    rows = []
    for (model, dataset), pair in network.groupby(["model", "dataset"]):
        pair = pair.sort_values("corruption_degree")
        first, last = pair.iloc[0], pair.iloc[-1]
        rows.append(
            {
                "model": model, "dataset": dataset, "low": first.corruption_degree, "high": last.corruption_degree,
                "labels": 100 * (correct_label_share(first.corruption_degree, dataset) - correct_label_share(last.corruption_degree, dataset)),
                "ours": _shown_points(first["mean"]) - _shown_points(last["mean"]),
                "paper": _shown_points(first.paper) - _shown_points(last.paper),
            }
        )
    return pd.DataFrame(rows)


def largest_miss(table: pd.DataFrame, selection: str = "test-selected", measures=("masc_corrupted", "masc_true")) -> pd.Series:
    """The row of :func:`paper_agreement` (among ``measures``) farthest from the paper's number."""
    rows = paper_agreement(table, selection)
    rows = rows[rows.measure.isin(list(measures))]
    if rows.empty:
        raise ValueError(f"No rows of measures {list(measures)} with a paper's number.")
    return rows.loc[rows.points.abs().idxmax()]


def masc_over_network(runs_table: pd.DataFrame, selection: str = "test-selected", measure: str = "masc_corrupted", tolerance: float = TOLERANCE) -> pd.DataFrame:
    """MASC's accuracy minus the network's own (its final test accuracy), per model, dataset and
    degree, in points, with a margin and sign as in :func:`paper_agreement`: ``tolerance``, or
    1.96 standard errors of the mean difference over seeds (each seed's MASC minus the same
    seed's network) where that is wider.

    Parameters
    ----------
    runs_table : DataFrame
        :func:`load_runs`'s (or :func:`gather`'s) per-run table.
    selection : {"test-selected", "validated"}
    measure : {"masc_corrupted", "masc_true"}
    tolerance : float
        In points.

    Returns
    -------
    DataFrame
        Columns ``model``, ``dataset``, ``corruption_degree``, ``seeds``, ``masc``, ``network``
        (mean points), ``points`` (their difference), ``margin``, ``sign``.
    """
    keys = ["model", "dataset", "corruption_degree", "seed"]
    masc = runs_table[(runs_table.measure == measure) & (runs_table.selection == selection)].set_index(keys).accuracy
    network = runs_table[runs_table.measure == "model_test"].set_index(keys).accuracy
    if masc.empty:
        raise ValueError(f"No {measure!r} rows with selection {selection!r} in the runs table.")
    paired = pd.DataFrame({"masc": 100 * masc, "network": 100 * network.reindex(masc.index)}).assign(points=lambda t: t.masc - t.network)
    stats = paired.groupby(keys[:-1]).agg(seeds=("points", "count"), masc=("masc", "mean"), network=("network", "mean"), points=("points", "mean"), std=("points", "std")).reset_index()
    stats["points"] = stats.masc.round(1) - stats.network.round(1)
    margin, sign = _margins(stats.points, stats.pop("std"), stats.seeds, tolerance, np.inf)
    return stats.assign(margin=margin, sign=sign)


def selection_agreement(runs_table: pd.DataFrame, shifts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model, dataset, degree and MASC measure, the layer chosen on the test set and on the
    validation part, whether they are the same, and (with ``shifts``, :func:`comparison`'s table)
    the validated number minus the test-selected one, in points as shown.

    Where the two choices are the same layer, the two numbers differ only in what scores it (the
    80 % holdout, or the whole test set): the comparison measures that scoring, not selection.
    """
    keys = ["model", "dataset", "corruption_degree", "measure"]
    masc = runs_table[runs_table.measure.isin(["masc_corrupted", "masc_true"])]
    layers = masc.pivot_table(index=keys, columns="selection", values="layer", aggfunc="first").reset_index()
    layers = layers.rename(columns={"test-selected": "test_selected"}).assign(same=lambda t: t.test_selected == t.validated)
    if shifts is not None:
        means = shifts[shifts.measure.isin(["masc_corrupted", "masc_true"])].pivot_table(index=keys, columns="selection", values="mean").reset_index()
        means["shift"] = _shown_points(means["validated"]) - _shown_points(means["test-selected"])
        layers = layers.merge(means[keys + ["shift"]], on=keys, how="left")
    return layers[keys + ["test_selected", "validated", "same"] + (["shift"] if shifts is not None else [])]


MEASURE_WORDS = {"model_test": "the network itself", "masc_corrupted": "MASC with corrupted-label subspaces", "masc_true": "MASC with true-label subspaces"}
"""The paper's measures in a sentence's words."""


def _pair_name(model: str, dataset: str) -> str:
    return f"`{model}` on `{dataset}`"


def agreement_list(table: pd.DataFrame, selection: str = "test-selected", tolerance: float = TOLERANCE) -> str:
    """A Markdown list, one item per measure (and model and dataset, where the report holds
    several), of :func:`agreement_words`: ``"- **The network itself** is within 3 points..."``."""
    agreement = paper_agreement(table, selection, tolerance)
    pairs = agreement[["model", "dataset"]].drop_duplicates()
    items = []
    for (model, dataset), rows in agreement.groupby(["model", "dataset"]):
        prefix = f"{_pair_name(model, dataset)}: " if len(pairs) > 1 else ""
        for measure in MEASURES:
            part = rows[rows.measure == measure]
            if len(part):
                name = MEASURE_WORDS[measure]
                items.append(f"- {prefix}**{name[0].upper() + name[1:]}** is {agreement_words(part, tolerance)}.")
    return "\n".join(items)


def margin_words(rows: pd.DataFrame, what: str, tolerance: float = TOLERANCE) -> str:
    """Rows with ``corruption_degree``, ``points``, ``margin`` and ``sign`` (:func:`masc_over_network`,
    :func:`paper_agreement`) against ``what``, in words, grouped by sign: ``"more than 3 points
    above the network at all 4 degrees (+8.9 points at $p = 0.2$ to +42.0 at $p = 0.8$)"``."""
    if rows.empty:
        raise ValueError("margin_words needs at least one row.")
    margin = f"{tolerance:g} points" + (" (or the seeds' spread, where wider)" if (rows.margin > tolerance).any() else "")
    parts = []
    for sign in (1, 0, -1):
        part = rows[rows.sign == sign].sort_values("corruption_degree")
        if part.empty:
            continue
        words = prose.verb(sign, f"more than {margin} above {what}", f"more than {margin} below {what}", f"within {margin} of {what}")
        first, last = part.iloc[0], part.iloc[-1]
        spread = f"{prose.signed(first.points, 1)} points at {_degree(first.corruption_degree)}"
        if len(part) > 1:
            spread += f" to {prose.signed(last.points, 1)} at {_degree(last.corruption_degree)}"
        parts.append(f"{words} at {_count(len(part), len(rows), 'degrees')} ({spread})")
        margin = f"{tolerance:g} points"  # said once
    return "; ".join(parts)


def _layers_by_degree(rows: pd.DataFrame, column: str) -> str:
    """``"`fc3` at $p = 0.2$, `fc2` at $p = 0.4$ and `flatten` at $p = 0.6$ and $0.8$"``: each layer with
    the degrees at which ``column`` names it, in order of degree."""
    rows = rows.sort_values("corruption_degree")
    runs_, current = [], None
    for layer, degree in zip(rows[column], rows.corruption_degree):
        if layer == current:
            runs_[-1][1].append(degree)
        else:
            runs_.append((layer, [degree]))
            current = layer
    return prose.listing([f"`{layer}` at $p = {degrees[0]:g}$" + "".join(f", ${d:g}$" for d in degrees[1:-1]) + (f" and ${degrees[-1]:g}$" if len(degrees) > 1 else "") for layer, degrees in runs_])


def selection_words(same: pd.DataFrame) -> str:
    """What :func:`selection_agreement`'s table says, in sentences: how often the two ways of
    choosing MASC's layer chose the same one, per measure; that where they agree the numbers
    measure scoring (the 80 % holdout against the whole test set), not selection; and, with
    ``shift``, how far the validated numbers lie from the test-selected ones."""
    sentences = []
    total = int(same.same.sum())
    per_measure = []
    for measure in ("masc_corrupted", "masc_true"):
        rows = same[same.measure == measure]
        if len(rows):
            per_measure.append(f"{MEASURE_WORDS[measure].removeprefix('MASC ')} at {_count(int(rows.same.sum()), len(rows), 'degrees')}")
    sentences.append(f"The two ways chose the same layer in {total} of {len(same)} cases: {prose.listing(per_measure)}.")
    if total:
        sentences.append(
            "Where the layer is the same, the validated number differs from the test-selected one only in what scores it, the 80 % "
            "holdout part instead of the whole test set: there the comparison measures that scoring, not the choice of layer."
        )
    for measure in ("masc_corrupted", "masc_true"):
        rows = same[same.measure == measure]
        differ = rows[~rows.same]
        name = MEASURE_WORDS[measure].removeprefix("MASC ")
        if len(rows) and differ.empty:
            sentences.append(f"With {name.removeprefix('with ')} both ways read {_layers_by_degree(rows, 'validated')}.")
        elif len(differ):
            sentences.append(
                f"With {name.removeprefix('with ')} the choices differ at {prose.listing([_degree(p) for p in differ.corruption_degree])}: "
                f"the test set chose {_layers_by_degree(differ, 'test_selected')}, the validation part {_layers_by_degree(differ, 'validated')}."
            )
    if "shift" in same:
        largest, higher = same["shift"].abs().max(), int((same["shift"] > 0).sum())
        sentences.append(
            f"Every validated MASC number is within {_points(largest)} of the test-selected one"
            + (f", and {higher} of the {len(same)} are higher: the holdout part alone can score a layer higher than the whole test set does." if higher else ".")
        )
    return " ".join(sentences)


def tolerance_crossings(table: pd.DataFrame, tolerance: float = TOLERANCE) -> str:
    """Which numbers the validated choice moves across the tolerance (against the test-selected
    one), with the count within it each way, as a sentence."""
    test, validated = (paper_agreement(table, s, tolerance) for s in ("test-selected", "validated"))
    keys = ["model", "dataset", "corruption_degree", "measure"]
    both = test.merge(validated, on=keys, suffixes=("_test", "_validated"))
    moved = both[both.sign_test != both.sign_validated]
    k_test, k_val, n = int((test.sign == 0).sum()), int((validated.sign == 0).sum()), len(test)
    sentence = f"With the layer validated, {k_val} of {n} numbers are within {tolerance:g} points of the paper's (with it chosen on the test set, {k_test})"
    if moved.empty:
        return sentence + ": the choice moves none across the tolerance."
    crossings = [
        f"{MEASURE_WORDS[r.measure]} at {_degree(r.corruption_degree)}, {prose.number(r.ours_validated, 1)} against the paper's {prose.number(r.paper_validated, 1)}{prose.NBSP}% ({prose.signed(r.points_validated, 1)} points)"
        for r in moved.itertuples()
    ]
    return sentence + f"; it moves {'one' if len(moved) == 1 else len(moved)} across: {prose.listing(crossings)}."


def device_label(device) -> str:
    """A run's recorded device in one form: ``"CPU: AMD EPYC, 1 thread"`` for what
    :func:`memnotebooks.devices.describe_device` writes, ``"CPU, model and threads not
    recorded"`` for a bare ``"cpu"`` (runs of older code), a GPU's name as recorded."""
    text = str(device).strip()
    match = re.fullmatch(r"CPU: (.+), (\d+) thread\(s\)", text)
    if match:
        return f"CPU: {match[1]}, {match[2]} thread{'' if match[2] == '1' else 's'}"
    if text.lower() == "cpu":
        return "CPU, model and threads not recorded"
    if re.fullmatch(r"cuda(:\d+)?", text.lower()):
        return "GPU (name not recorded)"
    return text


def provenance_summary(record: dict) -> str:
    """What the runs of one report took, in sentences: how many reached their training target,
    their epochs and minutes (ranges), the devices as :func:`device_label` writes them, the
    training time (:func:`training_seconds`), the sweep's wall time, and how many runs record
    only a bare ``"cpu"``."""
    runs_ = pd.DataFrame(record["runs"])
    reached = int(runs_.reached_target.fillna(False).astype(bool).sum())
    subject = f"{'All' if reached == len(runs_) else str(reached) + ' of'} {len(runs_)} runs" if len(runs_) > 1 else "The one run"
    verb = "reached" if reached else "did not reach"
    minutes = runs_.seconds / 60

    def span(values, digits):
        low, high = prose.number(values.min(), digits), prose.number(values.max(), digits)
        return low if low == high else f"{low} to {high}"

    devices = runs_.device.map(device_label).value_counts()
    on = prose.listing([f"{name} ({_count_runs(n)})" for name, n in devices.items()]) if len(devices) > 1 else devices.index[0]
    sentence = f"{subject} {verb} the training target, in {span(runs_.epochs, 0)} epochs and {span(minutes, 1)} minutes each, on {on}: {prose.number(record['total_seconds'] / 3600, 2)} hours of training"
    invocations = record.get("invocations", [])
    if invocations:
        sentence += f", {prose.number(sum(i.get('wall_seconds', 0.0) for i in invocations) / 3600, 2)} hours of wall time for the sweep"
    sentence += "."
    bare = int((runs_.device.astype(str).str.strip().str.lower() == "cpu").sum())
    if bare:
        who = "It records" if len(runs_) == 1 else "All of them record" if bare == len(runs_) else f"Of them, {bare} record{'s' if bare == 1 else ''}"
        sentence += f" {who} the device only as `cpu`, without the CPU's model and thread count" + ("; the note printed above says why." if record.get("note") else ".")
    return sentence


def _count_runs(n: int) -> str:
    return f"{n} run{'' if n == 1 else 's'}"


def describe_sweep(sweep: str, record: dict, table: pd.DataFrame) -> str:
    """A report's grid in a sentence: its models and datasets, training subset, degrees and seeds
    (from the sweep's parameters where recorded, else the tables)."""
    parameters = record.get("sweep", {}).get("parameters", {})
    rows = table[table.sweep == sweep] if "sweep" in table else table
    pairs = prose.listing([f"`{m}` on `{d}`" for m, d in rows[["model", "dataset"]].drop_duplicates().itertuples(index=False)])
    subset = parameters.get("subset")
    seeds = sorted({r["seed"] for r in record["runs"]})
    degrees = prose.listing([f"${float(p):g}$" for p in sorted(rows.corruption_degree.unique())])
    trained = f"trained on a stratified {int(subset):,}-image subset of the training set" if subset else "trained on the full training set"
    return f"`{sweep}`: {pairs}, {trained}, at $p$ = {degrees}, with {'one seed' if len(seeds) == 1 else f'{len(seeds)} seeds'} ({prose.listing(map(str, seeds))}){' where' if len(seeds) < PAPER_SEEDS else ', as'} the paper averages {PAPER_SEEDS}."


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memnotebooks.report", description="Compare a sweep's runs with the paper's table.")
    parser.add_argument("sweep_dir", help="a sweep's folder, runs/<sweep> (its runs are in artifacts/), or any run cache")
    parser.add_argument("--output", default=None, help="report folder (default <sweep_dir>/report)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default $MEMNOTEBOOKS_DATA)")
    parser.add_argument("--device", default="cpu", help="where the runs' activations and MASC are computed (default cpu)")
    parser.add_argument("--note", default=None, help="free text kept in provenance.json (e.g. how the runs were launched)")
    parser.add_argument("--editing", nargs="+", default=None, metavar="READOUT", choices=list(READOUTS),
                        help=f"write the runs' weight edits with these readouts ({', '.join(READOUTS)}) instead of the comparison with the paper")
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
    if args.editing:
        folder = write_editing_report(args.output or sweep_dir / "editing", runs_, command, args.editing, **extra)
        print(load_editing_report(folder)[1].to_string(index=False))
        print(f"editing report: {folder}")
        return
    folder = write_report(args.output or sweep_dir / "report", runs_, command, **extra)
    print(load_report(folder)[0].to_string(index=False))
    print(f"report: {folder}")


if __name__ == "__main__":
    main()
