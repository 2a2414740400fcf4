"""Geometry of class representations in a layer: subspace dimensions, spread and overlap.

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

Beside them, the mean-field theoretic manifold analysis of Chung, Lee & Sompolinsky (2018), as
Stephenson et al. (2021) used it (:func:`manifold_analysis`): each class's points are a
*manifold*, and its *capacity* is how many such manifolds per ambient dimension a linear readout
can separate under random labellings of the manifolds; its *radius* and *dimension* are the
spread and the number of directions of the manifold's anchor points, which set the capacity. Point
manifolds (radius 0) have capacity 2, Cover's bound for points; :func:`simulated_capacity`
measures the same quantity by brute force, to check the theory on the data at hand.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
from scipy.linalg import eigh
from scipy.optimize import linprog, nnls
from threadpoolctl import threadpool_limits

from .masc import MASC

__all__ = [
    "CAPACITY_CASES",
    "capacity_validation",
    "class_geometry",
    "gaussian_clouds",
    "manifold_analysis",
    "describe_changes",
    "layer_changes",
    "participation_ratio",
    "principal_angle_matrix",
    "principal_angles",
    "random_principal_angle_matrix",
    "set_capacity",
    "simulated_capacity",
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


def layer_changes(geometry: pd.DataFrame, measure: str, start: float, end: float, by: str = "corruption_degree") -> pd.DataFrame:
    """How a measure of :func:`class_geometry` rows changes from ``by == start`` to ``by == end``,
    per layer, and whether every seed agrees on its direction.

    ``geometry`` holds rows of several runs (:func:`memnotebooks.evaluation.geometry_table`,
    columns ``layer``, ``layer_index``, ``seed``, ``by`` and ``measure``). Per seed and layer
    the measure is averaged over classes; the change is ``end − start`` of that mean, run ``s``
    at ``end`` against run ``s`` at ``start``.

    Returns
    -------
    DataFrame
        Indexed by layer (forward order): ``start`` and ``end`` (means over seeds), ``change``
        (their difference), ``ratio`` (``end / start``), ``n_seeds`` and ``sign``: +1 when the
        measure rises in every seed, −1 when it falls in every seed, 0 otherwise (the seeds
        disagree, or it does not move), so that :func:`memnotebooks.prose.verb` can word it.
    """
    missing = {"layer", "layer_index", "seed", by, measure} - set(geometry.columns)
    if missing:
        raise ValueError(f"geometry lacks the column(s) {sorted(missing)}.")
    means = geometry.groupby([by, "layer_index", "layer", "seed"])[measure].mean()
    levels = set(means.index.get_level_values(by))
    if start not in levels or end not in levels:
        raise ValueError(f"{by} must take the values {start!r} and {end!r}; it takes {sorted(levels)}.")
    first, last = means.xs(start, level=by), means.xs(end, level=by)
    change = (last - first).dropna()
    per_layer = change.groupby(["layer_index", "layer"])
    table = pd.DataFrame(
        {
            "start": first.groupby(["layer_index", "layer"]).mean(),
            "end": last.groupby(["layer_index", "layer"]).mean(),
            "n_seeds": per_layer.size(),
            "sign": per_layer.apply(lambda c: 1 if (c > 0).all() else -1 if (c < 0).all() else 0),
        }
    )
    table.insert(2, "change", table.end - table.start)
    table.insert(3, "ratio", table.end / table.start)
    return table.sort_index().droplevel("layer_index")


def describe_changes(changes: pd.DataFrame, rises: str = "rises", falls: str = "falls", level: str = "shows no change common to every seed",
                     layers=None, digits: int | None = 1, unit: str = "") -> str:
    """:func:`layer_changes` in words: ``"rises in `fc1` (24.1 → 45.8) and `fc2` (27.3 → 92.6);
    falls in `fc4` (22.3° → 4.0°)"``, the layers grouped by their ``sign``.

    ``layers`` keeps only those layers (in the table's order); ``digits=None`` leaves the values
    out; ``unit`` follows each value (``"°"``).
    """
    from .prose import listing, number

    kept = changes if layers is None else changes[changes.index.isin(list(layers))]
    if kept.empty:
        raise ValueError("no layers to describe.")

    def name(layer, row):
        values = f" ({number(row.start, digits)}{unit} → {number(row.end, digits)}{unit})" if digits is not None else ""
        return f"`{layer}`{values}"

    parts = [f"{word} in {listing([name(layer, row) for layer, row in kept[kept.sign == sign].iterrows()])}"
             for sign, word in ((1, rises), (-1, falls), (0, level)) if (kept.sign == sign).any()]
    return "; ".join(parts)


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
    if not isinstance(n_t, Integral) or n_t < 2:
        raise ValueError(f"n_t must be an integer >= 2, got {n_t!r}.")
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
    if not isinstance(n_dichotomies, Integral) or n_dichotomies < 1:
        raise ValueError(f"n_dichotomies must be a positive integer, got {n_dichotomies!r}.")
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
