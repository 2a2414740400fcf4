"""Label corruption: the training labels a memorizing network is asked to fit.

Each training point is selected with probability ``degree`` (the *corruption degree* ``p``).
In the paper's ``uniform`` mode a selected point gets a label drawn uniformly from all ``C``
classes, so it may keep its true label by chance and the expected fraction of *wrong* labels is
``p (C - 1) / C``. Two modes beyond the paper:

``permute``
    the labels of the selected points are shuffled among themselves, which keeps the label
    histogram exactly. This is the book's variant: Zhang et al. (2017) replace labels by uniformly
    random classes, and the ``randY`` of Arpit et al. (2017) replaces them by random labels too;
``random_inputs``
    labels are kept and the selected *inputs* are replaced by Gaussian noise with the data's
    per-channel mean and std (the ``randX`` of Arpit et al. 2017); see :func:`randomize_inputs`.

The draws use ``numpy.random.default_rng(seed)``, so the same seed gives the same labels on every
machine. The selection is ``u_i < degree`` for one uniform ``u_i`` per point, drawn before
anything else, so for a fixed seed the points selected at a lower degree are also selected at
every higher one (the selected sets are nested). In ``uniform`` mode each keeps the same random
label (drawn for every point, selected or not); in ``permute`` mode the larger set is shuffled
anew, so its labels differ (:func:`nesting` counts both).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from .checks import integer, one_of, real
from .prose import mean_std, number

__all__ = [
    "MODES",
    "CorruptedLabels",
    "corrupt_labels",
    "corrupted_points",
    "corruption_table",
    "expected_gap",
    "nesting",
    "randomize_inputs",
    "share_spread",
    "wrong_fraction",
    "wrong_fraction_summary",
    "wrong_labels",
]

MODES = ("uniform", "permute", "random_inputs")
"""Corruption modes accepted by :func:`corrupt_labels`."""


class CorruptedLabels(NamedTuple):
    """Result of :func:`corrupt_labels`.

    Attributes
    ----------
    labels : ndarray of shape (n_samples,), int64
        The labels to train on.
    mask : ndarray of shape (n_samples,), bool
        Which points were selected for corruption. In ``uniform`` and ``permute`` mode a selected
        point can keep its true label by chance; compare ``labels`` with the true labels (see
        :func:`wrong_fraction`) for the points whose label is actually wrong.
    """

    labels: np.ndarray
    mask: np.ndarray


def check_degree(degree) -> float:
    """Return ``degree`` as a float, or raise if it is not a real number in [0, 1]."""
    return real("corruption degree", degree, 0, 1)


def corrupt_labels(labels, degree: float, n_classes: int, seed: int = 0, mode: str = "uniform") -> CorruptedLabels:
    """Corrupt a fraction ``degree`` of the labels.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        True integer labels in ``[0, n_classes)``; a numpy array or a torch tensor.
    degree : float in [0, 1]
        Probability that each point is selected for corruption.
    n_classes : int
        Number of classes ``C`` (at least 2).
    seed : int
        Seed of ``numpy.random.default_rng``.
    mode : {"uniform", "permute", "random_inputs"}
        See the module docstring. ``random_inputs`` returns the labels unchanged and the mask of
        the points whose inputs :func:`randomize_inputs` replaces.

    Returns
    -------
    CorruptedLabels
        ``(labels, mask)``.
    """
    degree = check_degree(degree)
    one_of("corruption mode", mode, MODES)
    integer("n_classes", n_classes, low=2)
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got dtype {labels.dtype} and shape {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), found [{labels.min()}, {labels.max()}].")

    rng = np.random.default_rng(seed)
    mask = rng.random(labels.size) < degree
    new_labels = labels.astype(np.int64, copy=True)
    if mode == "uniform":
        random_labels = rng.integers(0, n_classes, size=labels.size)
        new_labels[mask] = random_labels[mask]
    elif mode == "permute":
        new_labels[mask] = rng.permutation(new_labels[mask])
    return CorruptedLabels(new_labels, mask)


def wrong_labels(true_labels, given_labels):
    """Where the given label differs from the true one: *the* definition of a wrongly labelled point.

    Parameters
    ----------
    true_labels, given_labels : ndarray or Tensor of shape (n_samples,)
        Both numpy arrays or both tensors (on one device).

    Returns
    -------
    ndarray or Tensor of shape (n_samples,), bool
        Of the inputs' kind.
    """
    if tuple(true_labels.shape) != tuple(given_labels.shape):
        raise ValueError(f"label arrays differ in shape: {tuple(true_labels.shape)} vs {tuple(given_labels.shape)}.")
    return true_labels != given_labels


def corrupted_points(true_labels, given_labels, mask, mode: str):
    """The corrupted training points: wrongly labelled ones (:func:`wrong_labels`) or, in
    ``random_inputs`` mode, those whose input was replaced by noise (their labels are unchanged).

    Parameters
    ----------
    true_labels, given_labels : ndarray or Tensor of shape (n_samples,)
    mask : ndarray or Tensor of shape (n_samples,), bool
        The corruption mask of :func:`corrupt_labels`, of the labels' kind.
    mode : {"uniform", "permute", "random_inputs"}
    """
    if mode not in MODES:
        raise ValueError(f"Unknown corruption mode {mode!r}; choose one of: {', '.join(MODES)}.")
    return mask if mode == "random_inputs" else wrong_labels(true_labels, given_labels)


def wrong_fraction(true_labels, given_labels) -> float:
    """Fraction of points whose given label differs from the true one."""
    wrong = wrong_labels(np.asarray(true_labels), np.asarray(given_labels))
    return float(wrong.mean()) if wrong.size else 0.0


def randomize_inputs(x: torch.Tensor, mask, seed: int = 0) -> torch.Tensor:
    """Replace the masked inputs by Gaussian noise with the data's per-channel mean and std.

    Parameters
    ----------
    x : Tensor of shape (n_samples, channels, height, width)
    mask : array-like of shape (n_samples,), bool
    seed : int
        Seed of the noise (a ``torch.Generator`` on the CPU, so identical on every machine).

    Returns
    -------
    Tensor of the same shape and dtype as ``x``; ``x`` itself is not modified.
    """
    mask = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    if mask.shape != x.shape[:1]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match {x.shape[0]} inputs.")
    dims = [0] + list(range(2, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((int(mask.sum()),) + tuple(x.shape[1:]), generator=generator, dtype=x.dtype)
    out = x.clone()
    out[mask.to(x.device)] = (noise.to(x.device) * std + mean).to(x.dtype)
    return out


def corruption_table(labels, n_classes: int, degrees, seeds=(0,), modes=("uniform",)) -> pd.DataFrame:
    """Measured effect of corruption over a grid of degrees, seeds and modes.

    Returns
    -------
    DataFrame
        One row per (mode, degree, seed): ``selected_fraction`` (mask mean),
        ``wrong_fraction`` (labels that differ from the true ones) and
        ``expected_wrong_fraction`` (``p (C - 1) / C`` in ``uniform`` mode).
    """
    rows = []
    for mode in modes:
        for degree in degrees:
            for seed in seeds:
                new, mask = corrupt_labels(labels, degree, n_classes, seed=seed, mode=mode)
                rows.append(
                    {
                        "mode": mode,
                        "corruption_degree": float(degree),
                        "seed": seed,
                        "selected_fraction": float(mask.mean()) if mask.size else 0.0,
                        "wrong_fraction": wrong_fraction(np.asarray(labels), new),
                        "expected_wrong_fraction": float(degree) * (n_classes - 1) / n_classes
                        if mode == "uniform"
                        else float("nan"),
                    }
                )
    return pd.DataFrame(rows)


def nesting(labels, low: float, high: float, n_classes: int, seed: int = 0, mode: str = "uniform") -> dict:
    """Are the points selected at degree ``low`` selected at ``high`` too, with the same label?

    Returns
    -------
    dict
        ``selected_low`` (points selected at ``low``), ``also_selected`` (of those, selected at
        ``high``) and ``same_label`` (of those, given the same label at both degrees).
    """
    a = corrupt_labels(labels, low, n_classes, seed=seed, mode=mode)
    b = corrupt_labels(labels, high, n_classes, seed=seed, mode=mode)
    both = a.mask & b.mask
    return {"selected_low": int(a.mask.sum()), "also_selected": int(both.sum()), "same_label": int((a.labels[both] == b.labels[both]).sum())}


def share_spread(true_labels, given_labels, degree: float, n_classes: int) -> dict:
    """How far the given-against-true label matrix strays from its expectation, against binomial noise.

    In ``uniform`` mode a point of class ``c`` is given a label ``k != c`` with probability
    ``q = p / C``, independently of the other points, so a cell's share of a class of ``n_c``
    points is a binomial proportion with standard deviation ``sqrt(q (1 - q) / n_c)``; the diagonal
    share (``1 - p + p / C``) likewise.

    Returns
    -------
    dict
        ``class_size`` (mean points per class), ``off_share`` (``q``), ``off_sd`` (its binomial
        sd at the mean class size), ``off_measured`` (root-mean-square deviation of the measured
        off-diagonal shares from ``q``), ``diagonal_share``, ``diagonal_sd``,
        ``diagonal_measured`` (likewise for the diagonal) and ``largest_share`` (largest cell).
    """
    degree = check_degree(degree)
    true, given = np.asarray(true_labels), np.asarray(given_labels)
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (true, given), 1)
    sizes = counts.sum(axis=1)
    shares = counts / sizes[:, None]
    off = ~np.eye(n_classes, dtype=bool)
    n = sizes.mean()
    q, d = degree / n_classes, 1 - degree + degree / n_classes
    return {
        "class_size": float(n),
        "off_share": q,
        "off_sd": float(np.sqrt(q * (1 - q) / n)),
        "off_measured": float(np.sqrt(np.mean((shares[off] - q) ** 2))),
        "diagonal_share": d,
        "diagonal_sd": float(np.sqrt(d * (1 - d) / n)),
        "diagonal_measured": float(np.sqrt(np.mean((np.diag(shares) - d) ** 2))),
        "largest_share": float(shares.max()),
    }


def expected_gap(table: pd.DataFrame, n_samples: int) -> pd.DataFrame:
    """The ``uniform`` rows of :func:`corruption_table`: the seeds' mean wrong fraction against
    ``p (C - 1) / C``, in units of its binomial standard deviation.

    Each point is wrong with probability ``e = p (C - 1) / C`` independently, so the mean over
    ``S`` seeds of ``n`` points has sd ``sqrt(e (1 - e) / (n S))``.

    Returns
    -------
    DataFrame
        Per degree: ``measured``, ``expected``, ``gap`` (measured − expected), ``sd``, ``z``
        (gap / sd; 0 where sd is 0).
    """
    uniform = table[table["mode"] == "uniform"]
    if uniform.empty:
        raise ValueError("expected_gap needs the 'uniform' rows of corruption_table.")
    out = uniform.groupby("corruption_degree").agg(measured=("wrong_fraction", "mean"), expected=("expected_wrong_fraction", "first"), n_seeds=("seed", "nunique"))
    out["gap"] = out.measured - out.expected
    out["sd"] = np.sqrt(out.expected * (1 - out.expected) / (n_samples * out.n_seeds))
    out["z"] = np.where(out.sd > 0, out.gap / out.sd.where(out.sd > 0, 1), 0.0)
    return out.drop(columns="n_seeds")


def wrong_fraction_summary(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`corruption_table` as text: per mode (rows, and ``expected p(C-1)/C``) and degree
    (columns ``p = ...``), the wrong fraction's mean ± sd over seeds."""
    cells = table.groupby(["mode", "corruption_degree"], sort=False)["wrong_fraction"].agg(lambda v: mean_std(v.to_numpy(), digits))
    wide = cells.unstack("corruption_degree").reindex(list(dict.fromkeys(table["mode"])))
    expected = table.dropna(subset="expected_wrong_fraction").groupby("corruption_degree")["expected_wrong_fraction"].first()
    if len(expected):
        wide.loc["expected p(C-1)/C"] = expected.map(lambda v: number(v, digits)).reindex(wide.columns)
    wide.columns = [f"p = {degree:g}" for degree in wide.columns]
    return wide.fillna("").rename_axis(None)
