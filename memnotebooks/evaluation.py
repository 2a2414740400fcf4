"""Decoding a run's layers: layerwise probe accuracies, best layers, the headline table.

The core is :func:`evaluate_layer`, a pure function of one layer's activations: fit a probe on
the training activations with the chosen training labels, score it on every evaluation set.
:func:`layerwise_evaluation` runs it over a run's probe layers and caches each table in the
run's folder, keyed by its recipe (probe and parameters, fitting labels, evaluation protocol;
see :func:`memnotebooks.store.cached_table`).

The evaluation sets (:func:`evaluation_sets`) are the test set, its validation 20 % and holdout
80 % (:func:`memnotebooks.data.validation_split`, the relabel protocol's split), the clean training points and the
corrupted ones (scored against their true and their given labels). :func:`best_layers` chooses
a layer two ways: on the test set itself, as the paper does, and on the validation part, scored
on the holdout part.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from .activations import check_layers, extract_activations
from .corruption import corrupt_labels
from .data import VALIDATION_FRACTION, VALIDATION_SEED, validation_split
from .geometry import class_geometry
from .masc import MASC, check_variance_threshold
from .probes import PROBES, fit_probe, probe_accuracies, probe_recipe
from .prose import NBSP, mean_std, signed
from .runs import FIT_LABELS, Run, config_columns, early_stopped, run
from .store import cached_table, is_cached
from .uncertainty import pack_hits, paired_bootstrap, unpack_hits

__all__ = [
    "PROTOCOL",
    "noisy_validation_labels",
    "SELECTIONS",
    "SUBSPACE_ROOM",
    "baseline_scores",
    "best_layer_scores",
    "best_layers",
    "difference_table",
    "difference_text",
    "evaluate_layer",
    "evaluation_sets",
    "geometry_summary",
    "geometry_table",
    "headline_table",
    "hidden_layers",
    "hits_matrix",
    "label_group_subspaces",
    "layer_scores",
    "layerwise_evaluation",
    "mean_std_table",
    "network_scores",
    "paired_differences",
    "probe_differences",
    "subspace_room",
    "threshold_scores",
    "untrained_runs",
]

PROTOCOL = {
    "validation_fraction": VALIDATION_FRACTION,
    "validation_seed": VALIDATION_SEED,
    "sets": [
        "test/true", "test_validation/true", "test_validation/given", "test_holdout/true",
        "train_clean/true", "train_corrupted/true", "train_corrupted/given",
    ],
}
"""The evaluation protocol, part of every evaluation table's cache key."""


def noisy_validation_labels(run_: Run) -> np.ndarray:
    """The validation part's labels as a practitioner without clean labels would hold them:
    corrupted like the run's training labels (same degree and mode, the run's seed).

    Choosing a layer, an epoch or a threshold on these is choosing on the corrupted labels of
    images the network never trained on: a held-out part of the training set, in distribution,
    taken from the test set's validation part so that the network trains on the paper's training
    set. (``random_inputs`` corrupts inputs, not labels: its labels stay true.)
    """
    c = run_.config
    y_validation = run_.dataset.y_test.numpy()[validation_split(run_.dataset.y_test.numpy())]
    if c.corruption_mode == "random_inputs":
        return y_validation
    return corrupt_labels(y_validation, c.corruption_degree, run_.dataset.n_classes, seed=c.seed, mode=c.corruption_mode).labels


def evaluation_sets(run_: Run) -> dict:
    """The labelled sets a layer is scored on.

    Returns
    -------
    dict of (split, target) to (source, rows, labels)
        ``source`` is ``"train"`` or ``"test"`` (whose activations), ``rows`` a boolean mask over
        them and ``labels`` the labels scored against; the keys are :data:`PROTOCOL`'s sets.
    """
    y_test = run_.dataset.y_test.numpy()
    validation = validation_split(y_test)
    given, true = run_.fit_labels("corrupted"), run_.fit_labels("true")
    corrupted = run_.corrupted
    sets = {
        ("test", "true"): ("test", np.ones(len(y_test), dtype=bool), y_test),
        ("test_validation", "true"): ("test", validation, y_test[validation]),
        ("test_validation", "given"): ("test", validation, noisy_validation_labels(run_)),
        ("test_holdout", "true"): ("test", ~validation, y_test[~validation]),
        ("train_clean", "true"): ("train", ~corrupted, true[~corrupted]),
        ("train_corrupted", "true"): ("train", corrupted, true[corrupted]),
        ("train_corrupted", "given"): ("train", corrupted, given[corrupted]),
    }
    return sets


def evaluate_layer(activations: Mapping, sets: Mapping, probe: str, fit_labels, **params) -> pd.DataFrame:
    """Fit ``probe`` on one layer's training activations and score it on every set.

    Parameters
    ----------
    activations : dict with keys ``"train"`` and ``"test"``
        Tensors (or arrays) of shape (n_train, d) and (n_test, d).
    sets : dict
        :func:`evaluation_sets`' output.
    probe : str
        One of :data:`memnotebooks.probes.PROBES`.
    fit_labels : array-like of shape (n_train,)
        The labels the probe is fitted on.
    **params
        Probe parameters (e.g. ``variance_threshold``).

    Returns
    -------
    DataFrame
        Columns ``split``, ``target``, ``accuracy``, ``n_points``; NaN where the probe is not
        well posed.
    """
    fitted = fit_probe(probe, activations["train"], fit_labels, **params)
    scored = {}
    for key, (source, rows, labels) in sets.items():
        values = activations[source]
        if isinstance(values, torch.Tensor):
            rows = torch.from_numpy(rows).to(values.device)
        scored[key] = (values[rows], labels)
    return probe_accuracies(fitted, scored)


def layerwise_evaluation(
    run_: Run,
    probes=("masc",),
    layers=None,
    fit_labels=FIT_LABELS,
    variance_threshold: float = 0.99,
    max_components: int | None = None,
    fit_corruption_degree: float | None = None,
    epoch: int | None = None,
) -> pd.DataFrame:
    """Decode probe layers of a run with each probe, fitted on corrupted and on true labels.

    For each layer, probe and choice of fitting labels (``corrupted``: the labels the network was
    trained on; ``true``: the clean ones), :func:`evaluate_layer`. Activations stay on the run's
    device (MASC fits and predicts on a GPU there). Each (layer, probe, fitting labels) table is
    cached in the run's folder under its recipe; the activations of a layer with missing tables
    are extracted once for all of them.

    Parameters
    ----------
    run_ : Run
    probes : list of str
        From :data:`memnotebooks.probes.PROBES`.
    layers : list of str, optional
        Probe layers; default all.
    fit_labels : list of {"corrupted", "true"}
    variance_threshold : float in (0, 1]
        MASC's share of each class's variance.
    max_components : int, optional
        MASC's bound on each class's subspace dimension (1: the leading direction only).
    fit_corruption_degree : float in [0, 1], optional
        Fit the ``corrupted`` labels of this degree (same seed and mode) instead of those the run
        was trained on: the paper's control, a generalized network (degree 0) decoded with
        corrupted-label subspaces. The clean/corrupted training sets stay the run's own.
    epoch : int, optional
        Decode the network as it was at this epoch (one of the run's ``checkpoint_epochs``)
        instead of the final one.

    Returns
    -------
    DataFrame
        Columns ``dataset``, ``model``, ``corruption_degree``, ``seed`` (and ``epoch``, when
        given), ``layer``, ``layer_index``, ``probe``, ``fit_labels``, ``fit_corruption_degree``,
        ``split``, ``target``, ``accuracy``, ``n_points``, ``hits`` (each point's hit, packed:
        :func:`memnotebooks.uncertainty.pack_hits`).
    """
    model = run_.model if epoch is None else run_.checkpoint(epoch)
    layers = check_layers(model, layers)
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"Unknown probe(s) {unknown}; choose from: {', '.join(PROBES)}.")
    fit_labels = [fit_labels] if isinstance(fit_labels, str) else list(fit_labels)
    labels = {which: run_.fit_labels(which, fit_corruption_degree) for which in fit_labels}
    masc_params = {"variance_threshold": check_variance_threshold(variance_threshold), "max_components": max_components}
    params = {probe: masc_params if probe == "masc" else {} for probe in probes}
    fit_degree = run_.config.corruption_degree if fit_corruption_degree is None else float(fit_corruption_degree)
    recipes = {
        (layer, probe, which): {
            **probe_recipe(probe, **params[probe]),
            "layer": layer,
            "fit_labels": which,
            "fit_corruption_degree": None if fit_corruption_degree is None or which == "true" else fit_degree,
            "protocol": PROTOCOL,
            **({} if epoch is None else {"epoch": int(epoch)}),  # absent for the final model: its keys predate checkpoints
        }
        for layer in layers
        for probe in probes
        for which in fit_labels
    }
    missing = [key for key, recipe in recipes.items() if not is_cached(run_.path, "evaluation", recipe)]
    fresh = {}
    if missing:
        sets = evaluation_sets(run_)
        device = next(model.parameters()).device
        for layer in dict.fromkeys(layer for layer, _, _ in missing):  # each layer extracted once
            activations = {
                source: extract_activations(model, x, [layer], output_device=device)[layer]
                for source, x in (("train", run_.dataset.x_train), ("test", run_.dataset.x_test))
            }
            for key in [key for key in missing if key[0] == layer]:
                _, probe, which = key
                fresh[key] = evaluate_layer(activations, sets, probe, labels[which], **params[probe])
    frames = [
        cached_table(run_.path, "evaluation", recipe, lambda key=key: fresh[key]).assign(
            layer=key[0], probe=key[1], fit_labels=key[2], fit_corruption_degree=fit_degree if key[2] == "corrupted" else 0.0
        )
        for key, recipe in recipes.items()
    ]
    table = pd.concat(frames, ignore_index=True)
    table["layer_index"] = table.layer.map(list(model.probe_layers).index)
    columns = ["layer", "layer_index", "probe", "fit_labels", "fit_corruption_degree", "split", "target", "accuracy", "n_points", "hits"]
    identity = {**config_columns(run_), **({} if epoch is None else {"epoch": int(epoch)})}
    return table[columns].assign(**identity)[list(identity) + columns]


_BEST_LAYER_KEYS = ["dataset", "model", "corruption_degree", "probe", "fit_labels", "fit_corruption_degree"]

SELECTIONS = {
    "test-selected": (("test", "true"), "test"),
    "validated": (("test_validation", "true"), "test_holdout"),
    "noisy-validated": (("test_validation", "given"), "test_holdout"),
    "holdout-selected": (("test_holdout", "true"), "test_holdout"),
}
"""How a layer (or an epoch, or a threshold) is chosen: on which split and labels, and scored
on which split (always against the true labels).
``test-selected`` is the paper's: chosen on the test set itself, which flatters it;
``validated`` is chosen on the *true* labels of the validation 20 % and scored on the other 80 %;
``noisy-validated`` is chosen on the validation part's *corrupted* labels
(:func:`noisy_validation_labels`), what a practitioner without clean labels can do;
``holdout-selected`` is the paper's rule on the holdout 80 %, so that it can be set beside the
validated figure on the same images (the gap is then what choosing on the scored images adds)."""


def best_layer_scores(evaluation: pd.DataFrame, layers=None, selections=("test-selected", "validated")) -> pd.DataFrame:
    """Each seed's accuracy at the best layer, the layer chosen both ways of :data:`SELECTIONS`.

    The layer is chosen once per (dataset, model, degree, probe, fitting labels) on the mean over
    seeds of the choosing split, as the paper does, and each seed is scored there. A probe that
    scores NaN at every layer (not well posed) has no row.

    Parameters
    ----------
    evaluation : DataFrame
        :func:`layerwise_evaluation` tables of one or several runs.
    layers : list of str, optional
        Choose among these layers only (e.g. the hidden ones); default all.
    selections : list of str
        Keys of :data:`SELECTIONS`.

    Returns
    -------
    DataFrame
        Columns ``dataset``, ``model``, ``corruption_degree``, ``probe``, ``fit_labels``,
        ``fit_corruption_degree``, ``selection``, ``layer``, ``seed``, ``accuracy`` and, where
        the evaluation has them, ``hits`` on the scored split.
    """
    unknown = [s for s in selections if s not in SELECTIONS]
    if unknown:
        raise ValueError(f"Unknown selection(s) {unknown}; choose from: {', '.join(SELECTIONS)}.")
    keys = _BEST_LAYER_KEYS
    if layers is not None:
        evaluation = evaluation[evaluation.layer.isin(layers)]
    scored = evaluation[evaluation.target == "true"]
    mean = evaluation.groupby(keys + ["layer", "split", "target"], as_index=False)["accuracy"].mean()
    kept = ["layer", "seed", "accuracy"] + (["hits"] if "hits" in scored else [])
    frames = []
    for selection in selections:
        (choose, labels), score = SELECTIONS[selection]
        chosen = mean[(mean.split == choose) & (mean.target == labels)].dropna(subset=["accuracy"])
        best = chosen.loc[chosen.groupby(keys)["accuracy"].idxmax(), keys + ["layer"]]
        per_seed = best.merge(scored[scored.split == score], on=keys + ["layer"])
        frames.append(per_seed[keys + kept].assign(selection=selection))
    return pd.concat(frames, ignore_index=True)[keys + ["selection", *kept]]


def best_layers(evaluation: pd.DataFrame, layers=None) -> pd.DataFrame:
    """Best layer per (dataset, model, degree, probe, fitting labels), chosen two ways.

    ``paper_*``: as the paper reports it, the maximum over layers of the mean (over seeds) test
    accuracy: the layer is chosen on the very set it is scored on, which flatters it.
    ``validated_*``: the layer with the best mean accuracy on the validation 20 % of the test
    set, scored (mean over seeds) on the other 80 %. A probe that scores NaN at every layer (not
    well posed) gets NaN and no layer. See :func:`best_layer_scores`.
    """
    keys = _BEST_LAYER_KEYS
    scores = best_layer_scores(evaluation, layers)
    mean = scores.groupby(keys + ["selection", "layer"], as_index=False)["accuracy"].mean()
    table = evaluation[keys].drop_duplicates()
    for selection, prefix in (("test-selected", "paper"), ("validated", "validated")):
        part = mean[mean.selection == selection].drop(columns="selection")
        table = table.merge(part.rename(columns={"layer": f"{prefix}_layer", "accuracy": f"{prefix}_accuracy"}), on=keys, how="left")
    return table.reset_index(drop=True)


def hidden_layers(run_: Run) -> list[str]:
    """The run's probe layers after the input."""
    return [layer for layer in run_.model.probe_layers if layer != "input"]


def network_scores(runs_) -> pd.DataFrame:
    """The network's own accuracy per run on the holdout part: final, early-stopped, at its peak.

    Every row is scored on the same images, the holdout 80 % of the test set, so that any two
    rows (and the probes' validated rows) can be compared image by image.

    Parameters
    ----------
    runs_ : list of Run
        With their per-epoch history and per-epoch test predictions.

    Returns
    -------
    DataFrame
        Per run and ``baseline``: ``network, final`` (the last epoch), ``network, early-stopped
        (validated)`` (the epoch with the best validation accuracy), ``network, early-stopped
        (noisy-validated)`` (the epoch whose predictions agree best with the validation part's
        corrupted labels, :func:`noisy_validation_labels`) and ``network, peak
        (holdout-selected)`` (the epoch with the best holdout accuracy: an oracle); columns
        ``dataset``, ``model``, ``corruption_degree``, ``seed``, ``baseline``, ``epoch``,
        ``accuracy``, ``hits`` (packed, :func:`memnotebooks.uncertainty.pack_hits`).
    """
    rows = []
    for r in runs_:
        history = r.history.reset_index(drop=True)
        y_test = r.dataset.y_test.numpy()
        validation = validation_split(y_test)
        holdout = ~validation
        predictions = r.test_predictions
        agreement = (predictions[:, validation] == noisy_validation_labels(r)).mean(axis=1)
        chosen = {
            "network, final": int(history.epoch.iloc[-1]),
            "network, early-stopped (validated)": int(early_stopped(history).epoch),
            "network, early-stopped (noisy-validated)": int(history.epoch.iloc[int(np.argmax(agreement))]),
            "network, peak (holdout-selected)": int(history.loc[history.test_holdout_accuracy.idxmax(), "epoch"]),
        }
        for baseline, epoch in chosen.items():
            hits = predictions[epoch][holdout] == y_test[holdout]
            rows.append({**config_columns(r), "baseline": baseline, "epoch": epoch, "accuracy": float(hits.mean()), "hits": pack_hits(hits)})
    return pd.DataFrame(rows)


def untrained_runs(grid, **run_kwargs) -> list[Run]:
    """The runs of ``grid`` at initialization: the same architecture, seed and labels, no training
    (``max_epochs=0``), from the cache or built; ``run_kwargs`` as for :func:`memnotebooks.runs.run`."""
    return [run(r.config.replace(max_epochs=0, checkpoint_epochs=()), **run_kwargs) for r in grid]


def baseline_scores(
    grid, probes=("nearest_mean", "knn", "logistic", "lda", "qda"), variance_threshold: float = 0.99, **run_kwargs
) -> pd.DataFrame:
    """The headline and the baselines it needs, per run (seed) and degree.

    Every row is scored on the same images, the holdout 80 % of the test set, and carries each
    image's hit (``hits``), so that any two rows can be compared image by image
    (:func:`memnotebooks.uncertainty.paired_bootstrap`, :func:`paired_differences`).
    Rows (``baseline``; ``corrupted``/``true``: the labels the probe is fitted on):

    - ``network, ...``: the network itself (:func:`network_scores`);
    - ``MASC, hidden, ...``: MASC at the best hidden layer, with corrupted and with true
      subspaces, holdout-selected and validated, and with corrupted subspaces noisy-validated
      (:data:`SELECTIONS`, :func:`best_layer_scores`);
    - ``MASC, input, corrupted``: MASC on the raw input, and ``best probe, input,
      corrupted (validated)``: the best other probe on it, chosen on the validation part and
      scored on the holdout;
    - ``MASC, untrained, ...``: MASC on the untrained network (:func:`untrained_runs`), best
      hidden layer, validated;
    - ``MASC, generalized, ...``: the paper's control, MASC on the generalized network of the
      same seed (degree 0, which must be in ``grid``) with subspaces fitted on the labels
      corrupted at each degree, best hidden layer, validated.

    Returns
    -------
    DataFrame
        Columns ``dataset``, ``model``, ``corruption_degree``, ``seed``, ``baseline``, ``layer``
        (or the epoch, or the probe chosen), ``accuracy``, ``hits``.
    """
    variance_threshold = check_variance_threshold(variance_threshold)
    keys = ["dataset", "model", "corruption_degree", "seed"]
    decoding = pd.concat([layerwise_evaluation(r, variance_threshold=variance_threshold) for r in grid], ignore_index=True)
    hidden = hidden_layers(grid[0])
    frames = [network_scores(grid).assign(layer=lambda t: "epoch " + t.epoch.astype(str)).drop(columns="epoch")]
    best = best_layer_scores(decoding, hidden, ("holdout-selected", "validated", "noisy-validated"))
    best = best[(best.fit_labels == "corrupted") | (best.selection != "noisy-validated")].sort_values(["fit_labels", "selection"], kind="stable")
    frames.append(best.assign(baseline="MASC, hidden, " + best.fit_labels + " (" + best.selection + ")"))
    if "input" in grid[0].model.probe_layers:
        on_input = pd.concat(
            [layerwise_evaluation(r, probes=["masc", *probes], layers=["input"], fit_labels="corrupted", variance_threshold=variance_threshold) for r in grid],
            ignore_index=True,
        )
        masc = on_input[(on_input.probe == "masc") & (on_input.split == "test_holdout") & (on_input.target == "true")]
        frames.append(masc.assign(baseline="MASC, input, corrupted"))
        others = on_input[on_input.probe != "masc"].assign(layer=lambda t: t.probe, probe="other")
        frames.append(_validated(best_layer_scores(others), "best probe, input, corrupted (validated)"))
    untrained = pd.concat([layerwise_evaluation(r, fit_labels="corrupted", variance_threshold=variance_threshold) for r in untrained_runs(grid, **run_kwargs)])
    frames.append(_validated(best_layer_scores(untrained, hidden), "MASC, untrained, corrupted (validated)"))
    generalized = {r.config.seed: r for r in grid if r.config.corruption_degree == 0}
    degrees = sorted({r.config.corruption_degree for r in grid} - {0.0})
    if generalized and degrees:
        control = pd.concat(
            [
                layerwise_evaluation(g, fit_labels="corrupted", variance_threshold=variance_threshold, fit_corruption_degree=p).assign(corruption_degree=p)
                for g in generalized.values()
                for p in degrees
            ],
            ignore_index=True,
        )
        frames.append(_validated(best_layer_scores(control, hidden), "MASC, generalized, corrupted (validated)"))
    return pd.concat([frame[keys + ["baseline", "layer", "accuracy", "hits"]] for frame in frames], ignore_index=True)


def _validated(scores: pd.DataFrame, baseline: str) -> pd.DataFrame:
    return scores[scores.selection == "validated"].assign(baseline=baseline)


def mean_std_table(table: pd.DataFrame, row: str, value: str, digits: int = 3) -> pd.DataFrame:
    """Mean ± std over seeds of ``value`` per ``row`` (in the order of first appearance) and
    corruption degree (columns ``p = ...``), as text: ``"0.918 ± 0.012"`` (non-breaking
    spaces around ``±``, so a cell does not wrap), or the mean alone
    with one seed; empty where not measured."""
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
        per-image hits on the same images in every row, e.g. :func:`baseline_scores`).
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
    """One row of :func:`paired_differences` (or a :class:`memnotebooks.uncertainty.Difference`)
    as ``"+0.012 [−0.004, +0.028]"``: the difference and its 95 % interval."""
    d, lo, hi = (row.estimate, row.low, row.high) if hasattr(row, "estimate") else (row["difference"], row["low"], row["high"])
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


def hits_matrix(scores: pd.DataFrame, baseline: str, corruption_degree: float, column: str = "baseline") -> np.ndarray:
    """The per-image hits of one row of ``scores`` (e.g. :func:`baseline_scores`) at one degree,
    unpacked: a bool array of shape (n_seeds, n_images), seeds in increasing order, ready for
    :func:`memnotebooks.uncertainty.paired_bootstrap`."""
    rows = scores[(scores[column] == baseline) & (scores.corruption_degree == corruption_degree)].sort_values("seed")
    if rows.empty:
        raise ValueError(f"No rows with {column} = {baseline!r} at corruption_degree = {corruption_degree!r}.")
    return np.stack([unpack_hits(h) for h in rows.hits])


def layer_scores(evaluation: pd.DataFrame, probe: str = "masc", fit_labels: str = "corrupted", split: str = "test_holdout") -> pd.DataFrame:
    """One probe's per-layer rows of :func:`layerwise_evaluation`, scored on ``split`` against the
    true labels, shaped like :func:`baseline_scores` (the layer as ``baseline``), so that
    :func:`paired_differences` compares layers with each other or with a baseline row."""
    rows = evaluation[(evaluation.probe == probe) & (evaluation.fit_labels == fit_labels) & (evaluation.split == split) & (evaluation.target == "true")]
    if rows.empty:
        raise ValueError(f"No rows of probe {probe!r} fitted on {fit_labels!r} labels scored on {split!r}.")
    return _in_layer_order(rows).assign(baseline=lambda t: t.layer)[["dataset", "model", "corruption_degree", "seed", "baseline", "layer", "accuracy", "hits"]]


def probe_differences(evaluation: pd.DataFrame, reference: str = "masc", split: str = "test_holdout") -> pd.DataFrame:
    """Per layer, each probe's accuracy minus ``reference``'s on the same images (and seeds), with
    its paired interval: :func:`paired_differences` with ``probe`` as the compared column and a
    ``layer`` column added. Probes not well posed on a layer (NaN) are left out there."""
    scored = evaluation[(evaluation.split == split) & (evaluation.target == "true")].dropna(subset=["accuracy"])
    frames = [paired_differences(rows, reference, column="probe").assign(layer=layer)
              for layer, rows in _in_layer_order(scored).groupby("layer", sort=False) if reference in set(rows.probe) and rows.probe.nunique() > 1]
    return pd.concat(frames, ignore_index=True)


def label_group_subspaces(run_: Run, layers=None, fit_labels: str = "corrupted", variance_threshold: float = 0.99) -> pd.DataFrame:
    """How much room each label group's MASC subspace leaves: per layer and label group, the
    group's training points ``n_points``, the layer's width ``width`` and the subspace dimension
    ``k`` at ``variance_threshold`` (the fitted :attr:`memnotebooks.masc.MASC.n_components_`).

    A group whose ``k`` comes close to ``n_points`` has a subspace that nearly contains each of
    its own training points: MASC then assigns a training point the label it was given, wrong or
    not. Columns ``layer``, ``layer_index``, ``label``, ``n_points``, ``width``, ``k`` and the
    run's configuration columns.
    """
    layers = check_layers(run_.model, layers)
    labels = run_.fit_labels(fit_labels)
    groups, n_points = np.unique(labels, return_counts=True)
    frames = []
    for layer, values in extract_activations(run_.model, run_.dataset.x_train, layers).items():
        fitted = MASC(variance_threshold=check_variance_threshold(variance_threshold)).fit(values, labels)
        frames.append(pd.DataFrame({"layer": layer, "layer_index": list(run_.model.probe_layers).index(layer), "label": groups,
                                    "n_points": n_points, "width": values.shape[1], "k": fitted.n_components_}))
    return pd.concat(frames, ignore_index=True).assign(**config_columns(run_))


SUBSPACE_ROOM = {
    "width": "width d",
    "n_points": "points per label group",
    "k": "subspace dimension k",
    "share": "k / min(points, d)",
    "reproduced": "wrong labels reproduced",
    "reproduced_single": "wrong labels reproduced, single direction",
}
"""The columns of :func:`subspace_room` and their names in words."""


def subspace_room(runs_, layers=None, variance_threshold: float = 0.99) -> pd.DataFrame:
    """Why MASC copies noisy labels in-sample: per degree and layer, means over label groups and
    runs of :func:`label_group_subspaces` (width, points per group, ``k``, and ``k`` as a share
    of the most directions the group's points can span, the smaller of their number and the width) beside the share of corrupted training points to which MASC, fitted on
    the corrupted labels, gives back the wrong label they were given, at ``variance_threshold``
    and with a single direction per class. Runs without corrupted points (``p = 0``) are left
    out. Index (``p``, ``layer``); columns named by :data:`SUBSPACE_ROOM`.
    """
    frames = []
    for r in runs_:
        if not r.corrupted.any():
            continue
        groups = label_group_subspaces(r, layers, variance_threshold=variance_threshold)
        groups = groups.assign(share=groups.k / np.minimum(groups.n_points, groups.width))
        room = groups.groupby(["layer_index", "layer"], sort=True)[["width", "n_points", "k", "share"]].mean()
        for column, params in (("reproduced", {"variance_threshold": variance_threshold}), ("reproduced_single", {"max_components": 1})):
            decoded = layerwise_evaluation(r, layers=list(room.index.get_level_values("layer")), fit_labels="corrupted", **params)
            given = decoded[(decoded.probe == "masc") & (decoded.split == "train_corrupted") & (decoded.target == "given")]
            room[column] = room.index.get_level_values("layer").map(given.set_index("layer").accuracy)
        frames.append(room.reset_index().assign(p=r.config.corruption_degree))
    if not frames:
        raise ValueError("No run with corrupted training points: subspace_room needs a degree p > 0.")
    table = pd.concat(frames).groupby(["p", "layer_index", "layer"]).mean().droplevel("layer_index")
    return table[list(SUBSPACE_ROOM)].rename(columns=SUBSPACE_ROOM)


def _in_layer_order(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("layer_index", kind="stable") if "layer_index" in table else table


def headline_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of each baseline (rows, in the order given) at each degree (columns).

    Parameters
    ----------
    scores : DataFrame
        :func:`baseline_scores` (or any table with ``baseline``, ``corruption_degree``, ``seed``,
        ``accuracy``).

    Returns
    -------
    DataFrame of str
        See :func:`mean_std_table`.
    """
    return mean_std_table(scores, "baseline", "accuracy")


def threshold_scores(grid, thresholds=(0.25, 0.5, 0.75, 0.9, 0.99), single_component: bool = True) -> pd.DataFrame:
    """MASC's best hidden layer at each ``variance_threshold`` (and with one component per class).

    Returns
    -------
    DataFrame
        :func:`best_layer_scores` rows with a column ``subspaces`` (the threshold, or
        ``"single direction"``: one component per class), plus, per degree and fitting labels, rows with ``subspaces`` equal
        to ``"chosen on validation"``: the (threshold, layer) pair with the best mean validation
        accuracy, scored on the holdout.
    """
    settings = [(f"{t:g}", {"variance_threshold": t}) for t in thresholds]
    if single_component:
        settings.append(("single direction", {"max_components": 1}))
    hidden = hidden_layers(grid[0])
    frames = []
    for name, params in settings:
        decoding = pd.concat([layerwise_evaluation(r, layers=hidden, **params) for r in grid], ignore_index=True)
        frames.append(decoding.assign(subspaces=name))
    every = pd.concat(frames, ignore_index=True)
    per_setting = pd.concat([best_layer_scores(frame).assign(subspaces=frame.subspaces.iloc[0]) for frame in frames], ignore_index=True)
    joint = best_layer_scores(every.assign(layer=every.layer + " @ " + every.subspaces))
    joint = joint[joint.selection == "validated"].assign(subspaces="chosen on validation")
    return pd.concat([per_setting, joint], ignore_index=True)


def geometry_table(run_: Run, layers=None, fit_labels: str = "true", variance_threshold: float = 0.99) -> pd.DataFrame:
    """Per layer and class: subspace dimension (and its share of its cap ``min(n_c, d)``),
    participation ratio, and the mean and first principal angles to the other classes beside
    those of random subspaces of the same dimensions
    (:func:`memnotebooks.geometry.class_geometry`), from the training activations grouped by
    their true or their corrupted labels."""
    layers = check_layers(run_.model, layers)
    variance_threshold = check_variance_threshold(variance_threshold)
    labels = run_.fit_labels(fit_labels)
    frames = []
    for layer, values in extract_activations(run_.model, run_.dataset.x_train, layers).items():
        table = class_geometry(values.numpy(), labels, variance_threshold)
        frames.append(
            table.assign(
                layer=layer,
                layer_index=list(run_.model.probe_layers).index(layer),
                n_features=values.shape[1],
                fit_labels=fit_labels,
            )
        )
    return pd.concat(frames, ignore_index=True).assign(**config_columns(run_))


GEOMETRY_MEASURES = {
    "k": "dimension k",
    "k_over_cap": "k / min(n_c, d)",
    "participation_ratio": "participation ratio",
    "first_principal_angle": "first angle (°)",
    "random_first_angle": "first angle, random subspaces (°)",
    "mean_principal_angle": "mean angle (°)",
    "random_mean_angle": "mean angle, random subspaces (°)",
}
"""The measures :func:`geometry_summary` can show, and their names."""


def geometry_summary(geometry: pd.DataFrame, measures=None) -> pd.DataFrame:
    """:func:`geometry_table` rows averaged over classes and seeds: a row per measure and degree,
    a column per layer (in forward order).

    Parameters
    ----------
    geometry : DataFrame
    measures : list of str, optional
        Keys of :data:`GEOMETRY_MEASURES`, in the order to show; all of them by default.

    Returns
    -------
    DataFrame
        Index (``measure`` in words, ``p``), columns the layers.
    """
    measures = list(GEOMETRY_MEASURES) if measures is None else list(measures)
    unknown = [m for m in measures if m not in GEOMETRY_MEASURES]
    if unknown:
        raise ValueError(f"Unknown measure(s) {unknown}; choose from: {', '.join(GEOMETRY_MEASURES)}.")
    names = [GEOMETRY_MEASURES[m] for m in measures]
    mean = geometry.groupby(["corruption_degree", "layer_index", "layer"])[measures].mean()
    table = mean.rename(columns=GEOMETRY_MEASURES).rename_axis(columns="measure").stack().unstack(["layer_index", "layer"])
    table = table.reorder_levels(["measure", "corruption_degree"]).sort_index(level=0, sort_remaining=False, key=lambda index: index.map(names.index) if index.name == "measure" else index)
    return table.droplevel("layer_index", axis=1).rename_axis(index=["measure", "p"], columns=None)
