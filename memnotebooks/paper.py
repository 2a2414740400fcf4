"""What the paper did: its training settings per model, its target accuracies per dataset, and
its table of results (Ketha & Ramaswamy 2025; DESIGN §2 and §4).

The table ships with the package (``memnotebooks/reference/paper_table.csv``, read with
:mod:`importlib.resources`): per model, dataset and corruption degree, the network's test accuracy
and MASC's at the best layer (chosen on the test set) with corrupted and with true subspaces,
each the mean of :data:`PAPER_SEEDS` runs.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from .checks import one_of
from .data import DATASETS
from .models import MODELS

__all__ = [
    "MEASURES",
    "OPTIMIZER_NAMES",
    "PAPER_NAMES",
    "PAPER_SEEDS",
    "PAPER_SETTINGS",
    "TARGET_ACCURACY",
    "describe_settings",
    "model_rows",
    "model_table",
    "paper_settings",
    "paper_table",
]

PAPER_SETTINGS = {name: dict(entry.paper_settings) for name, entry in MODELS.items()}
"""Optimizer, learning rate, momentum and batch size of the paper, per model (DESIGN §2), as the
model entries carry them (:class:`memnotebooks.models.ModelEntry`).

The CNN uses batch 32 on CIFAR-10. On the embedded ``digits`` set (1,347 training images) every
model uses Adam with learning rate 1e-3 and batch 128: the MLP then memorizes degree 0.8 in about
50 epochs, twice as fast on a 2-core CPU as with batch 32 and with the same test accuracy
(measured while building).
"""

TARGET_ACCURACY = {name: entry.target_accuracy for name, entry in DATASETS.items()}
"""Training accuracy on the given labels at which training stops, per dataset (the paper's), as
the dataset entries carry them (:class:`memnotebooks.data.DatasetEntry`)."""


def paper_settings(model: str, dataset: str) -> dict:
    """The paper's optimizer settings and target accuracy for a model on a dataset."""
    settings = dict(PAPER_SETTINGS[one_of("model", model, MODELS)])
    one_of("dataset", dataset, DATASETS)
    if dataset == "digits":
        settings.update(optimizer="adam", learning_rate=1e-3, momentum=0.0, batch_size=128)
    elif model == "cnn" and dataset == "cifar10":
        settings["batch_size"] = 32
    settings["target_accuracy"] = TARGET_ACCURACY[dataset]
    return settings


PAPER_SEEDS = 3
"""Runs behind each of the paper's numbers (its table gives their mean, without a spread)."""


PAPER_NAMES = {
    "model": {name: entry.paper_name for name, entry in MODELS.items()},
    "dataset": {name: entry.paper_name for name, entry in DATASETS.items() if entry.paper_name},
}
"""This package's model and dataset names, and the paper's (from the registries' entries)."""


def paper_table() -> pd.DataFrame:
    """The paper's table with this package's model and dataset names.

    Returns
    -------
    DataFrame
        Columns ``model``, ``dataset``, ``corruption_degree``, ``model_test``,
        ``masc_corrupted``, ``masc_true`` (accuracies in [0, 1]).
    """
    with resources.files("memnotebooks").joinpath("reference/paper_table.csv").open() as file:
        table = pd.read_csv(file, comment="#")
    for column, names in PAPER_NAMES.items():
        table[column] = table[column].map({paper: ours for ours, paper in names.items()})
    return table


MEASURES = {"model_test": "network, final", "masc_corrupted": "MASC, corrupted", "masc_true": "MASC, true"}
"""The paper's columns and what they measure."""


def model_rows(model: str) -> pd.DataFrame:
    """The paper's rows for one model (:func:`paper_table`'s columns), datasets in the paper's names."""
    table = paper_table()
    if model not in set(table.model):
        raise ValueError(f"The paper's table has no model {model!r}; it has: {', '.join(sorted(set(table.model)))}.")
    return table[table.model == model].assign(dataset=lambda t: t.dataset.map(PAPER_NAMES["dataset"])).reset_index(drop=True)


def model_table(model: str) -> pd.DataFrame:
    """The paper's rows for one model, wide: one row per corruption degree ``p``, one column per
    measure (:data:`MEASURES`' names) and dataset (the paper's names), accuracies in [0, 1]."""
    rows = model_rows(model)
    wide = rows.pivot_table(index="corruption_degree", columns="dataset", values=list(MEASURES)).rename(columns=MEASURES, level=0)
    order = [(measure, dataset) for measure in MEASURES.values() for dataset in rows.dataset.unique()]
    return wide[order].rename_axis(index="p", columns=[None, None])


OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}


def describe_settings(settings) -> str:
    """Optimizer settings in words, e.g. "SGD, learning rate $10^{-3}$, momentum 0.9, batch 32".

    ``settings`` is a mapping with ``optimizer``, ``learning_rate``, ``momentum`` and ``batch_size``
    (one of :data:`PAPER_SETTINGS`' entries, or a run's :meth:`~memnotebooks.runs.RunConfig.to_dict`).
    """
    exponent = np.log10(settings["learning_rate"])
    rate = f"$10^{{{round(exponent)}}}$" if np.isclose(exponent, round(exponent)) else f"{settings['learning_rate']:g}"
    words = [OPTIMIZER_NAMES[settings["optimizer"]], f"learning rate {rate}"]
    if settings["momentum"]:
        words.append(f"momentum {settings['momentum']:g}")
    return ", ".join([*words, f"batch {settings['batch_size']}"])
