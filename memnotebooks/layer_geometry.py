"""The class subspaces of a run's layers, as tables: their dimension, spread and angles per layer
and class, how memorization changes them, and how much room each label group's subspace leaves
to copy wrong labels.

The measures are array-level (:mod:`memnotebooks.subspaces`); this module takes them on a run's
training activations, grouped by their true or their corrupted labels:

- :func:`geometry_table` (chapter 04): per layer and class, :func:`memnotebooks.subspaces.class_geometry`;
  :func:`geometry_summary` averages it over classes and seeds, and :func:`layer_changes` (with
  :func:`describe_changes`, its words) tells how a measure moves from one degree to another in
  every seed;
- :func:`label_group_subspaces` and :func:`subspace_room` (chapter 05): why MASC copies noisy
  labels in-sample, its subspaces' dimension beside the points they have to span.

:func:`geometry_grid` stacks :func:`geometry_table` over runs. Chapter 03's first look at the
layers is here too: :func:`embedding_table`, the test images in each layer's first two principal
components (:func:`memnotebooks.activations.embed_2d`), and :func:`layer_trend`, a measure's
course from the input to the last layer in words.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .activations import check_layers, embed_2d, extract_activations
from .decoding import layerwise_evaluation
from .masc import MASC, check_variance_threshold
from .prose import listing, number
from .runs import Run, config_columns
from .subspaces import class_geometry

__all__ = [
    "describe_changes",
    "embedding_table",
    "GEOMETRY_MEASURES",
    "geometry_grid",
    "geometry_summary",
    "geometry_table",
    "label_group_subspaces",
    "layer_changes",
    "layer_trend",
    "SUBSPACE_ROOM",
    "subspace_room",
]


def geometry_table(run_: Run, layers=None, fit_labels: str = "true", variance_threshold: float = 0.99) -> pd.DataFrame:
    """Per layer and class: subspace dimension (and its share of its cap ``min(n_c, d)``),
    participation ratio, and the mean and first principal angles to the other classes beside
    those of random subspaces of the same dimensions
    (:func:`memnotebooks.subspaces.class_geometry`), from the training activations grouped by
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


def geometry_grid(runs, layers=None, fit_labels: str = "true", variance_threshold: float = 0.99) -> pd.DataFrame:
    """:func:`geometry_table` of several runs, stacked."""
    return pd.concat([geometry_table(r, layers, fit_labels, variance_threshold) for r in runs], ignore_index=True)


def embedding_table(runs, max_points: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Each run's test images in each probe layer's first two principal components.

    :func:`memnotebooks.activations.embed_2d` of the run's test activations, labelled with the
    true test labels; ``max_points`` and ``seed`` draw the same images in every layer and run.

    Returns
    -------
    DataFrame
        :func:`memnotebooks.activations.embed_2d`'s columns and ``corruption_degree`` (the
        run's), the runs stacked in order.
    """
    frames = []
    for r in runs:
        view = embed_2d(extract_activations(r.model, r.dataset.x_test), r.dataset.y_test.numpy(), max_points=max_points, seed=seed)
        frames.append(view.assign(corruption_degree=r.config.corruption_degree))
    return pd.concat(frames, ignore_index=True)


def layer_trend(values: pd.Series) -> str:
    """A measure's course over the layers (``values``: input first, last layer last), in words:
    "rises at every layer", else whether it "is higher" or "is lower in the last layer than at the
    input" (or "is the same ...").

    >>> layer_trend(pd.Series([0.1, 0.3, 0.2]))
    'is higher in the last layer than at the input'
    """
    if values.is_monotonic_increasing and values.iloc[-1] > values.iloc[0]:
        return "rises at every layer"
    first, last = values.iloc[0], values.iloc[-1]
    return f"is {'higher' if last > first else 'lower' if last < first else 'the same'} in the last layer {'as' if last == first else 'than'} at the input"


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


def layer_changes(geometry: pd.DataFrame, measure: str, start: float, end: float, by: str = "corruption_degree") -> pd.DataFrame:
    """How a measure of :func:`memnotebooks.subspaces.class_geometry` rows changes from ``by == start`` to ``by == end``,
    per layer, and whether every seed agrees on its direction.

    ``geometry`` holds rows of several runs (:func:`geometry_table`,
    columns ``layer``, ``layer_index``, ``seed``, ``by`` and ``measure``). Per seed and layer
    the measure is averaged over classes; the change is ``end − start`` of that mean, run ``s``
    at ``end`` against run ``s`` at ``start``.

    Returns
    -------
    DataFrame
        Indexed by layer (forward order): ``start`` and ``end`` (means over seeds), ``change``
        (their difference), ``ratio`` (``end / start``), ``n_seeds`` and ``sign``: +1 when the
        measure rises in every seed, −1 when it falls in every seed, 0 otherwise (the seeds
        disagree, or it does not move), so that :func:`memnotebooks.prose.verb` can word it.
    """
    missing = {"layer", "layer_index", "seed", by, measure} - set(geometry.columns)
    if missing:
        raise ValueError(f"geometry lacks the column(s) {sorted(missing)}.")
    means = geometry.groupby([by, "layer_index", "layer", "seed"])[measure].mean()
    levels = set(means.index.get_level_values(by))
    if start not in levels or end not in levels:
        raise ValueError(f"{by} must take the values {start!r} and {end!r}; it takes {sorted(levels)}.")
    first, last = means.xs(start, level=by), means.xs(end, level=by)
    change = (last - first).dropna()
    per_layer = change.groupby(["layer_index", "layer"])
    table = pd.DataFrame(
        {
            "start": first.groupby(["layer_index", "layer"]).mean(),
            "end": last.groupby(["layer_index", "layer"]).mean(),
            "n_seeds": per_layer.size(),
            "sign": per_layer.apply(lambda c: 1 if (c > 0).all() else -1 if (c < 0).all() else 0),
        }
    )
    table.insert(2, "change", table.end - table.start)
    table.insert(3, "ratio", table.end / table.start)
    return table.sort_index().droplevel("layer_index")


def describe_changes(changes: pd.DataFrame, rises: str = "rises", falls: str = "falls", level: str = "shows no change common to every seed",
                     layers=None, digits: int | None = 1, unit: str = "") -> str:
    """:func:`layer_changes` in words: ``"rises in `fc1` (24.1 → 45.8) and `fc2` (27.3 → 92.6);
    falls in `fc4` (22.3° → 4.0°)"``, the layers grouped by their ``sign``.

    ``layers`` keeps only those layers (in the table's order); ``digits=None`` leaves the values
    out; ``unit`` follows each value (``"°"``).
    """
    kept = changes if layers is None else changes[changes.index.isin(list(layers))]
    if kept.empty:
        raise ValueError("no layers to describe.")

    def name(layer, row):
        values = f" ({number(row.start, digits)}{unit} → {number(row.end, digits)}{unit})" if digits is not None else ""
        return f"`{layer}`{values}"

    parts = [f"{word} in {listing([name(layer, row) for layer, row in kept[kept.sign == sign].iterrows()])}"
             for sign, word in ((1, rises), (-1, falls), (0, level)) if (kept.sign == sign).any()]
    return "; ".join(parts)


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
