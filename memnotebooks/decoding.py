"""Decoding a run's layers: each probe's accuracy on every probe layer and evaluation set, and
the best layer chosen on the test set or on a validation split.

The core is :func:`evaluate_layer`, a pure function of one layer's activations: fit a probe on
the training activations with the chosen training labels, score it on every evaluation set.
:func:`layerwise_evaluation` runs it over a run's probe layers and caches each table in the
run's folder, keyed by its recipe (probe and parameters, fitting labels, evaluation protocol;
see :func:`memnotebooks.store.cached_table`).

The evaluation sets (:func:`evaluation_sets`) are the test set, its validation 20 % and holdout
80 % (:func:`memnotebooks.data.validation_split`, the relabel protocol's split), the clean training points and the
corrupted ones (scored against their true and their given labels). :func:`best_layers` chooses
a layer two ways: on the test set itself, as the paper does, and on the validation part, scored
on the holdout part (:data:`SELECTIONS`, :func:`best_layer_scores`). :func:`layer_scores` and
:func:`probe_differences` compare layers and probes image by image (:func:`layer_profile`: where
decoding peaks with depth), and :func:`threshold_scores` decodes with MASC's other variance
thresholds (:func:`best_setting`: which one decodes most). :func:`evaluation_grid` evaluates
several runs. :func:`rule_checks` checks, layer by layer, that MASC is the quadratic rule of
Ketha & Ramaswamy (2026) and where VeLPIC's sign rule parts it from MASC with one component.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from .activations import check_layers, extract_activations
from .corruption import corrupt_labels
from .data import VALIDATION_FRACTION, VALIDATION_SEED, validation_split
from .masc import MASC, check_variance_threshold, squared_cosines
from .probes import PROBE_NAMES, PROBES, fit_probe, probe_accuracies, probe_recipe
from .runs import FIT_LABELS, Run, config_columns, run_columns
from .store import cached_table, is_cached
from .tables import paired_differences
from .velpic import VeLPIC

__all__ = [
    "best_layer_scores",
    "best_layers",
    "best_setting",
    "evaluate_layer",
    "evaluation_grid",
    "evaluation_sets",
    "hidden_layers",
    "layer_profile",
    "layer_scores",
    "layerwise_evaluation",
    "noisy_validation_labels",
    "probe_differences",
    "PROTOCOL",
    "rule_checks",
    "SELECTIONS",
    "test_angles",
    "threshold_scores",
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
    compute: bool = True,
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
    compute : bool
        Compute the tables missing from the cache; ``False`` reads cached tables only.

    Raises
    ------
    LookupError
        With ``compute=False``, if a table is not in the cache (the error names it).

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
    if missing and not compute:
        names = ", ".join(f"{layer} ({PROBE_NAMES.get(probe, probe)}, {which} labels)" for layer, probe, which in missing)
        raise LookupError(f"Not in the cache of {run_.path.name}{'' if epoch is None else f' at epoch {epoch}'}: {names}; compute them with compute=True.")
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


def evaluation_grid(runs, **options) -> pd.DataFrame:
    """:func:`layerwise_evaluation` of several runs (``options`` as there), stacked."""
    return pd.concat([layerwise_evaluation(r, **options) for r in runs], ignore_index=True)


def _best_layer_keys(evaluation: pd.DataFrame) -> list[str]:
    # Every field that tells runs apart but the seed (runs.run_columns): runs that differ in
    # dropout, width, ... choose their layers apart.
    return [*run_columns(evaluation), "probe", "fit_labels", "fit_corruption_degree"]


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

    The layer is chosen once per (dataset, model, degree, probe, fitting labels, and every other
    field that tells the runs apart, :func:`memnotebooks.runs.run_columns`) on the mean over
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
    keys = _best_layer_keys(evaluation)
    if layers is not None:
        evaluation = evaluation[evaluation.layer.isin(layers)]
    scored = evaluation[evaluation.target == "true"]
    mean = evaluation.groupby(keys + ["layer", "split", "target"], as_index=False, dropna=False)["accuracy"].mean()
    kept = ["layer", "seed", "accuracy"] + (["hits"] if "hits" in scored else [])
    frames = []
    for selection in selections:
        (choose, labels), score = SELECTIONS[selection]
        chosen = mean[(mean.split == choose) & (mean.target == labels)].dropna(subset=["accuracy"])
        best = chosen.loc[chosen.groupby(keys, dropna=False)["accuracy"].idxmax(), keys + ["layer"]]
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
    keys = _best_layer_keys(evaluation)
    scores = best_layer_scores(evaluation, layers)
    mean = scores.groupby(keys + ["selection", "layer"], as_index=False, dropna=False)["accuracy"].mean()
    table = evaluation[keys].drop_duplicates()
    for selection, prefix in (("test-selected", "paper"), ("validated", "validated")):
        part = mean[mean.selection == selection].drop(columns="selection")
        table = table.merge(part.rename(columns={"layer": f"{prefix}_layer", "accuracy": f"{prefix}_accuracy"}), on=keys, how="left")
    return table.reset_index(drop=True)


def hidden_layers(run_: Run) -> list[str]:
    """The run's probe layers after the input."""
    return [layer for layer in run_.model.probe_layers if layer != "input"]


def layer_scores(evaluation: pd.DataFrame, probe: str = "masc", fit_labels: str = "corrupted", split: str = "test_holdout") -> pd.DataFrame:
    """One probe's per-layer rows of :func:`layerwise_evaluation`, scored on ``split`` against the
    true labels, shaped like :func:`memnotebooks.baselines.baseline_scores` (the layer as ``baseline``), so that
    :func:`memnotebooks.tables.paired_differences` compares layers with each other or with a baseline row."""
    rows = evaluation[(evaluation.probe == probe) & (evaluation.fit_labels == fit_labels) & (evaluation.split == split) & (evaluation.target == "true")]
    if rows.empty:
        raise ValueError(f"No rows of probe {probe!r} fitted on {fit_labels!r} labels scored on {split!r}.")
    return _in_layer_order(rows).assign(baseline=lambda t: t.layer)[["dataset", "model", "corruption_degree", "seed", "baseline", "layer", "accuracy", "hits"]]


def probe_differences(evaluation: pd.DataFrame, reference: str = "masc", split: str = "test_holdout") -> pd.DataFrame:
    """Per layer, each probe's accuracy minus ``reference``'s on the same images (and seeds), with
    its paired interval: :func:`memnotebooks.tables.paired_differences` with ``probe`` as the compared column and a
    ``layer`` column added. Probes not well posed on a layer (NaN) are left out there."""
    scored = evaluation[(evaluation.split == split) & (evaluation.target == "true")].dropna(subset=["accuracy"])
    frames = [paired_differences(rows, reference, column="probe").assign(layer=layer)
              for layer, rows in _in_layer_order(scored).groupby("layer", sort=False) if reference in set(rows.probe) and rows.probe.nunique() > 1]
    return pd.concat(frames, ignore_index=True)


def layer_profile(scores: pd.DataFrame, layers) -> pd.DataFrame:
    """Where decoding peaks with depth: per degree, over ``layers`` (in the network's order).

    Parameters
    ----------
    scores : DataFrame
        :func:`layer_scores` (the layer as ``baseline``), one or several seeds.
    layers : list of str
        The layers compared, input to output (e.g. :func:`hidden_layers`).

    Returns
    -------
    DataFrame
        Indexed by ``corruption_degree``: ``highest``, ``lowest`` and ``last_layer`` (layers)
        with their mean accuracies over seeds (``highest_accuracy``, ``lowest_accuracy``,
        ``last_accuracy``); ``falls_steadily`` (the mean never rises from one layer to the
        next); and the last layer minus the highest one image by image
        (:func:`memnotebooks.tables.paired_differences`: ``difference``, ``low``, ``high``,
        ``sign``), NaN where the highest is the last.
    """
    layers = list(layers)
    mean = scores.groupby(["corruption_degree", "baseline"]).accuracy.mean().unstack()[layers]
    rows = []
    for degree, by_layer in mean.iterrows():
        highest, last = by_layer.idxmax(), layers[-1]
        drop = paired_differences(scores[scores.corruption_degree == degree], highest, others=[last]).iloc[0] if highest != last else None
        rows.append({
            "corruption_degree": degree, "highest": highest, "highest_accuracy": by_layer.max(), "lowest": by_layer.idxmin(), "lowest_accuracy": by_layer.min(),
            "last_layer": last, "last_accuracy": by_layer[last], "falls_steadily": bool((by_layer.diff().iloc[1:] <= 0).all()),
            **{key: np.nan if drop is None else drop[key] for key in ("difference", "low", "high", "sign")},
        })
    return pd.DataFrame(rows).set_index("corruption_degree")


def best_setting(scores: pd.DataFrame, reference: str, exclude=("chosen on validation",)) -> pd.DataFrame:
    """Which setting decodes most, per degree, beside ``reference``.

    Parameters
    ----------
    scores : DataFrame
        One row per setting (``baseline``: e.g. :func:`threshold_scores`' ``subspaces``), degree
        and seed, with ``accuracy`` and ``hits`` (for
        :func:`memnotebooks.tables.paired_differences`).
    reference : str
        The setting compared with the best one (the paper's threshold).
    exclude : tuple of str
        Settings that are not candidates (a choice among the others).

    Returns
    -------
    DataFrame
        Indexed by ``corruption_degree``: ``best`` (the setting with the highest mean accuracy
        over seeds; the first on ties), ``best_accuracy``, ``reference_accuracy`` and the best
        minus the reference image by image (``difference``, ``low``, ``high``, ``sign``), NaN
        where the best is the reference.
    """
    others = [s for s in dict.fromkeys(scores.baseline) if s != reference and s not in exclude]
    differences = paired_differences(scores, reference, others=others)
    mean = scores.groupby(["corruption_degree", "baseline"]).accuracy.mean().unstack()
    rows = []
    for degree, by_setting in mean.iterrows():
        best = by_setting.drop(list(exclude), errors="ignore").idxmax()
        row = None if best == reference else differences[(differences.corruption_degree == degree) & (differences.baseline == best)].iloc[0]
        rows.append({"corruption_degree": degree, "best": best, "best_accuracy": by_setting[best], "reference_accuracy": by_setting[reference],
                     **{key: np.nan if row is None else row[key] for key in ("difference", "low", "high", "sign")}})
    return pd.DataFrame(rows).set_index("corruption_degree")


def _in_layer_order(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("layer_index", kind="stable") if "layer_index" in table else table


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
        decoding = evaluation_grid(grid, layers=hidden, **params)
        frames.append(decoding.assign(subspaces=name))
    every = pd.concat(frames, ignore_index=True)
    per_setting = pd.concat([best_layer_scores(frame).assign(subspaces=frame.subspaces.iloc[0]) for frame in frames], ignore_index=True)
    joint = best_layer_scores(every.assign(layer=every.layer + " @ " + every.subspaces))
    joint = joint[joint.selection == "validated"].assign(subspaces="chosen on validation")
    return pd.concat([per_setting, joint], ignore_index=True)


def rule_checks(run_: Run, layers=None, variance_threshold: float = 0.99) -> pd.DataFrame:
    """MASC as a quadratic rule, and VeLPIC against MASC with one component, on each layer.

    On each probe layer, MASC (``variance_threshold``), MASC with one component per class and
    VeLPIC (:class:`memnotebooks.velpic.VeLPIC`) are fitted on the training activations with
    the corrupted labels, and the test set's activations are scored three ways: by MASC's angles
    (:meth:`memnotebooks.masc.MASC.angles`), by the quadratic form ``xᵀP_c x / xᵀx`` computed from
    the subspaces' bases (:func:`memnotebooks.masc.squared_cosines`), and by VeLPIC's
    ``argmax_c v_c·x`` against MASC's ``argmax_c |v_c·x|``.

    Returns
    -------
    DataFrame
        One row per layer: ``layer``, ``n_points`` (test images), ``quadratic_same`` (share of
        them where the smallest angle and the largest quadratic form pick the same class),
        ``quadratic_gap`` (largest ``|cos² θ_c − xᵀP_c x / xᵀx|`` over images and classes, the
        angles in float32 as MASC computes them), ``negative_features`` (share of the test
        activations below zero), ``negative_projections`` (share of test images with some
        ``v_c·x < 0``), ``sign_differs`` (share of test images VeLPIC and MASC at ``k = 1``
        assign differently), ``velpic_accuracy`` and ``masc_one_accuracy`` (test accuracy, true
        labels), and the configuration columns.
    """
    model = run_.model
    layers = check_layers(model, layers)
    labels = run_.fit_labels("corrupted")
    y_test = run_.dataset.y_test.numpy()
    device = next(model.parameters()).device
    rows = []
    for layer in layers:
        train, test = (extract_activations(model, x, [layer], output_device=device)[layer] for x in (run_.dataset.x_train, run_.dataset.x_test))
        masc = MASC(variance_threshold=check_variance_threshold(variance_threshold)).fit(train, labels)
        quadratic = squared_cosines(masc, test)
        from_angles = np.cos(np.deg2rad(masc.angles(test))) ** 2
        one, velpic = MASC(max_components=1).fit(train, labels), VeLPIC().fit(train, labels)
        projections = test.double().cpu().numpy() @ velpic.components_.T
        linear, absolute = velpic.predict(test), one.predict(test)
        rows.append({
            "layer": layer,
            "n_points": len(y_test),
            "quadratic_same": float((masc.predict(test) == masc.classes_[quadratic.argmax(axis=1)]).mean()),
            "quadratic_gap": float(np.abs(from_angles - quadratic).max()),
            "negative_features": float((test < 0).double().mean()),
            "negative_projections": float((projections < 0).any(axis=1).mean()),
            "sign_differs": float((linear != absolute).mean()),
            "velpic_accuracy": float((linear == y_test).mean()),
            "masc_one_accuracy": float((absolute == y_test).mean()),
        })
    return pd.DataFrame(rows).assign(**config_columns(run_))


def test_angles(run_: Run, layer: str, fit_labels: str = "corrupted", variance_threshold: float = 0.99, split: str = "test_holdout") -> pd.DataFrame:
    """MASC's angles on one layer: for each test image of ``split``, the angle to its true
    class's subspace and the smallest angle to another class's.

    MASC is fitted on the layer's training activations with ``fit_labels``; an image is
    classified right when the first angle is the smaller.

    Parameters
    ----------
    run_ : Run
    layer : str
        One of the model's probe layers.
    fit_labels : {"corrupted", "true"}
    variance_threshold : float in (0, 1]
    split : {"test", "test_validation", "test_holdout"}

    Returns
    -------
    DataFrame
        Two rows per image: ``angle`` (degrees, in [0, 90]) and ``subspace`` (``"true class"`` or
        ``"nearest other class"``), with the configuration columns and ``layer``.
    """
    splits = {"test": None, "test_validation": True, "test_holdout": False}
    if split not in splits:
        raise ValueError(f"Unknown split {split!r}; choose from: {', '.join(splits)}.")
    model = run_.model
    (layer,) = check_layers(model, [layer])
    device = next(model.parameters()).device
    train, test = (extract_activations(model, x, [layer], output_device=device)[layer] for x in (run_.dataset.x_train, run_.dataset.x_test))
    masc = MASC(variance_threshold=check_variance_threshold(variance_threshold)).fit(train, run_.fit_labels(fit_labels))
    y_test = run_.dataset.y_test.numpy()
    rows = np.ones(len(y_test), dtype=bool) if splits[split] is None else validation_split(y_test) == splits[split]
    angles = masc.angles(test[torch.as_tensor(rows, device=test.device)])
    if not np.isin(y_test[rows], masc.classes_).all():
        raise ValueError(f"Some test classes have no {fit_labels} training labels in {run_.path.name}: no subspace to measure the angle to.")
    own = np.searchsorted(masc.classes_, y_test[rows])
    to_true = angles[np.arange(len(own)), own]
    angles[np.arange(len(own)), own] = np.inf
    return pd.DataFrame({
        "angle": np.concatenate([to_true, angles.min(axis=1)]),
        "subspace": ["true class"] * len(own) + ["nearest other class"] * len(own),
    }).assign(**config_columns(run_), layer=layer)
