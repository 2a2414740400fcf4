"""The class manifolds of a run's layers: their mean-field capacity, radius and dimension per
layer, group of training examples and checkpoint, and how training changes them.

Stephenson et al. (2021) locate memorization in the layers this way. :func:`manifold_table`
measures (:func:`memnotebooks.manifolds.manifold_analysis`) each layer's class manifolds for the
clean examples and for the corrupted ones grouped by the labels they were given and by their
true labels (:data:`MANIFOLD_GROUPS`), at the end of training or at checkpoints;
:func:`manifold_change` and :func:`manifold_ratios` compare the last epoch with the untrained
network. :func:`manifold_grid` measures several runs over their checkpoints, and
:func:`width_manifolds` the untrained and the memorized network of each run of a width sweep.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .activations import check_layers, extract_activations
from .dynamics import checkpointed_epochs, epochs_reached
from .manifolds import manifold_analysis
from .runs import Run, config_columns

__all__ = [
    "manifold_change",
    "manifold_grid",
    "MANIFOLD_GROUPS",
    "manifold_ratios",
    "manifold_table",
    "width_manifolds",
]


MANIFOLD_GROUPS = {
    "clean": ("clean", "given"),
    "corrupted, given labels": ("corrupted", "given"),
    "corrupted, true labels": ("corrupted", "true"),
}
"""The manifolds :func:`manifold_table` measures: which training examples, grouped by which
labels. The corrupted examples grouped by their given labels are what the network memorizes;
grouped by their true labels, what it would have to generalize."""


def _manifold_examples(run_: Run, points_per_class: int, seed: int, equal_sizes: bool = True) -> dict:
    """Per manifold group, up to ``points_per_class`` examples of each label (drawn once, with
    ``seed``, so every layer and epoch measures the same points) and their labels. Labels with
    fewer than two examples make no manifold, and a group of fewer than two manifolds is left out.
    With ``equal_sizes`` every manifold of every group gets as many points as the smallest one
    has (at most ``points_per_class``): radius and dimension grow with the number of points, so
    groups are compared at one size."""
    rng = np.random.default_rng(seed)
    corrupted = run_.corrupted
    labels = {"given": run_.train_labels.numpy(), "true": run_.dataset.y_train.numpy()}
    pools = {}
    for group, (subset, which) in MANIFOLD_GROUPS.items():
        pool = np.flatnonzero(corrupted if subset == "corrupted" else ~corrupted)
        picked = [rng.permutation(pool[labels[which][pool] == c])[:points_per_class] for c in np.unique(labels[which][pool])]
        picked = [index for index in picked if len(index) >= 2]
        if len(picked) >= 2:
            pools[group] = picked
    size = min((len(index) for picked in pools.values() for index in picked), default=points_per_class) if equal_sizes else points_per_class
    chosen = {}
    for group, picked in pools.items():
        index = np.sort(np.concatenate([index[:size] for index in picked]))
        chosen[group] = (index, labels[MANIFOLD_GROUPS[group][1]][index])
    return chosen


def manifold_table(run_: Run, layers=None, epochs=None, points_per_class: int = 50, n_t: int = 200, seed: int = 0, equal_sizes: bool = True) -> pd.DataFrame:
    """Mean-field capacity, radius and dimension of the class manifolds of each layer.

    For each group of :data:`MANIFOLD_GROUPS` (with at least two classes of at least two points)
    and each probe layer, :func:`memnotebooks.manifolds.manifold_analysis` of up to
    ``points_per_class`` training examples per class, the same examples at every layer and
    epoch; with ``equal_sizes`` (default) as many per manifold in every group as the smallest
    manifold of any group has, so that the groups' radii and dimensions are comparable (column
    ``n_points``). Centre correlations are not removed (see
    :func:`memnotebooks.manifolds.manifold_analysis`), so the numbers are not comparable with
    those of Stephenson et al. (2021), who remove them.

    Parameters
    ----------
    run_ : Run
    layers : list of str, optional
        Probe layers; default all.
    epochs : list of int, optional
        Checkpointed epochs; default the final network only.
    points_per_class : int
        Examples per manifold (the cost grows with it; Stephenson et al. use 50).
    n_t, seed : int
        Gaussian draws per manifold, and the seed of the draws and of the examples chosen.

    Returns
    -------
    DataFrame
        One row per epoch, layer, group and class: the configuration columns, ``epoch``,
        ``layer``, ``layer_index``, ``group``, ``label``, ``n_points``, ``capacity``,
        ``radius``, ``dimension``.
    """
    if isinstance(points_per_class, bool) or not isinstance(points_per_class, (int, np.integer)) or points_per_class < 2:
        raise ValueError(f"points_per_class must be an integer >= 2, got {points_per_class!r}.")
    layers = check_layers(run_.model, layers)
    groups = _manifold_examples(run_, points_per_class, seed, equal_sizes)
    models = {run_.summary["epochs"]: run_.model} if epochs is None else {e: run_.checkpoint(e) for e in checkpointed_epochs(run_, epochs)}
    rows = []
    for epoch, model in models.items():
        for group, (index, labels) in groups.items():
            activations = extract_activations(model, run_.dataset.x_train[index], layers)
            for layer in layers:
                table = manifold_analysis(activations[layer].numpy(), labels, n_t=n_t, seed=seed)
                rows.append(table.assign(epoch=epoch, layer=layer, layer_index=list(run_.model.probe_layers).index(layer), group=group))
    columns = ["epoch", "layer", "layer_index", "group", "label", "n_points", "capacity", "radius", "dimension"]
    return pd.concat(rows, ignore_index=True)[columns].assign(**config_columns(run_))


def manifold_grid(runs, epochs=None, layers=None, points_per_class: int = 50, n_t: int = 200, seed: int = 0, equal_sizes: bool = True) -> pd.DataFrame:
    """:func:`manifold_table` of several runs over training: first each run at the checkpoints of
    ``epochs`` before its last epoch (:func:`memnotebooks.dynamics.epochs_reached` with
    ``final=False``: the final network is measured once, as itself), then each run's final
    network; stacked, the other arguments as for :func:`manifold_table`."""
    runs = list(runs)
    options = dict(layers=layers, points_per_class=points_per_class, n_t=n_t, seed=seed, equal_sizes=equal_sizes)
    before = [] if epochs is None else [(r, epochs_reached(r, epochs, final=False)) for r in runs]
    frames = [manifold_table(r, epochs=reached, **options) for r, reached in before if reached]
    return pd.concat(frames + [manifold_table(r, **options) for r in runs], ignore_index=True)


def width_manifolds(runs, layers=None, points_per_class: int = 50, n_t: int = 200, seed: int = 0) -> pd.DataFrame:
    """:func:`manifold_table` of each run's untrained network (its checkpoint at epoch 0) and of
    its memorized one (the final network), for runs that differ in width
    (:attr:`memnotebooks.runs.RunConfig.width`): the table's rows with ``width`` and
    ``network`` (``"untrained"``, ``"memorized"``) first."""
    options = dict(layers=layers, points_per_class=points_per_class, n_t=n_t, seed=seed)
    # A width other than the default is already a configuration column of the run's rows; this one is every run's.
    frames = [manifold_table(r, epochs=epochs, **options).assign(width=r.config.width, network=network) for r in runs for network, epochs in (("untrained", [0]), ("memorized", None))]
    table = pd.concat(frames, ignore_index=True)
    return table[["width", "network", *(column for column in table.columns if column not in ("width", "network"))]]


def manifold_change(table: pd.DataFrame, measure: str = "radius") -> pd.DataFrame:
    """How much training changed one measure of :func:`manifold_table` at each layer: per
    corruption degree and group (rows) and layer (columns, in the network's order), the mean over
    classes and seeds at each run's last epoch divided by the same at epoch 0 (the untrained
    network). Below 1: the manifolds shrank there."""
    if measure not in ("capacity", "radius", "dimension"):
        raise ValueError(f"Unknown measure {measure!r}; choose one of: capacity, radius, dimension.")
    last = table.epoch == table.groupby(["corruption_degree", "seed"]).epoch.transform("max")
    if not (table.epoch == 0).any():
        raise ValueError("The table has no epoch 0 (the untrained network) to compare with: pass epochs=[0, ...] to manifold_table.")
    keys = ["corruption_degree", "group", "layer_index", "layer"]
    ratio = table[last].groupby(keys)[measure].mean() / table[table.epoch == 0].groupby(keys)[measure].mean()
    wide = ratio.round(2).reset_index().pivot(index=["corruption_degree", "group"], columns=["layer_index", "layer"], values=measure)
    return wide.droplevel("layer_index", axis=1).rename_axis(columns=f"{measure}: last epoch / epoch 0")


def manifold_ratios(table: pd.DataFrame, measure: str = "radius") -> pd.DataFrame:
    """:func:`manifold_change` in long form, unrounded, with how many manifolds moved each way.

    Returns
    -------
    DataFrame
        Per ``corruption_degree``, ``group`` and ``layer`` (with ``layer_index``): ``ratio`` (mean
        at the last epoch over the mean at epoch 0, as :func:`manifold_change`), ``fell`` and
        ``rose`` (how many manifolds, one per class and seed, end below or above their own value
        at epoch 0), ``n`` (manifolds compared).
    """
    manifold_change(table, measure)  # refuses an unknown measure and a table without epoch 0
    last = table.epoch == table.groupby(["corruption_degree", "seed"]).epoch.transform("max")
    keys = ["corruption_degree", "group", "layer_index", "layer"]
    start = table[table.epoch == 0].set_index(keys + ["seed", "label"])[measure]
    end = table[last].set_index(keys + ["seed", "label"])[measure]
    each = (end / start.reindex(end.index)).dropna()
    ratio = table[last].groupby(keys)[measure].mean() / table[table.epoch == 0].groupby(keys)[measure].mean()
    counts = each.groupby(keys).agg(fell=lambda r: int((r < 1).sum()), rose=lambda r: int((r > 1).sum()), n="size")
    return ratio.rename("ratio").to_frame().join(counts).reset_index()
