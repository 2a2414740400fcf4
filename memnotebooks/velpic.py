"""VeLPIC, the linear probe of Ketha & Ramaswamy (2026): each class read out along its top uncentred direction.

VeLPIC is MASC (:mod:`memnotebooks.masc`) with one component per class, made linear. For class
``c`` with training points ``X_c``, ``v_c`` is the unit top eigenvector of ``X_cᵀX_c`` (MASC's
subspace at ``k = 1``, fitted by MASC's own code); its sign is chosen so that the mean of
``v_c·h`` over *all* training points is not negative, and a point ``x`` goes to
``argmax_c v_c·x``. The classifier is the linear map ``W = [v_1 … v_C]ᵀ`` (no bias, no
hyperparameter), which is what makes it a weight edit: written into a network's last linear
layer, the network predicts what VeLPIC predicts (:mod:`memnotebooks.editing`).

MASC at ``k = 1`` predicts ``argmax_c |v_c·x|`` instead (the smallest angle to the line spanned by
``v_c``); the sign is the only difference: a point far along ``−v_c``, which MASC gives to ``c``,
VeLPIC does not. On activations that are never negative (a ReLU layer, raw pixels) the top
eigenvector of ``X_cᵀX_c`` has no negative entries when the top eigenvalue is simple
(Perron–Frobenius), the sign rule keeps it so, every ``v_c·x`` is then at least 0 and VeLPIC
predicts exactly what MASC at ``k = 1`` predicts. (Measured while writing this: the same
predictions on every test image at every layer of an MLP memorizing digits at degree 0.6, its
input layer included, whose pixels lie in [−1, 1].)
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .devices import resolve_device
from .masc import MASC, validate_input

__all__ = ["VeLPIC"]


class VeLPIC(ClassifierMixin, BaseEstimator):
    """Linear probe on each class's top uncentred direction (VeLPIC).

    For each class ``c``, ``v_c`` is the unit eigenvector of ``X_cᵀX_c`` with the largest
    eigenvalue (PCA of ``X_c`` stacked with ``−X_c``, one component: :class:`~memnotebooks.masc.MASC`
    with ``max_components=1``, whose fit computes it). ``v_c`` is flipped when the mean of
    ``v_c·h`` over all training points ``h`` (every class) is negative. A point is assigned to
    ``argmax_c v_c·x``: a linear classifier with weight matrix ``components_`` and no bias.

    Fitting is MASC's (float64, the smaller Gram); prediction is one matrix product in the input's
    precision (float32 or float64) on the device of the fitted data (numpy arrays and CPU or CUDA
    torch tensors are accepted). Ties go to the lowest class label. A class whose training points
    are all zeros has no direction: its row of ``components_`` is zero (score 0 for every point).

    Parameters
    ----------
    device : str or torch.device, default=None
        Where to fit and predict (``"auto"``, ``"cpu"``, ``"cuda"``, ... as
        :func:`memnotebooks.devices.resolve_device` reads it); ``None`` uses the device of the
        tensor passed to ``fit`` (the CPU for numpy input).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted; any label type.
    components_ : ndarray of shape (n_classes, n_features)
        ``v_c`` per class, unit rows with the sign rule applied: the weight matrix ``W``.
    explained_variance_ratio_ : ndarray of shape (n_classes,)
        Share of each class's uncentred variance along ``v_c``.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    memnotebooks.masc.MASC : the minimum angle classifier; at one component it predicts
        ``argmax_c |v_c·x|``.
    sklearn.neighbors.NearestCentroid : the class mean instead of the top direction.

    Notes
    -----
    scikit-learn's ``check_estimator`` passes except ``check_classifiers_train``, which cannot:
    its three-class data are 2-D blobs standardized to mean zero, so the mean of ``v_c·h`` over
    all training points, which fixes each sign, is zero up to rounding (about 1e-16), and each
    direction points towards its blob or away from it by chance (training accuracy 0.25 where
    0.83 is asked; 0.91 with the signs chosen by each class's own mean). The sign rule is made for
    activations whose mean is not zero, such as a ReLU layer's.

    References
    ----------
    S. Ketha and V. Ramaswamy, "On the Dynamics & Transferability of Latent Generalization during
    Memorization", TMLR, 2026.

    Examples
    --------
    >>> import numpy as np
    >>> from memnotebooks.masc import MASC
    >>> from memnotebooks.velpic import VeLPIC
    >>> X = np.array([[1.0, 0.1], [2.0, -0.1], [0.1, 1.0], [-0.1, 3.0]])
    >>> clf = VeLPIC().fit(X, ["a", "a", "b", "b"])
    >>> clf.components_.round(2)
    array([[ 1.  , -0.02],
           [-0.02,  1.  ]])
    >>> clf.predict([[5.0, 0.5], [0.2, -4.0]]).tolist()
    ['a', 'a']
    >>> MASC(max_components=1).fit(X, ["a", "a", "b", "b"]).predict([[5.0, 0.5], [0.2, -4.0]]).tolist()
    ['a', 'b']
    """

    def __init__(self, device=None):
        self.device = device

    def fit(self, X, y):
        """Fit one signed direction per class.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels, of any type.

        Returns
        -------
        self : VeLPIC
        """
        X, y = validate_input(self, X, y, reset=True)
        check_classification_targets(y)
        lines = MASC(max_components=1, device=self.device).fit(X, y)
        self.classes_ = lines.classes_
        d = X.shape[1]
        # A class with no direction (all its points zero) keeps a zero row.
        directions = np.stack([basis[0] if len(basis) else np.zeros(d) for basis in lines.components_])
        mean = X.to(torch.float64).mean(dim=0).cpu().numpy()
        self.components_ = np.where((directions @ mean < 0)[:, None], -directions, directions)
        self.explained_variance_ratio_ = np.array([ratio[0] if len(ratio) else 0.0 for ratio in lines.explained_variance_ratio_])
        device = resolve_device(self.device) if self.device is not None else X.device
        self._weight = torch.from_numpy(self.components_).to(device)
        return self

    def _scores(self, X) -> torch.Tensor:
        check_is_fitted(self)
        X = validate_input(self, X)
        X = X.to(self._weight.device, torch.float64 if X.dtype == torch.float64 else torch.float32)
        return X @ self._weight.to(X.dtype).T

    def decision_function(self, X) -> np.ndarray:
        """Confidence scores ``v_c·x``: larger is better.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
            Columns follow ``classes_``. For two classes, ``v_1·x − v_0·x``: positive means
            ``classes_[1]``, as scikit-learn's binary convention asks.
        """
        scores = self._scores(X).cpu().numpy().astype(np.float64)
        if len(self.classes_) == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict(self, X) -> np.ndarray:
        """The class of the largest ``v_c·x`` (ties: the lowest class label).

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        # argmax returns the first maximum, i.e. the lowest label among tied classes
        best = self._scores(X).argmax(dim=1).cpu().numpy()
        return self.classes_[best]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
