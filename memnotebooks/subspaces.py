"""Subspace measures of the classes in one layer's activations: subspace dimensions, spread and
overlap, beside random baselines.

For each class's activations ``X_c`` (n_c, d) with uncentred second-moment eigenvalues
``λ_1 ≥ λ_2 ≥ …``:

- ``k_c``, the dimension of MASC's class subspace (the first ``k`` whose components hold more
  than ``variance_threshold`` of the variance, capped at the rank), and its share
  ``k_c / min(n_c, d)`` of the most it can be: in a layer wider than a class has points, the
  cap is the points, not the width;
- the participation ratio ``(Σλ)² / Σλ²``, a threshold-free effective dimension;
- principal angles between two classes' subspaces (the arccosines of the singular values of
  ``B_a B_bᵀ`` for orthonormal bases), their mean or the first (smallest) one, beside the same
  for random subspaces of the same dimensions (:func:`random_principal_angle_matrix`), since
  larger subspaces come closer by chance. A small angle means a shared direction, not that the
  classes cannot be told apart.

Arrays and labels in, tables out: no networks, no runs (:mod:`memnotebooks.layer_geometry` takes
these measures on a run's layers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import eigh
from threadpoolctl import threadpool_limits

from .masc import MASC

__all__ = [
    "ANGLE_STATISTICS",
    "class_geometry",
    "participation_ratio",
    "principal_angle_matrix",
    "principal_angles",
    "random_principal_angle_matrix",
]


def participation_ratio(X) -> float:
    """``(Σλ)² / Σλ²`` of the uncentred second moment of ``X`` (n, d); between 1 and rank(X).

    No eigendecomposition is needed: ``Σλ`` is the trace of the Gram ``XᵀX`` and ``Σλ²`` its
    squared Frobenius norm, and the smaller Gram (``XXᵀ`` when n < d) has the same eigenvalues.
    """
    X = np.asarray(X, dtype=np.float64)
    gram = X @ X.T if len(X) < X.shape[1] else X.T @ X
    total = np.trace(gram)
    return float(total**2 / np.square(gram).sum()) if total > 0 else 0.0


ANGLE_STATISTICS = {"mean": np.mean, "first": np.min}
"""How :func:`principal_angle_matrix` sums up the principal angles of a pair: their mean, or the
first (smallest) angle, the one between the two subspaces' closest directions."""


def _angle_statistic(statistic: str):
    if statistic not in ANGLE_STATISTICS:
        raise ValueError(f"Unknown statistic {statistic!r}; choose from: {', '.join(ANGLE_STATISTICS)}.")
    return ANGLE_STATISTICS[statistic]


def principal_angles(a, b) -> np.ndarray:
    """The ``min(k_a, k_b)`` principal angles in degrees, smallest first, between the row spaces
    of orthonormal bases ``a`` (k_a, d) and ``b`` (k_b, d): the arccosines of the singular values
    of ``a bᵀ``."""
    cosines = np.linalg.svd(np.asarray(a) @ np.asarray(b).T, compute_uv=False)
    return np.degrees(np.arccos(np.clip(cosines, 0, 1)))


def principal_angle_matrix(components, statistic: str = "mean") -> np.ndarray:
    """Mean (or first) principal angle in degrees between every pair of subspaces.

    Parameters
    ----------
    components : list of ndarray of shape (k_c, d)
        Orthonormal bases as rows (``MASC.components_``).
    statistic : {"mean", "first"}
        The mean of a pair's ``min(k_a, k_b)`` angles, or the first (smallest) one.

    Returns
    -------
    ndarray of shape (n_classes, n_classes)
        Symmetric; the diagonal is 0.
    """
    # The bases are orthonormal already, so the cosines are the singular values of B_a B_bᵀ;
    # scipy's subspace_angles would re-orthonormalize both bases for every pair.
    summary = _angle_statistic(statistic)
    n = len(components)
    angles = np.zeros((n, n))
    with threadpool_limits(1, user_api="blas"):  # small matrices: threads only contend
        for a in range(n):
            for b in range(a + 1, n):
                angles[a, b] = angles[b, a] = summary(principal_angles(components[a], components[b]))
    return angles


def random_principal_angle_matrix(dimensions, n_features: int, statistic: str = "mean", seed: int = 0) -> np.ndarray:
    """:func:`principal_angle_matrix` for random subspaces of the given dimensions: the angles
    that the dimensions alone would give.

    Pair ``(a, b)`` gets the statistic of the angles between a uniformly random subspace of
    dimension ``max(k_a, k_b)`` of ``R^d`` (the span of a Gaussian matrix) and the span of the
    first ``min(k_a, k_b)`` coordinates; by rotation invariance that is the law of two
    independent random subspaces. One draw per pair: averaged over the other classes (and
    seeds), its Monte Carlo error is a fraction of a degree.

    Parameters
    ----------
    dimensions : sequence of int
        ``k_c`` of each class, at most ``n_features``.
    n_features : int
        The ambient dimension ``d``.
    statistic : {"mean", "first"}
    seed : int
        The same seed gives the same matrix.
    """
    summary = _angle_statistic(statistic)
    dimensions = [int(k) for k in dimensions]
    if any(not 1 <= k <= n_features for k in dimensions):
        raise ValueError(f"every dimension must lie in [1, n_features={n_features}]; got {dimensions}.")
    rng = np.random.default_rng(seed)
    n = len(dimensions)
    angles = np.zeros((n, n))
    with threadpool_limits(1, user_api="blas"):  # (k, k) matrices: on a busy machine threads only contend
        for a in range(n):
            for b in range(a + 1, n):
                small, large = sorted((dimensions[a], dimensions[b]))
                cosines = _random_cosines(small, large, n_features, rng)
                angles[a, b] = angles[b, a] = summary(np.degrees(np.arccos(np.clip(cosines, 0, 1))))
    return angles


def _random_cosines(small: int, large: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Cosines of the principal angles between the span of the first ``small`` coordinates of
    ``R^d`` and the span of a Gaussian matrix ``G`` (d, large), without forming ``G``.

    With ``Q = G R⁻¹`` (QR), the squared cosines are the eigenvalues of ``Q_topᵀ Q_top``, i.e. of
    the pencil ``(W_top, W_top + W_bot)`` with ``W_top = G_topᵀ G_top`` (the first ``small``
    rows) and ``W_bot = G_botᵀ G_bot``, a Wishart matrix of ``d − small`` degrees of freedom drawn
    by Bartlett's decomposition, so the cost does not grow with the width ``d``. Where the two
    subspaces must meet (``small + large ≥ d``, narrow layers only) ``G`` is drawn and
    orthonormalized.
    """
    if small + large >= d:
        basis = np.linalg.qr(rng.standard_normal((d, large)))[0]
        return np.linalg.svd(basis[:small], compute_uv=False)
    top = rng.standard_normal((small, large))
    bartlett = np.tril(rng.standard_normal((large, large)), -1)  # W_bot = A Aᵀ, A lower triangular
    bartlett[np.diag_indices(large)] = np.sqrt(rng.chisquare(d - small - np.arange(large)))
    w_top = top.T @ top
    squared = eigh(w_top, w_top + bartlett @ bartlett.T, eigvals_only=True)[-small:]
    return np.sqrt(np.clip(squared, 0, 1))[::-1]


def class_geometry(X, y, variance_threshold: float = 0.99, seed: int = 0) -> pd.DataFrame:
    """Per-class subspace measures of one layer's activations.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    variance_threshold : float in (0, 1]
    seed : int
        Seed of the random-subspace baselines (:func:`random_principal_angle_matrix`).

    Returns
    -------
    DataFrame
        One row per class: ``label``, ``n_points`` (``n_c``), ``k`` (subspace dimension),
        ``k_fraction`` (``k / d``), ``k_cap`` (``min(n_c, d)``, the most ``k`` can be: the rank
        of the class's points), ``k_over_cap`` (``k / k_cap``), ``participation_ratio``, and four
        angles in degrees, each a mean over the other classes: ``mean_principal_angle`` and
        ``first_principal_angle`` (the mean and the smallest of a pair's principal angles), and
        ``random_mean_angle`` and ``random_first_angle``, the same for random subspaces of the
        same dimensions in the same width.
    """
    X, y = np.asarray(X), np.asarray(y)
    masc = MASC(variance_threshold=variance_threshold).fit(X, y)
    n_classes, d = len(masc.classes_), X.shape[1]
    n_points = np.array([int(np.sum(y == c)) for c in masc.classes_])
    cap = np.minimum(n_points, d)

    def others(angles):  # each class's mean over the other classes
        return angles.sum(axis=1) / max(n_classes - 1, 1)

    angles = {f"{kind}_principal_angle": others(principal_angle_matrix(masc.components_, kind)) for kind in ("mean", "first")}
    random = {f"random_{kind}_angle": others(random_principal_angle_matrix(masc.n_components_, d, kind, seed)) for kind in ("mean", "first")}
    return pd.DataFrame(
        {
            "label": masc.classes_,
            "n_points": n_points,
            "k": masc.n_components_,
            "k_fraction": masc.n_components_ / d,
            "k_cap": cap,
            "k_over_cap": masc.n_components_ / cap,
            "participation_ratio": [participation_ratio(X[y == c]) for c in masc.classes_],
            **angles,
            **random,
        }
    )
