"""What changes while a network memorizes: when each example is learned, how hard each one pulls
on the weights, and which layers hold the memorized labels.

- :func:`learning_table`: each training example's epoch of learning (the first epoch from which
  the network fits its label for good), clean against corrupted: Arpit et al. (2017) find the
  real patterns learned first, the noise later.
- :func:`gradient_norm_table`: the norm of each example's loss gradient at the run's checkpoints,
  clean against corrupted. Early in training the clean examples agree with one another and the
  corrupted ones do not, so the summed gradient follows the clean ones (Stephenson et al.'s
  analytical point); this measures the per-example side of it.
- :func:`decoding_over_epochs`: MASC's best-layer test accuracy at each checkpoint beside the
  network's own, to see when each peaks (latent generalization while memorizing).
- :func:`rewinding_table`: the last ``L`` weight layers reset to an early checkpoint, the rest
  kept (Stephenson et al. 2021): if generalization comes back when only the last layers are
  rewound, memorization lives there.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from .evaluation import best_layer_scores, layerwise_evaluation
from .models import rewind, weight_layers
from .runs import Run, config_columns
from .training import per_example_gradient_norms, predict

__all__ = ["decoding_over_epochs", "gradient_norm_table", "learning_table", "rewinding_table"]


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


def _checkpoint_epochs(run_: Run, epochs) -> list[int]:
    reached = [e for e in run_.config.checkpoint_epochs if e <= run_.summary["epochs"]]
    if epochs is None:
        return reached
    missing = [e for e in epochs if e not in reached]
    if missing:
        raise ValueError(f"Epoch(s) {missing} of {run_.path.name} were never checkpointed; it kept {reached} (RunConfig.checkpoint_epochs).")
    return list(epochs)


def gradient_norm_table(run_: Run, epochs=None, batch_size: int = 256) -> pd.DataFrame:
    """Per checkpoint, the mean and median norm of the training examples' own loss gradients
    (on the labels trained on), clean and corrupted apart.

    Parameters
    ----------
    run_ : Run
    epochs : list of int, optional
        Checkpointed epochs; default every one the run reached.
    batch_size : int
        Examples per vectorized gradient computation.

    Returns
    -------
    DataFrame
        The configuration columns, ``epoch``, ``subset``, ``mean_norm``, ``median_norm``,
        ``n_points``.
    """
    subsets = _subset(run_)
    rows = []
    for epoch in _checkpoint_epochs(run_, epochs):
        norms = per_example_gradient_norms(run_.checkpoint(epoch), run_.dataset.x_train, run_.train_labels, batch_size).numpy()
        for subset in ("clean", "corrupted"):
            chosen = norms[subsets == subset]
            if len(chosen):
                rows.append({"epoch": epoch, "subset": subset, "mean_norm": chosen.mean(), "median_norm": np.median(chosen), "n_points": len(chosen)})
    return pd.DataFrame(rows).assign(**config_columns(run_))


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
        ``clean_accuracy`` (clean training examples, their labels) and
        ``corrupted_accuracy_given`` (corrupted training examples, the labels memorized).
    """
    layers = weight_layers(run_.model)
    depths = list(range(len(layers) + 1)) if depths is None else list(depths)
    bad = [d for d in depths if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= len(layers)]
    if bad:
        raise ValueError(f"depths {bad} are out of range: {run_.config.model} has {len(layers)} weight layers ({', '.join(layers)}), so L runs from 0 to {len(layers)}.")
    corrupted = run_.corrupted
    rows = []
    for epoch in _checkpoint_epochs(run_, epochs):
        early_state = run_.checkpoint(epoch).state_dict()
        for depth in depths:
            model = rewind(copy.deepcopy(run_.model), early_state, int(depth))
            fitted = (predict(model, run_.dataset.x_train).cpu() == run_.train_labels).numpy()
            rows.append(
                {
                    "epoch": epoch,
                    "layers_rewound": int(depth),
                    "first_rewound": layers[len(layers) - depth] if depth else "",
                    "test_accuracy": float((predict(model, run_.dataset.x_test).cpu() == run_.dataset.y_test).float().mean()),
                    "clean_accuracy": float(fitted[~corrupted].mean()) if (~corrupted).any() else float("nan"),
                    "corrupted_accuracy_given": float(fitted[corrupted].mean()) if corrupted.any() else float("nan"),
                }
            )
    return pd.DataFrame(rows).assign(**config_columns(run_))


def decoding_over_epochs(runs, epochs=None, fit_labels: str = "corrupted", variance_threshold: float = 0.99) -> pd.DataFrame:
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
    variance_threshold : float in (0, 1]

    Returns
    -------
    DataFrame
        The configuration columns, ``epoch``, ``decoder`` (``"network"`` or ``"MASC"``),
        ``selection`` (``"test-selected"``/``"validated"``; the network is scored on the whole
        test set and on the holdout part), ``layer`` and ``accuracy``.
    """
    runs = list(runs)
    shared = sorted(set.intersection(*(set(_checkpoint_epochs(r, None)) for r in runs)))
    epochs = shared if epochs is None else [e for e in epochs if all(e in _checkpoint_epochs(r, [e]) for r in runs)]
    frames = []
    for epoch in epochs:
        decoding = pd.concat([layerwise_evaluation(r, fit_labels=fit_labels, variance_threshold=variance_threshold, epoch=epoch) for r in runs])
        frames.append(best_layer_scores(decoding).assign(epoch=epoch, decoder="MASC"))
        for r in runs:
            row = r.history.set_index("epoch").loc[epoch]
            for selection, column in (("test-selected", "test_accuracy"), ("validated", "test_holdout_accuracy")):
                frames.append(pd.DataFrame([{**config_columns(r), "epoch": epoch, "decoder": "network", "selection": selection, "layer": "output", "accuracy": row[column]}]))
    columns = ["dataset", "model", "corruption_degree", "seed", "epoch", "decoder", "selection", "layer", "accuracy"]
    return pd.concat(frames, ignore_index=True)[columns]
