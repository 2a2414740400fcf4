"""Learning dynamics of memorizing runs: when each example is learned, how the examples' gradients
pull on the weights, how noise, regularizers and width change what a run fits, and how decoding
its layers evolves over its checkpoints.

- :func:`learning_table`: each training example's epoch of learning (the first epoch from which
  the network fits its label for good), clean against corrupted: Arpit et al. (2017) find the
  real patterns learned first, the noise later.
- :func:`settings_summary`, :func:`settings_history` (:func:`setting_label`, :func:`setting_table`):
  runs of other noise (random or permuted labels, random inputs) and regularizers (dropout,
  weight decay) side by side; :func:`regularizer_effects` and :func:`plateaus`: what each
  regularizer slows, and whether the memorized labels' accuracy levels off;
  :func:`width_summary`, :func:`width_differences` and :func:`width_trend`: runs of other widths.
- :func:`gradient_table`: at the run's checkpoints, how hard each clean and each corrupted example
  pulls on the weights (its gradient's norm), how much the examples of a subset agree (the
  coherence of their gradients) and what share of the full-batch step each subset makes. Early
  in training the clean examples agree with one another and the corrupted ones do not, so the
  step follows the clean ones (Stephenson et al.'s analytical point), measured.
  :func:`gradient_grid` measures several runs, :func:`gradient_display` shows the measures and
  :func:`gradient_findings` counts what the chapter says of them.
- :func:`decoding_over_epochs` (:func:`decoding_grid`: each run over its own checkpoints): MASC's
  best-layer test accuracy at each checkpoint beside the network's own, to see when each peaks
  (latent generalization while memorizing); :func:`decoding_peaks` and
  :func:`decoding_comparisons` compare the peaks image by image.

:func:`checkpointed_epochs` checks which of a run's checkpoints an analysis asks for;
:func:`epochs_reached` keeps those of a list the run reached.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .baselines import network_hits
from .data import validation_split
from .decoding import best_layer_scores, layerwise_evaluation
from .gradients import per_example_gradient_norms, summed_gradient
from .models import weight_layers
from .probes import PROBE_NAMES
from .prose import mean_std, number
from .runs import Run, RunConfig, config_columns, early_stopped, history_table, summary_table
from .tables import paired_differences
from .uncertainty import pack_hits, paired_bootstrap, unpack_hits

__all__ = [
    "apart",
    "checkpointed_epochs",
    "decoding_comparisons",
    "decoding_grid",
    "decoding_over_epochs",
    "decoding_peaks",
    "epochs_reached",
    "gradient_display",
    "GRADIENT_TABLES",
    "gradient_findings",
    "gradient_grid",
    "gradient_table",
    "learning_summary",
    "learning_table",
    "plateaus",
    "regularizer_effects",
    "setting_label",
    "setting_table",
    "settings_history",
    "settings_summary",
    "width_differences",
    "width_summary",
    "width_trend",
    "WIDTH_TRENDS",
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


def setting_table(runs, noise: bool = True, epoch: int | None = None) -> pd.DataFrame:
    """:func:`memnotebooks.runs.summary_table` with each run's ``setting`` (:func:`setting_label`),
    one row per run in order. ``epoch`` reads the accuracies ``clean_accuracy``,
    ``corrupted_accuracy_given`` and ``test_accuracy`` at that epoch of every run's history
    instead of at its end (a common epoch, for runs that stop at different epochs; every run must
    have reached it)."""
    runs = list(runs)
    table = summary_table(runs).assign(setting=[setting_label(r.config, noise) for r in runs])
    if epoch is not None:
        short = [f"{r.path.name} ({r.summary['epochs']})" for r in runs if r.summary["epochs"] < epoch]
        if short:
            raise ValueError(f"Run(s) {', '.join(short)} stopped before epoch {epoch}; choose an epoch every run reached.")
        for column in ("clean_accuracy", "corrupted_accuracy_given", "test_accuracy"):
            table[column] = [r.history.set_index("epoch").loc[epoch, column] for r in runs]
    return table


def settings_summary(runs, noise: bool = True, epoch: int | None = None) -> pd.DataFrame:
    """Per setting (:func:`setting_label`), over its seeds: the epochs trained (mean; ``± std``
    in ``epochs (spread)`` as text), how many seeds reached the target, and the mean accuracies
    on the clean training examples, on the corrupted ones against their given labels, and on the
    test set (columns ``seeds``, ``epochs``, ``epochs (spread)``, ``reached target``, ``clean``,
    ``corrupted (given)``, ``test``). ``epoch`` reads the accuracies at that epoch of every
    run's history instead of at its end (:func:`setting_table`). ``noise=False`` names the
    settings by their regularizers alone."""
    table = setting_table(runs, noise, epoch)
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


def regularizer_effects(runs, epoch: int) -> pd.DataFrame:
    """What each regularizer does at a common epoch, against the runs without one.

    The runs' settings are their regularizers (:func:`setting_label` with ``noise=False``); the
    first setting in ``runs`` is the reference (no regularizer), each other one is compared
    with it seed by seed (the ``s``-th run of each).

    Parameters
    ----------
    runs : list of Run
        Runs of one degree, each setting with the same seeds in the same order.
    epoch : int
        An epoch every run reached (:func:`setting_table`).

    Returns
    -------
    DataFrame
        Indexed by ``regularizer``: the test accuracy at ``epoch`` minus the reference's, paired
        over test images and seeds (:func:`memnotebooks.uncertainty.paired_bootstrap`:
        ``difference``, ``low``, ``high``, ``sign``, ``n_images``, ``n_seeds``), and ``slows``:
        +1 when in every seed it takes more off the corrupted examples' accuracy on their given
        labels than off the clean examples' accuracy, −1 when it takes more off the clean ones in
        every seed, 0 otherwise (:func:`apart` of the difference against 0).
    """
    table = setting_table(runs, noise=False, epoch=epoch)
    hits = network_hits(runs, epoch, by=lambda config: setting_label(config, noise=False))
    base, *others = hits
    of = {name: part for name, part in table.groupby("setting", sort=False)}
    rows = []
    for name in others:
        d = paired_bootstrap(hits[name], hits[base])
        off = {column: of[base][column].to_numpy() - of[name][column].to_numpy() for column in ("corrupted_accuracy_given", "clean_accuracy")}
        rows.append({"regularizer": name, "difference": d.estimate, "low": d.low, "high": d.high, "sign": d.sign, "n_images": d.n_images, "n_seeds": d.n_seeds,
                     "slows": apart(off["corrupted_accuracy_given"] - off["clean_accuracy"], [0])})
    return pd.DataFrame(rows).set_index("regularizer")


def plateaus(history: pd.DataFrame, start: int, band: float, settings=None) -> pd.DataFrame:
    """Whether the corrupted examples' accuracy on their given labels levels off, per setting.

    From :func:`settings_history`, the mean over seeds at each epoch; from epoch ``start`` on,
    the corrupted examples' accuracy on their given labels is a ``"plateau"`` when it stays
    within ``band``, ``"rising"`` when it ends more than ``band`` above where it started, and
    ``"moving"`` otherwise; beside it, the test accuracy's highest point and its end.

    Returns
    -------
    DataFrame
        Indexed by ``setting`` (``settings``, in that order; default all; a setting whose runs
        end before ``start`` is left out): ``start`` and ``end`` (the accuracy at ``start`` and
        at ``end_epoch``, the last), ``low``, ``high``, ``shape``, ``test_peak``,
        ``test_peak_epoch`` and ``test_end``.
    """
    curves = history.groupby(["setting", "epoch"])[["corrupted_accuracy_given", "test_accuracy"]].mean()
    rows = []
    for name in curves.index.unique("setting") if settings is None else settings:
        noise_curve, test_curve = curves.loc[name].corrupted_accuracy_given.loc[start:], curves.loc[name].test_accuracy
        if noise_curve.empty:
            continue
        span = noise_curve.max() - noise_curve.min()
        shape = "plateau" if span <= band else "rising" if noise_curve.iloc[-1] - noise_curve.iloc[0] > band else "moving"
        rows.append({"setting": name, "start": noise_curve.iloc[0], "end": noise_curve.iloc[-1], "end_epoch": noise_curve.index[-1], "low": noise_curve.min(),
                     "high": noise_curve.max(), "shape": shape, "test_peak": test_curve.max(), "test_peak_epoch": test_curve.idxmax(), "test_end": test_curve.iloc[-1]})
    return pd.DataFrame(rows, columns=["setting", "start", "end", "end_epoch", "low", "high", "shape", "test_peak", "test_peak_epoch", "test_end"]).set_index("setting")


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


WIDTH_TRENDS = {
    (1,): "rises with width",
    (-1,): "falls with width",
    (0,): "is level across widths",
    (0, 1): "rises with width at some steps and is level at others",
    (-1, 0): "falls with width at some steps and is level at others",
}
"""The course of an accuracy over widths (:func:`width_trend`), by the signs of its steps."""


def width_trend(differences: pd.DataFrame, network: str) -> str:
    """How the holdout accuracy of ``network`` (``"final"`` or ``"stopped early"``) moves with
    width, in words (:data:`WIDTH_TRENDS`), from the signs of every pair of
    :func:`width_differences`; "is not monotone in width" when it rises at some steps and falls
    at others."""
    signs = differences[differences.network == network].sign
    return WIDTH_TRENDS.get(tuple(sorted(set(signs))), "is not monotone in width")


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


def epochs_reached(run_: Run, epochs, final: bool = True) -> list[int]:
    """The epochs of ``epochs`` the run reached, in their order: up to its last epoch, or with
    ``final=False`` before it.

    A checkpoint at the last epoch holds the final network's weights, so an analysis that
    measures the final network on its own (:func:`memnotebooks.layer_manifolds.manifold_grid`)
    or compares each checkpoint with it (:func:`memnotebooks.rewinding.rewinding_grid`) asks for
    the epochs before it: with the last one the final network would be counted twice, or
    rewound to itself, a comparison level by construction.
    """
    end = run_.summary["epochs"]
    return [e for e in epochs if e <= end and (final or e < end)]


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
        # In float64: the shares then sum to 1 to rounding, whatever the float32 reduction order (threads).
        totals = {subset: summed_gradient(model, x[index], y[index]).double() for subset, index in members.items()}
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


def gradient_grid(runs, epochs=None, max_examples: int | None = 200, seed: int = 0, batch_size: int | None = None) -> pd.DataFrame:
    """:func:`gradient_table` of several runs, stacked, each at the epochs of ``epochs`` it
    reached (:func:`epochs_reached`; default every checkpoint it kept)."""
    return pd.concat([gradient_table(r, None if epochs is None else epochs_reached(r, epochs), max_examples, seed, batch_size) for r in runs], ignore_index=True)


GRADIENT_TABLES = (["coherence", "coherence_null"], ["within_class_coherence", "within_class_null"], ["step_share"])
"""The measures of :func:`gradient_table` that :func:`gradient_display` shows together."""


def gradient_display(gradients: pd.DataFrame, digits: int = 2) -> list[pd.DataFrame]:
    """:func:`gradient_grid`'s measures for the page: one table per group of
    ``GRADIENT_TABLES`` (each coherence beside its null; the step share), a row per epoch, a
    column per measure, degree and subset, the values as text with ``digits`` decimals."""
    return [
        gradients.pivot_table(index="epoch", columns=["corruption_degree", "examples"], values=values).map(lambda v: number(v, digits)).rename_axis(columns=["measure", "p", "subset"])
        for values in GRADIENT_TABLES
    ]


def gradient_findings(gradients: pd.DataFrame, runs) -> pd.DataFrame:
    """What :func:`gradient_grid`'s measures say, run by run, counted over its checkpoints.

    Each coherence is read as a ratio to its null (``coherence / coherence_null``,
    ``within_class_coherence / within_class_null``).

    Returns
    -------
    DataFrame
        One row per run of ``runs`` (in order): ``corruption_degree``, ``seed``,
        ``clean_share`` (the clean examples' share of the training set), ``epochs`` and
        ``later`` (how many checkpoints, and how many after epoch 0), ``harder`` (checkpoints
        after epoch 0 where one corrupted example's gradient is larger than one clean
        example's, by mean norm), ``pooled`` and ``within`` (checkpoints where the clean
        examples' coherence over its null is above the corrupted examples', pooled over the
        classes and within a class), ``noisy_low`` and ``noisy_high`` (the corrupted examples'
        within-class coherence over its null, lowest and highest), ``above`` (the epochs where
        the clean examples' share of the step is above their share of the examples), ``below``
        (those after epoch 0 where it is at or below it), and ``at_or_below`` and
        ``checkpoints_since``: from the first epoch of ``below`` on, at how many of how many
        checkpoints it is at or below it (0 and 0 when ``below`` is empty).
    """
    nulls = {"coherence": "coherence_null", "within_class_coherence": "within_class_null"}
    rows = []
    for r in runs:
        g = gradients[(gradients.corruption_degree == r.config.corruption_degree) & (gradients.seed == r.config.seed)].set_index(["epoch", "examples"])
        epochs = list(dict.fromkeys(g.index.get_level_values("epoch")))
        later = [e for e in epochs if e > 0]
        ratio = lambda e, s, kind: g.loc[(e, s), kind] / g.loc[(e, s), nulls[kind]]  # noqa: E731
        clean = 1 - r.corrupted.mean()
        share = g.xs("clean", level="examples").step_share.loc[epochs]
        noisy = [ratio(e, "corrupted", "within_class_coherence") for e in epochs]
        below = [e for e in later if share[e] <= clean]
        rows.append({
            "corruption_degree": r.config.corruption_degree, "seed": r.config.seed, "clean_share": clean, "epochs": len(epochs), "later": len(later),
            "harder": sum(g.loc[(e, "corrupted"), "mean_norm"] > g.loc[(e, "clean"), "mean_norm"] for e in later),
            "pooled": sum(ratio(e, "clean", "coherence") > ratio(e, "corrupted", "coherence") for e in epochs),
            "within": sum(ratio(e, "clean", "within_class_coherence") > ratio(e, "corrupted", "within_class_coherence") for e in epochs),
            "noisy_low": min(noisy), "noisy_high": max(noisy), "above": [e for e in epochs if share[e] > clean], "below": below,
            "at_or_below": sum(e >= below[0] for e in below) if below else 0,
            "checkpoints_since": sum(e >= below[0] for e in later) if below else 0,
        })
    return pd.DataFrame(rows)


def decoding_over_epochs(runs, epochs=None, fit_labels: str = "corrupted", layers=None, variance_threshold: float = 0.99, probes=("masc",)) -> pd.DataFrame:
    """Probes at their best layer (MASC by default) and the network itself, on the test set, at each checkpoint.

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
    probes : list of str
        Probes of :data:`memnotebooks.probes.PROBES` decoded at every checkpoint, each at its own
        best layer (``"velpic"`` costs one eigenvector per class).

    Returns
    -------
    DataFrame
        The configuration columns, ``epoch``, ``decoder`` (``"network"`` or the probe's name in
        :data:`memnotebooks.probes.PROBE_NAMES`, ``"MASC"``, ``"VeLPIC"``),
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
    keys = ["dataset", "model", "corruption_degree", "seed", "probe", "layer"]
    for epoch in epochs:
        decoding = pd.concat([layerwise_evaluation(r, probes=tuple(probes), layers=layers, fit_labels=fit_labels, variance_threshold=variance_threshold, epoch=epoch) for r in runs])
        validation = decoding[(decoding.split == "test_validation") & (decoding.target == "true")][keys + ["accuracy"]]
        best = best_layer_scores(decoding).merge(validation.rename(columns={"accuracy": "validation_accuracy"}), on=keys, how="left")
        frames.append(best.assign(epoch=epoch, decoder=best.probe.map(PROBE_NAMES)))
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


def decoding_grid(runs, fit_labels: str = "corrupted", layers=None, variance_threshold: float = 0.99, probes=("masc",)) -> pd.DataFrame:
    """:func:`decoding_over_epochs` of each run alone, over every checkpoint it reached, stacked
    (runs of different lengths keep all their checkpoints; the best layer is each run's own)."""
    return pd.concat([decoding_over_epochs([r], None, fit_labels, layers, variance_threshold, probes) for r in runs], ignore_index=True)


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


def decoding_comparisons(table: pd.DataFrame) -> pd.DataFrame:
    """The peaks of :func:`decoding_peaks` (validated) compared image by image, per degree.

    Every comparison is a :class:`memnotebooks.uncertainty.Difference` over the holdout images
    and the seeds (:func:`memnotebooks.uncertainty.paired_bootstrap`) of the ``"validated"`` rows
    of :func:`decoding_over_epochs`.

    Returns
    -------
    DataFrame
        Indexed by ``corruption_degree``: the network's validated checkpoint ``network_epoch``
        (its ``network_accuracy``), the last checkpoint ``last_epoch`` (``network_last_accuracy``)
        and ``network_last`` (last minus validated); MASC's validated checkpoint ``masc_epoch``
        (``masc_layer``, ``masc_accuracy``), its layer and accuracy at the last checkpoint
        (``masc_last_layer``, ``masc_last_accuracy``) and ``masc_last`` (last minus validated);
        the first checkpoint ``first_epoch`` with MASC's accuracy there
        (``masc_first_accuracy``) and ``masc_first`` (first minus last); ``masc_over_network``
        (MASC minus the network, each at its validated checkpoint); ``masc_gain`` (MASC at its
        validated checkpoint minus at the first); and over the checkpoints, at how many MASC is
        ``above``, ``below`` or ``level`` with the network. Where the table decodes VeLPIC too:
        its validated checkpoint ``velpic_epoch`` (``velpic_layer``, ``velpic_accuracy``) and
        ``velpic_over_masc`` (VeLPIC minus MASC, each at its validated checkpoint).
    """
    validated, peaks = table[table.selection == "validated"], decoding_peaks(table)

    def hits(degree, decoder, epoch):
        rows = validated[(validated.corruption_degree == degree) & (validated.decoder == decoder) & (validated.epoch == epoch)].sort_values("seed")
        return [unpack_hits(h) for h in rows.hits]

    per_epoch = pd.concat([paired_differences(part, "network", others=["MASC"], column="decoder").assign(epoch=e) for e, part in validated.groupby("epoch")])
    first = validated.epoch.min()
    rows = []
    for degree in peaks.index.unique("p"):
        net, masc = peaks.loc[(degree, "network")], peaks.loc[(degree, "MASC")]
        ne, me, le = int(net["peak", "epoch"]), int(masc["peak", "epoch"]), int(net["last checkpoint", "epoch"])
        signs = per_epoch[per_epoch.corruption_degree == degree].sign
        rows.append({
            "corruption_degree": degree, "network_epoch": ne, "network_accuracy": net["peak", "accuracy"], "last_epoch": le,
            "network_last_accuracy": net["last checkpoint", "accuracy"], "network_last": paired_bootstrap(hits(degree, "network", le), hits(degree, "network", ne)),
            "masc_epoch": me, "masc_layer": masc["peak", "layer"], "masc_accuracy": masc["peak", "accuracy"], "masc_last_layer": masc["last checkpoint", "layer"],
            "masc_last_accuracy": masc["last checkpoint", "accuracy"], "masc_last": paired_bootstrap(hits(degree, "MASC", le), hits(degree, "MASC", me)),
            "first_epoch": int(first), "masc_first_accuracy": np.mean(hits(degree, "MASC", first)),
            "masc_first": paired_bootstrap(hits(degree, "MASC", first), hits(degree, "MASC", le)),
            "masc_over_network": paired_bootstrap(hits(degree, "MASC", me), hits(degree, "network", ne)),
            "masc_gain": paired_bootstrap(hits(degree, "MASC", me), hits(degree, "MASC", first)),
            "above": int((signs == 1).sum()), "below": int((signs == -1).sum()), "level": int((signs == 0).sum()),
        })
        if (degree, "VeLPIC") in peaks.index:  # the linear probe, each at its own validated checkpoint
            velpic = peaks.loc[(degree, "VeLPIC")]
            ve = int(velpic["peak", "epoch"])
            rows[-1].update({"velpic_epoch": ve, "velpic_layer": velpic["peak", "layer"], "velpic_accuracy": velpic["peak", "accuracy"],
                             "velpic_over_masc": paired_bootstrap(hits(degree, "VeLPIC", ve), hits(degree, "MASC", me))})
    return pd.DataFrame(rows).set_index("corruption_degree")
