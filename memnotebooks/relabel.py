"""Relabel the training set with a decoder's predictions and fine-tune the memorized network.

The paper's protocol (Ketha & Ramaswamy 2025; DESIGN, "Relabel and retrain"): split the test
set into a validation part and a holdout part (:func:`memnotebooks.data.validation_split`,
20/80 by default); choose a layer by the decoder's accuracy on the validation part; relabel the
*training* set with that layer's predictions; fine-tune the memorized network on the new labels
with its own optimizer settings and a fresh optimizer state, every layer trainable, stopping
when the validation accuracy has not strictly improved for ``patience`` epochs (at most
``max_epochs``); report the holdout accuracy of the epoch that was best on the validation part,
next to the memorized model's. (The published code keeps the weights of the last epoch; here the
kept epoch is the best one on the validation part, and the table says which.)

Methods (:func:`methods` lists them):

``masc_corrupted``, ``masc_true``
    The paper's: MASC fitted on the training activations of the chosen layer, with the corrupted
    or with the true labels, predicting the very points it was fitted on (*in-sample*).
``masc_crossfit``
    MASC with corrupted-label subspaces, *out of fold*: each of ``folds`` folds of the training
    set is relabelled by subspaces fitted on the other folds, so no point votes for its own label.
``<probe>``, ``<probe>_crossfit``
    The same with any other probe of :data:`memnotebooks.probes.PROBES` (``nearest_mean``, ...),
    fitted on the corrupted labels, in-sample or out of fold.
``best_probe_crossfit``
    Out of fold, with the probe other than MASC and the layer that score best on the validation
    part (fitted on the corrupted labels).
``cleanlab``
    No relabelling: the points that cleanlab's ``find_label_issues`` flags (confident learning,
    from out-of-fold class probabilities of ``cleanlab_probe`` on the chosen layer; with
    ``cleanlab_probe="best"``, of the probe with class probabilities and the layer that score
    best on the validation part) are dropped, and the network is fine-tuned on the rest.
``true_labels``, ``corrupted_labels``
    Fine-tuning on the true labels (what a perfect relabelling gives: the upper bound) and on the
    labels it memorized (the lower bound).
``self_predictions``
    The memorized network's own predictions as the new labels.
``early_stopped``
    No relabelling and no memorized model: the network trained from its initial weights on the
    corrupted labels as in the run (same seed, settings and target), stopped by the same early
    stopping on the validation part, with the weights of its best epoch. The baseline every
    repair must beat.

A layer is chosen for each decoding method by its own probe and fitting labels, among
``layers`` (default: all probe layers, the input included), unless ``layer`` fixes it. Every
choice made on the validation part (the layer, the probe, the kept epoch) reads that part's
*true* labels: the protocol assumes a small clean validation set.

``start="scratch"`` trains on each method's labels from the run's initial weights instead of
fine-tuning the memorized network (as ``early_stopped`` does on the corrupted labels, with the
same stopping rule and the run's epoch cap): confident learning's own recipe retrains from
scratch, and a network that never memorized the dropped points has nothing of them to forget.

Fine-tuning and retraining use every training setting of the run's :class:`RunConfig`
(:meth:`~memnotebooks.runs.RunConfig.training_settings`: optimizer, learning rate, momentum, weight decay, batch size, seed;
dropout and width are in the model). :func:`relabel_table` adds each row's per-image hits on the
holdout part, before and after (:func:`memnotebooks.uncertainty.pack_hits`), read from the cached
weights, so that two methods can be compared on the same images (:func:`scores`). Every
method's result (a one-row table, the new labels, the fine-tuning history and the fine-tuned
weights) is cached in the run's folder under its recipe (:func:`memnotebooks.store.cached_table`),
written in one atomic step: a second call recomputes nothing, and an interrupted fine-tuning
leaves nothing behind.
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .activations import check_layers, extract_activations
from .checks import integer, one_of, real
from .data import VALIDATION_FRACTION, VALIDATION_SEED, validation_split
from .decoding import evaluate_layer
from .masc import check_variance_threshold
from .probes import PROBE_NAMES, PROBES, fit_probe, out_of_fold_predictions, probe_predictions, probe_recipe
from .runs import Run, build_run_model, config_columns
from .store import cached_table, table_folder
from .tables import difference_table, mean_std_table, paired_differences
from .training import EarlyStopping, predict, train
from .uncertainty import Difference, pack_hits, paired_bootstrap, unpack_hits

__all__ = [
    "BEFORE",
    "DEFAULT_METHODS",
    "METHOD_NAMES",
    "STARTS",
    "LABEL_COLUMNS",
    "LABEL_STATISTICS",
    "accuracy_table",
    "comparison_table",
    "decoders_table",
    "difference",
    "label_table",
    "RelabelSettings",
    "label_statistics",
    "method_name",
    "methods",
    "relabel_grid",
    "relabel_table",
    "relabelled_labels",
    "relabelled_model",
    "scores",
]

_FIXED_METHODS = (
    "early_stopped",
    "corrupted_labels",
    "self_predictions",
    "masc_corrupted",
    "masc_true",
    "masc_crossfit",
    "best_probe_crossfit",
    "cleanlab",
    "true_labels",
)
_OTHER_PROBES = tuple(name for name in PROBES if name != "masc")
_PROBABILISTIC = tuple(name for name in _OTHER_PROBES if PROBES[name].probabilistic)
STARTS = ("memorized", "scratch")
"""Where training on the new labels starts: the memorized network (the paper's fine-tuning) or
the run's initial weights."""

DEFAULT_METHODS = (
    "early_stopped",
    "corrupted_labels",
    "masc_corrupted",
    "masc_true",
    "masc_crossfit",
    "nearest_mean",
    "best_probe_crossfit",
    "cleanlab",
    "true_labels",
)
"""What :func:`relabel_table` runs when ``methods`` is not given."""


METHOD_NAMES = {
    "early_stopped": "network stopped early",
    "corrupted_labels": "corrupted labels",
    "self_predictions": "network's own predictions",
    "masc_corrupted": "MASC, in-sample",
    "masc_true": "MASC on true labels, in-sample",
    "masc_crossfit": "MASC, out of fold",
    "best_probe_crossfit": "best other probe, out of fold",
    "cleanlab": "cleanlab (flagged points dropped)",
    "true_labels": "true labels",
    **{name: f"{PROBE_NAMES[name]}, in-sample" for name in _OTHER_PROBES},
    **{f"{name}_crossfit": f"{PROBE_NAMES[name]}, out of fold" for name in _OTHER_PROBES},
}
"""Each method in words, for tables, legends and sentences (:func:`method_name`)."""


def method_name(method: str, start: str = "memorized") -> str:
    """``method`` in words (:data:`METHOD_NAMES`), with ", from scratch" when its network was
    trained from the initial weights (``early_stopped`` always is, and says so already)."""
    name = METHOD_NAMES.get(method, method)
    return f"{name}, from scratch" if start == "scratch" and method != "early_stopped" else name

LABEL_STATISTICS = {
    "labels_changed": "share of training points whose label the method changes or drops",
    "wrong_fixed": "share of the wrongly labelled points relabelled to their true class",
    "correct_broken": "share of the correctly labelled points relabelled to a wrong class",
    "wrong_dropped": "share of the wrongly labelled points dropped (cleanlab)",
    "correct_dropped": "share of the correctly labelled points dropped (cleanlab)",
    "label_accuracy": "share of the labels fine-tuned on that equal the true class",
}
"""The label statistics of :func:`label_statistics`, in words."""


def methods() -> list[str]:
    """Every method name :func:`relabel_table` accepts."""
    return [*_FIXED_METHODS, *_OTHER_PROBES, *(f"{name}_crossfit" for name in _OTHER_PROBES)]


@dataclass(frozen=True)
class _Decoder:
    """How a decoding method makes labels: which probe (or ``"best"``), fitted on which labels,
    in-sample or out of fold, relabelling or dropping."""

    probe: str
    fit_labels: str = "corrupted"
    crossfit: bool = False
    drop: bool = False


def _decoder(method: str, cleanlab_probe: str) -> _Decoder | None:
    """The decoder of ``method``; ``None`` for the methods that decode nothing."""
    if method in ("early_stopped", "corrupted_labels", "true_labels", "self_predictions"):
        return None
    fixed = {
        "masc_corrupted": _Decoder("masc"),
        "masc_true": _Decoder("masc", fit_labels="true"),
        "masc_crossfit": _Decoder("masc", crossfit=True),
        "best_probe_crossfit": _Decoder("best", crossfit=True),
        "cleanlab": _Decoder(cleanlab_probe, crossfit=True, drop=True),  # "best": the best with probabilities
    }
    if method in fixed:
        return fixed[method]
    probe, crossfit = (method.removesuffix("_crossfit"), True) if method.endswith("_crossfit") else (method, False)
    return _Decoder(probe, crossfit=crossfit)


@dataclass(frozen=True)
class RelabelSettings:
    """The protocol's settings, validated.

    Parameters
    ----------
    layer : str, optional
        Relabel from this probe layer; default: each method chooses among ``layers`` on the
        validation part.
    layers : list of str, optional
        The layers a method chooses among; default all probe layers.
    variance_threshold : float in (0, 1]
        MASC's.
    folds : int >= 2
        Folds of the out-of-fold methods (and of cleanlab's probabilities).
    cleanlab_probe : str
        The probe whose out-of-fold probabilities cleanlab reads (one with ``predict_proba``), or
        ``"best"``: the one of those (and the layer) that scores best on the validation part.
    patience : int >= 1
        Epochs without a strict improvement of the validation accuracy before stopping.
    max_epochs : int >= 1
        Fine-tuning epoch cap.
    validation_fraction : float in (0, 1)
        Share of the test set in the validation part.
    start : {"memorized", "scratch"}
        Fine-tune the memorized network (the paper's), or train from the run's initial weights
        with the run's epoch cap (``max_epochs`` then applies to fine-tuning only).
    best_probes : tuple of str
        The probes the ``best_probe`` methods (and ``cleanlab_probe="best"``, among those with
        class probabilities) choose among; named here, so that a probe added to
        :data:`memnotebooks.probes.PROBES` changes no result until it is named.
    """

    layer: str | None = None
    layers: tuple[str, ...] | None = None
    variance_threshold: float = 0.99
    folds: int = 5
    cleanlab_probe: str = "logistic"
    patience: int = 3
    max_epochs: int = 30
    validation_fraction: float = VALIDATION_FRACTION
    start: str = "memorized"
    best_probes: tuple[str, ...] = ("logistic", "knn", "nearest_mean", "lda", "qda")

    def __post_init__(self):
        check_variance_threshold(self.variance_threshold)
        real("validation_fraction", self.validation_fraction, 0, 1, low_open=True, high_open=True)
        for name, low in (("folds", 2), ("patience", 1), ("max_epochs", 1)):
            integer(name, getattr(self, name), low=low)
        if self.cleanlab_probe not in (*_PROBABILISTIC, "best"):
            raise ValueError(f"Unknown cleanlab_probe {self.cleanlab_probe!r}; choose one with class probabilities: {', '.join(_PROBABILISTIC)}, or best.")
        if self.start not in STARTS:
            raise ValueError(f"Unknown start {self.start!r}; choose one of: {', '.join(STARTS)}.")
        if self.layers is not None:
            object.__setattr__(self, "layers", (self.layers,) if isinstance(self.layers, str) else tuple(self.layers))
        object.__setattr__(self, "best_probes", (self.best_probes,) if isinstance(self.best_probes, str) else tuple(self.best_probes))
        for probe in self.best_probes:
            one_of("best_probes entry", probe, _OTHER_PROBES)

    def recipe(self, method: str) -> dict:
        """What determines ``method``'s result: the method and the settings it uses."""
        decoder = _decoder(method, self.cleanlab_probe)
        recipe = {
            "method": method,
            "patience": self.patience,
            "validation_fraction": self.validation_fraction,
            "validation_seed": VALIDATION_SEED,
        }
        if method != "early_stopped" and self.start == "memorized":
            recipe["max_epochs"] = self.max_epochs
        if method != "early_stopped" and self.start == "scratch":  # keyed only then: fine-tunings keep their keys
            recipe["start"] = self.start
        if decoder is not None:
            recipe.update(layer=self.layer, layers=self.layers)
            probes = _candidates(decoder, self)
            recipe["probes"] = [probe_recipe(name, **self.probe_params(name)) for name in probes]
            if decoder.crossfit:
                recipe["folds"] = self.folds
        return recipe

    def probe_params(self, name: str) -> dict:
        """Parameters of probe ``name`` (MASC's variance threshold)."""
        return {"variance_threshold": float(self.variance_threshold)} if name == "masc" else {}


def label_statistics(true_labels, given_labels, new_labels, kept=None) -> dict:
    """How a relabelling changes the training labels (:data:`LABEL_STATISTICS`).

    Parameters
    ----------
    true_labels, given_labels, new_labels : array-like of shape (n_train,)
        The true labels, those the network was trained on, and the method's.
    kept : array-like of bool, shape (n_train,), optional
        Points kept for fine-tuning (default all).

    Returns
    -------
    dict of str to float
        NaN where a share has no points (e.g. ``wrong_fixed`` without wrong labels).
    """
    true, given, new = (np.asarray(labels) for labels in (true_labels, given_labels, new_labels))
    kept = np.ones(len(true), dtype=bool) if kept is None else np.asarray(kept, dtype=bool)
    wrong = given != true

    def share(hits, among):
        return float(hits[among].mean()) if among.any() else float("nan")

    return {
        "labels_changed": share((new != given) | ~kept, np.ones_like(kept)),
        "wrong_fixed": share(kept & (new == true), wrong),
        "correct_broken": share(kept & (new != true), ~wrong),
        "wrong_dropped": share(~kept, wrong),
        "correct_dropped": share(~kept, ~wrong),
        "label_accuracy": share(new == true, kept),
    }


def _candidates(decoder: _Decoder, settings: RelabelSettings) -> tuple[str, ...]:
    """The probes a decoder chooses among: its own, or for ``"best"`` the settings' ``best_probes``
    (those with class probabilities, for cleanlab)."""
    if decoder.probe != "best":
        return (decoder.probe,)
    return tuple(p for p in settings.best_probes if p in _PROBABILISTIC) if decoder.drop else settings.best_probes


class _Context:
    """What the methods of one run share: the validation split, the activations of the
    candidate layers (extracted once, on the run's device) and the memorized model's holdout
    accuracy (computed once)."""

    def __init__(self, run_: Run, settings: RelabelSettings):
        self.run, self.settings = run_, settings
        self.model = run_.model
        self.device = next(run_.model.parameters()).device
        self.y_test = run_.dataset.y_test.numpy()
        self.validation = validation_split(self.y_test, settings.validation_fraction)
        self.layers = check_layers(run_.model, settings.layer if settings.layer is not None else settings.layers)
        self._activations = None
        self._validation_accuracies = {}

    def activations(self, layer: str) -> dict:
        if self._activations is None:
            dataset = self.run.dataset
            self._activations = {
                source: extract_activations(self.model, x, self.layers, output_device=self.device)
                for source, x in (("train", dataset.x_train), ("test", dataset.x_test))
            }
        return {source: values[layer] for source, values in self._activations.items()}

    def hits(self, model: torch.nn.Module) -> np.ndarray:
        """Whether ``model`` predicts each holdout image right (bool, in test-set order)."""
        holdout = ~self.validation
        return predict(model, self.run.dataset.x_test).cpu().numpy()[holdout] == self.y_test[holdout]

    @functools.cached_property
    def accuracy_before(self) -> float:
        """The memorized model's accuracy on the holdout part."""
        return float(np.mean(self.hits(self.model)))

    def validation_accuracy(self, probe: str, layer: str, fit_labels: str) -> float:
        """Probe fitted on the layer's training activations with ``fit_labels``, scored on the
        validation part (each computed once per run)."""
        key = (probe, layer, fit_labels)
        if key not in self._validation_accuracies:
            self._validation_accuracies[key] = self._score(probe, layer, self.run.fit_labels(fit_labels))
        return self._validation_accuracies[key]

    def _score(self, probe: str, layer: str, labels: np.ndarray) -> float:
        y_validation = self.y_test[self.validation]
        sets = {("validation", "true"): ("test", self.validation, y_validation)}
        scores = evaluate_layer(self.activations(layer), sets, probe, labels, **self.settings.probe_params(probe))
        return float(scores.accuracy.iloc[0])  # NaN where the probe is not well posed

    def choose(self, decoder: _Decoder) -> tuple[str, str, float]:
        """The (probe, layer) with the best validation accuracy, and that accuracy."""
        probes = _candidates(decoder, self.settings)
        scored = [(self.validation_accuracy(p, layer, decoder.fit_labels), p, layer) for p in probes for layer in self.layers]
        scored = [entry for entry in scored if not np.isnan(entry[0])]
        if not scored:
            raise ValueError(f"Probe(s) {', '.join(probes)} are not well posed on layer(s) {', '.join(self.layers)}.")
        accuracy, probe, layer = max(scored, key=lambda entry: entry[0])  # first of the best on ties
        return probe, layer, accuracy


def _new_labels(context: _Context, method: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """The labels ``method`` fine-tunes on, the points it keeps, and how they were made."""
    run_, settings = context.run, context.settings
    given, true = run_.fit_labels("corrupted"), run_.fit_labels("true")
    kept = np.ones(len(given), dtype=bool)
    if method in ("early_stopped", "corrupted_labels"):
        return given, kept, {}
    if method == "true_labels":
        return true, kept, {}
    if method == "self_predictions":
        return predict(run_.model, run_.dataset.x_train).cpu().numpy(), kept, {}
    decoder = _decoder(method, settings.cleanlab_probe)
    fit_labels = run_.fit_labels(decoder.fit_labels)
    probe, layer, validation_accuracy = context.choose(decoder)
    train_activations = context.activations(layer)["train"]
    params = settings.probe_params(probe)
    how = {"probe": probe, "layer": layer, "probe_validation_accuracy": validation_accuracy}
    if decoder.drop:
        with warnings.catch_warnings():  # cleanlab imports tqdm.auto, which warns in a kernel without ipywidgets
            warnings.filterwarnings("ignore", message="IProgress not found")
            from cleanlab.filter import find_label_issues  # imported here: only this method needs it

        probabilities = out_of_fold_predictions(probe, train_activations, fit_labels, settings.folds, run_.config.seed, probabilities=True, **params)
        issues = find_label_issues(fit_labels, probabilities, n_jobs=1)
        return fit_labels, ~issues, how
    if decoder.crossfit:
        return out_of_fold_predictions(probe, train_activations, fit_labels, settings.folds, run_.config.seed, **params), kept, how
    return probe_predictions(fit_probe(probe, train_activations, fit_labels, **params), train_activations), kept, how


def _train(context: _Context, method: str, labels: np.ndarray, kept: np.ndarray, progress: bool):
    """Fine-tune a copy of the memorized model (or, for ``early_stopped`` and ``start="scratch"``,
    train the run's initial model) on ``labels[kept]``, early-stopped on the validation part."""
    run_, settings = context.run, context.settings
    config, dataset = run_.config, run_.dataset
    validation = torch.from_numpy(context.validation)
    early = EarlyStopping("test_validation_accuracy", patience=settings.patience)
    as_run = config.training_settings()  # the run's own optimizer, weight decay, batch size, seed
    if method == "early_stopped" or settings.start == "scratch":
        model, target = build_run_model(config, dataset), as_run["stop"]
        stop, max_epochs = (lambda history: early(history) or target(history)), as_run["max_epochs"]
    else:
        model, stop, max_epochs = copy.deepcopy(run_.model), early, settings.max_epochs
    rows = torch.from_numpy(kept)
    return model, train(
        model,
        dataset.x_train[rows],
        torch.from_numpy(labels)[rows],
        y_true=dataset.y_train[rows],
        corrupted=torch.from_numpy(run_.corrupted)[rows],
        evaluation_sets={"test": (dataset.x_test, dataset.y_test)},
        evaluation_parts={"test_validation": ("test", validation), "test_holdout": ("test", ~validation)},
        keep_best="test_validation_accuracy",
        device=context.device,
        **{**as_run, "stop": stop, "max_epochs": max_epochs, "checkpoint_epochs": ()},
        progress=progress,
    )


def _relabel(context: _Context, method: str, progress: bool):
    """One method's one-row table and the files cached with it."""
    run_ = context.run
    labels, kept, how = _new_labels(context, method)
    model, result = _train(context, method, labels, kept, progress)
    history = result.history
    best = history.set_index("epoch").loc[result.best_epoch]
    row = {
        "method": method,
        "probe": how.get("probe", ""),
        "layer": how.get("layer", ""),
        "probe_validation_accuracy": how.get("probe_validation_accuracy", float("nan")),
        "accuracy_before": context.accuracy_before,
        "accuracy_after": float(best["test_holdout_accuracy"]),
        "validation_after": float(best["test_validation_accuracy"]),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "n_trained": int(kept.sum()),
        **label_statistics(run_.fit_labels("true"), run_.fit_labels("corrupted"), labels, kept),
    }
    files = {
        "labels.npz": lambda path: np.savez(path, labels=labels, kept=kept),
        "history.csv": lambda path: history.to_csv(path, index=False),
        "model.pt": lambda path: torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path),
    }
    return pd.DataFrame([row]), files


def _check_methods(run_: Run, methods_) -> list[str]:
    methods_ = [methods_] if isinstance(methods_, str) else list(DEFAULT_METHODS if methods_ is None else methods_)
    unknown = [m for m in methods_ if m not in methods()]
    if unknown:
        raise ValueError(f"Unknown relabelling method(s) {unknown}; choose from: {', '.join(methods())}.")
    corrupted_fit = [m for m in methods_ if m == "corrupted_labels" or getattr(_decoder(m, "logistic"), "fit_labels", None) == "corrupted"]
    if corrupted_fit and np.array_equal(run_.fit_labels("corrupted"), run_.fit_labels("true")):
        raise ValueError(
            f"The run {run_.config} was trained on its true labels (corruption degree "
            f"{run_.config.corruption_degree:g}, mode {run_.config.corruption_mode!r}), so the corrupted-label "
            f"method(s) {corrupted_fit} would equal their true-label counterparts; run them on a corrupted run, "
            "or ask for early_stopped, self_predictions, masc_true or true_labels only."
        )
    return methods_


def relabel_table(run_: Run, methods=None, *, progress: bool = False, **settings) -> pd.DataFrame:
    """Relabel ``run_``'s training set by each method, fine-tune, and score (see the module).

    Parameters
    ----------
    run_ : Run
        A run trained on corrupted labels.
    methods : list of str, optional
        From :func:`methods`; default :data:`DEFAULT_METHODS`.
    progress : bool
        Show fine-tuning progress.
    **settings
        :class:`RelabelSettings` (``layer``, ``layers``, ``variance_threshold``, ``folds``,
        ``cleanlab_probe``, ``patience``, ``max_epochs``, ``validation_fraction``, ``start``).

    Returns
    -------
    DataFrame
        A row per method: the run's ``dataset``, ``model``, ``corruption_degree``, ``seed``;
        ``method``; ``probe`` and ``layer`` that made the labels (empty for methods without a
        decoder) and the probe's ``probe_validation_accuracy``; ``accuracy_before`` (the
        memorized model) and ``accuracy_after`` (the kept epoch), both on the holdout part;
        ``validation_after``; ``epochs`` trained and ``best_epoch`` kept (0: the model it
        started from); ``n_trained`` points; the :data:`LABEL_STATISTICS`; ``start``
        (``"scratch"`` for ``early_stopped`` and with ``start="scratch"``); and ``hits_before``,
        ``hits_after``: which holdout images the memorized and the trained model predict right
        (packed, :func:`memnotebooks.uncertainty.unpack_hits`; the same images in every row).

    Raises
    ------
    ValueError
        For an unknown method or setting, or corrupted-label methods on a run whose corrupted
        labels equal its true labels (degree 0).
    """
    settings = RelabelSettings(**settings)
    methods_ = _check_methods(run_, methods)
    context = _Context(run_, settings)
    frames = [cached_table(run_.path, "relabel", _recipe(run_, settings, m), lambda m=m: _relabel(context, m, progress)) for m in methods_]
    table = pd.concat(frames, ignore_index=True)
    table[["probe", "layer"]] = table[["probe", "layer"]].fillna("")
    table.insert(1, "start", np.where(table.method == "early_stopped", "scratch", settings.start))
    table["hits_before"] = pack_hits(context.hits(run_.model))
    table["hits_after"] = [pack_hits(context.hits(_load_model(run_, _folder_of(run_, settings, m)))) for m in methods_]
    identity = config_columns(run_)
    return table.assign(**identity)[list(identity) + [c for c in table.columns if c not in identity]]


def relabel_grid(runs, methods=None, *, progress: bool = False, **settings) -> pd.DataFrame:
    """:func:`relabel_table` of several runs, stacked."""
    return pd.concat([relabel_table(r, methods, progress=progress, **settings) for r in runs], ignore_index=True)


BEFORE = "memorized model (before)"
"""The row of :func:`accuracy_table` and :func:`scores` that holds the memorized model's accuracy."""

_IDENTITY = ["dataset", "model", "corruption_degree", "seed"]


def scores(table: pd.DataFrame) -> pd.DataFrame:
    """The holdout accuracies of :func:`relabel_grid`'s ``table`` as a tidy table with per-image
    hits, for :func:`memnotebooks.tables.paired_differences` (``reference=BEFORE``, or any
    method's name): a row per run and ``baseline`` (the method in words, :func:`method_name`;
    the memorized model first, :data:`BEFORE`), with ``method``, ``start``, ``accuracy`` and
    ``hits``. ``table`` may stack several grids (e.g. fine-tuned and retrained from scratch);
    rows that repeat a run and name (``early_stopped`` in both) are kept once."""
    before = table.drop_duplicates(_IDENTITY).assign(baseline=BEFORE, method="", start="memorized", accuracy=lambda t: t.accuracy_before, hits=lambda t: t.hits_before)
    after = table.assign(baseline=[method_name(m, s) for m, s in zip(table.method, table.start)], accuracy=table.accuracy_after, hits=table.hits_after)
    columns = [*_IDENTITY, "baseline", "method", "start", "accuracy", "hits"]
    return pd.concat([before[columns], after[columns]], ignore_index=True).drop_duplicates([*_IDENTITY, "baseline"])


def accuracy_table(table: pd.DataFrame) -> pd.DataFrame:
    """Holdout accuracy after each method, mean ± std over seeds, a row per method in words
    (first the memorized model's, :data:`BEFORE`) and a column per degree
    (:func:`memnotebooks.tables.mean_std_table` of :func:`scores`).

    ``table`` is :func:`relabel_grid`'s output (or several, stacked).
    """
    return mean_std_table(scores(table), "baseline", "accuracy")


def difference(scores_: pd.DataFrame, a: str, b: str, degree: float) -> Difference:
    """Accuracy of ``a`` minus ``b`` (names in :func:`scores`' ``baseline``) at ``degree``, with
    its 95 % paired bootstrap interval over the holdout images and the seeds both have
    (:func:`memnotebooks.uncertainty.paired_bootstrap`)."""
    at = scores_[scores_.corruption_degree == degree]
    hits = {name: at[at.baseline == name].set_index("seed").hits for name in (a, b)}
    missing = [name for name, h in hits.items() if h.empty]
    if missing:
        raise ValueError(f"No rows named {missing} at p = {degree:g}; the table has: {', '.join(at.baseline.unique())}.")
    seeds = sorted(set(hits[a].index) & set(hits[b].index))
    return paired_bootstrap([unpack_hits(hits[a][s]) for s in seeds], [unpack_hits(hits[b][s]) for s in seeds])


def comparison_table(scores_: pd.DataFrame, reference: str, others=None) -> pd.DataFrame:
    """Each row's accuracy minus ``reference``'s, per degree, with its 95 % paired interval, as
    text (:func:`memnotebooks.tables.paired_differences` shown by
    :func:`memnotebooks.tables.difference_table`); a row per name of ``others`` (default every
    other row of :func:`scores`), a column per degree."""
    return difference_table(paired_differences(scores_, reference, others))


LABEL_COLUMNS = {
    "labels_changed": "changed or dropped",
    "wrong_fixed": "wrong → true",
    "correct_broken": "correct → wrong",
    "wrong_dropped": "wrong dropped",
    "correct_dropped": "correct dropped",
    "label_accuracy": "true after",
}
"""Short column names of :func:`label_table`."""


def _labelled(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run and method (the labels do not depend on where training starts)."""
    return table.drop_duplicates([*_IDENTITY, "method"])


def label_table(table: pd.DataFrame, methods=None, digits: int = 3) -> pd.DataFrame:
    """The label statistics (:data:`LABEL_STATISTICS`), mean over seeds, a row per degree and
    method in words (default all, in the table's order), short column names
    (:data:`LABEL_COLUMNS`); the dropped shares only where a method drops points."""
    methods = list(methods or table.method.unique())
    shown = _labelled(table[table.method.isin(methods)])
    mean = shown.groupby(["corruption_degree", "method"], sort=False)[list(LABEL_COLUMNS)].mean()
    mean = mean.reindex(pd.MultiIndex.from_product([sorted(shown.corruption_degree.unique()), methods]))
    if not (mean[["wrong_dropped", "correct_dropped"]] > 0).any(axis=None):
        mean = mean.drop(columns=["wrong_dropped", "correct_dropped"])
    mean.index = mean.index.set_levels([METHOD_NAMES.get(m, m) for m in mean.index.levels[1]], level=1)
    return mean.round(digits).rename(columns=LABEL_COLUMNS).rename_axis(index=["p", "method"])


def decoders_table(table: pd.DataFrame) -> pd.DataFrame:
    """The layer each decoding method chose on the validation part (and the probe, for
    ``best_probe_crossfit`` and ``cleanlab``), per degree (a column each), one per seed in seed
    order; rows name the methods in words."""
    decoded = _labelled(table[table.layer != ""]).sort_values("seed", kind="stable")
    named = decoded.method.isin(["best_probe_crossfit", "cleanlab"])
    choices = decoded.assign(choice=decoded.layer.where(~named, decoded.probe.map(lambda p: PROBE_NAMES.get(p, p)) + " on " + decoded.layer))
    wide = choices.groupby(["method", "corruption_degree"], sort=False)["choice"].agg(", ".join).unstack("corruption_degree")
    wide.columns = [f"p = {degree:g}" for degree in wide.columns]
    return wide.rename(index=METHOD_NAMES).rename_axis(index=None)


def _recipe(run_: Run, settings: RelabelSettings, method: str) -> dict:
    """The cache key of ``method`` on ``run_``: the settings' recipe, and the run's weight decay
    where it has one (issue 21: before, fine-tuning ignored it; keyed only where it is not zero,
    so the results of runs without weight decay, which did not change, keep their keys)."""
    recipe = settings.recipe(method)
    if run_.config.weight_decay:
        recipe["weight_decay"] = run_.config.weight_decay
    return recipe


def _folder_of(run_: Run, settings: RelabelSettings, method: str) -> Path:
    return table_folder(run_.path, "relabel", _recipe(run_, settings, method))


def _load_model(run_: Run, folder: Path) -> torch.nn.Module:
    model = build_run_model(run_.config, run_.dataset)
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    return model.to(next(run_.model.parameters()).device).eval()


def _folder(run_: Run, method: str, settings: dict) -> Path:
    relabel_table(run_, [method], **settings)  # computes it if it is not cached yet
    return _folder_of(run_, RelabelSettings(**settings), method)


def relabelled_labels(run_: Run, method: str, **settings) -> pd.DataFrame:
    """The labels ``method`` gave each training point, from the cached relabelling.

    Returns
    -------
    DataFrame
        One row per training point: ``true_label``, ``given_label`` (trained on by the run),
        ``new_label`` (fine-tuned on) and ``kept`` (``False`` for the points cleanlab drops).
    """
    with np.load(_folder(run_, method, settings) / "labels.npz") as stored:
        new, kept = stored["labels"], stored["kept"]
    return pd.DataFrame({"true_label": run_.fit_labels("true"), "given_label": run_.fit_labels("corrupted"), "new_label": new, "kept": kept})


def relabelled_model(run_: Run, method: str, **settings) -> torch.nn.Module:
    """The fine-tuned model of ``method`` (the weights of its kept epoch), in evaluation mode, on
    the run's device."""
    return _load_model(run_, _folder(run_, method, settings))
