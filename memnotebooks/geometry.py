"""Geometry of class representations in a layer: subspace dimensions, spread and overlap.

For each class's activations ``X_c`` (n_c, d) with uncentred second-moment eigenvalues
``λ_1 ≥ λ_2 ≥ …``:

- ``k_c``, the dimension of MASC's class subspace (the fewest components holding
  ``variance_threshold`` of the variance), and its share ``k_c / d`` of the layer width;
- the participation ratio ``(Σλ)² / Σλ²``, a threshold-free effective dimension;
- principal angles between two classes' subspaces (the arccosines of the singular values of
  ``B_a B_bᵀ`` for orthonormal bases): small angles mean overlapping class subspaces, which
  MASC cannot tell apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .masc import MASC

__all__ = ["participation_ratio", "class_geometry", "principal_angle_matrix"]


def participation_ratio(X) -> float:
    """``(Σλ)² / Σλ²`` of the uncentred second moment of ``X`` (n, d); between 1 and rank(X).

    No eigendecomposition is needed: ``Σλ`` is the trace of the Gram ``XᵀX`` and ``Σλ²`` its
    squared Frobenius norm, and the smaller Gram (``XXᵀ`` when n < d) has the same eigenvalues.
    """
    X = np.asarray(X, dtype=np.float64)
    gram = X @ X.T if len(X) < X.shape[1] else X.T @ X
    total = np.trace(gram)
    return float(total**2 / np.square(gram).sum()) if total > 0 else 0.0


def principal_angle_matrix(components) -> np.ndarray:
    """Mean principal angle in degrees between every pair of subspaces.

    Parameters
    ----------
    components : list of ndarray of shape (k_c, d)
        Orthonormal bases as rows (``MASC.components_``).

    Returns
    -------
    ndarray of shape (n_classes, n_classes)
        Symmetric; the diagonal is 0.
    """
    # The bases are orthonormal already, so the cosines are the singular values of B_a B_bᵀ;
    # scipy's subspace_angles would re-orthonormalize both bases for every pair.
    n = len(components)
    angles = np.zeros((n, n))
    for a in range(n):
        for b in range(a + 1, n):
            cosines = np.linalg.svd(components[a] @ components[b].T, compute_uv=False)
            angles[a, b] = angles[b, a] = np.degrees(np.arccos(np.clip(cosines, 0, 1))).mean()
    return angles


def class_geometry(X, y, variance_threshold: float = 0.99) -> pd.DataFrame:
    """Per-class subspace measures of one layer's activations.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    variance_threshold : float in (0, 1]

    Returns
    -------
    DataFrame
        One row per class: ``label``, ``n_points``, ``k`` (subspace dimension), ``k_fraction``
        (``k / d``), ``participation_ratio`` and ``mean_principal_angle`` (degrees, mean over
        the other classes of the mean principal angle to them).
    """
    X, y = np.asarray(X), np.asarray(y)
    masc = MASC(variance_threshold=variance_threshold).fit(X, y)
    angles = principal_angle_matrix(masc.components_)
    n_classes = len(masc.classes_)
    others = angles.sum(axis=1) / max(n_classes - 1, 1)
    return pd.DataFrame(
        {
            "label": masc.classes_,
            "n_points": [int(np.sum(y == c)) for c in masc.classes_],
            "k": masc.n_components_,
            "k_fraction": masc.n_components_ / X.shape[1],
            "participation_ratio": [participation_ratio(X[y == c]) for c in masc.classes_],
            "mean_principal_angle": others,
        }
    )
