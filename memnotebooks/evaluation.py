"""Decoding a run's layers: layerwise probe accuracies, best layers, the headline table.

The core is :func:`evaluate_layer`, a pure function of one layer's activations: fit a probe on
the training activations with the chosen training labels, score it on every evaluation set.
:func:`layerwise_evaluation` runs it over a run's probe layers and caches each table in the
run's folder, keyed by its recipe (probe and parameters, fitting labels, evaluation protocol;
see :func:`memnotebooks.store.cached_table`).

The evaluation sets (:func:`evaluation_sets`) are the test set, its validation 20 % and holdout
80 % (:func:`validation_split`, the relabel protocol's split), the clean training points and the
corrupted ones (scored against their true and their given labels). :func:`best_layers` chooses
a layer two ways: on the test set itself, as the paper does, and on the validation part, scored
on the holdout part.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from .activations import check_layers, extract_activations
from .geometry import class_geometry
from .masc import check_variance_threshold
from .probes import PROBES, fit_probe, probe_accuracies, probe_recipe
from .runs import FIT_LABELS, Run, config_columns
from .store import cached_table, is_cached

__all__ = [
    "PROTOCOL",
    "VALIDATION_FRACTION",
    "VALIDATION_SEED",
    "best_layers",
    "evaluate_layer",
    "evaluation_sets",
    "geometry_table",
    "headline_table",
    "layerwise_evaluation",
    "validation_split",
]

VALIDATION_FRACTION = 0.2
"""Share of the test set used to choose a layer (the relabel protocol's 20/80 split)."""

VALIDATION_SEED = 0
"""Seed of the stratified validation split."""

PROTOCOL = {
    "validation_fraction": VALIDATION_FRACTION,
    "validation_seed": VALIDATION_SEED,
    "sets": [
        "test/true", "test_validation/true", "test_holdout/true",
        "train_clean/true", "train_corrupted/true", "train_corrupted/given",
    ],
}
"""The evaluation protocol, part of every evaluation table's cache key."""


def validation_split(y_test, fraction: float = VALIDATION_FRACTION, seed: int = VALIDATION_SEED) -> np.ndarray:
    """Boolean mask (n_test,): the stratified validation part of the test set (fixed seed)."""
    y_test = np.asarray(y_test)
    validation, _ = train_test_split(np.arange(len(y_test)), train_size=fraction, stratify=y_test, random_state=seed)
    mask = np.zeros(len(y_test), dtype=bool)
    mask[validation] = True
    return mask


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
    run_: Run, probes=("masc",), layers=None, fit_labels=FIT_LABELS, variance_threshold: float = 0.99
) -> pd.DataFrame:
    """Decode every probe layer of a run with each probe, fitted on corrupted and on true labels.

    For each layer, probe and choice of fitting labels (``corrupted``: the labels the network was
    trained on; ``true``: the clean ones), :func:`evaluate_layer`. Activations stay on the run's
    device (MASC fits and predicts on a GPU there). One table per probe and fitting labels,
    covering every layer, is cached in the run's folder under its recipe; each layer's
    activations are extracted once for all missing tables.

    Parameters
    ----------
    run_ : Run
    probes : list of str
        From :data:`memnotebooks.probes.PROBES`.
    layers : list of str, optional
        Probe layers to return; default all.
    fit_labels : list of {"corrupted", "true"}
    variance_threshold : float in (0, 1]
        MASC's share of each class's variance.

    Returns
    -------
    DataFrame
        Columns ``dataset``, ``model``, ``corruption_degree``, ``seed``, ``layer``,
        ``layer_index``, ``probe``, ``fit_labels``, ``split``, ``target``, ``accuracy``,
        ``n_points``.
    """
    layers = check_layers(run_.model, layers)
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"Unknown probe(s) {unknown}; choose from: {', '.join(PROBES)}.")
    fit_labels = [fit_labels] if isinstance(fit_labels, str) else list(fit_labels)
    labels = {which: run_.fit_labels(which) for which in fit_labels}
    params = {probe: {"variance_threshold": check_variance_threshold(variance_threshold)} if probe == "masc" else {} for probe in probes}
    all_layers = list(run_.model.probe_layers)
    recipes = {
        (probe, which): {**probe_recipe(probe, **params[probe]), "fit_labels": which, "protocol": PROTOCOL, "layers": all_layers}
        for probe in probes
        for which in fit_labels
    }
    missing = [key for key, recipe in recipes.items() if not is_cached(run_.path, "evaluation", recipe)]
    fresh = {key: [] for key in missing}
    if missing:
        sets = evaluation_sets(run_)
        device = next(run_.model.parameters()).device
        for layer in all_layers:  # each layer's activations are extracted once, for every table
            activations = {
                source: extract_activations(run_.model, x, [layer], output_device=device)[layer]
                for source, x in (("train", run_.dataset.x_train), ("test", run_.dataset.x_test))
            }
            for probe, which in missing:
                table = evaluate_layer(activations, sets, probe, labels[which], **params[probe])
                fresh[probe, which].append(table.assign(layer=layer, probe=probe, fit_labels=which))
    frames = [
        cached_table(run_.path, "evaluation", recipe, lambda key=key: pd.concat(fresh[key], ignore_index=True))
        for key, recipe in recipes.items()
    ]
    table = pd.concat(frames, ignore_index=True)
    table = table[table.layer.isin(layers)].copy()
    table["layer_index"] = table.layer.map(all_layers.index)
    columns = ["layer", "layer_index", "probe", "fit_labels", "split", "target", "accuracy", "n_points"]
    identity = config_columns(run_)
    return table[columns].assign(**identity)[list(identity) + columns].reset_index(drop=True)


def best_layers(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Best layer per (dataset, model, degree, probe, fitting labels), chosen two ways.

    ``paper_*``: as the paper reports it, the maximum over layers of the mean (over seeds) test
    accuracy: the layer is chosen on the very set it is scored on, which flatters it.
    ``validated_*``: the layer with the best mean accuracy on the validation 20 % of the test
    set, scored on the other 80 %. A probe that scores NaN at every layer (not well posed) gets
    NaN and no layer.
    """
    keys = ["dataset", "model", "corruption_degree", "probe", "fit_labels"]
    mean = evaluation.groupby(keys + ["layer", "split", "target"], as_index=False)["accuracy"].mean()
    groups = mean[keys].drop_duplicates()

    def pick(split_choose, split_score, prefix):
        choose = mean[(mean.split == split_choose) & (mean.target == "true")].dropna(subset=["accuracy"])
        best = choose.loc[choose.groupby(keys)["accuracy"].idxmax(), keys + ["layer"]]
        scored = best.merge(mean[(mean.split == split_score) & (mean.target == "true")], on=keys + ["layer"])
        scored = scored[keys + ["layer", "accuracy"]].rename(columns={"layer": f"{prefix}_layer", "accuracy": f"{prefix}_accuracy"})
        return groups.merge(scored, on=keys, how="left")

    return pick("test", "test", "paper").merge(pick("test_validation", "test_holdout", "validated"), on=keys)


def headline_table(evaluation: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's headline per degree: the network's test accuracy and MASC's at the best layer.

    For each fitting-label set (``corrupted``, ``true``): ``masc_<labels>`` and its layer as the
    paper selects it (on the test set), and ``masc_<labels>_validated`` with its layer chosen on
    the validation 20 % and scored on the other 80 % (see :func:`best_layers`). Means over seeds.
    """
    keys = ["dataset", "model", "corruption_degree"]
    table = summary.groupby(keys, as_index=False)["test_accuracy"].mean().rename(columns={"test_accuracy": "model_test"})
    best = best_layers(evaluation[evaluation.probe == "masc"])
    for labels in FIT_LABELS:
        part = best[best.fit_labels == labels].rename(
            columns={
                "paper_accuracy": f"masc_{labels}",
                "paper_layer": f"masc_{labels}_layer",
                "validated_accuracy": f"masc_{labels}_validated",
                "validated_layer": f"masc_{labels}_validated_layer",
            }
        )
        table = table.merge(part.drop(columns=["probe", "fit_labels"]), on=keys, how="left")
    return table


def geometry_table(run_: Run, layers=None, fit_labels: str = "true", variance_threshold: float = 0.99) -> pd.DataFrame:
    """Per layer and class: subspace dimension, its share of the width, participation ratio and
    mean principal angle to the other classes (:func:`memnotebooks.geometry.class_geometry`),
    from the training activations grouped by their true or their corrupted labels."""
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
