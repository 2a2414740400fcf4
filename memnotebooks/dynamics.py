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
from .data import validation_split
from .evaluation import best_layer_scores, layerwise_evaluation
from .geometry import manifold_analysis
from .models import rewind, weight_layers
from .prose import mean_std
from .relabel import relabel_table
from .runs import Run, RunConfig, config_columns, early_stopped, history_table, summary_table, test_parts
from .gradients import per_example_gradient_norms, summed_gradient
from .training import predict
from .uncertainty import pack_hits

__all__ = [
    "decoding_over_epochs",
    "decoding_peaks",
    "gradient_table",
    "learning_summary",
    "learning_table",
    "manifold_change",
    "manifold_ratios",
    "manifold_table",
    "MANIFOLD_GROUPS",
    "RELABEL_METHODS",
    "RECOVERY_NAMES",
    "recovery_differences",
    "recovery_display",
    "recovery_name",
    "recovery_table",
    "rewinding_differences",
    "rewinding_verdicts",
    "rewinding_table",
    "setting_label",
    "settings_history",
    "settings_summary",
    "width_differences",
    "width_summary",
    "apart",
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
    of learning over the examples learned (epochs some example has: the lower one where a
    quantile falls between two), and the share never learned for good."""
    learned = table[table.learned_epoch >= 0].groupby(["corruption_degree", "subset"]).learned_epoch
    summary = pd.DataFrame({"median epoch": learned.quantile(0.5, interpolation="lower"), "90th percentile": learned.quantile(0.9, interpolation="lower")}).astype(int)
    summary["share not learned"] = (table.learned_epoch < 0).groupby([table.corruption_degree, table.subset]).mean().round(3)
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


def settings_summary(runs, noise: bool = True, epoch: int | None = None) -> pd.DataFrame:
    """Per setting (:func:`setting_label`), over its seeds: the epochs trained (mean; ``± std``
    in ``epochs (spread)`` as text), how many seeds reached the target, and the mean accuracies
    on the clean training examples, on the corrupted ones against their given labels, and on the
    test set (columns ``seeds``, ``epochs``, ``epochs (spread)``, ``reached target``, ``clean``,
    ``corrupted (given)``, ``test``). ``epoch`` reads the accuracies at that epoch of every
    run's history instead of at its end (a common epoch, for runs that stop at different
    epochs; every run must have reached it). ``noise=False`` names the settings by their
    regularizers alone."""
    runs = list(runs)
    table = summary_table(runs).assign(setting=[setting_label(r.config, noise) for r in runs])
    if epoch is not None:
        short = [f"{r.path.name} ({r.summary['epochs']})" for r in runs if r.summary["epochs"] < epoch]
        if short:
            raise ValueError(f"Run(s) {', '.join(short)} stopped before epoch {epoch}; choose an epoch every run reached.")
        for column in ("clean_accuracy", "corrupted_accuracy_given", "test_accuracy"):
            table[column] = [r.history.set_index("epoch").loc[epoch, column] for r in runs]
    columns = {"clean_accuracy": "clean", "corrupted_accuracy_given": "corrupted (given)", "test_accuracy": "test"}
    groups = table.groupby("setting", sort=False)
    summary = pd.DataFrame(
        {
            "seeds": groups.size(),
            "epochs": groups.epochs.mean(),
            "epochs (spread)": groups.epochs.agg(lambda e: mean_std(e, 1)),
            "reached target": groups.reached_target.agg(lambda r: f"{int(r.sum())} of {len(r)}"),
        }
    ).join(groups[list(columns)].mean().round(3).rename(columns=columns))
    return summary.rename_axis(index="setting" if noise else "regularizer")


def apart(a, b) -> int:
    """+1 when every value of ``a`` exceeds every value of ``b`` (e.g. epochs over seeds), −1
    when every one is below, 0 when their ranges overlap: the sign :func:`memnotebooks.prose.verb`
    reads, for measures without per-image hits.

    >>> apart([40, 44], [30, 38]), apart([40, 44], [42])
    (1, 0)
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return 1 if a.min() > b.max() else -1 if a.max() < b.min() else 0


def _out_size(layer: torch.nn.Module) -> int:
    return layer.out_features if isinstance(layer, torch.nn.Linear) else layer.out_channels


def width_summary(runs) -> pd.DataFrame:
    """Per run of a width sweep (:class:`memnotebooks.runs.RunConfig` ``width``): its hidden
    layers' widths, the epochs it trained, whether it reached the target, the share of corrupted
    labels it fits at the end, its final test accuracy, and the holdout accuracy of its last epoch
    (``holdout, final``) and of its best validation epoch (``holdout, stopped early``: the
    network stopped early, chosen on the *true* labels of the validation part), with each one's
    per-image hits on the holdout part (``hits, final``, ``hits, stopped early``: packed,
    :func:`memnotebooks.uncertainty.pack_hits`; compare widths with :func:`width_differences`)."""
    rows = []
    for r in runs:
        history = r.history
        early = early_stopped(history)
        y_test = r.dataset.y_test.numpy()
        holdout = ~validation_split(y_test)
        right = r.test_predictions == y_test  # (n_epochs + 1, n_test)
        rows.append(
            {
                **config_columns(r),
                "width": r.config.width,
                "hidden widths": "-".join(str(_out_size(r.model.get_submodule(name))) for name in weight_layers(r.model)[:-1]),
                "epochs": r.summary["epochs"],
                "reached target": r.summary["reached_target"],
                "corrupted (given)": history.corrupted_accuracy_given.iloc[-1],
                "test, final": history.test_accuracy.iloc[-1],
                "holdout, final": history.test_holdout_accuracy.iloc[-1],
                "holdout, stopped early": early.test_holdout_accuracy,
                "stopped at": int(early.epoch),
                "hits, final": pack_hits(right[int(history.epoch.iloc[-1])][holdout]),
                "hits, stopped early": pack_hits(right[int(early.epoch)][holdout]),
            }
        )
    return pd.DataFrame(rows).round(3)


def width_differences(summary: pd.DataFrame) -> pd.DataFrame:
    """Every pair of widths of :func:`width_summary`, compared image by image on the holdout part.

    For the network at its last epoch (``final``) and stopped early (``stopped early``), and for
    each pair of widths ``narrow < wide``, the holdout accuracy of ``wide`` minus that of
    ``narrow`` with its paired interval over images and the seeds both have
    (:func:`memnotebooks.uncertainty.paired_bootstrap`).

    Returns
    -------
    DataFrame
        Columns ``corruption_degree``, ``network``, ``narrow``, ``wide``, ``difference``, ``low``,
        ``high``, ``sign`` (+1: the wider network is above, −1 below, 0 level), ``n_images``,
        ``n_seeds``.
    """
    from .uncertainty import paired_bootstrap, unpack_hits

    rows = []
    for degree, at_degree in summary.groupby("corruption_degree", sort=True):
        widths = sorted(at_degree.width.unique())
        for network in ("final", "stopped early"):
            hits = at_degree.set_index(["width", "seed"])[f"hits, {network}"]
            for i, narrow in enumerate(widths):
                for wide in widths[i + 1:]:
                    seeds = sorted(set(hits[narrow].index) & set(hits[wide].index))
                    d = paired_bootstrap([unpack_hits(hits[wide][s]) for s in seeds], [unpack_hits(hits[narrow][s]) for s in seeds])
                    rows.append({"corruption_degree": degree, "network": network, "narrow": narrow, "wide": wide, "difference": d.estimate,
                                 "low": d.low, "high": d.high, "sign": d.sign, "n_images": d.n_images, "n_seeds": d.n_seeds})
    return pd.DataFrame(rows)


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
      way; ``coherence_null`` is what mutually orthogonal gradients of the same norms give,
      ``√(Σ ‖g_i‖²) / Σ ‖g_i‖`` (``1/√n`` only when the norms are equal). The drawn examples
      span all the classes, whose gradients differ even when each class agrees within itself,
      so ``within_class_coherence`` takes the same ratio within each label trained on (mean over
      the labels with at least two drawn examples), beside its null ``within_class_null``;
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
        :func:`memnotebooks.gradients.per_example_gradient_norms`).

    Returns
    -------
    DataFrame
        The configuration columns, ``epoch``, ``subset``, ``mean_norm``, ``median_norm``,
        ``coherence``, ``coherence_null``, ``within_class_coherence``, ``within_class_null``,
        ``step_share`` and ``n_points`` (examples drawn).
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
            norms = per_example_gradient_norms(model, x[index], y[index], batch_size).double()
            sample_sum = summed_gradient(model, x[index], y[index])
            within, within_null = [], []
            for label in np.unique(y[index].numpy()):  # the examples trained on the same label
                members_ = index[y[index].numpy() == label]
                if len(members_) < 2:
                    continue
                part = norms[y[index].numpy() == label]
                within.append(float(summed_gradient(model, x[members_], y[members_]).norm() / part.sum()))
                within_null.append(float(part.square().sum().sqrt() / part.sum()))
            rows.append(
                {
                    "epoch": epoch,
                    "subset": subset,
                    "mean_norm": float(norms.mean()),
                    "median_norm": float(np.median(norms.numpy())),
                    "coherence": float(sample_sum.norm() / norms.sum()),
                    "coherence_null": float(norms.square().sum().sqrt() / norms.sum()),
                    "within_class_coherence": float(np.mean(within)) if within else np.nan,
                    "within_class_null": float(np.mean(within_null)) if within else np.nan,
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
        the other), ``clean_accuracy`` (clean training examples, their labels),
        ``corrupted_accuracy_given`` (corrupted training examples, the labels memorized) and
        ``hits`` (which holdout images the rewound network predicts right, packed:
        :func:`memnotebooks.uncertainty.pack_hits`; compare rows with :func:`rewinding_differences`).
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
            "hits": pack_hits(correct[~validation]),
        }

    memorized = scores(run_.model) if 0 in depths else None  # L = 0 rewinds nothing, whatever the epoch
    rows = []
    for epoch in _checkpoint_epochs(run_, epochs):
        early_state = run_.checkpoint(epoch).state_dict()
        for depth in map(int, depths):
            rewound = memorized if depth == 0 else scores(rewind(copy.deepcopy(run_.model), early_state, depth))
            rows.append({"epoch": epoch, "layers_rewound": depth, "first_rewound": layers[len(layers) - depth] if depth else "", **rewound})
    return pd.DataFrame(rows).assign(**config_columns(run_))


def rewinding_differences(rewinding: pd.DataFrame) -> pd.DataFrame:
    """Each partial rewinding against the memorized network and against the checkpoint itself.

    ``rewinding`` stacks :func:`rewinding_table` of one or several runs (seeds), each with ``L``
    from 0 (the memorized network) to all the weight layers (the checkpoint). For every degree,
    epoch and ``0 < L <`` all, the holdout accuracy of the rewound network minus that of the
    memorized network (``reference = "memorized"``) and minus that of the checkpoint it was
    rewound to (``"checkpoint"``), with the paired interval over holdout images and the seeds
    (:func:`memnotebooks.uncertainty.paired_bootstrap`).

    Returns
    -------
    DataFrame
        Columns ``corruption_degree``, ``epoch``, ``layers_rewound``, ``accuracy`` (mean over
        seeds), ``reference``, ``difference`` (rewound − reference), ``low``, ``high``, ``sign``,
        ``n_images``, ``n_seeds``.
    """
    from .uncertainty import paired_bootstrap, unpack_hits

    missing = {0, int(rewinding.layers_rewound.max())} - set(rewinding.layers_rewound)
    if missing or rewinding.layers_rewound.max() < 2:
        raise ValueError("rewinding_differences needs L = 0 (the memorized network), every layer (the checkpoint) and at least one L between.")
    rows = []
    for (degree, epoch), part in rewinding.groupby(["corruption_degree", "epoch"], sort=True):
        hits = {depth: rows_.set_index("seed").hits for depth, rows_ in part.groupby("layers_rewound")}
        full = max(hits)
        references = {"memorized": hits[0], "checkpoint": hits[full]}
        for depth in sorted(d for d in hits if 0 < d < full):
            for reference, base in references.items():
                seeds = sorted(set(hits[depth].index) & set(base.index))
                d = paired_bootstrap([unpack_hits(hits[depth][s]) for s in seeds], [unpack_hits(base[s]) for s in seeds])
                accuracy = float(part[part.layers_rewound == depth].test_holdout_accuracy.mean())
                rows.append({"corruption_degree": degree, "epoch": int(epoch), "layers_rewound": int(depth), "accuracy": accuracy, "reference": reference,
                             "difference": d.estimate, "low": d.low, "high": d.high, "sign": d.sign, "n_images": d.n_images, "n_seeds": d.n_seeds})
    return pd.DataFrame(rows)


def rewinding_verdicts(differences: pd.DataFrame) -> pd.DataFrame:
    """How often each ``L`` of :func:`rewinding_differences` is above, level with or below its
    reference over the epochs rewound to: per ``corruption_degree``, ``layers_rewound`` and
    ``reference``, the counts ``above``, ``level``, ``below``, ``epochs`` (compared) and the
    epochs of each (``epochs above``, ``epochs level``, ``epochs below``, lists)."""
    rows = []
    for (degree, depth, reference), part in differences.groupby(["corruption_degree", "layers_rewound", "reference"], sort=False):
        by_sign = {word: sorted(part.epoch[part.sign == sign].tolist()) for word, sign in (("above", 1), ("level", 0), ("below", -1))}
        rows.append({"corruption_degree": degree, "layers_rewound": depth, "reference": reference, **{w: len(e) for w, e in by_sign.items()},
                     "epochs": len(part), **{f"epochs {w}": e for w, e in by_sign.items()}})
    return pd.DataFrame(rows)


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
        epoch kept), ``holdout accuracy``, ``corruption_degree``, ``seed`` and ``hits`` (which
        holdout images each row predicts right, packed: :func:`memnotebooks.uncertainty.pack_hits`;
        a relabelling row has them when :func:`memnotebooks.relabel.relabel_table` gives them,
        else none). Every choice reads the *true* labels of the validation part.
        :func:`recovery_differences` compares the rows, :func:`recovery_display` shows them.
    """
    history = run_.history
    early = early_stopped(history)
    partial = rewinding[rewinding.layers_rewound < len(weight_layers(run_.model))]
    best = partial.loc[partial.test_validation_accuracy.idxmax()]
    masc = best_layer_scores(layerwise_evaluation(run_, fit_labels="corrupted"))
    masc = masc[(masc.probe == "masc") & (masc.selection == "validated")].iloc[0]
    y_test = run_.dataset.y_test.numpy()
    holdout = ~validation_split(y_test)
    right = run_.test_predictions == y_test

    def network(epoch) -> str:
        return pack_hits(right[int(epoch)][holdout])

    rows = [
        ("memorized", f"epoch {int(history.epoch.iloc[-1])}", history.test_holdout_accuracy.iloc[-1], network(history.epoch.iloc[-1])),
        ("stopped early", f"epoch {int(early.epoch)}", early.test_holdout_accuracy, network(early.epoch)),
        ("rewound", f"L = {int(best.layers_rewound)}, epoch {int(best.epoch)}", best.test_holdout_accuracy, best.get("hits")),
        ("MASC", f"layer {masc.layer}", masc.accuracy, masc.get("hits")),
    ]
    if relabel_methods:
        for row in relabel_table(run_, list(relabel_methods), **relabel_settings).to_dict("records"):
            hits = row.get("hits_after", row.get("hits"))
            rows.append((f"retrained, {row['method']}", f"{row['layer']}, epoch {int(row['best_epoch'])}", row["accuracy_after"], hits))
    table = pd.DataFrame(rows, columns=["recovery", "choice", "holdout accuracy", "hits"]).set_index("recovery")
    table = table.assign(corruption_degree=run_.config.corruption_degree, seed=run_.config.seed)[["choice", "holdout accuracy", "corruption_degree", "seed", "hits"]]
    return table.assign(**{"holdout accuracy": table["holdout accuracy"].astype(float).round(3)})


RECOVERY_NAMES = {
    "memorized": "memorized network",
    "stopped early": "network stopped early",
    "rewound": "best rewinding",
    "MASC": "MASC at its best layer",
}
"""The rows of :func:`recovery_table` in words (relabellings: :func:`recovery_name`)."""


def recovery_name(recovery: str) -> str:
    """A row of :func:`recovery_table` in words: ``"retrained, masc_crossfit"`` is
    ``"retrained on out-of-fold MASC labels"``; another relabelling is ``"retrained, "`` and its
    name in :data:`memnotebooks.relabel.METHOD_NAMES` (``"retrained, true labels"``)."""
    from . import relabel

    if recovery.startswith("retrained, "):
        method = recovery.removeprefix("retrained, ")
        own = {"masc_corrupted": "in-sample MASC labels", "masc_crossfit": "out-of-fold MASC labels"}
        return f"retrained on {own[method]}" if method in own else f"retrained, {getattr(relabel, 'METHOD_NAMES', {}).get(method, method)}"
    return RECOVERY_NAMES.get(recovery, recovery)


def recovery_display(recoveries: pd.DataFrame) -> pd.DataFrame:
    """:func:`recovery_table` of several runs (stacked, e.g. ``pd.concat`` keyed by run) for the
    page: the rows in words, the choice and the holdout accuracy."""
    return recoveries[["choice", "holdout accuracy"]].rename(index=recovery_name, level=-1)


def recovery_differences(recoveries: pd.DataFrame, reference: str = "stopped early") -> pd.DataFrame:
    """Each row of stacked :func:`recovery_table` s minus ``reference``, per degree, with its
    paired interval over holdout images and seeds (:func:`memnotebooks.evaluation.paired_differences`,
    column ``recovery``). Rows without per-image hits are left out (they get no verdict)."""
    from .evaluation import paired_differences

    table = recoveries.reset_index(level="recovery")
    with_hits = table[table.hits.notna()]
    others = [r for r in dict.fromkeys(with_hits.recovery) if r != reference]
    return paired_differences(with_hits, reference, others, column="recovery")


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
        test set and on the holdout part), ``layer``, ``accuracy`` (on the split scored),
        ``validation_accuracy`` (the same decoder and layer on the validation part, true labels:
        what an epoch is chosen on) and ``hits`` (per-image hits on the split scored, packed:
        :func:`memnotebooks.uncertainty.pack_hits`; the network's from
        :attr:`memnotebooks.runs.Run.test_predictions`).
    """
    runs = list(runs)
    if epochs is None:
        epochs = sorted(set.intersection(*(set(_checkpoint_epochs(r, None)) for r in runs)))
    else:
        for r in runs:
            _checkpoint_epochs(r, epochs)  # raises for an epoch a run did not keep
        epochs = list(epochs)
    frames = []
    keys = ["dataset", "model", "corruption_degree", "seed", "layer"]
    for epoch in epochs:
        decoding = pd.concat([layerwise_evaluation(r, layers=layers, fit_labels=fit_labels, variance_threshold=variance_threshold, epoch=epoch) for r in runs])
        validation = decoding[(decoding.split == "test_validation") & (decoding.target == "true")][keys + ["accuracy"]]
        masc = best_layer_scores(decoding).merge(validation.rename(columns={"accuracy": "validation_accuracy"}), on=keys, how="left")
        frames.append(masc.assign(epoch=epoch, decoder="MASC"))
        for r in runs:
            row = r.history.set_index("epoch").loc[epoch]
            y_test = r.dataset.y_test.numpy()
            right = r.test_predictions[epoch] == y_test
            parts = {"test-selected": ("test_accuracy", np.ones(len(y_test), dtype=bool)), "validated": ("test_holdout_accuracy", ~validation_split(y_test))}
            for selection, (column, rows) in parts.items():
                frames.append(pd.DataFrame([{**config_columns(r), "epoch": epoch, "decoder": "network", "selection": selection, "layer": "output",
                                             "accuracy": row[column], "validation_accuracy": row.test_validation_accuracy, "hits": pack_hits(right[rows])}]))
    columns = ["dataset", "model", "corruption_degree", "seed", "epoch", "decoder", "selection", "layer", "accuracy", "validation_accuracy", "hits"]
    return pd.concat(frames, ignore_index=True)[columns]


def decoding_peaks(table: pd.DataFrame, selection: str = "validated") -> pd.DataFrame:
    """When each decoder of :func:`decoding_over_epochs` peaks: per corruption degree ``p`` and
    decoder (mean over seeds), under ``peak`` the checkpoint chosen, its accuracy and the
    layer(s) there, and the same under ``last checkpoint`` for the last checkpoint every seed
    reached. With ``selection="validated"`` the checkpoint is the one with the best accuracy on
    the validation part (the *true* labels of the test set's 20 %; the first on ties), scored on
    the holdout part; with ``"test-selected"`` the best test accuracy itself (which flatters it).
    Only checkpointed epochs are candidates."""
    shown = table[table.selection == selection]
    chosen_on = "validation_accuracy" if selection == "validated" else "accuracy"
    mean = shown.groupby(["corruption_degree", "decoder", "epoch"]).agg(
        accuracy=("accuracy", "mean"), chosen_on=(chosen_on, "mean"), layer=("layer", lambda x: "/".join(sorted(set(x))))
    )
    rows = []
    for (degree, decoder), part in mean.reset_index().groupby(["corruption_degree", "decoder"]):
        best, last = part.loc[part.chosen_on.idxmax()], part.iloc[-1]
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
    and each probe layer, :func:`memnotebooks.geometry.manifold_analysis` of up to
    ``points_per_class`` training examples per class, the same examples at every layer and
    epoch; with ``equal_sizes`` (default) as many per manifold in every group as the smallest
    manifold of any group has, so that the groups' radii and dimensions are comparable (column
    ``n_points``). Centre correlations are not removed (see
    :func:`memnotebooks.geometry.manifold_analysis`), so the numbers are not comparable with
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
