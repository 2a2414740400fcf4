"""The Minimum Angle Subspace Classifier (MASC) of Ketha & Ramaswamy (2025)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .checks import integer, real
from .devices import resolve_device

__all__ = ["MASC", "check_variance_threshold", "squared_cosines", "validate_input"]

# Points per chunk are chosen so that one chunk's (points x basis rows) block holds about this
# many numbers, which bounds memory on inputs of any size: on the CPU a block that stays in
# cache (8 MiB of float32), so squaring and summing it costs next to nothing after the matmul;
# on a GPU a large one (256 MiB), so that kernel launches are few.
_CHUNK_ELEMENTS_CPU = 1 << 21
_CHUNK_ELEMENTS_CUDA = 1 << 26


def check_variance_threshold(variance_threshold) -> float:
    """``variance_threshold`` as a float, or a ``ValueError`` naming it and the allowed range (0, 1]."""
    return real("variance_threshold", variance_threshold, 0, 1, low_open=True)


def validate_input(estimator, X, y=None, reset: bool = False):
    """``X`` (and ``y``) checked for ``estimator``'s ``fit`` (``reset=True``) or ``predict``.

    Numpy input goes through scikit-learn's ``validate_data`` (float32 or float64, finite,
    ``n_features_in_`` set or checked) and comes back as a tensor that shares its memory; a torch
    tensor is checked in place, on its device, without a copy. The estimators of this package
    that compute in torch (:class:`MASC`, :class:`memnotebooks.velpic.VeLPIC`) share it.

    Parameters
    ----------
    estimator : BaseEstimator
        Its ``n_features_in_`` is set (``reset``) or checked; its class name is in the errors.
    X : array-like or Tensor of shape (n_samples, n_features)
    y : array-like or Tensor of shape (n_samples,), optional
    reset : bool
        ``True`` in ``fit`` (then ``y`` is required).

    Returns
    -------
    Tensor of shape (n_samples, n_features), or (Tensor, ndarray of shape (n_samples,))
        With ``y``: the labels as a numpy array.
    """
    name = type(estimator).__name__
    if y is None and reset:
        raise ValueError(f"{name} requires y to be passed, but the target y is None.")
    if not isinstance(X, torch.Tensor):
        # np.require copies only read-only arrays, which torch cannot wrap
        if y is None:
            X = validate_data(estimator, X, reset=reset, dtype=[np.float64, np.float32])
            return torch.from_numpy(np.require(X, requirements="W"))
        X, y = validate_data(estimator, X, y, reset=reset, dtype=[np.float64, np.float32])
        return torch.from_numpy(np.require(X, requirements="W")), y
    if X.ndim != 2 or not X.is_floating_point():
        raise ValueError(f"Expected a 2-D floating-point tensor, got shape {tuple(X.shape)} and dtype {X.dtype}.")
    if len(X) == 0:
        raise ValueError("Found array with 0 sample(s) (shape=(0, ...)) while a minimum of 1 is required.")
    if not torch.isfinite(X).all():
        raise ValueError("Input X contains NaN or infinity.")
    if reset:
        estimator.n_features_in_ = X.shape[1]
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {name} is expecting {estimator.n_features_in_} features as input.")
    if y is None:
        return X
    y = y.cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"y must be 1-D with one label per row of X ({len(X)}), got shape {y.shape}.")
    return X, y


def _class_subspace(x: torch.Tensor, variance_threshold: float, max_components: int | None = None):
    """Uncentred PCA of one class's points ``x`` (n_c, d), in float64.

    Returns the eigenvalue ratios, the number ``k`` of kept components, and the rows spanning
    either the kept subspace (k, d) or, when ``k > d / 2`` and the d x d Gram was used, its
    orthogonal complement (d - k, d), with a flag saying which.
    """
    n, d = x.shape
    # PCA of [x; -x] is the eigendecomposition of x^T x: use the smaller of the two Grams.
    small = n < d
    eigenvalues, vectors = torch.linalg.eigh(x @ x.T if small else x.T @ x)
    eigenvalues, vectors = eigenvalues.flip(0).clamp_(min=0), vectors.flip(1)
    total = eigenvalues.sum()
    if total <= 0:  # every point is zero: no direction, every angle is 90 degrees
        return eigenvalues[:0], 0, x.new_zeros(0, d), False
    ratio = eigenvalues / total
    rank = int((eigenvalues > eigenvalues[0] * max(n, d) * torch.finfo(x.dtype).eps).sum())
    k = min(int((ratio.cumsum(0) <= variance_threshold).sum()) + 1, rank, max_components or d)
    if small:  # right singular vectors from the left ones: v_j = x^T u_j / sqrt(lambda_j)
        return ratio[:k], k, (x.T @ vectors[:, :k] / eigenvalues[:k].sqrt()).T, False
    if k > d / 2:
        return ratio[:k], k, vectors[:, k:].T, True
    return ratio[:k], k, vectors[:, :k].T, False


class MASC(ClassifierMixin, BaseEstimator):
    """Minimum Angle Subspace Classifier.

    Each class is represented by the linear subspace that holds ``variance_threshold`` of its
    training points' uncentred variance; a point is assigned to the class whose subspace makes
    the smallest angle with it. For class ``c`` with points ``X_c`` (n_c, d), the subspace is
    spanned by the leading eigenvectors of ``X_c^T X_c`` (PCA of ``X_c`` stacked with ``-X_c``),
    keeping the fewest ``k_c`` whose cumulative explained variance exceeds the threshold; the
    angle of ``x`` to it is ``arccos(||B_c x|| / ||x||)`` for the orthonormal basis ``B_c``.

    Fitting uses the d x d Gram when ``n_c >= d`` and the n_c x n_c one otherwise, in float64;
    when ``k_c > d / 2`` the classifier keeps the orthogonal complement instead of the basis, so
    predicting costs ``min(k_c, d - k_c)`` dot products per point and class. Prediction is
    batched over points and classes, in the input's precision (float32 or float64), in chunks of
    bounded memory, on the device of the fitted data (numpy arrays and CPU or CUDA torch tensors
    are accepted).

    A point that is all zeros makes an angle of 90 degrees with every class; it is assigned to
    the first class of ``classes_`` (ties go to the lowest class label) and counted in a warning.

    Parameters
    ----------
    variance_threshold : float in (0, 1], default=0.99
        Share of each class's uncentred variance its subspace must hold; ``k_c`` is the number
        of components whose cumulative ratio is at most this, plus one (never more than the
        rank).
    max_components : int, default=None
        Upper bound on ``k_c`` (``1``: each class is its leading direction); ``None``: no bound.
    batch_size : int, default=None
        Points per chunk when computing angles; ``None`` chooses it from a budget of 8 MiB of
        float32 per chunk on the CPU (cache-sized) and 256 MiB on a GPU.
    device : str or torch.device, default=None
        Where to fit and predict (``"auto"``, ``"cpu"``, ``"cuda"``, ... as
        :func:`memnotebooks.devices.resolve_device` reads it); ``None`` uses the device of the
        tensor passed to ``fit`` (the CPU for numpy input).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted; any label type.
    n_components_ : ndarray of shape (n_classes,)
        Subspace dimension ``k_c`` of each class.
    components_ : list of ndarray of shape (k_c, n_features)
        Orthonormal basis of each class subspace, rows in order of decreasing variance (for a
        class kept as its orthogonal complement, ``k_c > d / 2``, an orthonormal basis of the
        same subspace in no particular order).
    explained_variance_ratio_ : list of ndarray of shape (k_c,)
        Share of the class's uncentred variance along each kept component.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    sklearn.neighbors.NearestCentroid : nearest class mean, the Euclidean relative.

    Notes
    -----
    scikit-learn's ``check_estimator`` passes except ``check_classifiers_train``, which cannot:
    its data are centred 2-D blobs, for which every class subspace is the whole plane and every
    angle is 0, so the training accuracy it demands is out of reach by construction.

    References
    ----------
    S. Ketha and V. Ramaswamy, "Decoding Generalization from Memorization in Deep Neural
    Networks", arXiv:2501.14687, 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from memnotebooks.masc import MASC
    >>> X = np.array([[1.0, 0.1], [2.0, -0.1], [0.1, 1.0], [-0.1, 3.0]])
    >>> clf = MASC().fit(X, ["a", "a", "b", "b"])
    >>> clf.predict([[5.0, 0.5], [0.2, -4.0]]).tolist()
    ['a', 'b']
    >>> clf.angles([[1.0, 0.5]]).round(1)
    array([[27.7, 64.6]])
    """

    def __init__(self, variance_threshold: float = 0.99, max_components: int | None = None, batch_size: int | None = None, device=None):
        self.variance_threshold = variance_threshold
        self.max_components = max_components
        self.batch_size = batch_size
        self.device = device

    def _check_params(self):
        check_variance_threshold(self.variance_threshold)
        for name in ("max_components", "batch_size"):
            value = getattr(self, name)
            if value is not None:
                integer(f"{name} (None or an integer)", value, low=1)

    def _validate_X(self, X, y=None, reset=False):
        return validate_input(self, X, y, reset=reset)

    def fit(self, X, y):
        """Fit one subspace per class.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels, of any type.

        Returns
        -------
        self : MASC
        """
        self._check_params()
        X, y = self._validate_X(X, y, reset=True)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        device = resolve_device(self.device) if self.device is not None else X.device
        # One gather puts each class's points together, in float64: the classes are then slices.
        order = np.argsort(encoded, kind="stable")
        class_points = X[torch.from_numpy(order).to(X.device)].to(device, torch.float64)
        class_points = class_points.split(np.bincount(encoded, minlength=len(self.classes_)).tolist())
        ratios, ks, rows, complements = [], [], [], []
        for points in class_points:
            ratio, k, span, complement = _class_subspace(points, float(self.variance_threshold), self.max_components)
            ratios.append(ratio)
            ks.append(k)
            rows.append(span)
            complements.append(complement)
        self.n_components_ = np.array(ks)
        self.explained_variance_ratio_ = [r.cpu().numpy() for r in ratios]
        self._rows = torch.cat(rows)  # (sum of spans, d), float64
        self._row_class = torch.cat(
            [torch.full((len(r),), c, dtype=torch.long, device=device) for c, r in enumerate(rows)]
        )
        self._complement = torch.tensor(complements, device=device)
        return self

    @property
    def components_(self) -> list[np.ndarray]:
        """Orthonormal basis of each class subspace (k_c, n_features), computed on demand."""
        check_is_fitted(self)
        return [self._basis(c).cpu().numpy() for c in range(len(self.classes_))]

    def _basis(self, c: int) -> torch.Tensor:
        span = self._rows[self._row_class == c]
        if not self._complement[c]:
            return span
        # The kept components are the complement of the stored rows: rebuild them by an eigh of
        # I - S^T S, whose eigenvalue-1 eigenvectors span the subspace (rare, for inspection only).
        d = span.shape[1]
        _, vectors = torch.linalg.eigh(torch.eye(d, dtype=span.dtype, device=span.device) - span.T @ span)
        return vectors[:, d - int(self.n_components_[c]) :].flip(1).T

    def _cos_sin_squared(self, X: torch.Tensor, rows: torch.Tensor, membership: torch.Tensor):
        """Squared norms of each point's part inside and outside every class subspace, (n, C) each.

        ``rows`` are the stored spans (r, d) and ``membership`` (r, C) the one-hot class of each
        row, both in the dtype of ``X``: summing squared projections per class is one more matmul.
        """
        norm2 = X.square().sum(1, keepdim=True)
        spanned = (X @ rows.T).square_() @ membership
        # Complement classes store the outside part directly: more precise for small angles.
        inside = torch.where(self._complement, (norm2 - spanned).clamp_(min=0), spanned)
        outside = torch.where(self._complement, spanned, (norm2 - spanned).clamp_(min=0))
        return inside, outside

    def _angles(self, X) -> torch.Tensor:
        check_is_fitted(self)
        X = self._validate_X(X)
        # Angles are computed in the input's precision: float32 activations take the fast path.
        X = X.to(self._rows.device, torch.float64 if X.dtype == torch.float64 else torch.float32)
        rows = self._rows.to(X.dtype)
        membership = torch.nn.functional.one_hot(self._row_class, len(self.classes_)).to(X.dtype)
        budget = _CHUNK_ELEMENTS_CUDA if X.is_cuda else _CHUNK_ELEMENTS_CPU
        size = self.batch_size or max(1, budget // max(len(rows), len(self.classes_)))
        chunks = []
        for start in range(0, len(X), size):
            inside, outside = self._cos_sin_squared(X[start : start + size], rows, membership)
            chunks.append(torch.rad2deg(torch.atan2(outside.sqrt(), inside.sqrt())))
        angles = torch.cat(chunks)
        zero = (X == 0).all(dim=1)
        if zero.any():
            angles[zero] = 90.0
            warnings.warn(
                f"{int(zero.sum())} of {len(X)} points are all zeros: their angle to every class is 90 degrees "
                f"and they are assigned to the first class, {self.classes_[0]!r}.",
                UserWarning,
                stacklevel=3,
            )
        return angles

    def angles(self, X) -> np.ndarray:
        """Angle in degrees, in [0, 90], between each point and each class subspace.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        return self._angles(X).cpu().numpy().astype(np.float64)

    def decision_function(self, X) -> np.ndarray:
        """Confidence scores: minus the angles, so that larger is better.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
            For two classes, ``angle to classes_[0] - angle to classes_[1]``: positive means
            ``classes_[1]``, as scikit-learn's binary convention asks.
        """
        angles = self.angles(X)
        if len(self.classes_) == 2:
            return angles[:, 0] - angles[:, 1]
        return -angles

    def predict(self, X) -> np.ndarray:
        """The class of the subspace at the smallest angle (ties: the lowest class label).

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        # argmin returns the first minimum, i.e. the lowest label among tied classes
        nearest = self._angles(X).argmin(dim=1).cpu().numpy()
        return self.classes_[nearest]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def squared_cosines(clf: MASC, X) -> np.ndarray:
    """MASC as a quadratic rule: each point's ``xᵀP_c x / xᵀx`` for every class of a fitted MASC.

    With ``B_c`` the orthonormal basis of class ``c`` (``clf.components_[c]``) and
    ``P_c = B_cᵀB_c`` the projector onto its subspace, ``xᵀP_c x = ‖B_c x‖²``, so the quotient is
    ``cos² θ_c(x)`` for the angle MASC measures: ``argmin_c θ_c(x) = argmax_c xᵀP_c x / xᵀx``
    (Ketha & Ramaswamy 2026). MASC is therefore a quadratic classifier, as VeLPIC
    (:class:`memnotebooks.velpic.VeLPIC`) is a linear one. Computed here from the bases, in
    float64, independently of :meth:`MASC.angles`.

    Parameters
    ----------
    clf : MASC
        Fitted.
    X : array-like or Tensor of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_samples, n_classes)
        In [0, 1], columns following ``clf.classes_``; 0 for a point that is all zeros (its angle
        to every class is 90 degrees).

    Examples
    --------
    >>> import numpy as np
    >>> clf = MASC().fit(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]]), [0, 0, 1, 1])
    >>> squared_cosines(clf, [[1.0, 1.0], [3.0, 0.0]])
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    check_is_fitted(clf)
    X = validate_input(clf, X).cpu().numpy().astype(np.float64)
    norm2 = np.square(X).sum(axis=1, keepdims=True)
    inside = np.column_stack([np.square(X @ basis.T).sum(axis=1) for basis in clf.components_])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm2 > 0, np.clip(inside / norm2, 0, 1), 0.0)
