"""Rewinding a memorized network's last layers to an early checkpoint.

- :func:`rewinding_table`: the last ``L`` weight layers reset to an early checkpoint, the rest
  kept (Stephenson et al. 2021): if generalization comes back when only the last layers are rewound, memorization lives
  there. :func:`rewinding_grid` rewinds several runs and :func:`rewinding_display` shows them;
  :func:`rewinding_differences` compares each rewinding image by image with the memorized
  network and with the checkpoint, and :func:`rewinding_verdicts` counts the verdicts.

The rewindings are one of the ways of recovering generalization that
:mod:`memnotebooks.recovery` sets side by side.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from .dynamics import checkpointed_epochs, epochs_reached
from .models import rewind, weight_layers
from .runs import Run, config_columns, run_columns, test_parts
from .training import predict
from .uncertainty import pack_hits, paired_bootstrap, unpack_hits

__all__ = [
    "rewinding_differences",
    "rewinding_display",
    "rewinding_grid",
    "rewinding_table",
    "rewinding_verdicts",
]


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
    for epoch in checkpointed_epochs(run_, epochs):
        early_state = run_.checkpoint(epoch).state_dict()
        for depth in map(int, depths):
            rewound = memorized if depth == 0 else scores(rewind(copy.deepcopy(run_.model), early_state, depth))
            rows.append({"epoch": epoch, "layers_rewound": depth, "first_rewound": layers[len(layers) - depth] if depth else "", **rewound})
    return pd.DataFrame(rows).assign(**config_columns(run_))


def rewinding_grid(runs, epochs=None, depths=None) -> pd.DataFrame:
    """:func:`rewinding_table` of several runs, stacked, each rewound to the epochs of ``epochs``
    (default: every checkpoint it kept) before its last one
    (:func:`memnotebooks.dynamics.epochs_reached` with ``final=False``: a checkpoint at the last
    epoch is the memorized network itself)."""
    return pd.concat([rewinding_table(r, epochs_reached(r, r.config.checkpoint_epochs if epochs is None else epochs, final=False), depths) for r in runs], ignore_index=True)


def rewinding_display(rewinding: pd.DataFrame, digits: int = 3) -> list[pd.DataFrame]:
    """:func:`rewinding_grid`'s holdout accuracies for the page: one table per run (in order,
    named by its degree and seed), a row per ``L`` rewound and a column per epoch rewound to."""
    runs_ = rewinding.groupby(run_columns(rewinding, without=()), sort=False, dropna=False)
    return [
        part.pivot(index="layers_rewound", columns="epoch", values="test_holdout_accuracy")
        .rename_axis(index=f"p = {part.corruption_degree.iloc[0]}, seed {part.seed.iloc[0]}: L rewound", columns="rewound to epoch").round(digits)
        for _, part in runs_
    ]


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
