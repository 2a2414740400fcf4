"""What holds: the claims of the papers the book builds on, each with the book's verdict and the
number behind it, computed by the same analyses, with the same parameters, as the chapters that
show them.

A claim is an entry of :data:`CLAIMS` (:class:`Claim`): its paper (a key of :data:`PAPERS`), the
claim in one sentence, the chapter and section that show it, and an ``evaluate`` function that
takes a :class:`Context` and returns a :class:`Finding`: one of :data:`VERDICTS` and a short
computed text. The context reads each chapter's parameter defaults from its ``parameters`` cell
(:func:`chapter_defaults`), applies the ``overrides`` given to every chapter that declares them,
and computes each chapter's results once, by the package functions the chapter itself calls with
those parameters; the trained runs and the derived tables the chapter cached in the run store
(:mod:`memnotebooks.runs`, :func:`memnotebooks.store.cached_table`) are read back, so that after
the chapters ran the table costs seconds, and it changes when their numbers do.

The verdict rules (:func:`verdict`) read the sign of each comparison a claim makes: the paired
bootstrap's sign (:class:`memnotebooks.uncertainty.Difference`, the ``sign`` column of
:func:`memnotebooks.tables.paired_differences`) where the comparison is of accuracies on the same
images, and :func:`memnotebooks.dynamics.apart` (every seed on one side) where it is of epochs or
of measures without per-image hits. A claim **holds** where every comparison it makes (one per
corrupted degree, noise kind or regularizer) has the claimed sign, **holds in part** where some
have, **does not hold here** where none has, and is **not tested here** where the chapters'
settings make no comparison (the reason is the number's text).

Adding a claim (e.g. of Ketha & Ramaswamy 2026, chapter 10) is one :class:`Claim` in
:data:`CLAIMS` and its ``evaluate`` function: ``context.parameters(chapter)`` gives the chapter's
parameters, ``context.grid(chapter)`` its runs, and ``context.result(key, compute)`` computes any
other result once (e.g. ``memnotebooks.editing.editing_table``) for every claim that asks for it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import baselines, decoding, dynamics, editing, layer_manifolds, models, paper, recovery, relabel, report, rewinding, runs
from .probes import PROBE_NAMES
from .book import check_parameters
from .prose import NBSP, accuracy, listing, mean_std, number, signed
from .tables import difference_text, paired_differences
from .uncertainty import paired_bootstrap

__all__ = [
    "BOOK_DIR",
    "CACHE_PARAMETERS",
    "CLAIMS",
    "Claim",
    "Context",
    "Finding",
    "PAPERS",
    "VERDICTS",
    "VERDICT_COLOURS",
    "chapter_defaults",
    "chapter_headings",
    "claims_effects",
    "claims_table",
    "effects_plot",
    "markdown_table",
    "section_link",
    "settings_summary",
    "slug",
    "verdict",
    "verdict_counts",
    "verdict_plot",
    "verdict_summary",
]

BOOK_DIR = Path(__file__).resolve().parent.parent / "book"
"""The chapters' folder of this checkout (``book/``)."""

PAPERS = {
    "ketha2025": "Ketha & Ramaswamy (2025)",
    "ketha2026": "Ketha & Ramaswamy (2026)",
    "arpit2017": "Arpit et al. (2017)",
    "stephenson2021": "Stephenson et al. (2021)",
}
"""The papers whose claims the table judges, in the table's order, and their names in it."""

VERDICTS = ("holds", "holds in part", "does not hold here", "not tested here")
"""The four verdicts, the only words the table's verdict column holds (see :func:`verdict`)."""

CACHE_PARAMETERS = ("device", "artifacts_dir", "data_root")
"""Chapter parameters that say where runs live and train, not what they are: keywords of
:class:`Context`, not overrides."""


def verdict(signs: Iterable[int], claimed: int = 1) -> str:
    """The verdict of a claim from the signs of the comparisons it makes.

    Parameters
    ----------
    signs : iterable of int
        One sign per comparison (a corrupted degree, a kind of noise, a regularizer): +1, −1, or 0
        when the comparison cannot tell (its interval holds zero, or the seeds' ranges overlap).
    claimed : {1, -1}
        The sign the claim says each comparison has.

    Returns
    -------
    str
        ``"holds"`` when every sign is ``claimed``, ``"holds in part"`` when some are,
        ``"does not hold here"`` when none is, ``"not tested here"`` when there is no comparison.

    Examples
    --------
    >>> verdict([1, 1]), verdict([1, 0]), verdict([0, -1]), verdict([]), verdict([-1], claimed=-1)
    ('holds', 'holds in part', 'does not hold here', 'not tested here', 'holds')
    """
    if claimed not in (1, -1):
        raise ValueError(f"claimed is the sign a claim expects, 1 or -1; got {claimed!r}.")
    signs = [int(s) for s in signs]
    bad = [s for s in signs if s not in (-1, 0, 1)]
    if bad:
        raise ValueError(f"A sign is -1, 0 or 1; got {bad}.")
    if not signs:
        return "not tested here"
    agree = sum(s == claimed for s in signs)
    return "holds" if agree == len(signs) else "holds in part" if agree else "does not hold here"


@dataclass(frozen=True)
class Finding:
    """What the book finds for one claim.

    Attributes
    ----------
    verdict : str
        One of :data:`VERDICTS`.
    number : str
        The numbers behind it, as Markdown (a few clauses, computed).
    effects : DataFrame, optional
        The accuracy differences behind it that have a paired interval, oriented so that a
        positive difference is the claimed direction: columns ``comparison`` (e.g.
        ``"p = 0.8"``), ``difference``, ``low``, ``high`` (:func:`claims_effects` gathers them).
    """

    verdict: str
    number: str
    effects: pd.DataFrame | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"A verdict is one of {', '.join(map(repr, VERDICTS))}; got {self.verdict!r}.")


def _untested(reason: str) -> Finding:
    return Finding("not tested here", reason)


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, where the book shows it, and how its verdict is computed.

    Attributes
    ----------
    key : str
        Short unique name (the table's index).
    paper : str
        A key of :data:`PAPERS`.
    claim : str
        The claim in one sentence, as the paper makes it (or, marked so, as it implies it).
    chapter : str
        The chapter notebook's name without ``.ipynb`` (``"05_masc_decoding"``); its parameters
        are the ones the claim is evaluated with.
    section : str
        The heading, as written in that chapter's markdown, of the section that shows it.
    evaluate : callable
        ``evaluate(context) -> Finding``.
    label : str
        The claim in a few words (the figure's axis, :func:`effects_plot`, and the summary,
        :func:`verdict_summary`).
    """

    key: str
    paper: str
    claim: str
    chapter: str
    section: str
    evaluate: Callable[["Context"], Finding]
    label: str


def chapter_defaults(notebook: str | Path) -> dict:
    """The default values of a chapter's ``parameters`` cell, as Python values.

    Parameters
    ----------
    notebook : path
        The chapter (``book/05_masc_decoding.ipynb``).

    Returns
    -------
    dict
        Parameter name to its default (papermill's :func:`papermill.inspect_notebook` reads the
        cell; each default is read with :func:`ast.literal_eval`), in the cell's order.
    """
    import papermill

    return {name: ast.literal_eval(declared["default"]) for name, declared in papermill.inspect_notebook(str(notebook)).items()}


def chapter_headings(notebook: str | Path) -> list[str]:
    """The headings (``#`` to ``######``) of a chapter's markdown cells, in order, as written."""
    import nbformat

    cells = nbformat.read(str(notebook), as_version=4).cells
    found = []
    for cell in cells:
        if cell.cell_type == "markdown":
            found += [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", cell.source, flags=re.MULTILINE)]
    return found


def slug(heading: str) -> str:
    """A heading's anchor as MyST writes it (``myst_heading_anchors``; its default slug, that of
    GitHub): lower case, punctuation dropped, spaces as hyphens.

    >>> slug("Rewinding the last layers"), slug("MASC's one parameter")
    ('rewinding-the-last-layers', 'mascs-one-parameter')
    """
    return re.sub(r"[^\w\u4e00-\u9fff\- ]", "", heading.strip().lower()).replace(" ", "-")


def section_link(chapter: str, heading: str) -> str:
    """A Markdown link to a chapter's section: ``[9. Rewinding the last layers](09_manifold_geometry.ipynb#rewinding-the-last-layers)``
    (relative to ``book/``; the book resolves it with ``myst_heading_anchors`` set)."""
    return f"[{int(chapter[:2])}. {heading}]({chapter}.ipynb#{slug(heading)})"


class Context:
    """The chapters' parameters and results, computed once for every claim that needs them.

    Parameters
    ----------
    overrides : dict, optional
        Parameter values given to every chapter (of those the claims read) that declares the
        parameter, as ``python -m memnotebooks.book -p`` does, e.g. ``{"dataset": "fashion_mnist",
        "model": "cnn", "subset": 4000}``. A name no such chapter declares is an error, and so is
        a value of another type than the chapter's default (:func:`memnotebooks.book.check_parameters`).
    artifacts_dir, data_root, device
        Where the runs are cached and the datasets are, and where to compute
        (:func:`memnotebooks.runs.run`'s keywords; the chapters' own parameters of these names).
    book_dir : path
        The chapters' folder (default :data:`BOOK_DIR`).
    claims : iterable of Claim, optional
        The claims whose chapters the overrides apply to; default :data:`CLAIMS`.

    Raises
    ------
    ValueError
        For an override that no chapter of the claims declares (naming the ones they do), or one of
        :data:`CACHE_PARAMETERS` (keywords here).
    """

    def __init__(self, overrides: dict | None = None, *, artifacts_dir=None, data_root=None, device: str = "auto", book_dir: str | Path = BOOK_DIR, claims=None):
        self.book_dir = Path(book_dir)
        self.cache = dict(artifacts_dir=artifacts_dir, data_root=data_root, device=device)
        self.chapters = list(dict.fromkeys(claim.chapter for claim in (CLAIMS if claims is None else claims)))
        self.overrides = dict(overrides or {})
        self._defaults = {chapter: chapter_defaults(self.notebook(chapter)) for chapter in self.chapters}
        cached = sorted(set(self.overrides) & set(CACHE_PARAMETERS))
        if cached:
            raise ValueError(f"{', '.join(cached)} {'is a keyword' if len(cached) == 1 else 'are keywords'} of the table (where runs are cached and computed), not an override: pass {', '.join(f'{name}=...' for name in cached)}.")
        declared = set().union(*self._defaults.values()) - set(CACHE_PARAMETERS)
        unknown = sorted(set(self.overrides) - declared)
        if unknown:
            raise ValueError(
                f"No chapter the table reads ({', '.join(self.chapters)}) declares the parameter(s) {', '.join(unknown)}; they declare: {', '.join(sorted(declared))}."
            )
        self._parameters = {}
        for chapter, defaults in self._defaults.items():
            values = {**defaults, **{name: value for name, value in self.overrides.items() if name in defaults}}
            check_parameters(self.notebook(chapter), values)
            self._parameters[chapter] = values
        self._results = {}

    def notebook(self, chapter: str) -> Path:
        """The chapter's notebook file."""
        return self.book_dir / f"{chapter}.ipynb"

    def parameters(self, chapter: str) -> dict:
        """The chapter's parameters: its defaults, with the overrides it declares."""
        if chapter not in self._parameters:
            raise ValueError(f"No claim reads chapter {chapter!r}; the claims read: {', '.join(self.chapters)}.")
        return dict(self._parameters[chapter])

    def result(self, key, compute: Callable[[], object]):
        """``compute()`` the first time ``key`` is asked for, the same object after."""
        if key not in self._results:
            self._results[key] = compute()
        return self._results[key]

    def config(self, chapter: str, checkpoints: bool = False) -> runs.RunConfig:
        """The run configuration a chapter builds from its parameters (``dataset``, ``model``,
        ``subset``, ``test_subset``, ``max_epochs``; and ``checkpoint_epochs`` with ``checkpoints``)."""
        p = self.parameters(chapter)
        config = runs.RunConfig(dataset=p["dataset"], model=p["model"], subset=p["subset"], test_subset=p["test_subset"], max_epochs=p["max_epochs"])
        return config.replace(checkpoint_epochs=tuple(p["checkpoint_epochs"])) if checkpoints else config

    def grid(self, chapter: str, checkpoints: bool = False) -> list:
        """The chapter's grid of runs (:func:`memnotebooks.runs.run_grid` of :meth:`config` at its
        ``degrees`` and ``seeds``), from the cache where the chapter ran."""
        p = self.parameters(chapter)
        return self.result(("grid", chapter, checkpoints), lambda: runs.run_grid(self.config(chapter, checkpoints), degrees=p["degrees"], seeds=p["seeds"], **self.cache))

    def finding(self, claim: Claim) -> Finding:
        """The claim's finding (evaluated once)."""
        return self.result(("finding", claim.key), lambda: claim.evaluate(self))


# --- what the claims compare -------------------------------------------------------------------


def _effects(rows: list[dict], claimed: int = 1) -> pd.DataFrame:
    """Rows of ``comparison``, ``difference``, ``low``, ``high`` turned to the claimed direction."""
    table = pd.DataFrame(rows, columns=["comparison", "difference", "low", "high"])
    if claimed == -1:
        table = table.assign(difference=-table.difference, low=-table.high, high=-table.low)
    return table


def _degree(p) -> str:
    return f"$p = {p:g}$"


def _difference(d) -> str:
    """:func:`memnotebooks.tables.difference_text` with ordinary spaces, so that a narrow table cell can wrap it."""
    return difference_text(d).replace(NBSP, " ")


def _vs(name_a: str, a: float, name_b: str, b: float, d) -> str:
    return f"{name_a} {accuracy(a)} vs {name_b} {accuracy(b)} ({_difference(d)})"


def _every(sign: int, words: str) -> str:
    """``"longer in every seed"`` where :func:`memnotebooks.dynamics.apart` gave +1, else ``"not longer in every seed"``."""
    return f"{words} in every seed" if sign == 1 else f"not {words} in every seed"


def _noisy(degrees) -> list[float]:
    return [p for p in sorted(degrees) if p > 0]


CH02, CH05, CH06, CH07, CH08, CH09 = "02_training", "05_masc_decoding", "06_relabel_retraining", "07_reproducing_the_paper", "08_learning_dynamics", "09_manifold_geometry"


def _decoding_scores(context: Context) -> pd.DataFrame:
    """Chapter 05's ``scores``: :func:`memnotebooks.baselines.baseline_scores` of its grid."""
    p = context.parameters(CH05)
    return context.result("05 scores", lambda: baselines.baseline_scores(context.grid(CH05), probes=p["probes"], variance_threshold=p["variance_threshold"], **context.cache))


def _rows_compared(context: Context, row: str, reference: str, names: tuple[str, str], claimed: int = 1) -> Finding:
    """Chapter 05: ``row`` against ``reference`` of :func:`_decoding_scores`, at each corrupted degree."""
    noisy = _noisy(context.parameters(CH05)["degrees"])
    if not noisy:
        return _untested("chapter 5's degrees hold no corrupted degree")
    scores = _decoding_scores(context)
    differences = paired_differences(scores, reference, others=[row])
    differences = differences[differences.corruption_degree.isin(noisy)]
    mean = scores.groupby(["baseline", "corruption_degree"]).accuracy.mean()
    rows = list(differences.itertuples())
    number_ = "; ".join(f"{_degree(d.corruption_degree)}: {_vs(names[0], mean[row, d.corruption_degree], names[1], mean[reference, d.corruption_degree], d)}" for d in rows)
    return Finding(verdict([d.sign for d in rows], claimed), number_, _effects([dict(comparison=f"p = {d.corruption_degree:g}", difference=d.difference, low=d.low, high=d.high) for d in rows], claimed))


MASC_VALIDATED = "MASC, hidden, corrupted (validated)"


def _memorization(context: Context) -> Finding:
    """Chapter 02: every run fits its training labels, and the final test accuracy at each
    corrupted degree falls below the generalized network's (``p = 0``), over test images and seeds."""
    degrees = context.parameters(CH02)["degrees"]
    noisy = _noisy(degrees)
    if 0 not in degrees or not noisy:
        return _untested("needs $p = 0$ and a corrupted degree among chapter 2's degrees")
    grid = context.grid(CH02)
    summary = runs.summary_table(grid)
    hits = context.result("02 final hits", lambda: baselines.network_hits(grid))
    clauses, signs, rows = [], [], []
    for p in noisy:
        d = paired_bootstrap(hits[p], hits[0.0])
        fitted = summary[summary.corruption_degree == p]
        signs.append(d.sign if fitted.reached_target.all() else 0)  # a degree whose runs did not all fit is not memorized
        rows.append(dict(comparison=f"p = {p:g}", difference=d.estimate, low=d.low, high=d.high))
        clauses.append(f"{_degree(p)}: {int(fitted.reached_target.sum())} of {len(fitted)} runs reach the training target; test {accuracy(hits[p].mean())} vs {accuracy(hits[0.0].mean())} at $p = 0$ ({_difference(d)})")
    return Finding(verdict(signs, -1), "; ".join(clauses), _effects(rows, -1))


def _masc_beats_network(context: Context) -> Finding:
    return _rows_compared(context, MASC_VALIDATED, "network, final", ("MASC", "network"))


def _true_labels_decode_more(context: Context) -> Finding:
    return _rows_compared(context, "MASC, hidden, true (validated)", MASC_VALIDATED, ("true", "corrupted"))


def _beats_untrained(context: Context) -> Finding:
    return _rows_compared(context, MASC_VALIDATED, "MASC, untrained, corrupted (validated)", ("trained", "untrained"))


def _relabel_improves(context: Context) -> Finding:
    """Chapter 06: the paper's relabelling (in-sample MASC) fine-tuned, against the memorized model."""
    p = context.parameters(CH06)
    noisy = _noisy(p["degrees"])
    if "masc_corrupted" not in p["methods"] or not noisy:
        return _untested("chapter 6's methods or degrees leave out the paper's relabelling (`masc_corrupted`)")
    settings = dict(max_epochs=p["fine_tune_epochs"], patience=p["patience"], folds=p["folds"], variance_threshold=p["variance_threshold"], cleanlab_probe=p["cleanlab_probe"])
    scores = context.result("06 masc_corrupted", lambda: relabel.scores(relabel.relabel_grid(context.grid(CH06), ["masc_corrupted"], **settings)))
    name = relabel.METHOD_NAMES["masc_corrupted"]
    mean = scores.groupby(["baseline", "corruption_degree"]).accuracy.mean()
    found = {q: relabel.difference(scores, name, relabel.BEFORE, q) for q in noisy}
    number_ = "; ".join(f"{_degree(q)}: {_vs('relabelled', mean[name, q], 'memorized', mean[relabel.BEFORE, q], d)}" for q, d in found.items())
    return Finding(verdict([d.sign for d in found.values()]), number_, _effects([dict(comparison=f"p = {q:g}", difference=d.estimate, low=d.low, high=d.high) for q, d in found.items()]))


def _published_table(context: Context) -> Finding:
    """Chapter 07: the paper's table, and the committed sweep results beside it (``results/``)."""
    p = context.parameters(CH07)
    if not p["reports"]:
        return _untested("chapter 7's `reports` is empty")
    rows = paper.paper_table()
    gap = 100 * (rows.masc_corrupted - rows.model_test)
    pairs = rows[["model", "dataset"]].drop_duplicates()
    claimed_text = f"the paper's table: MASC above the network in {int((gap > 0).sum())} of {len(gap)} entries ({signed(gap.min(), 1)} to {signed(gap.max(), 1)} points, {len(pairs)} model–dataset pairs)"
    reports = {sweep: (context.book_dir / folder) for sweep, folder in p["reports"].items()}
    _, runs_table, _ = context.result("07 reports", lambda: report.load_reports(reports))
    over = report.masc_over_network(runs_table, p["selection"], "masc_corrupted", p["tolerance"])
    measured = over[["model", "dataset"]].drop_duplicates()
    ours = f"the committed sweep{'s' if len(reports) > 1 else ''} ({', '.join(f'`{name}`' for name in reports)}, {', '.join(f'{m} on {d}' for m, d in measured.itertuples(index=False))}): {report.margin_words(over, 'the network', p['tolerance'])}, layer {p['selection']}"
    covered = pairs.merge(measured).shape[0] == len(pairs)
    if not covered:
        return _untested(f"{claimed_text}; {ours}; {len(pairs.merge(measured))} of the {len(pairs)} pairs measured, so no verdict")
    return Finding(verdict(over.sign), f"{claimed_text}; {ours}")


def _clean_first(context: Context) -> Finding:
    """Chapter 08: the median epoch of learning of the corrupted examples is later than the clean
    ones' in every seed (:func:`memnotebooks.dynamics.apart` of the seeds' medians)."""
    degrees = _noisy(context.parameters(CH08)["degrees"])
    if not degrees:
        return _untested("chapter 8's degrees hold no corrupted degree")
    grid = context.grid(CH08)
    learning = context.result("08 learning", lambda: dynamics.learning_table(grid))
    medians = learning[learning.learned_epoch >= 0].groupby(["corruption_degree", "examples", "seed"]).learned_epoch.median()
    signs = {p: dynamics.apart(medians[p, "corrupted"], medians[p, "clean"]) for p in degrees}
    number_ = "median epoch learned, " + "; ".join(
        f"{_degree(p)}: clean {mean_std(medians[p, 'clean'], 1)} vs corrupted {mean_std(medians[p, 'corrupted'], 1)} ({_every(signs[p], 'corrupted later')})" for p in degrees
    )
    return Finding(verdict(signs.values()), number_ + f" ({len(learning.seed.unique())} seeds)")


def _noise_runs(context: Context) -> list:
    """Chapter 08's runs of real data and of each kind of noise at degree 1, every seed."""
    p = context.parameters(CH08)
    config = context.config(CH08)
    kinds = [{}, *({"corruption_degree": 1.0, "corruption_mode": mode} for mode in p["noise_modes"])]
    return context.result("08 noise runs", lambda: [runs.run(config.replace(seed=seed, **kind), **context.cache) for kind in kinds for seed in p["seeds"]])


def _real_before_noise(context: Context) -> Finding:
    """Chapter 08: epochs to reach the training target, each kind of noise against real data."""
    p = context.parameters(CH08)
    if not p["noise_modes"]:
        return _untested("chapter 8's `noise_modes` is empty")
    config = context.config(CH08)
    fit = dynamics.setting_table(_noise_runs(context)).groupby("setting", sort=False).epochs.apply(list)
    real = fit[dynamics.setting_label(config)]
    names = [dynamics.setting_label(config.replace(corruption_degree=1.0, corruption_mode=mode)) for mode in p["noise_modes"]]
    noise = {name: fit[name] for name in names}
    signs = {name: dynamics.apart(epochs, real) for name, epochs in noise.items()}
    number_ = f"epochs to fit: real data {mean_std(real, 1)}; " + "; ".join(f"{name.split(' (')[0]} {mean_std(epochs, 1)} ({_every(signs[name], 'longer')})" for name, epochs in noise.items())
    return Finding(verdict(signs.values()), number_ + f" ({len(p['seeds'])} seeds)")


def _dropout_slows_memorization(context: Context) -> Finding:
    """Chapter 08: at an epoch every regularized run reached, dropout takes more off the corrupted
    examples' accuracy on their given labels than off the clean examples', in every seed."""
    p = context.parameters(CH08)
    regularized = context.config(CH08).replace(corruption_degree=p["regularization_degree"], max_epochs=p["regularization_epochs"])
    dropouts = [dynamics.setting_label(regularized.replace(**s), noise=False) for s in p["regularizers"] if set(s) == {"dropout"}]
    if not dropouts:
        return _untested("chapter 8's `regularizers` hold no dropout run")
    settings = [{}, *p["regularizers"]]
    runs_ = context.result("08 regularized runs", lambda: [runs.run(regularized.replace(seed=seed, **s), **context.cache) for s in settings for seed in p["seeds"]])
    common = int(runs.summary_table(runs_).epochs.min())
    effects = dynamics.regularizer_effects(runs_, epoch=common)
    at = dynamics.settings_summary(runs_, noise=False, epoch=common)
    base = at.index[0]
    number_ = f"at epoch {common}, $p = {p['regularization_degree']:g}$: corrupted labels fitted {accuracy(at.loc[base, 'corrupted (given)'])} and clean {accuracy(at.loc[base, 'clean'])} without; " + "; ".join(
        f"with {name}, {accuracy(at.loc[name, 'corrupted (given)'])} and {accuracy(at.loc[name, 'clean'])} ({_every(effects.slows[name], 'more off the corrupted')})" for name in dropouts
    )
    return Finding(verdict(effects.slows[dropouts]), number_ + f" ({len(p['seeds'])} seeds)")


def _checkpointed_grid(context: Context) -> list:
    return context.grid(CH09, checkpoints=True)


def _memorization_in_deep_layers(context: Context) -> Finding:
    """Chapter 09: the radius of the manifolds of the memorized labels (corrupted examples, given
    labels), at the last epoch over the untrained network's, falls below 1 at the last hidden
    layer and below its value at the first hidden layer (one run per seed, no interval)."""
    p = context.parameters(CH09)
    grid = _checkpointed_grid(context)
    degrees = _noisy(p["degrees"])
    if not degrees:
        return _untested("chapter 9's degrees hold no corrupted degree")
    rows = context.result("09 manifolds", lambda: layer_manifolds.manifold_grid(grid, epochs=p["manifold_epochs"], points_per_class=p["points_per_class"], n_t=p["n_t"]))
    ratio = layer_manifolds.manifold_ratios(rows, "radius").set_index(["group", "layer", "corruption_degree"]).ratio
    hidden = decoding.hidden_layers(grid[0])
    first, last = hidden[0], hidden[-1]
    given = list(layer_manifolds.MANIFOLD_GROUPS)[1]  # the corrupted examples by their given labels
    signs = [1 if dynamics.apart(ratio[given, last, q], [1]) == -1 and ratio[given, last, q] < ratio[given, first, q] else 0 for q in degrees]
    number_ = "radius of the memorized labels' manifolds, last epoch over untrained, " + "; ".join(f"{_degree(q)}: `{last}` {number(ratio[given, last, q], 2)} vs `{first}` {number(ratio[given, first, q], 2)}" for q in degrees)
    return Finding(verdict(signs), number_ + f" ({len(p['seeds'])} seed{'s' if len(p['seeds']) > 1 else ''}, no interval)")


def _rewinding_restores(context: Context) -> Finding:
    """Chapter 09: the best partial rewinding (``L`` and epoch chosen on the validation part)
    against the memorized network, over holdout images and seeds."""
    p = context.parameters(CH09)
    grid = _checkpointed_grid(context)
    if not _noisy(p["degrees"]) or not p["rewind_epochs"]:
        return _untested("chapter 9 rewinds to no epoch, or has no corrupted degree")
    rewindings = context.result("09 rewindings", lambda: rewinding.rewinding_grid(grid, epochs=p["rewind_epochs"]))
    recoveries = context.result("09 recoveries", lambda: recovery.recovery_grid(grid, rewindings, p["relabel_methods"]))
    against = recovery.recovery_differences(recoveries, "memorized")
    verdicts = rewinding.rewinding_verdicts(rewinding.rewinding_differences(rewindings))
    alone = verdicts[(verdicts.layers_rewound == 1) & (verdicts.reference == "memorized")].set_index("corruption_degree")  # the output layer alone
    rewound = against[against.recovery == "rewound"]
    table = recoveries.reset_index(level="recovery")
    mean = table.groupby(["recovery", "corruption_degree"])["holdout accuracy"].mean()
    n_layers = len(models.weight_layers(grid[0].model))
    chosen = table[table.recovery == "rewound"].choice.str.replace(r"^L = (\d+)", rf"L = \1 of {n_layers}", regex=True)  # "L = 3 of 5, epoch 1"
    choice = chosen.groupby(table[table.recovery == "rewound"].corruption_degree).agg(lambda c: " / ".join(dict.fromkeys(c)))
    number_ = "; ".join(
        f"{_degree(d.corruption_degree)}: {_vs(f'best rewinding ({choice[d.corruption_degree]})', mean['rewound', d.corruption_degree], 'memorized', mean['memorized', d.corruption_degree], d)}"
        + (f", the output layer alone above it at {alone.above[d.corruption_degree]} of {alone.epochs[d.corruption_degree]} epochs" if d.corruption_degree in alone.index else "")
        for d in rewound.itertuples()
    )
    return Finding(verdict(rewound.sign), number_, _effects([dict(comparison=f"p = {d.corruption_degree:g}", difference=d.difference, low=d.low, high=d.high) for d in rewound.itertuples()]))



CH10 = "10_weight_editing"


def _edited_grid(context: Context) -> list:
    return context.grid(CH10, checkpoints=True)


def _masc_is_quadratic(context: Context) -> Finding:
    """Chapter 10: on every layer of its most corrupted run, the smallest angle and the largest
    quadratic form ``xᵀP_c x / xᵀx`` pick the same class on every test image."""
    run_ = _edited_grid(context)[-1]
    checks = context.result("10 rule checks", lambda: decoding.rule_checks(run_))
    signs = [1 if same == 1 else 0 for same in checks.quadratic_same]
    return Finding(verdict(signs), f"same class on {sum(signs)} of {len(signs)} layers' {checks.n_points.iloc[0]} test images at {_degree(run_.config.corruption_degree)}; "
                   f"largest gap between $\\cos^2\\theta$ and the quadratic form {checks.quadratic_gap.max():.1e}")


def _velpic_beats_masc(context: Context) -> Finding:
    """Chapter 10: VeLPIC against MASC, each at its validated best hidden layer, corrupted labels.
    The claim is that VeLPIC *sometimes* decodes more: it holds when it does at some degree."""
    grid = _edited_grid(context)
    decoded = context.result("10 decoded", lambda: decoding.evaluation_grid(grid, probes=("masc", "velpic"), fit_labels="corrupted"))
    best = decoding.best_layer_scores(decoded, layers=decoding.hidden_layers(grid[0]), selections=("validated",)).assign(baseline=lambda t: t.probe.map(PROBE_NAMES))
    against = paired_differences(best, "MASC")
    mean = best.groupby(["baseline", "corruption_degree"]).accuracy.mean()
    signs = against.sign.tolist()
    sometimes = 1 if 1 in signs else -1 if signs and all(s == -1 for s in signs) else 0
    number_ = "; ".join(f"{_degree(d.corruption_degree)}: {_vs('VeLPIC', mean['VeLPIC', d.corruption_degree], 'MASC', mean['MASC', d.corruption_degree], d)}" for d in against.itertuples())
    return Finding(verdict([sometimes] if signs else []), number_, _effects([dict(comparison=f"p = {d.corruption_degree:g}", difference=d.difference, low=d.low, high=d.high) for d in against.itertuples()]))


def _edit_is_the_probe(context: Context) -> Finding:
    """Chapter 10: the network with VeLPIC written into its last layer predicts VeLPIC's class on
    every test image (each run's final network)."""
    grid = _edited_grid(context)
    agreement = context.result("10 agreement", lambda: pd.concat([editing.edit_agreement(r, readouts=("velpic",)) for r in grid], ignore_index=True))
    signs = [1 if same == 1 else 0 for same in agreement.same]
    return Finding(verdict(signs), f"the edited network predicts VeLPIC's class on {listing(f'{number(100 * x, 1)} %' for x in agreement.same)} of the {agreement.n_points.iloc[0]} test images "
                   f"({len(agreement)} run{'s' if len(agreement) > 1 else ''}); largest logit gap {agreement.largest_gap.max():.1e}")


def _edit_lifts_the_network(context: Context) -> Finding:
    """Chapter 10: the memorized network edited with VeLPIC against the same network unedited,
    at each run's last epoch, over holdout images and seeds."""
    grid = _edited_grid(context)
    edits = context.result("10 edits", lambda: editing.editing_grid(grid, readouts=("velpic",)))
    against = editing.edit_differences(edits)
    mean = editing.scored_at(edits).groupby(["readout", "corruption_degree"]).accuracy.mean()
    number_ = "; ".join(f"{_degree(d.corruption_degree)}: {_vs('edited', mean['velpic', d.corruption_degree], 'memorized', mean[editing.UNEDITED, d.corruption_degree], d)}" for d in against.itertuples())
    return Finding(verdict(against.sign), number_, _effects([dict(comparison=f"p = {d.corruption_degree:g}", difference=d.difference, low=d.low, high=d.high) for d in against.itertuples()]))


CLAIMS = (
    Claim("memorization", "ketha2025", "Networks trained on partly random labels fit all of them, and their test accuracy falls below that of the network trained on clean labels.",
          CH02, "Memorization: the training labels are fit, the test set is not", _memorization, "memorizing costs test accuracy"),
    Claim("masc_beats_network", "ketha2025", "MASC on a hidden layer, fitted with the corrupted labels, decodes a higher test accuracy than the memorizing network itself.",
          CH05, "The headline and its baselines", _masc_beats_network, "MASC beats the network"),
    Claim("true_labels_decode_more", "ketha2025", "Fitted with the true labels instead, MASC decodes more still.",
          CH05, "The headline and its baselines", _true_labels_decode_more, "true labels decode more"),
    Claim("beats_untrained", "ketha2025", "(Implied) What MASC decodes is generalization the trained network keeps: more than MASC decodes from the same network untrained.",
          CH05, "The headline and its baselines", _beats_untrained, "MASC beats MASC untrained"),
    Claim("relabel_improves", "ketha2025", "Relabelling the training set with MASC's labels and fine-tuning lifts the memorized network's test accuracy.",
          CH06, "Accuracy before and after", _relabel_improves, "relabel + retrain helps"),
    Claim("published_table", "ketha2025", "At the paper's full size (its table of 8 model–dataset pairs), MASC with corrupted-label subspaces decodes more than the network.",
          CH07, "Side by side with the paper", _published_table, "the paper's table"),
    Claim("clean_first", "arpit2017", "Networks learn the clean examples before they memorize the noisy ones.",
          CH08, "When each example is learned", _clean_first, "clean examples first"),
    Claim("real_before_noise", "arpit2017", "Real data are fitted in fewer epochs than noise (random labels, permuted labels, random inputs).",
          CH08, "Real data against noise", _real_before_noise, "real data before noise"),
    Claim("dropout_slows_memorization", "arpit2017", "Dropout slows the memorization of noisy labels more than the learning of clean ones.",
          CH08, "Does regularization slow memorization more than learning?", _dropout_slows_memorization, "dropout slows memorization"),
    Claim("memorization_in_deep_layers", "stephenson2021", "Memorization happens in the deeper layers: the manifolds of the memorized labels shrink in the last layer, less in the first.",
          CH09, "Where memorization happens", _memorization_in_deep_layers, "memorization in deep layers"),
    Claim("rewinding_restores", "stephenson2021", "Rewinding the last layers of a memorized network to an early epoch brings its test accuracy back up.",
          CH09, "Rewinding the last layers", _rewinding_restores, "rewinding restores"),
    Claim("masc_quadratic", "ketha2026", "MASC is a quadratic classifier: its smallest angle is the largest xᵀP_c x / xᵀx.",
          CH10, "MASC is a quadratic rule", _masc_is_quadratic, "MASC is quadratic"),
    Claim("velpic_beats_masc", "ketha2026", "A linear probe, VeLPIC (each class's top direction), sometimes decodes more than MASC.",
          CH10, "VeLPIC, a linear rule", _velpic_beats_masc, "VeLPIC beats MASC (sometimes)"),
    Claim("edit_is_the_probe", "ketha2026", "Written into the last layer, VeLPIC's class vectors make the network predict what VeLPIC predicts.",
          CH10, "Writing the readout into the last layer", _edit_is_the_probe, "the edit is the probe"),
    Claim("edit_lifts_network", "ketha2026", "The edit gives the memorized network a higher test accuracy without retraining.",
          CH10, "Writing the readout into the last layer", _edit_lifts_the_network, "the edit lifts the network"),
)
"""The claims the table judges, in order within each paper (the table groups them by paper in
the order of :data:`PAPERS`)."""


# --- the table, its figure and its sentence ----------------------------------------------------


def _ordered(claims) -> list[Claim]:
    order = list(PAPERS)
    unknown = [c.key for c in claims if c.paper not in PAPERS]
    if unknown:
        raise ValueError(f"Claim(s) {', '.join(unknown)} name a paper not in PAPERS ({', '.join(PAPERS)}).")
    return sorted(claims, key=lambda c: order.index(c.paper))  # stable: registry order within a paper


def claims_table(overrides: dict | None = None, *, context: Context | None = None, claims=None, **cache) -> pd.DataFrame:
    """Every claim with the book's verdict, the number behind it and where the book shows it.

    Parameters
    ----------
    overrides : dict, optional
        Chapter parameters to change (:class:`Context`); ignored when ``context`` is given.
    context : Context, optional
        A context to reuse (its results are computed once for the table and the figure).
    claims : iterable of Claim, optional
        Default :data:`CLAIMS`.
    **cache
        ``artifacts_dir``, ``data_root``, ``device`` (:class:`Context`).

    Returns
    -------
    DataFrame
        Indexed by the claim's ``key``, grouped by paper in the order of :data:`PAPERS`: ``paper``
        (its name), ``claim``, ``verdict`` (one of :data:`VERDICTS`), ``number`` (Markdown),
        ``section`` (a Markdown link, :func:`section_link`) and ``label`` (the claim in a few words).
    """
    claims = _ordered(CLAIMS if claims is None else claims)
    context = context if context is not None else Context(overrides, claims=claims, **cache)
    rows = []
    for claim in claims:
        found = context.finding(claim)
        rows.append({"key": claim.key, "paper": PAPERS[claim.paper], "claim": claim.claim, "verdict": found.verdict, "number": found.number,
                     "section": section_link(claim.chapter, claim.section), "label": claim.label})
    return pd.DataFrame(rows, columns=["key", "paper", "claim", "verdict", "number", "section", "label"]).set_index("key")


def claims_effects(context: Context, claims=None) -> pd.DataFrame:
    """The accuracy differences behind the claims that have paired intervals, one row per
    comparison, oriented so that positive is the claimed direction: ``paper``, ``claim``
    (its ``label``), ``comparison`` (``"p = 0.8"``), ``difference``, ``low``, ``high``, ``verdict``."""
    frames = []
    for claim in _ordered(CLAIMS if claims is None else claims):
        found = context.finding(claim)
        if found.effects is not None and len(found.effects):
            frames.append(found.effects.assign(paper=PAPERS[claim.paper], claim=claim.label, verdict=found.verdict))
    columns = ["paper", "claim", "comparison", "difference", "low", "high", "verdict"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def effects_plot(effects: pd.DataFrame, ax=None, title: str = "Each comparison in the claim's direction, with its 95 % interval"):
    """:func:`claims_effects` as dots with their intervals: a row per claim, a colour per
    comparison (degree), the zero line marked; returns the Axes."""
    import matplotlib.pyplot as plt

    claims_ = list(dict.fromkeys(effects.claim))
    comparisons = list(dict.fromkeys(effects.comparison))
    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 0.45 * max(len(claims_), 1) + 1.4))
    colours = plt.get_cmap("tab10").colors
    step = 0.5 / max(len(comparisons), 1)
    for j, comparison in enumerate(comparisons):
        part = effects[effects.comparison == comparison]
        y = np.array([claims_.index(c) for c in part.claim]) + (j - (len(comparisons) - 1) / 2) * step
        ax.errorbar(part.difference, y, xerr=[part.difference - part.low, part.high - part.difference], fmt="o", color=colours[j % 10], capsize=3, label=comparison)
    ax.axvline(0, color="0.4", lw=1, ls="--")
    ax.set_yticks(range(len(claims_)), claims_)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy difference, positive in the claimed direction")
    ax.set_title(title)
    if comparisons:
        ax.legend(title="comparison", loc="best", fontsize="small", title_fontsize="small")
    return ax


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: pd.DataFrame) -> str:
    """:func:`claims_table` as a Markdown table (the links and math of its cells render; the paper
    is named once, on its first row)."""
    columns = ["paper", "claim", "verdict", "number", "section"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    previous = None
    for _, row in table.iterrows():
        paper_ = f"**{row.paper}**" if row.paper != previous else ""
        previous = row.paper
        lines.append("| " + " | ".join(_cell(v) for v in [paper_, row.claim, f"*{row.verdict}*", row.number, row.section]) + " |")
    return "\n".join(lines)


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    """How many claims of each paper got each verdict: a row per paper (in the table's order),
    a column per verdict of :data:`VERDICTS`."""
    counts = pd.crosstab(table.paper, table.verdict).reindex(index=list(dict.fromkeys(table.paper)), columns=list(VERDICTS), fill_value=0)
    return counts.rename_axis(index=None, columns=None)


VERDICT_COLOURS = {"holds": "#1b9e77", "holds in part": "#e6ab02", "does not hold here": "#d95f02", "not tested here": "#999999"}
"""The colour of each verdict in :func:`verdict_plot`."""


def verdict_plot(table: pd.DataFrame, ax=None, title: str = "The verdicts, paper by paper"):
    """:func:`verdict_counts` as stacked horizontal bars, a bar per paper (in the table's order)
    and a colour per verdict; returns the Axes."""
    import matplotlib.pyplot as plt

    counts = verdict_counts(table)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 0.5 * len(counts) + 1.5))
    left = np.zeros(len(counts))
    for verdict_ in VERDICTS:
        ax.barh(range(len(counts)), counts[verdict_], left=left, color=VERDICT_COLOURS[verdict_], label=verdict_, edgecolor="white")
        left += counts[verdict_].to_numpy()
    ax.set_yticks(range(len(counts)), counts.index)
    ax.invert_yaxis()
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("claims")
    ax.set_title(title)
    ax.legend(title="verdict", loc="lower right", fontsize="small", title_fontsize="small")
    return ax


def verdict_summary(table: pd.DataFrame) -> str:
    """The verdicts counted per paper, a sentence each (``"Arpit et al. (2017): of 3 claims, 2
    hold and 1 holds in part."``), then the claims that do not hold in full, by their labels."""
    words = {"holds": ("holds", "hold"), "holds in part": ("holds in part", "hold in part"), "does not hold here": ("does not hold here", "do not hold here"),
             "not tested here": ("is not tested here", "are not tested here")}
    sentences = []
    for name, counts in verdict_counts(table).iterrows():
        total = int(counts.sum())
        parts = [f"{n} {words[v][int(n != 1)]}" for v, n in counts.items() if n]
        sentences.append(f"{name}: {'of ' + str(total) + ' claims, ' + listing(parts) if total != 1 else 'its one claim ' + parts[0].split(' ', 1)[1]}.")
    for verdict_ in VERDICTS[1:]:
        labels = table.label[table.verdict == verdict_]
        if len(labels):
            sentences.append(f"{verdict_.capitalize()}: {listing(f'*{label}*' for label in labels)}.")
    return " ".join(sentences)


def _chapters(numbers) -> str:
    numbers = [str(int(chapter[:2])) for chapter in numbers]
    return f"chapter{'s' if len(numbers) > 1 else ''} {listing(numbers)}"


def settings_summary(context: Context) -> str:
    """Which runs the rows rest on, in a sentence, from the chapters' parameters: the model,
    dataset and training subset of the chapters that train, their seeds, and the committed sweeps
    chapter 07 reads."""
    trained = [c for c in context.chapters if "model" in context.parameters(c)]
    setups, seeds = {}, {}
    for chapter in trained:
        p = context.parameters(chapter)
        setups.setdefault((p["model"], p["dataset"], p["subset"]), []).append(chapter)
        seeds.setdefault(tuple(p["seeds"]), []).append(chapter)
    runs_text = listing(
        f"the `{model}` trained on `{dataset}` ({'every training image' if subset is None else f'{subset} training images'}) in {_chapters(chapters)}"
        for (model, dataset, subset), chapters in setups.items()
    )
    seeds_text = listing(f"seed{'s' if len(s) > 1 else ''} {listing(map(str, s))} in {_chapters(chapters)}" for s, chapters in seeds.items())
    sentence = f"The rows rest on {runs_text}, with {seeds_text}." if trained else ""
    if CH07 in context.chapters and context.parameters(CH07)["reports"]:
        sweeps = listing(f"`{name}`" for name in context.parameters(CH07)["reports"])
        sentence += f" The row of {_chapters([CH07])} reads the committed sweep{'s' if len(context.parameters(CH07)['reports']) > 1 else ''} {sweeps}."
    return sentence.strip()
