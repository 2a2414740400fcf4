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
    (:func:`is_well_posed`) and reported as NaN elsewhere;
``velpic``
    :class:`memnotebooks.velpic.VeLPIC` (Ketha & Ramaswamy 2026: the largest ``v_c·x`` for each
    class's signed top uncentred direction ``v_c``, a linear map without bias).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .checks import integer, one_of
from .masc import MASC
from .store import normalize
from .uncertainty import pack_hits
from .velpic import VeLPIC

__all__ = [
    "PROBES",
    "PROBE_NAMES",
    "ProbeEntry",
    "fit_probe",
    "is_well_posed",
    "make_probe",
    "out_of_fold_predictions",
    "probe_accuracies",
    "probe_predictions",
    "probe_recipe",
]

def _always(X, y) -> bool:
    return True


def _more_points_than_features(X, y) -> bool:
    # QDA estimates a full covariance per class.
    return bool(np.unique(np.asarray(y), return_counts=True)[1].min() > np.shape(X)[1])


@dataclass(frozen=True)
class ProbeEntry:
    """What the package knows of one probe: one entry of :data:`PROBES`.

    Attributes
    ----------
    build : callable
        Returns a fresh, unfitted scikit-learn estimator.
    name : str
        The probe in words, for tables, legends and prose.
    probabilistic : bool
        Whether it has ``predict_proba`` (confident learning needs class probabilities).
    well_posed : callable
        ``well_posed(X, y)``: whether it can be fitted on these points (:func:`is_well_posed`).
    """

    build: Callable
    name: str
    probabilistic: bool
    well_posed: Callable = _always


PROBES = {
    "masc": ProbeEntry(lambda: MASC(variance_threshold=0.99), "MASC", False),
    "logistic": ProbeEntry(lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)), "logistic regression", True),
    "knn": ProbeEntry(lambda: KNeighborsClassifier(n_neighbors=5), "5 nearest neighbours", True),
    "nearest_mean": ProbeEntry(lambda: NearestCentroid(), "nearest class mean", True),
    "lda": ProbeEntry(lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), "LDA (shrinkage)", True),
    "qda": ProbeEntry(lambda: QuadraticDiscriminantAnalysis(reg_param=0.5), "QDA (regularized)", True, _more_points_than_features),
    "velpic": ProbeEntry(VeLPIC, "VeLPIC", False),
}
"""The probes by name; adding one is one entry here (every layerwise table, baseline and
relabel method can then use it by name)."""

PROBE_NAMES = {name: entry.name for name, entry in PROBES.items()}
"""Each probe's name in words (from :data:`PROBES`), for tables, legends and prose."""

_EXECUTION_PARAMS = ("device", "batch_size", "n_jobs", "verbose", "copy", "memory")
"""Estimator parameters that say how, not what, a probe computes: not part of its recipe."""


def make_probe(name: str, **params):
    """A fresh, unfitted probe; ``params`` are set on it (e.g. ``variance_threshold`` for MASC)."""
    return PROBES[one_of("probe", name, PROBES)].build().set_params(**params)


def probe_recipe(name: str, **params) -> dict:
    """What determines probe ``name``'s predictions, for a cache key: the plain parameters of the
    estimator (nested ones included, e.g. a pipeline's steps) that differ from their defaults in
    the estimators' signatures, except execution settings such as ``device`` or ``n_jobs``. A new
    estimator parameter with a default therefore keeps existing keys."""
    probe = make_probe(name, **params)
    defaults = _signature_defaults(probe)
    plain = {
        key: value
        for key, value in probe.get_params(deep=True).items()
        if isinstance(value, (str, int, float, bool, type(None)))
        and key.rpartition("__")[2] not in _EXECUTION_PARAMS
        and not (key in defaults and normalize(defaults[key]) == normalize(value))
    }
    return {"probe": name, "params": plain}


def _signature_defaults(estimator) -> dict:
    """Default values of an estimator's parameters, and of its nested estimators' (``step__name``)."""
    nested = {"": estimator, **{f"{key}__": value for key, value in estimator.get_params(deep=True).items() if hasattr(value, "get_params")}}
    defaults = {}
    for prefix, part in nested.items():
        for parameter in inspect.signature(type(part).__init__).parameters.values():
            if parameter.default is not parameter.empty:
                defaults[prefix + parameter.name] = parameter.default
    return defaults


def is_well_posed(name: str, X, y) -> bool:
    """Whether probe ``name`` can be fitted on ``(X, y)``: QDA needs more points than features per class."""
    return PROBES[one_of("probe", name, PROBES)].well_posed(X, y)


def fit_probe(name: str, X, y, **params):
    """Probe ``name`` fitted on ``(X, y)``, or ``None`` where it is not well posed (:func:`is_well_posed`).

    Parameters
    ----------
    name : str
        One of :data:`PROBES`.
    X : ndarray or Tensor of shape (n_samples, n_features)
        MASC and VeLPIC keep a tensor on its device (a GPU's activations are fitted there); the
        other probes get a numpy array.
    y : array-like of shape (n_samples,)
    **params
        Set on the probe (:func:`make_probe`).
    """
    if not is_well_posed(name, X, y):
        return None
    probe = make_probe(name, **params)
    with warnings.catch_warnings():
        # NearestCentroid warns about features constant within a class (dead ReLU units); its
        # Euclidean rule does not use the spread, so nothing is wrong.
        warnings.filterwarnings("ignore", message="self.within_class_std_dev_ has at least 1 zero", category=UserWarning)
        return probe.fit(_input_for(probe, X), np.asarray(y))


_TENSOR_PROBES = (MASC, VeLPIC)
"""The probes that compute in torch and take tensors on their device."""


def _input_for(probe, X):
    """MASC and VeLPIC take tensors on their device (a GPU's activations stay there);
    scikit-learn's probes numpy."""
    return X.cpu().numpy() if isinstance(X, torch.Tensor) and not isinstance(probe, _TENSOR_PROBES) else X


def probe_predictions(probe, X, probabilities: bool = False) -> np.ndarray:
    """A fitted probe's predicted classes (n,) for ``X`` (converted as :func:`fit_probe` converts
    it), or with ``probabilities`` its class probabilities (n, n_classes), for probes that have
    ``predict_proba``."""
    if not probabilities:
        return np.asarray(probe.predict(_input_for(probe, X)))
    if not hasattr(probe, "predict_proba"):
        with_probabilities = [name for name, entry in PROBES.items() if entry.probabilistic]
        raise ValueError(f"{type(probe).__name__} gives no class probabilities; these probes do: {', '.join(with_probabilities)}.")
    return np.asarray(probe.predict_proba(_input_for(probe, X)))


def out_of_fold_predictions(name: str, X, y, folds: int = 5, seed: int = 0, probabilities: bool = False, **params) -> np.ndarray:
    """Each point's prediction by probe ``name`` fitted without it (cross-fitting).

    The points are split into ``folds`` stratified folds (by ``y``, shuffled with ``seed``); for
    each fold the probe is fitted on the other folds and predicts the held-out one, so no point
    votes for its own label.

    Parameters
    ----------
    name : str
        One of :data:`PROBES`.
    X : ndarray or Tensor of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        Labels 0, ..., n_classes - 1; every class needs at least ``folds`` points.
    folds : int >= 2
    seed : int
    probabilities : bool
        Return class probabilities (n_samples, n_classes) instead of classes (n_samples,).
    **params
        Set on the probe (:func:`make_probe`).

    Raises
    ------
    ValueError
        If the probe is not well posed on some fold (:func:`is_well_posed`), or ``folds`` is not
        an integer >= 2.
    """
    folds = integer("folds", folds, low=2)
    y = np.asarray(y)
    n_classes = int(y.max()) + 1
    predictions = np.zeros((len(y), n_classes)) if probabilities else np.zeros(len(y), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    for fit_rows, held_out in splitter.split(np.zeros(len(y)), y):
        fitted = fit_probe(name, X[_rows(X, fit_rows)], y[fit_rows], **params)
        if fitted is None:
            raise ValueError(f"Probe {name!r} is not well posed on {len(fit_rows)} points of {np.shape(X)[1]} features.")
        predicted = probe_predictions(fitted, X[_rows(X, held_out)], probabilities)
        if probabilities:
            predictions[np.ix_(held_out, fitted.classes_)] = predicted
        else:
            predictions[held_out] = predicted
    return predictions


def _rows(X, rows: np.ndarray):
    """Index rows of an array or a tensor (on its device) with a numpy index."""
    return torch.from_numpy(rows).to(X.device) if isinstance(X, torch.Tensor) else rows


def probe_accuracies(probe, evaluations: dict) -> pd.DataFrame:
    """Score a fitted probe on several labelled sets.

    Parameters
    ----------
    probe : fitted estimator or None
        ``None`` (a probe that is not well posed here, see :func:`fit_probe`) scores NaN.
    evaluations : dict of (split, target) to (X, y)
        Each labelled set to score, e.g. ``{("test", "true"): (X_test, y_test)}``; a set with no
        points scores NaN. ``X`` is converted as :func:`fit_probe` converts it.

    Returns
    -------
    DataFrame
        Columns ``split``, ``target``, ``accuracy``, ``n_points`` and ``hits``, each point's
        hit packed as text (:func:`memnotebooks.uncertainty.pack_hits`; empty where not scored),
        for paired comparisons on the same points.
    """
    rows = []
    for (split, target), (X, y) in evaluations.items():
        scored = probe is not None and len(y) > 0
        hits = probe_predictions(probe, X) == np.asarray(y) if scored else None
        accuracy = float(np.mean(hits)) if scored else float("nan")
        rows.append({"split": split, "target": target, "accuracy": accuracy, "n_points": len(y), "hits": pack_hits(hits) if scored else ""})
    return pd.DataFrame(rows)
