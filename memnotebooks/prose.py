"""The book's sentences, computed: numbers formatted one way, comparison words decided by the data.

A chapter never types a result. A sentence that states one is a hidden code cell that writes it
from the page's own tables and shows it as Markdown (:func:`show`); the number comes from one
formatter (:func:`accuracy`, :func:`mean_std`, :func:`signed`, :func:`percent`, :func:`number`),
and the word that compares two results comes from :func:`verb`, which reads the sign of a paired
interval (:class:`memnotebooks.uncertainty.Difference`, or any object with ``sign``): the same
code writes "beats" on one machine and "is level with" on another when the numbers say so.

Why Markdown output of a code cell, and not MyST-NB's ``glue`` roles or MyST's ``{eval}`` role:
the output is stored in the executed notebook, so papermill keeps it, Jupyter Book 1 renders it
(``nb_render_markdown_format: myst`` in ``_config.yml``, so ``$math$`` works), and JupyterLab
renders Markdown output natively. ``glue`` roles show as raw text in JupyterLab, and ``{eval}``
is evaluated by no step of a papermill build. The cell's input is hidden in the book
(``remove-input`` tag) and visible in JupyterLab, where a reader sees how the sentence is made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

__all__ = ["accuracy", "choices", "interval", "listing", "mean_std", "number", "percent", "show", "show_each", "signed", "verb"]

MINUS = "\u2212"
NBSP = "\u00a0"


def number(value, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals and a true minus sign; ``-0.000`` is written ``0.000``."""
    value = float(value)
    if np.isnan(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", MINUS)


def accuracy(value) -> str:
    """An accuracy (a fraction in [0, 1]) with 3 decimals: ``"0.721"``."""
    return number(value, 3)


def signed(value, digits: int = 3) -> str:
    """A difference with its sign: ``"+0.012"``, ``"−0.004"``, ``"0.000"``."""
    text = number(value, digits)
    return text if text.startswith(MINUS) or float(text) == 0 else "+" + text


def mean_std(values, digits: int = 3) -> str:
    """Mean ± standard deviation over seeds: ``"0.721 ± 0.011"`` (kept on one line), or the mean
    alone for one value."""
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return "n/a"
    if values.size == 1:
        return number(values[0], digits)
    return f"{number(values.mean(), digits)}{NBSP}±{NBSP}{number(values.std(ddof=1), digits)}"


def percent(fraction, digits: int = 0) -> str:
    """A fraction as a percentage: ``percent(0.642) == "64 %"`` (non-breaking space)."""
    return f"{number(100 * float(fraction), digits)}{NBSP}%"


def interval(difference, digits: int = 3) -> str:
    """A difference and its interval: ``"+0.012, 95 % interval +0.004 to +0.020"``.

    ``difference`` is a :class:`memnotebooks.uncertainty.Difference` (``estimate``, ``low``,
    ``high``) or a row of a table of differences, whose column ``difference`` holds the estimate
    (:func:`memnotebooks.tables.paired_differences`, a tuple of ``itertuples`` or a Series).
    """
    d = difference
    estimate = d.estimate if hasattr(d, "estimate") else d.difference if hasattr(d, "difference") else d["difference"]
    return f"{signed(estimate, digits)}, 95{NBSP}% interval {signed(d.low, digits)} to {signed(d.high, digits)}"


def verb(difference, above: str = "above", below: str = "below", level: str = "level with") -> str:
    """The comparison word for ``a`` against ``b``, from the sign of their paired interval.

    Parameters
    ----------
    difference : Difference, int, or a row with ``sign``
        ``a − b`` with its interval (:func:`memnotebooks.uncertainty.paired_bootstrap`), or its
        sign: +1 (interval above zero), −1 (below), 0 (holds zero).
    above, below, level : str
        The words for each case, e.g. ``"beats"``, ``"falls short of"``, ``"is level with"``.

    Examples
    --------
    >>> verb(1, "beats", "trails", "is level with"), verb(0, "beats", "trails", "is level with")
    ('beats', 'is level with')
    """
    sign = difference if isinstance(difference, (int, np.integer)) else difference.sign if hasattr(difference, "sign") else difference["sign"]
    if sign not in (-1, 0, 1):
        raise ValueError(f"A sign is -1, 0 or 1; got {sign!r}.")
    return {1: above, -1: below, 0: level}[int(sign)]


def listing(items: Iterable[str], conjunction: str = "and") -> str:
    """``["a", "b", "c"]`` as ``"a, b and c"``."""
    items = [str(item) for item in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def choices(values, unit: str = "runs", code: bool = True) -> str:
    """What was chosen, counted: ``"`fc1` in 8 of 9 runs, `fc2` in 1"``, most frequent first
    (ties in order of first appearance); ``"`fc1` in all 9 runs"`` when there is one choice.
    ``code`` writes each choice as code (layer and probe names)."""
    values = list(values)
    if not values:
        raise ValueError("choices needs at least one value.")
    counts = Counter(values).most_common()
    name = (lambda v: f"`{v}`") if code else str
    if len(counts) == 1:
        return f"{name(counts[0][0])} in {'both' if len(values) == 2 else 'all'} {len(values)} {unit}" if len(values) > 1 else f"{name(counts[0][0])} in the one {unit.rstrip('s')}"
    first, *rest = counts
    return ", ".join([f"{name(first[0])} in {first[1]} of {len(values)} {unit}", *(f"{name(v)} in {n}" for v, n in rest)])


def show(*sentences: str):
    """Display ``sentences`` as one Markdown paragraph (the output of a hidden-input cell)."""
    from IPython.display import Markdown, display

    display(Markdown(" ".join(s.strip() for s in sentences if s)))


def show_each(paragraphs: Iterable[str]) -> None:
    """Display each of ``paragraphs`` as its own Markdown output (:func:`show` of each): one
    paragraph, or one item of a list, per degree, sweep or setting, however many there are."""
    for paragraph in paragraphs:
        show(paragraph)
