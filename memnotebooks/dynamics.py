"""Learning dynamics of memorizing runs: when each example is learned, how the examples' gradients
pull on the weights, how noise, regularizers and width change what a run fits, and how decoding
its layers evolves over its checkpoints.

- :func:`learning_table`: each training example's epoch of learning (the first epoch from which
  the network fits its label for good), clean against corrupted: Arpit et al. (2017) find the
  real patterns learned first, the noise later.
- :func:`settings_summary`, :func:`settings_history` (:func:`setting_label`): runs of other noise
  (random or permuted labels, random inputs) and regularizers (dropout, weight decay) side by
  side; :func:`width_summary` and :func:`width_differences`: runs of other widths.
- :func:`gradient_table`: at the run's checkpoints, how hard each clean and each corrupted example
  pulls on the weights (its gradient's norm), how much the examples of a subset agree (the
  coherence of their gradients) and what share of the full-batch step each subset makes. Early
  in training the clean examples agree with one another and the corrupted ones do not, so the
  step follows the clean ones (Stephenson et al.'s analytical point), measured.
- :func:`decoding_over_epochs`: MASC's best-layer test accuracy at each checkpoint beside the
  network's own, to see when each peaks (latent generalization while memorizing).

:func:`checkpointed_epochs` checks which of a run's checkpoints an analysis asks for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .data import validation_split
from .decoding import best_layer_scores, layerwise_evaluation
from .gradients import per_example_gradient_norms, summed_gradient
from .models import weight_layers
from .prose import mean_std
from .runs import Run, RunConfig, config_columns, early_stopped, history_table, summary_table
from .uncertainty import pack_hits, paired_bootstrap, unpack_hits

__all__ = [
    "apart",
    "checkpointed_epochs",
    "decoding_over_epochs",
    "decoding_peaks",
    "gradient_table",
    "learning_summary",
    "learning_table",
    "setting_label",
    "settings_history",
    "settings_summary",
    "width_differences",
    "width_summary",
]


def _subset(run_: Run) -> np.ndarray:
    return np.where(run_.corrupted, "corrupted", "clean")


def learning_table(runs) -> pd.DataFrame:
    """One row per training example of each run: its subset and its epoch of learning.

    Returns
    -------
    DataFrame
        The configuration columns, ``example`` (index in the training set), ``examples``
        (``"clean"`` or ``"corrupted"``; not ``subset``, the run's field), ``learned_epoch`` (-1: not fitted at the end) and
        ``epochs`` (the run's length).
    """
    frames = [
        pd.DataFrame({"example": np.arange(len(r.train_labels)), "examples": _subset(r), "learned_epoch": r.learned_epoch, "epochs": r.summary["epochs"]}).assign(
            **config_columns(r)
        )
        for r in runs
    ]
    return pd.concat(frames, ignore_index=True)


def learning_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`learning_table` per degree and subset: the median and 90th percentile of the epoch
    of learning over the examples learned (epochs some example has: the lower one where a
    quantile falls between two), and the share never learned for good."""
    learned = table[table.learned_epoch >= 0].groupby(["corruption_degree", "examples"]).learned_epoch
    summary = pd.DataFrame({"median epoch": learned.quantile(0.5, interpolation="lower"), "90th percentile": learned.quantile(0.9, interpolation="lower")}).astype(int)
    summary["share not learned"] = (table.learned_epoch < 0).groupby([table.corruption_degree, table.examples]).mean().round(3)
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


def checkpointed_epochs(run_: Run, epochs=None) -> list[int]:
    """The checkpointed epochs the run reached, or ``epochs`` checked against them: an error names
    those the run never checkpointed (:attr:`memnotebooks.runs.RunConfig.checkpoint_epochs`)."""
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
    for epoch in checkpointed_epochs(run_, epochs):
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
                    "examples": subset,
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


def decoding_over_epochs(runs, epochs=None, fit_labels: str = "corrupted", layers=None, variance_threshold: float = 0.99) -> pd.DataFrame:
    """MASC at its best layer and the network itself, on the test set, at each checkpoint.

    At every checkpointed epoch MASC is fitted on each probe layer's training activations
    (:func:`memnotebooks.decoding.layerwise_evaluation` with ``epoch``), and the layer chosen
    both ways of :data:`memnotebooks.decoding.SELECTIONS` (per epoch, on the mean over the
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
        epochs = sorted(set.intersection(*(set(checkpointed_epochs(r, None)) for r in runs)))
    else:
        for r in runs:
            checkpointed_epochs(r, epochs)  # raises for an epoch a run did not keep
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
