"""Classifiers read out of a layer's activations, MASC and the usual alternatives side by side.

Every probe is a scikit-learn estimator built by name, so a layer's activations can be decoded
by MASC and by the classifiers it is compared with in the same way:

``masc``
    :class:`memnotebooks.masc.MASC` (minimum angle to per-class uncentred subspaces);
``logistic``
    multinomial logistic regression on standardized features;
``knn``
    k-nearest neighbours (k = 5, Euclidean);
``nearest_mean``
    nearest class mean (scikit-learn's ``NearestCentroid``);
``lda``
    linear discriminant analysis with Ledoit-Wolf shrinkage (well posed when d > n);
``qda``
    quadratic discriminant analysis, regularized (``reg_param=0.5``); it needs a full-rank
    covariance per class, so it is scored only where every class has more points than features
    (:func:`is_well_posed`) and reported as NaN elsewhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .masc import MASC

__all__ = ["PROBES", "is_well_posed", "make_probe", "probe_accuracies"]

PROBES = {
    "masc": lambda: MASC(variance_threshold=0.99),
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
    "knn": lambda: KNeighborsClassifier(n_neighbors=5),
    "nearest_mean": lambda: NearestCentroid(),
    "lda": lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
    "qda": lambda: QuadraticDiscriminantAnalysis(reg_param=0.5),
}
"""Probe names and the estimators they build."""


def make_probe(name: str, **params):
    """A fresh, unfitted probe; ``params`` are set on it (e.g. ``variance_threshold`` for MASC)."""
    if name not in PROBES:
        raise ValueError(f"Unknown probe {name!r}; choose one of: {', '.join(PROBES)}.")
    return PROBES[name]().set_params(**params)


def is_well_posed(name: str, X, y) -> bool:
    """Whether probe ``name`` can be fitted on ``(X, y)``: QDA needs more points than features per class."""
    if name != "qda":
        return True
    return bool(np.unique(np.asarray(y), return_counts=True)[1].min() > np.shape(X)[1])


def probe_accuracies(probe, X_train, y_train, evaluations: dict) -> pd.DataFrame:
    """Fit ``probe`` on ``(X_train, y_train)`` and score it on several labelled sets.

    Parameters
    ----------
    probe : estimator or None
        Unfitted; fitted in place. ``None`` (a probe that is not well posed here) scores NaN.
    X_train : array-like of shape (n_train, n_features)
    y_train : array-like of shape (n_train,)
    evaluations : dict of (split, target) to (X, y)
        Each labelled set to score, e.g. ``{("test", "true"): (X_test, y_test)}``; a set with no
        points scores NaN.

    Returns
    -------
    DataFrame
        Columns ``split``, ``target``, ``accuracy``, ``n_points``.
    """
    if probe is not None:
        probe.fit(X_train, y_train)
    rows = []
    for (split, target), (X, y) in evaluations.items():
        scored = probe is not None and len(y) > 0
        accuracy = float(np.mean(probe.predict(X) == np.asarray(y))) if scored else float("nan")
        rows.append({"split": split, "target": target, "accuracy": accuracy, "n_points": len(y)})
    return pd.DataFrame(rows)
