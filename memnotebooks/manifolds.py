"""Mean-field manifold analysis of the classes in one layer's activations (Chung, Lee & Sompolinsky
2018): each class manifold's capacity, radius and dimension, checked against brute force and
Cover's bound.

As Stephenson et al. (2021) used it (:func:`manifold_analysis`): each class's points are a
*manifold*, and its *capacity* is how many such manifolds per ambient dimension a linear readout
can separate under random labellings of the manifolds; its *radius* and *dimension* are the
spread and the number of directions of the manifold's anchor points, which set the capacity. Point
manifolds (radius 0) have capacity 2, Cover's bound for points; :func:`simulated_capacity`
measures the same quantity by brute force, to check the theory on the data at hand, and
:func:`capacity_validation` does so on :func:`gaussian_clouds` of known size.

Arrays and labels in, tables out: no networks, no runs (:mod:`memnotebooks.layer_manifolds`
measures a run's layers).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from scipy.optimize import linprog, nnls

from .checks import integer

__all__ = [
    "CAPACITY_CASES",
    "capacity_validation",
    "gaussian_clouds",
    "manifold_analysis",
    "set_capacity",
    "simulated_capacity",
]


def _manifolds(X, labels, min_points: int = 2) -> tuple[np.ndarray, list[np.ndarray]]:
    X, labels = np.asarray(X, dtype=np.float64), np.asarray(labels)
    if X.ndim != 2 or len(X) != len(labels):
        raise ValueError(f"X must be 2-D (n_points, n_features) with one label per point; got X of shape {X.shape} and {len(labels)} labels.")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"manifold analysis needs at least 2 manifolds (classes); got {len(classes)}: {classes.tolist()}.")
    small = classes[counts < min_points]
    if len(small):
        raise ValueError(f"each manifold needs at least {min_points} points; class(es) {small.tolist()} have {counts[counts < min_points].tolist()}.")
    return classes, [X[labels == c] for c in classes]


def _span_coordinates(offsets: np.ndarray) -> np.ndarray:
    """Coordinates (D, m) of ``m`` points (m, N) in an orthonormal basis of their span, ``D``
    their numerical rank, so that rounding noise in a manifold of coincident points does not
    count as directions. The offsets are in units of the centre's norm, so the tolerance is
    numpy's ``matrix_rank`` one with a floor of that unit."""
    left, singular, _ = np.linalg.svd(offsets.T, full_matrices=False)
    tolerance = max(singular.max(initial=0), 1.0) * max(offsets.shape) * np.finfo(offsets.dtype).eps
    basis = left[:, singular > tolerance]
    return basis.T @ offsets.T


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of the angle between ``a`` and ``b`` (n, D); 0 where either is zero."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide((a * b).sum(axis=1), norms, out=np.zeros(len(a)), where=norms > 0)


def _anchor_points(manifold: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Anchor point of each Gaussian draw for one manifold (the mean-field theory's ``s̃(t)``).

    ``manifold`` (D + 1, m) holds the points' coordinates about the centre, in units of the
    centre's norm, with the centre as a last coordinate of 1; ``t`` (n_t, D + 1). For each draw,
    the field ``v`` closest to ``t`` with ``v · x ≤ 0`` for every point ``x`` (zero margin) is
    ``t`` minus its projection onto the cone of the points (Moreau), so the projection
    ``Σ_j a_j x_j`` (``a ≥ 0``) is a non-negative least-squares fit of ``t``, and the anchor is
    the convex combination ``Σ_j a_j x_j / Σ_j a_j`` (its last coordinate is 1). Draws already on
    the right side of every point (``max_j t · x_j ≤ 0``) keep their farthest point as anchor
    and add nothing to the capacity.
    """
    projections = t @ manifold  # (n_t, m)
    anchors = manifold[:, projections.argmax(axis=1)].T.copy()  # the touching point where no fit is needed
    for i in np.flatnonzero(projections.max(axis=1) > 0):  # one small convex problem per draw
        weights, _ = nnls(manifold, t[i])
        if weights.sum() > 0:
            anchors[i] = manifold @ weights / weights.sum()
    return anchors


def manifold_analysis(X, labels, n_t: int = 200, seed: int = 0) -> pd.DataFrame:
    """Capacity, radius and dimension of each class manifold (Chung, Lee & Sompolinsky 2018).

    The points are centred on the mean of all points; each manifold is then described about its
    own centre, in units of the centre's norm, in a basis of the span of its points (so the cost
    depends on the points, not the layer width). For ``n_t`` Gaussian draws ``t`` the anchor
    points ``s̃(t)`` are found (see :func:`_anchor_points`) and

    - capacity ``α_M = 1 / ⟨max(t · s̃, 0)² / ‖s̃‖²⟩_t`` (PRX 2018, eqs. 16–17, zero margin
      κ = 0), with ``t`` a standard normal vector in the ``D + 1`` coordinates (the ``D``
      within-manifold directions and the centre's) and ``s̃ = (s, 1)`` the anchor;
    - radius ``R_M = √⟨‖δs‖²⟩_t``, with ``δs = s − ⟨s⟩_t`` the anchor's offset from its mean
      over draws (as the released code of Cohen et al. 2020 computes it), in units of the
      centre's norm;
    - dimension ``D_M = D ⟨t̂₀ · ŝ⟩²_t``, with ``t₀`` and ``s`` the ``D`` within-manifold
      coordinates of the draw and of the anchor and hats unit vectors: the released code's
      estimator (the square of the mean cosine), not the PRX's ``⟨(t₀ · ŝ)²⟩_t``.

    Centre correlations between manifolds are not removed (the PRX 2018 setting; Cohen et al.
    2020 remove them first).

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        One layer's activations (flattened).
    labels : array-like of shape (n_points,)
        The manifold (class) of each point; every class needs at least 2 points.
    n_t : int
        Gaussian draws per manifold; the estimates' Monte Carlo error falls as ``1/√n_t``.
    seed : int
        Seed of the draws: the same seed gives the same table.

    Returns
    -------
    DataFrame
        One row per manifold: ``label``, ``n_points``, ``capacity``, ``radius``, ``dimension``.
        The capacity of the whole set of manifolds is the harmonic mean of the rows',
        ``1 / mean(1 / capacity)``.
    """
    integer("n_t", n_t, low=2)
    classes, manifolds = _manifolds(X, labels)
    origin = np.concatenate(manifolds).mean(axis=0)
    rng = np.random.default_rng(seed)
    rows = []
    for label, points in zip(classes, manifolds):
        points = points - origin
        centre = points.mean(axis=0)
        scale = np.linalg.norm(centre)
        if scale == 0:
            raise ValueError(f"manifold {label!r} is centred on the mean of all points, so its capacity is undefined.")
        offsets = (points - centre) / scale  # (m, N)
        within = _span_coordinates(offsets)  # (D, m)
        manifold = np.vstack([within, np.ones(len(points))])  # (D + 1, m)
        dims = len(within)
        t = rng.standard_normal((n_t, dims + 1))
        anchors = _anchor_points(manifold, t)
        fields = np.maximum((t * anchors).sum(axis=1), 0)
        capacity = 1 / np.mean(fields**2 / (anchors**2).sum(axis=1))
        spread = anchors[:, :dims] - anchors[:, :dims].mean(axis=0)
        radius = np.sqrt(np.mean((spread**2).sum(axis=1)))
        dimension = dims * np.mean(_cosines(t[:, :dims], anchors[:, :dims])) ** 2 if dims else 0.0
        rows.append({"label": label, "n_points": len(points), "capacity": capacity, "radius": radius, "dimension": dimension})
    return pd.DataFrame(rows)


def _separable(points: np.ndarray, signs: np.ndarray) -> bool:
    """Whether some ``w`` has ``sign · (w · x) ≥ 1`` for every point: a linear feasibility
    problem (scipy's HiGHS), the readout through the origin that the capacity counts."""
    constraints = -(signs[:, None] * points)
    result = linprog(np.zeros(points.shape[1]), A_ub=constraints, b_ub=-np.ones(len(points)), bounds=(None, None), method="highs")
    return result.status == 0


def simulated_capacity(X, labels, n_dichotomies: int = 50, seed: int = 0) -> float:
    """The capacity of a set of manifolds measured by brute force (Cohen, Chung, Lee & Sompolinsky
    2020): the ratio ``P / N`` of manifolds to dimensions at which half of the random dichotomies
    (a random ±1 label per manifold) are linearly separable.

    The points, centred on their overall mean, are projected onto ``N`` random Gaussian
    directions; ``N`` is found by bisection on the share of ``n_dichotomies`` separable
    dichotomies (each a linear program). Use few manifolds' worth of points: each step solves
    ``n_dichotomies`` programs over all of them.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
    labels : array-like of shape (n_points,)
    n_dichotomies : int
    seed : int

    Returns
    -------
    float
        ``P / N`` at the crossing, where ``P`` is the number of manifolds.
    """
    integer("n_dichotomies", n_dichotomies, low=1)
    classes, manifolds = _manifolds(X, labels, min_points=1)
    points = np.concatenate(manifolds)
    points = points - points.mean(axis=0)
    which = np.repeat(np.arange(len(classes)), [len(m) for m in manifolds])
    rng = np.random.default_rng(seed)
    dichotomies = rng.choice([-1.0, 1.0], size=(n_dichotomies, len(classes)))
    projection = rng.standard_normal((points.shape[1], points.shape[1]))

    def separable_share(n_dims: int) -> float:
        projected = points @ projection[:, :n_dims]
        return np.mean([_separable(projected, dichotomy[which]) for dichotomy in dichotomies])

    low, high = 1, points.shape[1]  # separable share rises with N
    if separable_share(high) < 0.5:
        raise ValueError(f"fewer than half of the dichotomies are separable even in all {high} dimensions: give X more features, or fewer manifolds.")
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if separable_share(middle) >= 0.5 else (middle, high)
    return len(classes) / high


def gaussian_clouds(n_manifolds: int, n_points: int, n_features: int, radius: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Manifolds of known size: Gaussian clouds around random centres.

    Each of ``n_manifolds`` centres is a standard normal vector; its ``n_points`` points are the
    centre plus isotropic Gaussian noise of RMS norm ``radius`` times the centre's norm (radius 0:
    every point is the centre, a point manifold).

    Returns
    -------
    X : ndarray of shape (n_manifolds * n_points, n_features)
    labels : ndarray of shape (n_manifolds * n_points,), int
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_manifolds, n_features))
    noise = rng.standard_normal((n_manifolds, n_points, n_features)) / np.sqrt(n_features)
    points = centres[:, None, :] + radius * np.linalg.norm(centres, axis=1)[:, None, None] * noise
    return points.reshape(-1, n_features), np.repeat(np.arange(n_manifolds), n_points)


def set_capacity(capacities) -> float:
    """The capacity of a set of manifolds from each one's (:func:`manifold_analysis`): the
    harmonic mean ``1 / mean(1 / α_M)``."""
    return float(1 / np.mean(1 / np.asarray(capacities, dtype=float)))


CAPACITY_CASES = (
    {"case": "point manifolds (radius 0)", "n_manifolds": 20, "n_points": 3, "n_features": 50, "radius": 0.0, "expected": 2.0},
    {"case": "random points (Cover)", "n_manifolds": 24, "n_points": 1, "n_features": 40, "radius": 0.0, "expected": 2.0},
    {"case": "clouds, radius 0.3", "n_manifolds": 30, "n_points": 6, "n_features": 100, "radius": 0.3, "expected": None},
    {"case": "clouds, radius 1.0", "n_manifolds": 30, "n_points": 6, "n_features": 100, "radius": 1.0, "expected": None},
)
"""The manifolds :func:`capacity_validation` measures: points, whose capacity is 2 (Cover
1965), and clouds, for which only the simulation gives the answer."""


def capacity_validation(cases=CAPACITY_CASES, n_t: int = 1000, n_dichotomies: int = 40, seed: int = 0) -> pd.DataFrame:
    """The mean-field capacity against the known answer and against brute force.

    For each case (a dict of :func:`gaussian_clouds`'s arguments, a ``case`` name and the
    ``expected`` capacity or ``None``) the set's capacity by :func:`manifold_analysis` (not
    defined for manifolds of one point: NaN) and by :func:`simulated_capacity`.

    Returns
    -------
    DataFrame
        One row per case: ``case``, ``P`` (manifolds), ``features`` (their dimension),
        ``points`` (per manifold), ``radius``, ``expected``, ``mean-field``, ``simulated``.
    """
    rows = []
    for case in cases:
        X, labels = gaussian_clouds(case["n_manifolds"], case["n_points"], case["n_features"], case["radius"], seed)
        theory = set_capacity(manifold_analysis(X, labels, n_t=n_t, seed=seed).capacity) if case["n_points"] >= 2 else float("nan")
        rows.append(
            {
                "case": case["case"],
                "P": case["n_manifolds"],
                "features": case["n_features"],
                "points": case["n_points"],
                "radius": case["radius"],
                "expected": case["expected"],
                "mean-field": theory,
                "simulated": simulated_capacity(X, labels, n_dichotomies=n_dichotomies, seed=seed),
            }
        )
    return pd.DataFrame(rows)
