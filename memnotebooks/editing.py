"""Weight editing of a run: a linear readout of the last hidden layer written into the network's last layer, scored as it is and trained on.

Ketha & Ramaswamy (2026) replace the rows of a memorizing network's last linear layer by VeLPIC's
class directions (:class:`memnotebooks.velpic.VeLPIC`), fitted on the outputs of the layer that
feeds it (the last of the model's probe layers: the CNN's ``fc3``, the MLP's ``fc4``) with the
corrupted training labels. Because the last layer is linear, the edited network predicts exactly
what the readout predicts on that layer: the latent generalization VeLPIC decodes becomes the
network's own. This module does the same with any readout that is a linear map (:data:`READOUTS`):

``velpic``
    the paper's: ``W = [v_1 … v_C]ᵀ``, no bias (a bias the layer has is set to zero, as the
    published code does for the MLP);
``nearest_mean``
    the nearest class mean as a linear rule: ``w_c = μ_c``, ``b_c = −‖μ_c‖²/2``;
``logistic``
    last-layer retraining: logistic regression on the activations with the corrupted training
    labels (the ``logistic`` probe, standardized features, mapped back through the
    standardization);
``dfr``
    beyond the paper, deep feature reweighting (Kirichenko et al. 2023): the same logistic
    regression fitted on the *true* labels of the test set's validation 20 % (a small clean set),
    so it is scored on the holdout 80 % only.

:func:`edited_model` writes a readout into a run's model (or a checkpoint) and returns a new
module; :func:`editing_table` scores the edited networks at each epoch beside the unedited one, on
the test set's validation and holdout parts (:func:`memnotebooks.data.validation_split`) with
each image's hit; :func:`edit_during_training` edits checkpoints and trains on, as the paper does
at epochs 1, 10 and 40, beside the same checkpoint trained on without an edit, to see how fast the
corrupted labels are memorized again (:func:`rememorization` sums it up). Both tables are cached in the run's folder, keyed by their
recipe (:func:`memnotebooks.store.cached_table`).

A bias-free last layer (the CNN's) that gets a readout with a bias (``nearest_mean``,
``logistic``, ``dfr``) gains one in the edited copy (:func:`memnotebooks.models.edit_last_layer`).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from .activations import extract_activations
from .checks import integer
from .data import VALIDATION_FRACTION, VALIDATION_SEED, validation_split
from .models import edit_last_layer, evaluation_mode, last_linear_layer
from .probes import PROBES, fit_probe, probe_recipe
from .runs import Run, config_columns, test_parts
from .store import cached_table
from .tables import paired_differences
from .training import predict, train
from .uncertainty import pack_hits

__all__ = [
    "EDIT_SPLITS",
    "LinearReadout",
    "READOUTS",
    "READOUT_NAMES",
    "ReadoutEntry",
    "UNEDITED",
    "check_readout",
    "edit_agreement",
    "edit_differences",
    "edit_during_training",
    "edit_training_grid",
    "edited_model",
    "editing_grid",
    "editing_table",
    "fit_readout",
    "last_hidden_layer",
    "rememorization",
    "run_readout",
    "scored_at",
]


def _velpic_map(estimator) -> tuple[np.ndarray, np.ndarray | None]:
    return np.asarray(estimator.components_, dtype=np.float64), None


def _nearest_mean_map(estimator) -> tuple[np.ndarray, np.ndarray | None]:
    # argmin_c ||x - mu_c||^2 = argmax_c (mu_c . x - ||mu_c||^2 / 2)
    means = np.asarray(estimator.centroids_, dtype=np.float64)
    return means, -0.5 * np.square(means).sum(axis=1)


def _logistic_map(estimator) -> tuple[np.ndarray, np.ndarray | None]:
    # The probe is StandardScaler then LogisticRegression: A (x - m) / s + a = (A / s) x + (a - (A / s) m).
    scaler, logistic = estimator[0], estimator[-1]
    weight = np.asarray(logistic.coef_, dtype=np.float64) / scaler.scale_
    bias = np.asarray(logistic.intercept_, dtype=np.float64) - weight @ scaler.mean_
    if len(logistic.classes_) == 2:  # one row scores classes_[1]: class 0 gets the zero row
        weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    return weight, bias


@dataclass(frozen=True)
class ReadoutEntry:
    """What the package knows of one linear readout: one entry of :data:`READOUTS`.

    Attributes
    ----------
    probe : str
        The probe of :data:`memnotebooks.probes.PROBES` that is fitted.
    name : str
        The readout in words, for tables, legends and prose.
    fitted_on : {"train", "validation"}
        ``"train"``: the training activations with the corrupted labels the network was trained
        on; ``"validation"``: the test set's validation 20 % with its true labels (then the
        readout is scored on the holdout 80 % only).
    linear_map : callable
        ``linear_map(fitted probe)`` to ``(weight, bias)``: ``weight`` (n_classes, n_features),
        ``bias`` (n_classes,) or ``None``, with ``argmax_c (weight @ x + bias)_c`` the probe's
        prediction.
    """

    probe: str
    name: str
    fitted_on: str
    linear_map: Callable


READOUTS = {
    "velpic": ReadoutEntry("velpic", "VeLPIC", "train", _velpic_map),
    "nearest_mean": ReadoutEntry("nearest_mean", "nearest class mean", "train", _nearest_mean_map),
    "logistic": ReadoutEntry("logistic", "logistic regression", "train", _logistic_map),
    "dfr": ReadoutEntry("logistic", "DFR (clean validation labels)", "validation", _logistic_map),
}
"""The linear readouts by name; adding one is one entry here."""

UNEDITED = "unedited"
"""The ``readout`` of the rows that score the network as it is, without an edit."""

READOUT_NAMES = {**{name: entry.name for name, entry in READOUTS.items()}, UNEDITED: "the network, unedited"}
"""Each readout's name in words (and the unedited network's), for tables, legends and prose."""

EDIT_SPLITS = ("test_validation", "test_holdout")
"""The parts of the test set the edited networks are scored on (:func:`memnotebooks.data.validation_split`)."""

_PROTOCOL = {"validation_fraction": VALIDATION_FRACTION, "validation_seed": VALIDATION_SEED, "splits": list(EDIT_SPLITS)}
"""The evaluation protocol, part of every editing table's cache key."""


def check_readout(name: str) -> str:
    """``name`` if it is one of :data:`READOUTS`, else a ValueError naming the linear readouts
    (and saying so when ``name`` is a probe that is not linear, such as ``"masc"``)."""
    if isinstance(name, str) and name in READOUTS:
        return name
    allowed = ", ".join(READOUTS)
    if isinstance(name, str) and name in PROBES:
        raise ValueError(f"Probe {name!r} is not a linear readout: it cannot be written into a linear layer. The linear readouts are: {allowed}.")
    raise ValueError(f"Unknown readout {name!r}; choose one of: {allowed}.")


def _check_readouts(readouts) -> list[str]:
    readouts = [readouts] if isinstance(readouts, str) else list(readouts)
    if not readouts:
        raise ValueError(f"No readouts given; choose from: {', '.join(READOUTS)}.")
    return [check_readout(name) for name in readouts]


@dataclass
class LinearReadout:
    """A fitted linear readout: the weights to write into a last layer, and the probe they come from.

    Attributes
    ----------
    readout : str
        Its name in :data:`READOUTS`.
    weight : ndarray of shape (n_classes, n_features), float64
    bias : ndarray of shape (n_classes,), float64, or None
    estimator : fitted scikit-learn estimator
        The probe (:data:`memnotebooks.probes.PROBES`) whose predictions the linear map gives.
    """

    readout: str
    weight: np.ndarray
    bias: np.ndarray | None
    estimator: object

    def decision_function(self, X) -> np.ndarray:
        """``X @ weight.T + bias`` (n_samples, n_classes), in float64; ``X`` (n_samples, n_features)."""
        X = X.cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        scores = X.astype(np.float64) @ self.weight.T
        return scores if self.bias is None else scores + self.bias

    def predict(self, X) -> np.ndarray:
        """The class of the largest score (n_samples,), ties to the lowest: what the edited
        network computes, in float64."""
        return self.decision_function(X).argmax(axis=1)


def fit_readout(readout: str, X, y, n_classes: int | None = None) -> LinearReadout:
    """Fit readout ``readout`` on activations ``X`` with labels ``y`` and read off its linear map.

    Parameters
    ----------
    readout : str
        One of :data:`READOUTS`.
    X : ndarray or Tensor of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        Class labels 0, ..., n_classes - 1.
    n_classes : int, optional
        The number of classes the layer scores (its ``out_features``); default ``max(y) + 1``.

    Returns
    -------
    LinearReadout

    Raises
    ------
    ValueError
        For a readout that is not linear or unknown, or labels that leave a class without points
        (its row of the linear map would be undefined).
    """
    entry = READOUTS[check_readout(readout)]
    y = np.asarray(y)
    n_classes = int(y.max()) + 1 if n_classes is None else integer("n_classes", n_classes, low=2)
    missing = sorted(set(range(n_classes)) - set(y.tolist()))
    if missing:
        raise ValueError(f"Readout {readout!r} cannot be fitted: no {entry.fitted_on} point is labelled {missing} of the {n_classes} classes.")
    with warnings.catch_warnings():
        # lbfgs may stop at the probe's max_iter on wide layers: the map it reached is the readout
        # that is written and scored (a weaker readout, not a wrong edit), so the page is not flooded.
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = fit_probe(entry.probe, X, y)
    if not np.array_equal(estimator.classes_, np.arange(n_classes)):
        raise ValueError(f"Readout {readout!r} needs labels 0, ..., {n_classes - 1}; got classes {estimator.classes_.tolist()}.")
    weight, bias = entry.linear_map(estimator)
    return LinearReadout(readout, weight, bias, estimator)


def last_hidden_layer(model: nn.Module) -> str:
    """The probe layer that feeds the model's last linear layer: the last of its ``probe_layers``
    (the CNN's ``fc3``, the MLP's ``fc4``, ResNet-18's ``avgpool``).

    Raises
    ------
    ValueError
        When the last layer is not linear (:func:`memnotebooks.models.last_linear_layer`).
    """
    last_linear_layer(model)
    return list(model.probe_layers)[-1]


def _final_epoch(run_: Run) -> int:
    return int(run_.summary["epochs"])


def _epochs(run_: Run, epochs) -> list[int]:
    """The epochs to edit at: ``None`` is every checkpoint the run reached and its final epoch;
    each given epoch must be one of those (an error names them)."""
    final = _final_epoch(run_)
    kept = sorted({*(e for e in run_.config.checkpoint_epochs if e <= final), final})
    if epochs is None:
        return kept
    epochs = [epochs] if isinstance(epochs, (int, np.integer)) else list(epochs)
    epochs = [integer("epoch", e, low=0) for e in epochs]
    missing = [e for e in epochs if e not in kept]
    if missing:
        raise ValueError(
            f"Epoch(s) {missing} of {run_.path.name} were never checkpointed: it kept epochs "
            f"{[e for e in kept if e != final]} (RunConfig.checkpoint_epochs) and its final model (epoch {final})."
        )
    return list(dict.fromkeys(epochs))


def _model_at(run_: Run, epoch: int) -> nn.Module:
    """The run's network at ``epoch`` (checked by :func:`_epochs`): its checkpoint, or the final model."""
    if epoch in run_.config.checkpoint_epochs:
        return run_.checkpoint(epoch)
    return run_.model


def _readout_data(run_: Run, model: nn.Module, fitted_on: str):
    """The last hidden layer's activations (n, d) and the labels (n,) a readout is fitted on
    (``fitted_on``: see :attr:`ReadoutEntry.fitted_on`), checked to be what the last linear layer
    takes: as many features as its inputs, and its output the network's logits."""
    layer = last_hidden_layer(model)
    name, linear = last_linear_layer(model)
    device = next(model.parameters()).device
    dataset = run_.dataset
    if fitted_on == "train":
        x, y = dataset.x_train, run_.fit_labels("corrupted")
    else:
        validation = validation_split(dataset.y_test.numpy())
        x, y = dataset.x_test[torch.from_numpy(validation)], dataset.y_test.numpy()[validation]
    activations = extract_activations(model, x, [layer], output_device=device)[layer]
    where = f"The last hidden layer {layer!r} of {type(model).__name__}"
    if activations.shape[1] != linear.in_features:
        raise ValueError(f"{where} has {activations.shape[1]} features but its last linear layer {name!r} takes {linear.in_features}: a readout of it cannot be written there.")
    with torch.no_grad(), evaluation_mode(model):
        fed = torch.allclose(linear(activations[:8]), model(x[:8].to(device)), rtol=1e-4, atol=1e-5)
    if not fed:
        raise ValueError(f"{where} does not feed its last linear layer {name!r} directly (the layer applied to it is not the network's output): a readout of it cannot be written there.")
    return activations, y


def _fit_at(run_: Run, model: nn.Module, readout: str, data: dict | None = None) -> LinearReadout:
    """Readout ``readout`` fitted on ``model``'s last hidden layer, on the data its entry names;
    ``data`` keeps the activations for the next readout fitted on the same model."""
    data = {} if data is None else data
    fitted_on = READOUTS[readout].fitted_on
    if fitted_on not in data:
        data[fitted_on] = _readout_data(run_, model, fitted_on)
    activations, y = data[fitted_on]
    return fit_readout(readout, activations, y, n_classes=last_linear_layer(model)[1].out_features)


def _edited(model: nn.Module, fitted: LinearReadout) -> nn.Module:
    return edit_last_layer(model, fitted.weight, fitted.bias)


def run_readout(run_: Run, readout: str, epoch: int | None = None) -> LinearReadout:
    """Readout ``readout`` fitted on the run's last hidden layer (:func:`last_hidden_layer`) at
    ``epoch`` (a checkpointed epoch or the final one; default the final model), on the data its
    entry names (:attr:`ReadoutEntry.fitted_on`): the readout :func:`edited_model` writes.

    Raises
    ------
    ValueError
        For a readout that is not linear or unknown, an epoch never checkpointed, or a model
        whose last layer is not linear or not fed by its last probe layer.
    """
    check_readout(readout)
    epoch = _final_epoch(run_) if epoch is None else _epochs(run_, [epoch])[0]
    return _fit_at(run_, _model_at(run_, epoch), readout)


def edited_model(run_: Run, readout: str, epoch: int | None = None) -> nn.Module:
    """The run's network at ``epoch`` with readout ``readout`` written into its last linear layer.

    The readout is fitted on the network's own last hidden layer at that epoch
    (:func:`run_readout`); the returned network then predicts, on every input, what the readout
    predicts on that layer's outputs. The run is never changed: the module is a new one
    (:func:`memnotebooks.models.edit_last_layer`), in evaluation mode, on the run's device.

    Parameters
    ----------
    run_ : Run
    readout : str
        One of :data:`READOUTS`.
    epoch : int, optional
        One of the run's checkpointed epochs (:attr:`memnotebooks.runs.RunConfig.checkpoint_epochs`)
        or its final epoch; default the final model.

    Returns
    -------
    nn.Module

    Raises
    ------
    ValueError
        For a readout that is not linear or unknown, an epoch never checkpointed (the error lists
        the checkpointed ones), or a model whose last layer is not linear.
    """
    check_readout(readout)
    epoch = _final_epoch(run_) if epoch is None else _epochs(run_, [epoch])[0]
    model = _model_at(run_, epoch)
    return _edited(model, _fit_at(run_, model, readout)).eval()


def edit_agreement(run_: Run, readouts=tuple(READOUTS), epoch: int | None = None) -> pd.DataFrame:
    """Whether each edited network predicts what its readout predicts, on every test image.

    For each readout, the network at ``epoch`` (default the final one) is edited
    (:func:`edited_model`) and run on the test images, and the readout is applied in float64 to
    the same network's last hidden layer on those images.

    Returns
    -------
    DataFrame
        One row per readout: ``readout``, ``epoch``, ``n_points``, ``same`` (share of the test
        images where the edited network's class is the readout's), ``largest_gap`` (largest
        absolute difference between the edited network's logits and the readout's scores, the
        network computing in float32) and the configuration columns.
    """
    readouts = _check_readouts(readouts)
    epoch = _final_epoch(run_) if epoch is None else _epochs(run_, [epoch])[0]
    model = _model_at(run_, epoch)
    x_test = run_.dataset.x_test
    hidden = extract_activations(model, x_test, [last_hidden_layer(model)])[last_hidden_layer(model)]
    data, rows = {}, []
    for readout in readouts:
        fitted = _fit_at(run_, model, readout, data)
        edited = _edited(model, fitted)
        with torch.no_grad(), evaluation_mode(edited):
            logits = edited(x_test.to(next(edited.parameters()).device)).double().cpu().numpy()
        rows.append({
            "readout": readout,
            "epoch": int(epoch),
            "n_points": len(x_test),
            "same": float((predict(edited, x_test).cpu().numpy() == fitted.predict(hidden)).mean()),
            "largest_gap": float(np.abs(logits - fitted.decision_function(hidden)).max()),
        })
    return pd.DataFrame(rows).assign(**config_columns(run_))


def _readout_recipe(run_: Run, readout: str) -> dict:
    if readout == UNEDITED:
        return {"readout": UNEDITED}
    entry = READOUTS[readout]
    return {"readout": readout, "probe": probe_recipe(entry.probe), "fitted_on": entry.fitted_on, "layer": list(run_.model.probe_layers)[-1]}


def _scores(run_: Run, network: nn.Module, readout: str) -> pd.DataFrame:
    """The network's accuracy and hits on :data:`EDIT_SPLITS`; a readout fitted on the validation
    part is not scored there (NaN)."""
    y_test = run_.dataset.y_test.numpy()
    validation = validation_split(y_test)
    hits = predict(network, run_.dataset.x_test).cpu().numpy() == y_test
    rows = []
    for split, rows_mask in (("test_validation", validation), ("test_holdout", ~validation)):
        in_sample = split == "test_validation" and readout != UNEDITED and READOUTS[readout].fitted_on == "validation"
        part = hits[rows_mask]
        rows.append({
            "split": split,
            "accuracy": float("nan") if in_sample else float(part.mean()),
            "n_points": int(rows_mask.sum()),
            "hits": "" if in_sample else pack_hits(part),
        })
    return pd.DataFrame(rows)


def editing_table(run_: Run, readouts=tuple(READOUTS), epochs=None) -> pd.DataFrame:
    """The run's network edited with each readout at each epoch, scored beside the unedited one.

    Per epoch, each readout is fitted on that epoch's last hidden layer (:func:`edited_model`) and
    the edited network is scored, with no further training, on the validation 20 % and the
    holdout 80 % of the test set against the true labels; the unedited network at that epoch is
    scored on the same images (rows with ``readout`` :data:`UNEDITED`). ``dfr`` is fitted on the
    validation part, so it is scored on the holdout part only (NaN on the validation part).
    Each (readout, epoch) table is cached in the run's folder under its recipe.

    Parameters
    ----------
    run_ : Run
    readouts : list of str
        From :data:`READOUTS`; default all.
    epochs : list of int, optional
        Checkpointed epochs or the final epoch; default every checkpoint the run reached and its
        final model.

    Returns
    -------
    DataFrame
        The configuration columns (:func:`memnotebooks.runs.config_columns`), ``epoch``,
        ``readout`` (a name of :data:`READOUTS` or :data:`UNEDITED`), ``layer`` (the layer the
        readout is fitted on, empty for the unedited network), ``split`` (one of
        :data:`EDIT_SPLITS`), ``accuracy`` (in [0, 1]), ``n_points`` and ``hits`` (each image's
        hit, packed: :func:`memnotebooks.uncertainty.pack_hits`, empty where not scored). Rows
        of one epoch and split are scored on the same images, ready for
        :func:`memnotebooks.tables.paired_differences` with ``column="readout"``.

    Raises
    ------
    ValueError
        For a readout that is not linear or unknown, an epoch never checkpointed, or a model
        whose last layer is not linear.
    """
    readouts = _check_readouts(readouts)
    epochs = _epochs(run_, epochs)
    layer = last_hidden_layer(run_.model)
    frames = []
    for epoch in epochs:
        # The network at this epoch and its activations, loaded once for every readout not cached.
        loaded = {"model": None, "data": {}}

        def compute(readout, epoch=epoch, loaded=loaded):
            if loaded["model"] is None:
                loaded["model"] = _model_at(run_, epoch)
            model = loaded["model"]
            if readout == UNEDITED:
                return _scores(run_, model, readout)
            return _scores(run_, _edited(model, _fit_at(run_, model, readout, loaded["data"])), readout)

        for readout in (UNEDITED, *readouts):
            recipe = {**_readout_recipe(run_, readout), "epoch": int(epoch), "protocol": _PROTOCOL}
            table = cached_table(run_.path, "editing", recipe, lambda readout=readout: compute(readout))
            table["hits"] = table.hits.fillna("")  # an empty cell (not scored) reads back as NaN
            frames.append(table.assign(epoch=int(epoch), readout=readout, layer="" if readout == UNEDITED else layer))
    table = pd.concat(frames, ignore_index=True)
    columns = ["epoch", "readout", "layer", "split", "accuracy", "n_points", "hits"]
    identity = config_columns(run_)
    return table[columns].assign(**identity)[list(identity) + columns]


def editing_grid(runs, readouts=tuple(READOUTS), epochs=None) -> pd.DataFrame:
    """:func:`editing_table` of several runs, stacked (each at its own checkpoints by default)."""
    return pd.concat([editing_table(r, readouts, epochs) for r in runs], ignore_index=True)


def scored_at(table: pd.DataFrame, epoch: str = "last", split: str = "test_holdout") -> pd.DataFrame:
    """The rows of :func:`editing_table` (or :func:`editing_grid`) output scored on ``split`` at
    each run's ``"last"`` epoch (its final network) or ``"first"`` one."""
    if epoch not in ("last", "first"):
        raise ValueError(f"epoch must be 'last' or 'first'; got {epoch!r}.")
    if split not in EDIT_SPLITS:
        raise ValueError(f"split must be one of {', '.join(EDIT_SPLITS)}; got {split!r}.")
    part = table[table.split == split]
    per_run = part.groupby([c for c in part.columns if c not in ("epoch", "readout", "layer", "split", "accuracy", "n_points", "hits")], dropna=False).epoch
    return part[part.epoch == per_run.transform("max" if epoch == "last" else "min")]


def edit_differences(table: pd.DataFrame, epoch: str = "last") -> pd.DataFrame:
    """Each edited network minus the unedited one at the same epoch (:func:`scored_at`: each
    run's ``"last"`` or ``"first"``), on the holdout part, per degree, with its paired interval
    over holdout images and seeds (:func:`memnotebooks.tables.paired_differences`, column
    ``readout``). ``table`` is :func:`editing_table` or :func:`editing_grid` output."""
    at = scored_at(table, epoch)
    others = [r for r in dict.fromkeys(at.readout) if r != UNEDITED]
    return paired_differences(at, UNEDITED, others, column="readout")


_CONTINUATION = {"labels": "corrupted", "optimizer": "fresh", "settings": "RunConfig.training_settings", "evaluation": "test parts"}
"""How an edited checkpoint is trained on, part of every continuation's cache key."""

_HISTORY_COLUMNS = [
    "epoch", "run_epoch", "loss", "train_accuracy", "clean_accuracy", "corrupted_accuracy_given", "corrupted_accuracy_true",
    "test_accuracy", "test_validation_accuracy", "test_holdout_accuracy",
]


def edit_during_training(run_: Run, readout: str, edit_epochs, epochs: int | None = None, *, progress: bool = False) -> pd.DataFrame:
    """Edit checkpoints of the run with ``readout`` and train on, beside the unedited checkpoints
    trained on the same way: how fast the network memorizes the corrupted labels again.

    For each edit epoch ``e`` the checkpoint at ``e`` gets the readout fitted on its last hidden
    layer (:func:`edited_model`), then ordinary training continues on the run's corrupted labels
    with the run's own settings (:meth:`memnotebooks.runs.RunConfig.training_settings`: its
    optimizer with fresh state, learning rate, batch size, shuffled batches in the order of its
    seed, and its stopping rule) through :func:`memnotebooks.training.train`. The same checkpoint
    is trained on without the edit for comparison (``readout`` :data:`UNEDITED`); a bias the
    edit gives a bias-free layer (the CNN's, :func:`edited_model`) is trained with the rest. The
    published code continues with batch size 1 and no shuffling; we do not copy that. Each
    continuation is cached in the run's folder under its recipe (the unedited one is shared by
    every readout).

    Parameters
    ----------
    run_ : Run
    readout : str
        One of :data:`READOUTS`.
    edit_epochs : int or list of int
        Checkpointed epochs of the run (or its final epoch) to edit at.
    epochs : int, optional
        At most this many epochs of training after each edit; default until the run's own final
        epoch (``run_.summary["epochs"] − e``), as the paper trains on up to a fixed epoch. The
        run's stopping rule (its target training accuracy) may end a continuation earlier.
    progress : bool
        Show a progress bar over each continuation's epochs.

    Returns
    -------
    DataFrame
        The configuration columns, ``readout`` (``readout`` or :data:`UNEDITED`), ``edit_epoch``,
        ``epoch`` (counted from the edit; 0 is the edited checkpoint before any training),
        ``run_epoch`` (``edit_epoch + epoch``, on the run's own clock), ``loss``,
        ``train_accuracy``, ``clean_accuracy``, ``corrupted_accuracy_given`` (the corrupted
        training points against the labels they were given: the memorization),
        ``corrupted_accuracy_true``, ``test_accuracy``, ``test_validation_accuracy`` and
        ``test_holdout_accuracy`` (accuracies in [0, 1], see
        :func:`memnotebooks.training.history_row`). Training accuracies after
        epoch 0 are running accuracies (each point scored in its own mini-batch, before the
        batch's update); epoch 0's are the checkpoint's own, in one pass.

    Raises
    ------
    ValueError
        For a readout that is not linear or unknown, an edit epoch never checkpointed, a model
        whose last layer is not linear, or no epoch left to train (``epochs`` < 1, or an edit at
        the run's final epoch without ``epochs``).
    """
    check_readout(readout)
    edit_epochs = _epochs(run_, [edit_epochs] if isinstance(edit_epochs, (int, np.integer)) else edit_epochs)
    if epochs is not None:
        epochs = integer("epochs (of training after the edit)", epochs, low=1)
    final = _final_epoch(run_)
    dataset = run_.dataset
    device = next(run_.model.parameters()).device
    frames = []
    for edit_epoch in edit_epochs:
        length = epochs if epochs is not None else final - edit_epoch
        if length < 1:
            raise ValueError(f"No epochs to train after an edit at epoch {edit_epoch}: the run ended at epoch {final}; pass epochs=...")
        for name in (readout, UNEDITED):
            recipe = {**_readout_recipe(run_, name), "edit_epoch": int(edit_epoch), "epochs": int(length), "continuation": _CONTINUATION}

            def compute(name=name, edit_epoch=edit_epoch, length=length):
                model = _model_at(run_, edit_epoch)
                if name == UNEDITED:
                    model = copy.deepcopy(model)
                else:
                    model = _edited(model, _fit_at(run_, model, name))
                settings = {**run_.config.training_settings(), "max_epochs": length, "checkpoint_epochs": ()}
                result = train(
                    model,
                    dataset.x_train,
                    run_.train_labels,
                    y_true=dataset.y_train,
                    corrupted=torch.from_numpy(run_.corrupted),
                    evaluation_sets={"test": (dataset.x_test, dataset.y_test)},
                    evaluation_parts=test_parts(dataset),
                    **settings,
                    device=device,
                    progress=progress,
                )
                history = result.history.assign(run_epoch=lambda h: h.epoch + edit_epoch)
                return history[_HISTORY_COLUMNS]

            table = cached_table(run_.path, "edit-training", recipe, compute)
            frames.append(table.assign(readout=name, edit_epoch=int(edit_epoch)))
    table = pd.concat(frames, ignore_index=True)
    columns = ["readout", "edit_epoch", *_HISTORY_COLUMNS]
    identity = config_columns(run_)
    return table[columns].assign(**identity)[list(identity) + columns]


def edit_training_grid(runs, readout: str, edit_epochs, epochs: int | None = None) -> pd.DataFrame:
    """:func:`edit_during_training` of several runs, stacked; each run is edited at those of
    ``edit_epochs`` it checkpointed before its final epoch (an error if none)."""
    frames = []
    for r in runs:
        final = _final_epoch(r)
        own = [e for e in ([edit_epochs] if isinstance(edit_epochs, (int, np.integer)) else edit_epochs) if e in r.config.checkpoint_epochs and e < final]
        if not own:
            raise ValueError(f"None of the edit epochs {edit_epochs} is a checkpoint of {r.path.name} before its final epoch {final}.")
        frames.append(edit_during_training(r, readout, own, epochs))
    return pd.concat(frames, ignore_index=True)


def rememorization(table: pd.DataFrame, level: float = 0.5) -> pd.DataFrame:
    """How each continuation of :func:`edit_during_training` goes: what the edit gives at once,
    and how soon the corrupted labels are fitted again.

    Parameters
    ----------
    table : DataFrame
        :func:`edit_during_training` (or :func:`edit_training_grid`) output.
    level : float in (0, 1]
        The share of the corrupted training labels (against the labels they were given) that
        counts as memorized again.

    Returns
    -------
    DataFrame
        One row per run, edit epoch and readout (the edited continuation and the unedited one):
        ``holdout_at_edit`` (holdout accuracy of the edited checkpoint, before training),
        ``holdout_after_one`` (after one epoch), ``holdout_best`` and ``best_epoch`` (the highest
        holdout accuracy over the continuation, and its epoch after the edit: read it as a
        description, it is chosen on the holdout itself), ``holdout_last``,
        ``corrupted_at_edit`` and ``corrupted_last`` (share of the corrupted labels fitted),
        ``epochs_to_level`` (the first epoch after the edit at which at least ``level`` of them
        are fitted; NaN when none), ``epochs`` (trained after the edit) and ``level``.
    """
    level = float(level)
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1]; got {level}.")
    keys = [c for c in table.columns if c not in _HISTORY_COLUMNS]
    rows = []
    for key, part in table.sort_values("epoch", kind="stable").groupby(keys, sort=False, dropna=False):
        part = part.set_index("epoch")
        fitted = part.corrupted_accuracy_given
        reached = fitted.index[fitted >= level]
        rows.append({
            **dict(zip(keys, key)),
            "holdout_at_edit": part.test_holdout_accuracy.iloc[0],
            "holdout_after_one": part.test_holdout_accuracy.get(1, np.nan),
            "holdout_best": part.test_holdout_accuracy.max(),
            "best_epoch": int(part.test_holdout_accuracy.idxmax()),
            "holdout_last": part.test_holdout_accuracy.iloc[-1],
            "corrupted_at_edit": fitted.iloc[0],
            "corrupted_last": fitted.iloc[-1],
            "epochs_to_level": float(reached[0]) if len(reached) else np.nan,
            "epochs": int(part.index.max()),
            "level": level,
        })
    # In reading order: by run, edit epoch, then the edited continuation before the unedited one.
    return pd.DataFrame(rows).assign(unedited=lambda t: t.readout == UNEDITED).sort_values([*(k for k in ("corruption_degree", "seed") if k in keys), "edit_epoch", "unedited"], kind="stable").drop(columns="unedited").reset_index(drop=True)
