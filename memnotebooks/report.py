"""Results beside the paper's: the reference table of Ketha & Ramaswamy (2025).

The paper's table ships with the package (``memnotebooks/reference/paper_table.csv``, read with
:mod:`importlib.resources`): per model, dataset and corruption degree, the network's test
accuracy and MASC's at the best layer (chosen on the test set) with corrupted and with true
subspaces, each the mean of 3 runs.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["PAPER_NAMES", "paper_table"]

PAPER_NAMES = {
    "model": {"mlp": "MLP", "cnn": "CNN", "alexnet": "AlexNet", "resnet18": "ResNet18"},
    "dataset": {
        "mnist": "MNIST",
        "fashion_mnist": "FashionMNIST",
        "cifar10": "CIFAR10",
        "cifar100": "CIFAR100",
        "tiny_imagenet": "TinyImageNet",
    },
}
"""This package's model and dataset names, and the paper's."""


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
