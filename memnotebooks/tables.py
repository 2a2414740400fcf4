"""Tidy display tables that several analyses share: mean ± std over seeds per row and corruption
degree, and paired differences with their 95 % intervals.

The tables read long tables with ``corruption_degree``, ``seed`` and a value column, and, for
differences, ``hits`` (each image's hit on the same images in every row, packed:
:func:`memnotebooks.uncertainty.pack_hits`). :func:`mean_std_table` shows mean ± std per row and
degree; :func:`paired_differences` compares rows image by image
(:func:`memnotebooks.uncertainty.paired_bootstrap`), :func:`difference_text` and
:func:`difference_table` show what it finds, :func:`describe_signs` and
:func:`describe_against` say it in words, and :func:`hits_matrix` unpacks one row's hits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .prose import NBSP, accuracy, listing, mean_std, signed, verb
from .uncertainty import paired_bootstrap, unpack_hits

__all__ = [
    "describe_against",
    "describe_signs",
    "difference_table",
    "difference_text",
    "hits_matrix",
    "mean_std_table",
    "paired_differences",
]


def mean_std_table(table: pd.DataFrame, row: str, value: str, digits: int = 3) -> pd.DataFrame:
    """Mean ± std over seeds of ``value`` per ``row`` (in the order of first appearance) and
    corruption degree (columns ``p = ...``), as text: ``"0.918 ± 0.012"`` (non-breaking
    spaces around ``±``, so a cell does not wrap), or the mean alone
    with one seed; empty where not measured. A row holding one seed twice at a degree (two
    runs of different settings) is refused."""
    if "seed" in table:
        twice = table[table.duplicated([row, "corruption_degree", "seed"], keep=False)]
        if len(twice):
            first = twice.iloc[0]
            raise ValueError(
                f"The row {first[row]!r} at p = {first.corruption_degree:g} holds seed {first.seed} twice: these are different runs "
                "(another setting), and their seeds would be averaged together; give them different row names."
            )
    stats = table.groupby([row, "corruption_degree"], sort=False)[value].agg(list)
    cells = [mean_std(values, digits) for values in stats]
    wide = pd.Series(cells, index=stats.index).unstack("corruption_degree").reindex(table[row].unique())
    wide.columns = [f"p = {degree:g}" for degree in wide.columns]
    return wide.fillna("").rename_axis(None)


def paired_differences(scores: pd.DataFrame, reference: str, others=None, column: str = "baseline") -> pd.DataFrame:
    """Each row's accuracy difference from ``reference``, per degree, with its paired interval.

    Parameters
    ----------
    scores : DataFrame
        Columns ``column``, ``corruption_degree``, ``seed``, ``accuracy`` and ``hits`` (packed
        per-image hits on the same images in every row, e.g. :func:`memnotebooks.baselines.baseline_scores`).
    reference : str
        The value of ``column`` the others are compared with.
    others : list of str, optional
        Default: every other value, in order of appearance.
    column : str

    Returns
    -------
    DataFrame
        Per (``column``, ``corruption_degree``): ``difference`` (other − reference, mean over
        the seeds both have), ``low``, ``high`` (:func:`memnotebooks.uncertainty.paired_bootstrap`),
        ``sign`` (+1, −1, or 0 when the interval holds zero), ``n_images``, ``n_seeds``.
    """
    values = list(dict.fromkeys(scores[column]))
    if reference not in values:
        raise ValueError(f"No rows with {column} = {reference!r}; the table has: {', '.join(map(str, values))}.")
    others = [v for v in values if v != reference] if others is None else list(others)
    unknown = [v for v in others if v not in values]
    if unknown:
        raise ValueError(f"No rows with {column} = {unknown}; the table has: {', '.join(map(str, values))}.")
    rows = []
    for degree, at_degree in scores.groupby("corruption_degree", sort=True):
        base = at_degree[at_degree[column] == reference].set_index("seed").hits
        for other in others:
            compared = at_degree[at_degree[column] == other].set_index("seed").hits
            seeds = sorted(set(base.index) & set(compared.index))
            if not seeds:
                continue
            d = paired_bootstrap([unpack_hits(compared[s]) for s in seeds], [unpack_hits(base[s]) for s in seeds])
            rows.append({column: other, "corruption_degree": degree, "difference": d.estimate, "low": d.low, "high": d.high,
                         "sign": d.sign, "n_images": d.n_images, "n_seeds": d.n_seeds})
    return pd.DataFrame(rows)


def difference_text(row, digits: int = 3) -> str:
    """One row of :func:`paired_differences` (a Series or a tuple of ``itertuples``; or a
    :class:`memnotebooks.uncertainty.Difference`) as ``"+0.012 [−0.004, +0.028]"``: the
    difference and its 95 % interval."""
    d, lo, hi = (row.estimate, row.low, row.high) if hasattr(row, "estimate") else (row.difference, row.low, row.high) if hasattr(row, "difference") else (row["difference"], row["low"], row["high"])
    return f"{signed(d, digits)}{NBSP}[{signed(lo, digits)},{NBSP}{signed(hi, digits)}]"


def difference_table(differences: pd.DataFrame, column: str = "baseline", digits: int = 3) -> pd.DataFrame:
    """:func:`paired_differences` as a table to read: a row per ``column`` value (in order of
    appearance), a column per degree (``p = ...``), each cell the difference and its 95 % interval,
    ``"+0.012 [−0.004, +0.028]"`` (true minus signs; non-breaking spaces, so a cell does not wrap);
    empty where not measured."""
    if differences.empty:
        raise ValueError("No differences to show (paired_differences found no pair of rows with common seeds).")
    cells = differences.assign(cell=[difference_text(row, digits) for _, row in differences.iterrows()])
    wide = cells.pivot(index=column, columns="corruption_degree", values="cell").reindex(list(dict.fromkeys(differences[column])))
    wide.columns = [f"p = {degree:g}" for degree in wide.columns]
    return wide.fillna("").rename_axis(None)


def describe_signs(differences: pd.DataFrame, words=("is above", "is level with", "is below"), column: str = "baseline", every: str | None = None) -> str:
    """Rows of :func:`paired_differences` (e.g. one degree's) grouped by their sign, in words.

    Each sign present gives its word (``words``: for +1, 0 and −1, in that order) and "in" the
    ``column`` values of its rows, as code: ``"beats it in `fc1` and `fc2` and is level with it
    in `fc3`"``. With ``every``, a sign that holds every row says ``every`` instead of listing
    them (``"every hidden layer"``).
    """
    parts = []
    for sign, word in zip((1, 0, -1), words):
        rows = differences[differences.sign == sign]
        if len(rows):
            parts.append(f"{word} in {every if every is not None and len(rows) == len(differences) else listing([f'`{v}`' for v in rows[column]])}")
    return listing(parts)


def describe_against(scores: pd.DataFrame, differences: pd.DataFrame, reference: str, baseline: str, degrees, what: str = "the reference",
                     above: str = "is above", below: str = "is below", level: str = "is level with") -> str:
    """One row of a table against its reference, degree by degree, in words.

    ``differences`` is :func:`paired_differences` of ``scores`` against ``reference``; for each of
    ``degrees`` the clause "at $p = 0.4$ it is above ``what`` (0.812 against 0.790; +0.022
    [+0.004, +0.040])": the comparison word from the sign of ``baseline`` minus the reference
    (:func:`memnotebooks.prose.verb`), both mean accuracies over seeds, and the difference with
    its interval as :func:`difference_table` shows it. The clauses are joined by "; " and the
    sentence ends with ".".
    """
    mean = scores.groupby(["baseline", "corruption_degree"]).accuracy.mean()
    sign = differences.set_index(["baseline", "corruption_degree"]).sign
    shown = difference_table(differences)
    return "; ".join(
        f"at $p = {p:g}$ it {verb(int(sign[baseline, p]), above, below, level)} {what} ({accuracy(mean[baseline, p])} against {accuracy(mean[reference, p])}; {shown.loc[baseline, f'p = {p:g}']})"
        for p in degrees
    ) + "."


def hits_matrix(scores: pd.DataFrame, baseline: str, corruption_degree: float, column: str = "baseline") -> np.ndarray:
    """The per-image hits of one row of ``scores`` (e.g. :func:`memnotebooks.baselines.baseline_scores`) at one degree,
    unpacked: a bool array of shape (n_seeds, n_images), seeds in increasing order, ready for
    :func:`memnotebooks.uncertainty.paired_bootstrap`."""
    rows = scores[(scores[column] == baseline) & (scores.corruption_degree == corruption_degree)].sort_values("seed")
    if rows.empty:
        raise ValueError(f"No rows with {column} = {baseline!r} at corruption_degree = {corruption_degree!r}.")
    return np.stack([unpack_hits(h) for h in rows.hits])
