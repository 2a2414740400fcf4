"""What changes while a network memorizes: when each example is learned, how hard each one pulls
on the weights, and which layers hold the memorized labels.

- :func:`learning_table`: each training example's epoch of learning (the first epoch from which
  the network fits its label for good), clean against corrupted: Arpit et al. (2017) find the
  real patterns learned first, the noise later.
- :func:`gradient_table`: at the run's checkpoints, how hard each clean and each corrupted example
  pulls on the weights (its gradient's norm), how much the examples of a subset agree (the
  coherence of their gradients) and what share of the full-batch step each subset makes. Early
  in training the clean examples agree with one another and the corrupted ones do not, so the
  step follows the clean ones (Stephenson et al.'s analytical point), measured.
- :func:`decoding_over_epochs`: MASC's best-layer test accuracy at each checkpoint beside the
  network's own, to see when each peaks (latent generalization while memorizing).
- :func:`manifold_table`: the mean-field capacity, radius and dimension
  (:func:`memnotebooks.geometry.manifold_analysis`) of each layer's class manifolds, for the clean
  examples and for the corrupted ones grouped by the labels they were given and by their true
  labels, at the end of training or at checkpoints (Stephenson et al. 2021).
- :func:`rewinding_table`: the last ``L`` weight layers reset to an early checkpoint, the rest
  kept (Stephenson et al. 2021): if generalization comes back when only the last layers are
  rewound, memorization lives there.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from .activations import check_layers, extract_activations
from .evaluation import best_layer_scores, layerwise_evaluation
from .geometry import manifold_analysis
from .models import rewind, weight_layers
from .relabel import relabel_table
from .runs import Run, RunConfig, config_columns, early_stopped, history_table, summary_table, test_parts
from .training import per_example_gradient_norms, predict, summed_gradient

__all__ = [
    "decoding_over_epochs",
    "decoding_peaks",
    "gradient_table",
    "learning_summary",
    "learning_table",
    "manifold_change",
    "manifold_table",
    "MANIFOLD_GROUPS",
    "RELABEL_METHODS",
    "recovery_table",
    "rewinding_table",
    "setting_label",
    "settings_history",
    "settings_summary",
    "width_summary",
]


def _subset(run_: Run) -> np.ndarray:
    return np.where(run_.corrupted, "corrupted", "clean")


def learning_table(runs) -> pd.DataFrame:
    """One row per training example of each run: its subset and its epoch of learning.

    Returns
    -------
    DataFrame
        The configuration columns, ``example`` (index in the training set), ``subset``
        (``"clean"`` or ``"corrupted"``), ``learned_epoch`` (-1: not fitted at the end) and
        ``epochs`` (the run's length).
    """
    frames = [
        pd.DataFrame({"example": np.arange(len(r.train_labels)), "subset": _subset(r), "learned_epoch": r.learned_epoch, "epochs": r.summary["epochs"]}).assign(
            **config_columns(r)
        )
        for r in runs
    ]
    return pd.concat(frames, ignore_index=True)


def learning_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`learning_table` per degree and subset: the median and 90th percentile of the epoch
    of learning over the examples learned, and the share never learned for good."""
    learned = table[table.learned_epoch >= 0].groupby(["corruption_degree", "subset"]).learned_epoch
    summary = pd.DataFrame({"median epoch": learned.median(), "90th percentile": learned.quantile(0.9)})
    summary["share not learned"] = (table.learned_epoch < 0).groupby([table.corruption_degree, table.subset]).mean()
    return summary


def setting_label(config: RunConfig, noise: bool = True) -> str:
    """A short name of what a run changes from the paper's clean training: the data's noise
    (mode and degree; left out with ``noise=False``, for runs that share it) and the
    regularizers, e.g. ``"random labels (p = 1.0)"`` or ``"dropout 0.5"``; ``"real data"``
    (``"no regularizer"`` without the noise) when it changes nothing."""
    modes = {"uniform": "random labels", "permute": "permuted labels", "random_inputs": "random inputs"}
    parts = [f"{modes[config.corruption_mode]} (p = {config.corruption_degree})"] if config.corruption_degree and noise else []
    parts += [f"dropout {config.dropout}"] if config.dropout else []
    parts += [f"weight decay {config.weight_decay:g}"] if config.weight_decay else []
    return ", ".join(parts) or ("real data" if noise else "no regularizer")


def settings_history(runs, noise: bool = True) -> pd.DataFrame:
    """:func:`memnotebooks.runs.history_table` with a ``setting`` column (:func:`setting_label`)."""
    runs = list(runs)
    return pd.concat([history_table([r]).assign(setting=setting_label(r.config, noise)) for r in runs], ignore_index=True)


def settings_summary(runs, noise: bool = True) -> pd.DataFrame:
    """Per setting (:func:`setting_label`), mean over seeds of the epochs trained, whether the
    target was reached (the share of seeds that did), and the final accuracies on the clean
    training examples, on the corrupted ones against their given labels, and on the test set
    (columns ``epochs``, ``reached target``, ``clean``, ``corrupted (given)``, ``test``).
    ``noise=False`` names the settings by their regularizers alone."""
    runs = list(runs)
    table = summary_table(runs).assign(setting=[setting_label(r.config, noise) for r in runs])
    columns = {"epochs": "epochs", "reached_target": "reached target", "clean_accuracy": "clean", "corrupted_accuracy_given": "corrupted (given)", "test_accuracy": "test"}
    summary = table.groupby("setting", sort=False)[list(columns)].mean().round(3).rename(columns=columns)
    return summary.rename_axis(index="setting" if noise else "regularizer")


def _out_size(layer: torch.nn.Module) -> int:
    return layer.out_features if isinstance(layer, torch.nn.Linear) else layer.out_channels


def width_summary(runs) -> pd.DataFrame:
    """Per run of a width sweep (:class:`memnotebooks.runs.RunConfig` ``width``): its hidden
    layers' widths, the epochs it trained, whether it reached the target, the share of corrupted
    labels it fits at the end, its final test accuracy, and the holdout accuracy of its best
    validation epoch (the network stopped early)."""
    rows = []
    for r in runs:
        history = r.history
        early = early_stopped(history)
        rows.append(
            {
                **config_columns(r),
                "width": r.config.width,
                "hidden widths": "-".join(str(_out_size(r.model.get_submodule(name))) for name in weight_layers(r.model)[:-1]),
                "epochs": r.summary["epochs"],
                "reached target": r.summary["reached_target"],
                "corrupted (given)": history.corrupted_accuracy_given.iloc[-1],
                "test, final": history.test_accuracy.iloc[-1],
                "holdout, stopped early": early.test_holdout_accuracy,
            }
        )
    return pd.DataFrame(rows).round(3)


def _checkpoint_epochs(run_: Run, epochs) -> list[int]:
    reached = [e for e in run_.config.checkpoint_epochs if e <= run_.summary["epochs"]]
    if epochs is None:
        return reached
    missing = [e for e in epochs if e not in reached]
    if missing:
        raise ValueError(f"Epoch(s) {missing} of {run_.path.name} were never checkpointed; it kept {reached} (RunConfig.checkpoint_epochs).")
    return list(epochs)


def gradient_table(run_: Run, epochs=None, max_examples: int | None = 200, seed: int = 0, batch_size: int | None = None) -> pd.DataFrame:
    """Per checkpoint, how the clean and the corrupted training examples pull on the weights.

    Every gradient is of the cross-entropy on the labels trained on, in evaluation mode. Three
    measures per subset ``s``:

    - ``mean_norm`` (and ``median_norm``): the norm of one example's own gradient ``g_i``;
    - ``coherence``: ``‖Σ g_i‖ / Σ ‖g_i‖`` over the drawn examples, 1 when they all point the same
      way and about ``1/√n`` when their directions are unrelated;
    - ``step_share``: the subset's part of the full-batch gradient ``G = G_clean + G_corrupted``
      (``G_s`` the sum over the subset's examples, all of them), ``⟨G_s, G⟩ / ‖G‖²``; the shares
      of the two subsets add up to 1, and the larger one sets the direction of the step.

    Parameters
    ----------
    run_ : Run
    epochs : list of int, optional
        Checkpointed epochs; default every one the run reached.
    max_examples : int, optional
        Examples drawn (with ``seed``, the same at every epoch) from each subset for the
        per-example measures, since one example's gradient is as large as the model. A coherence
        depends on the number of examples, so compare subsets of the same size. ``None`` takes
        every example.
    seed : int
    batch_size : int, optional
        Examples per vectorized gradient computation (default: as memory allows, see
        :func:`memnotebooks.training.per_example_gradient_norms`).

    Returns
    -------
    DataFrame
        The configuration columns, ``epoch``, ``subset``, ``mean_norm``, ``median_norm``,
        ``coherence``, ``step_share`` and ``n_points`` (examples drawn).
    """
    rng = np.random.default_rng(seed)
    subsets = _subset(run_)
    members = {subset: np.flatnonzero(subsets == subset) for subset in ("clean", "corrupted") if (subsets == subset).any()}
    chosen = {subset: np.sort(rng.permutation(index)[:max_examples]) for subset, index in members.items()}
    x, y = run_.dataset.x_train, run_.train_labels
    rows = []
    for epoch in _checkpoint_epochs(run_, epochs):
        model = run_.checkpoint(epoch)
        totals = {subset: summed_gradient(model, x[index], y[index]) for subset, index in members.items()}
        full = sum(totals.values())
        for subset, index in chosen.items():
            norms = per_example_gradient_norms(model, x[index], y[index], batch_size)
            sample_sum = summed_gradient(model, x[index], y[index])
            rows.append(
                {
                    "epoch": epoch,
                    "subset": subset,
                    "mean_norm": float(norms.mean()),
                    "median_norm": float(np.median(norms.numpy())),
                    "coherence": float(sample_sum.norm() / norms.sum()),
                    "step_share": float(totals[subset] @ full / (full @ full)),
                    "n_points": len(index),
                }
            )
    return pd.DataFrame(rows).assign(**config_columns(run_))


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


def rewinding_table(run_: Run, epochs=None, depths=None) -> pd.DataFrame:
    """Test and training accuracy of the memorized network with its last ``L`` weight layers
    reset to their values at an earlier epoch.

    Parameters
    ----------
    run_ : Run
    epochs : list of int, optional
        Checkpointed epochs to rewind to; default every one the run reached.
    depths : list of int, optional
        Numbers of layers ``L`` to rewind, counted from the output; default 0 (the memorized
        network) to all of them.

    Returns
    -------
    DataFrame
        The configuration columns, ``epoch``, ``layers_rewound`` (``L``), ``first_rewound`` (the
        layer nearest the input among those reset, ``""`` for none), ``test_accuracy``,
        ``test_validation_accuracy`` and ``test_holdout_accuracy`` (the parts of the test set of
        :func:`memnotebooks.runs.test_parts`, to choose ``L`` and the epoch on one and score on
        the other), ``clean_accuracy`` (clean training examples, their labels) and
        ``corrupted_accuracy_given`` (corrupted training examples, the labels memorized).
    """
    layers = weight_layers(run_.model)
    depths = list(range(len(layers) + 1)) if depths is None else list(depths)
    bad = [d for d in depths if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= len(layers)]
    if bad:
        raise ValueError(f"depths {bad} are out of range: {run_.config.model} has {len(layers)} weight layers ({', '.join(layers)}), so L runs from 0 to {len(layers)}.")
    corrupted = run_.corrupted
    validation = test_parts(run_.dataset)["test_validation"][1].numpy()

    def scores(model) -> dict:
        fitted = (predict(model, run_.dataset.x_train).cpu() == run_.train_labels).numpy()
        correct = (predict(model, run_.dataset.x_test).cpu() == run_.dataset.y_test).numpy()
        return {
            "test_accuracy": float(correct.mean()),
            "test_validation_accuracy": float(correct[validation].mean()),
            "test_holdout_accuracy": float(correct[~validation].mean()),
            "clean_accuracy": float(fitted[~corrupted].mean()) if (~corrupted).any() else float("nan"),
            "corrupted_accuracy_given": float(fitted[corrupted].mean()) if corrupted.any() else float("nan"),
        }

    memorized = scores(run_.model) if 0 in depths else None  # L = 0 rewinds nothing, whatever the epoch
    rows = []
    for epoch in _checkpoint_epochs(run_, epochs):
        early_state = run_.checkpoint(epoch).state_dict()
        for depth in map(int, depths):
            rewound = memorized if depth == 0 else scores(rewind(copy.deepcopy(run_.model), early_state, depth))
            rows.append({"epoch": epoch, "layers_rewound": depth, "first_rewound": layers[len(layers) - depth] if depth else "", **rewound})
    return pd.DataFrame(rows).assign(**config_columns(run_))


RELABEL_METHODS = ("masc_corrupted", "masc_crossfit")
"""The relabellings :func:`recovery_table` retrains with: the paper's (in-sample MASC) and its
out-of-fold variant (chapter 06)."""


def recovery_table(run_: Run, rewinding: pd.DataFrame, relabel_methods=RELABEL_METHODS, **relabel_settings) -> pd.DataFrame:
    """Ways of recovering generalization from a memorized run, each chosen on the validation part
    of the test set and scored on the holdout part (chapter 05's split).

    Rows: the memorized network; the network stopped early (its best validation epoch); the best
    rewinding of ``rewinding`` (:func:`rewinding_table` of this run: the epoch and ``L`` with the
    highest validation accuracy); MASC on corrupted labels at its validated best layer (chapter
    05); and relabel + retrain by each of ``relabel_methods``
    (:func:`memnotebooks.relabel.relabel_table` with ``relabel_settings``, chapter 06).

    Returns
    -------
    DataFrame
        Index ``recovery`` (``memorized``, ``stopped early``, ``rewound``, ``MASC``,
        ``retrained, <method>``); columns ``choice`` (what was chosen on the validation part: the
        epoch, ``L`` and epoch, the layer, or the layer the labels came from and the fine-tuning
        epoch kept) and ``holdout accuracy``.
    """
    history = run_.history
    early = early_stopped(history)
    partial = rewinding[rewinding.layers_rewound < len(weight_layers(run_.model))]
    best = partial.loc[partial.test_validation_accuracy.idxmax()]
    masc = best_layer_scores(layerwise_evaluation(run_, fit_labels="corrupted"))
    masc = masc[(masc.probe == "masc") & (masc.selection == "validated")].iloc[0]
    rows = [
        ("memorized", f"epoch {int(history.epoch.iloc[-1])}", history.test_holdout_accuracy.iloc[-1]),
        ("stopped early", f"epoch {int(early.epoch)}", early.test_holdout_accuracy),
        ("rewound", f"L = {int(best.layers_rewound)}, epoch {int(best.epoch)}", best.test_holdout_accuracy),
        ("MASC", f"layer {masc.layer}", masc.accuracy),
    ]
    if relabel_methods:
        for row in relabel_table(run_, list(relabel_methods), **relabel_settings).itertuples():
            rows.append((f"retrained, {row.method}", f"{row.layer}, epoch {int(row.best_epoch)}", row.accuracy_after))
    table = pd.DataFrame(rows, columns=["recovery", "choice", "holdout accuracy"]).set_index("recovery")
    return table.assign(**{"holdout accuracy": table["holdout accuracy"].astype(float).round(3)})


def decoding_over_epochs(runs, epochs=None, fit_labels: str = "corrupted", layers=None, variance_threshold: float = 0.99) -> pd.DataFrame:
    """MASC at its best layer and the network itself, on the test set, at each checkpoint.

    At every checkpointed epoch MASC is fitted on each probe layer's training activations
    (:func:`memnotebooks.evaluation.layerwise_evaluation` with ``epoch``), and the layer chosen
    both ways of :data:`memnotebooks.evaluation.SELECTIONS` (per epoch, on the mean over the
    runs' seeds).

    Parameters
    ----------
    runs : list of Run
        Runs with ``checkpoint_epochs``.
    epochs : list of int, optional
        Checkpointed epochs every run reached; default those all the runs reached.
    fit_labels : {"corrupted", "true"}
    layers : list of str, optional
        Probe layers MASC may choose from; default all. Each is fitted at every epoch, and a wide
        layer costs a ``d × d`` eigendecomposition per class.
    variance_threshold : float in (0, 1]

    Returns
    -------
    DataFrame
        The configuration columns, ``epoch``, ``decoder`` (``"network"`` or ``"MASC"``),
        ``selection`` (``"test-selected"``/``"validated"``; the network is scored on the whole
        test set and on the holdout part), ``layer`` and ``accuracy``.
    """
    runs = list(runs)
    if epochs is None:
        epochs = sorted(set.intersection(*(set(_checkpoint_epochs(r, None)) for r in runs)))
    else:
        for r in runs:
            _checkpoint_epochs(r, epochs)  # raises for an epoch a run did not keep
        epochs = list(epochs)
    frames = []
    for epoch in epochs:
        decoding = pd.concat([layerwise_evaluation(r, layers=layers, fit_labels=fit_labels, variance_threshold=variance_threshold, epoch=epoch) for r in runs])
        frames.append(best_layer_scores(decoding).assign(epoch=epoch, decoder="MASC"))
        for r in runs:
            row = r.history.set_index("epoch").loc[epoch]
            for selection, column in (("test-selected", "test_accuracy"), ("validated", "test_holdout_accuracy")):
                frames.append(pd.DataFrame([{**config_columns(r), "epoch": epoch, "decoder": "network", "selection": selection, "layer": "output", "accuracy": row[column]}]))
    columns = ["dataset", "model", "corruption_degree", "seed", "epoch", "decoder", "selection", "layer", "accuracy"]
    return pd.concat(frames, ignore_index=True)[columns]


def decoding_peaks(table: pd.DataFrame, selection: str = "validated") -> pd.DataFrame:
    """When each decoder of :func:`decoding_over_epochs` peaks: per corruption degree ``p`` and
    decoder (mean over seeds), under ``peak`` the epoch of the highest test accuracy, that
    accuracy and the layer(s) chosen there, and the same under ``last checkpoint`` for the last
    checkpoint every seed reached."""
    shown = table[table.selection == selection]
    mean = shown.groupby(["corruption_degree", "decoder", "epoch"]).agg(accuracy=("accuracy", "mean"), layer=("layer", lambda x: "/".join(sorted(set(x)))))
    rows = []
    for (degree, decoder), part in mean.reset_index().groupby(["corruption_degree", "decoder"]):
        best, last = part.loc[part.accuracy.idxmax()], part.iloc[-1]
        rows.append([degree, decoder] + [value for row in (best, last) for value in (int(row.epoch), round(row.accuracy, 3), row.layer)])
    columns = pd.MultiIndex.from_product([["peak", "last checkpoint"], ["epoch", "accuracy", "layer"]])
    table = pd.DataFrame([row[2:] for row in rows], columns=columns)
    return table.set_index(pd.MultiIndex.from_tuples([tuple(row[:2]) for row in rows], names=["p", "decoder"]))


MANIFOLD_GROUPS = {
    "clean": ("clean", "given"),
    "corrupted, given labels": ("corrupted", "given"),
    "corrupted, true labels": ("corrupted", "true"),
}
"""The manifolds :func:`manifold_table` measures: which training examples, grouped by which
labels. The corrupted examples grouped by their given labels are what the network memorizes;
grouped by their true labels, what it would have to generalize."""


def _manifold_examples(run_: Run, points_per_class: int, seed: int) -> dict:
    """Per manifold group, up to ``points_per_class`` examples of each label (drawn once, with
    ``seed``, so every layer and epoch measures the same points) and their labels. Labels with
    fewer than two examples make no manifold, and a group of fewer than two manifolds is left out."""
    rng = np.random.default_rng(seed)
    corrupted = run_.corrupted
    labels = {"given": run_.train_labels.numpy(), "true": run_.dataset.y_train.numpy()}
    chosen = {}
    for group, (subset, which) in MANIFOLD_GROUPS.items():
        pool = np.flatnonzero(corrupted if subset == "corrupted" else ~corrupted)
        picked = [rng.permutation(pool[labels[which][pool] == c])[:points_per_class] for c in np.unique(labels[which][pool])]
        picked = [index for index in picked if len(index) >= 2]
        if len(picked) >= 2:
            index = np.sort(np.concatenate(picked))
            chosen[group] = (index, labels[which][index])
    return chosen


def manifold_table(run_: Run, layers=None, epochs=None, points_per_class: int = 50, n_t: int = 200, seed: int = 0) -> pd.DataFrame:
    """Mean-field capacity, radius and dimension of the class manifolds of each layer.

    For each group of :data:`MANIFOLD_GROUPS` (with at least two classes of at least two points)
    and each probe layer, :func:`memnotebooks.geometry.manifold_analysis` of up to
    ``points_per_class`` training examples per class, the same examples at every layer and
    epoch.

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
    groups = _manifold_examples(run_, points_per_class, seed)
    models = {run_.summary["epochs"]: run_.model} if epochs is None else {e: run_.checkpoint(e) for e in _checkpoint_epochs(run_, epochs)}
    rows = []
    for epoch, model in models.items():
        for group, (index, labels) in groups.items():
            activations = extract_activations(model, run_.dataset.x_train[index], layers)
            for layer in layers:
                table = manifold_analysis(activations[layer].numpy(), labels, n_t=n_t, seed=seed)
                rows.append(table.assign(epoch=epoch, layer=layer, layer_index=list(run_.model.probe_layers).index(layer), group=group))
    columns = ["epoch", "layer", "layer_index", "group", "label", "n_points", "capacity", "radius", "dimension"]
    return pd.concat(rows, ignore_index=True)[columns].assign(**config_columns(run_))
