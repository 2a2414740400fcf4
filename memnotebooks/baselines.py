"""Chapter 05's headline and its baselines: the network's own accuracy and MASC on the best hidden
layer, on the raw input, on an untrained network and on the generalized network (the paper's
control), per run, all scored on the same holdout images.

:func:`baseline_scores` gives a row per run and baseline with each image's hit, so that any two
rows compare image by image (:func:`memnotebooks.tables.paired_differences`);
:func:`headline_table` shows their mean ± std over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import validation_split
from .decoding import best_layer_scores, hidden_layers, layerwise_evaluation, noisy_validation_labels
from .masc import check_variance_threshold
from .runs import Run, check_one_setting, config_columns, early_stopped, run
from .tables import mean_std_table
from .uncertainty import pack_hits

__all__ = [
    "baseline_scores",
    "headline_table",
    "network_scores",
    "network_hits",
    "untrained_runs",
]


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
        corrupted labels, :func:`memnotebooks.decoding.noisy_validation_labels`) and ``network, peak
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


def network_hits(runs_, epoch: int = -1, by="corruption_degree") -> dict:
    """Which test images each run's network predicts right at one epoch, runs grouped.

    Parameters
    ----------
    runs_ : list of Run
        With their per-epoch test predictions (:attr:`memnotebooks.runs.Run.test_predictions`).
    epoch : int
        The epoch (0: the initial network); -1, each run's last.
    by : str or callable
        A :class:`~memnotebooks.runs.RunConfig` field, or a function of a run's config (e.g.
        :func:`memnotebooks.dynamics.setting_label`), whose value names a run's group.

    Returns
    -------
    dict
        Per group, in order of first appearance, a bool array of shape (n_runs, n_test): row
        ``s`` the group's ``s``-th run in ``runs_``' order (its seed), column ``i`` test image
        ``i``; what :func:`memnotebooks.uncertainty.accuracy_interval` and
        :func:`~memnotebooks.uncertainty.paired_bootstrap` take.
    """
    key = (lambda config: getattr(config, by)) if isinstance(by, str) else by
    groups = {}
    for r in runs_:
        groups.setdefault(key(r.config), []).append(r.test_predictions[epoch] == r.dataset.y_test.numpy())
    return {name: np.stack(hits) for name, hits in groups.items()}


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
    (:func:`memnotebooks.uncertainty.paired_bootstrap`, :func:`memnotebooks.tables.paired_differences`).
    Rows (``baseline``; ``corrupted``/``true``: the labels the probe is fitted on):

    - ``network, ...``: the network itself (:func:`network_scores`);
    - ``MASC, hidden, ...``: MASC at the best hidden layer, with corrupted and with true
      subspaces, holdout-selected and validated, and with corrupted subspaces noisy-validated
      (:data:`memnotebooks.decoding.SELECTIONS`, :func:`memnotebooks.decoding.best_layer_scores`);
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
    check_one_setting(grid, by=())
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
        See :func:`memnotebooks.tables.mean_std_table`.
    """
    return mean_std_table(scores, "baseline", "accuracy")
