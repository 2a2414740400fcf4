"""Training: an open loop over epochs, with the loss and the stopping rule as arguments.

The data stay on the device as two tensors and each mini-batch is an index into them, so an
epoch costs one ``randperm`` (:func:`epoch_orders`, a function of the seed alone) and
``n / batch_size`` slices, not a DataLoader's per-sample Python work. Convolutional models train
in the channels-last memory layout (:func:`memory_format`), which oneDNN and cuDNN convolve about
twice as fast as the default on a CPU (measured on the paper's CNN). Each training point is
scored by the logits of its own mini-batch as it is trained (the usual *running* training
accuracy, which costs no extra forward pass); after every epoch the evaluation sets (the test
set, a validation split, ...) are scored. :func:`history_row` turns those predictions into the
per-epoch row the memorization chapters plot: accuracy on the training labels, on the clean and
the corrupted subsets (against the given and against the true labels), and on each evaluation
set. Epoch 0 evaluates the initial model on every set.

One :class:`EpochRecorder` keeps every per-epoch record (history row, test predictions,
checkpoints, best weights, each point's epoch of learning, the stopping rule's verdict), for this
loop and for the stacked trainer (:mod:`memnotebooks.stacked`) alike. ``train(after_epoch=...)``
calls a function with the model and the history after every epoch, which may change the weights
(weight editing at an epoch, then training on).

What ends training is a rule that reads the history: :class:`StopAtTarget` (the paper's: the
running accuracy reaches a target) or :class:`EarlyStopping` (no strict improvement of a metric
for ``patience`` epochs); ``keep_best`` restores the weights of the epoch that scored best.
Running accuracy is not the final model's: later batches can undo points fitted earlier in the
epoch, so the final model's full-pass training accuracy is recorded beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from .checks import integer, one_of, real
from .corruption import wrong_labels
from .devices import resolve_device
from .models import evaluation_mode
from .progress import progress_bar

__all__ = [
    "OPTIMIZERS",
    "EarlyStopping",
    "EpochRecorder",
    "StopAtTarget",
    "TrainingResult",
    "check_settings",
    "check_weight_decay",
    "epoch_orders",
    "history_row",
    "learned_since",
    "make_optimizer",
    "memory_format",
    "predict",
    "train",
]

OPTIMIZERS = ("sgd", "adam")

def memory_format(model: nn.Module) -> torch.memory_format:
    """``torch.channels_last`` for a model with 2-D convolutions, else ``torch.contiguous_format``.

    The layout changes how the convolutions are computed, not what the model is: a state dict
    saved in either layout loads into a model in either.
    """
    has_conv = any(isinstance(module, nn.Conv2d) for module in model.modules())
    return torch.channels_last if has_conv else torch.contiguous_format


def _in_layout(x: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    return x.contiguous(memory_format=layout) if x.dim() == 4 else x


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted classes of ``x`` (n, ...) in evaluation mode, on the model's device, int64 (n,)."""
    device = next(model.parameters()).device
    with evaluation_mode(model):
        return torch.cat([model(x[i : i + batch_size].to(device)).argmax(dim=1) for i in range(0, len(x), batch_size)])


class StopAtTarget:
    """Stop once ``metric`` (default the running training accuracy) reaches ``target_accuracy``.

    Parameters
    ----------
    target_accuracy : float in (0, 1]
    metric : str
        A history column.
    """

    def __init__(self, target_accuracy: float = 1.0, metric: str = "train_accuracy"):
        self.target_accuracy, self.metric = real("target_accuracy", target_accuracy, 0, 1, low_open=True), metric

    def __call__(self, history: Sequence[Mapping]) -> bool:
        return history[-1][self.metric] >= self.target_accuracy

    def __repr__(self) -> str:
        return f"StopAtTarget({self.target_accuracy}, metric={self.metric!r})"


class EarlyStopping:
    """Stop when ``metric`` has not strictly improved on its best value for ``patience`` epochs.

    Epoch 0 (the model before this training) sets the first best value, so a training that
    never improves stops after ``patience`` epochs. :meth:`best_epoch` is the first epoch with
    the highest value, the one ``train(..., keep_best=metric)`` restores.

    Parameters
    ----------
    metric : str
        A history column where higher is better, e.g. ``"validation_accuracy"``.
    patience : int
    """

    def __init__(self, metric: str = "validation_accuracy", patience: int = 3):
        self.metric, self.patience = metric, integer("patience", patience, low=1)

    def best_epoch(self, history: Sequence[Mapping]) -> int:
        return _best_epoch(history, self.metric)

    def __call__(self, history: Sequence[Mapping]) -> bool:
        return history[-1]["epoch"] - self.best_epoch(history) >= self.patience

    def __repr__(self) -> str:
        return f"EarlyStopping({self.metric!r}, patience={self.patience})"


def _best_epoch(history: Sequence[Mapping], metric: str) -> int:
    if metric not in history[0]:
        raise ValueError(f"Unknown history column {metric!r}; choose from: {', '.join(history[0])}.")
    values = [row[metric] for row in history]
    if all(np.isnan(values)):
        raise ValueError(f"History column {metric!r} holds no values; is its evaluation set given?")
    return int(history[int(np.nanargmax(values))]["epoch"])


@dataclass
class TrainingResult:
    """What :func:`train` returns.

    Attributes
    ----------
    history : DataFrame
        One row per epoch (epoch 0 is the initial model, evaluated), see :func:`history_row`,
        plus ``seconds`` (wall time since the start).
    checkpoints : dict of int to state_dict
        CPU copies of the weights at the requested epochs.
    stopped : bool
        Whether the stopping rule ended training (``False``: the epoch cap did).
    best_epoch : int or None
        With ``keep_best``: the epoch whose weights the model holds.
    full_pass_train_accuracy : float
        Accuracy of the returned model on the training labels, in one pass in evaluation mode
        (the running ``train_accuracy`` scores each point before its batch's update instead).
    learned_epoch : Tensor of shape (n_train,), int64
        Per training point, the first epoch from which its running prediction matched its label
        at every later epoch (it was *learned* then and never forgotten), or -1 if it was not
        fitted at the last epoch. Epoch 0 is the initial model.
    test_predictions : Tensor of shape (n_epochs + 1, n_test), int16, or None
        The class predicted for every test point after every epoch (row 0: the initial model),
        when an evaluation set is named ``"test"``: kept so that any epoch's accuracy can be
        compared image by image with another classifier's (:mod:`memnotebooks.uncertainty`).
    """

    history: pd.DataFrame
    checkpoints: dict = field(default_factory=dict)
    stopped: bool = False
    best_epoch: int | None = None
    full_pass_train_accuracy: float = float("nan")
    learned_epoch: torch.Tensor | None = None
    test_predictions: torch.Tensor | None = None

    @property
    def epochs(self) -> int:
        """Epochs trained."""
        return int(self.history["epoch"].iloc[-1])


def check_weight_decay(weight_decay) -> float:
    """``weight_decay`` as a float if it is a number >= 0, else a ValueError naming it."""
    return real("weight_decay", weight_decay, 0)


def make_optimizer(name: str, parameters, learning_rate: float, momentum: float, device: torch.device, weight_decay: float = 0.0):
    """A fresh ``torch.optim`` optimizer by name (``"sgd"`` or ``"adam"``); ``momentum`` is SGD's,
    ``weight_decay`` the L2 penalty's coefficient (added to the gradient, as Arpit et al.)."""
    weight_decay = check_weight_decay(weight_decay)
    # The fused kernels update all parameters in one pass: about 3x faster steps on a CPU.
    fused = device.type in ("cpu", "cuda")
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=momentum, weight_decay=weight_decay, fused=fused)
    return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=weight_decay, fused=fused)


def epoch_orders(n_samples: int, seed: int) -> Iterator[torch.Tensor]:
    """The mini-batch order of every epoch, a function of the seed alone.

    Yields, epoch after epoch, a permutation of ``range(n_samples)`` (int64, on the CPU) from one
    CPU ``torch.Generator`` seeded with ``seed``, so the same seed gives the same orders on every
    device, and a trainer of many runs at once can reproduce each run's order.
    """
    generator = torch.Generator().manual_seed(int(seed))
    while True:
        yield torch.randperm(n_samples, generator=generator)


def history_row(
    epoch: int,
    loss: float,
    train_predictions: torch.Tensor,
    y_given: torch.Tensor,
    y_true: torch.Tensor,
    corrupted: torch.Tensor,
    evaluations: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict:
    """One epoch's row of the training history.

    Parameters
    ----------
    epoch : int
    loss : float
        Mean training loss over the epoch (NaN for epoch 0).
    train_predictions : Tensor of shape (n_train,), int64
    y_given, y_true : Tensor of shape (n_train,), int64
        The labels trained on and the true ones.
    corrupted : Tensor of shape (n_train,), bool
        The corrupted points (:func:`memnotebooks.corruption.corrupted_points`).
    evaluations : dict of str to (predictions, labels)
        Each evaluation set's predicted and true classes.

    Returns
    -------
    dict
        ``epoch``, ``loss``, ``train_accuracy`` (against the given labels), ``clean_accuracy``,
        ``corrupted_accuracy_given``, ``corrupted_accuracy_true`` and ``<name>_accuracy`` per
        evaluation set; a subset with no points scores NaN.
    """

    def mean(hits):
        return float(hits.float().mean()) if hits.numel() else float("nan")

    row = {
        "epoch": int(epoch),
        "loss": float(loss),
        "train_accuracy": mean(train_predictions == y_given),
        "clean_accuracy": mean(train_predictions[~corrupted] == y_true[~corrupted]),
        "corrupted_accuracy_given": mean(train_predictions[corrupted] == y_given[corrupted]),
        "corrupted_accuracy_true": mean(train_predictions[corrupted] == y_true[corrupted]),
    }
    for name, (predictions, labels) in (evaluations or {}).items():
        row[f"{name}_accuracy"] = mean(predictions == labels)
    return row


def check_settings(optimizer: str, learning_rate: float, batch_size: int, max_epochs: int) -> None:
    """Raise a ValueError naming the first of the optimizer settings that is not allowed."""
    one_of("optimizer", optimizer, OPTIMIZERS)
    real("learning_rate", learning_rate, 0, low_open=True)
    integer("batch_size", batch_size, low=1)
    integer("max_epochs", max_epochs, low=0)


def learned_since(learned_epoch: torch.Tensor, fitted: torch.Tensor, epoch: int) -> torch.Tensor:
    """Each point's epoch of learning after ``epoch``: kept while it stays fitted, ``epoch`` when it
    becomes fitted, -1 when it is not (see :attr:`TrainingResult.learned_epoch`).

    Parameters
    ----------
    learned_epoch : Tensor of shape (n,), int64
        The epochs of learning up to the previous epoch (all -1 before epoch 0).
    fitted : Tensor of shape (n,), bool
        Whether each point's prediction matches its label at ``epoch``.
    """
    newly = fitted & (learned_epoch < 0)
    return torch.where(fitted, torch.where(newly, epoch, learned_epoch), -1)


class EpochRecorder:
    """The per-epoch bookkeeping of one run, shared by :func:`train` and the stacked trainer
    (:func:`memnotebooks.stacked.train_stacked`), so that both keep the same records.

    After every epoch the trainer hands over the running training predictions and each evaluation
    set's predictions; the recorder appends the history row (:func:`history_row`, with
    ``seconds``), keeps the test predictions, copies the weights at the checkpoint epochs and at
    the best epoch of ``keep_best``, updates each point's epoch of learning, and asks the stopping
    rule.

    Parameters
    ----------
    y_given, y_true : Tensor of shape (n_train,), int64
        The labels trained on and the true ones.
    corrupted : Tensor of shape (n_train,), bool
    evaluation_labels : dict of str to Tensor
        Each evaluation set's true labels.
    evaluation_parts : dict of str to (set name, mask)
        Parts of an evaluation set scored from its predictions (see :func:`train`).
    stop : callable
        ``stop(history)`` to ``True`` when training should end.
    max_epochs : int
    checkpoint_epochs : iterable of int
    keep_best : str, optional
        A history column whose best epoch's weights are kept (see :func:`train`).
    """

    def __init__(self, y_given, y_true, corrupted, evaluation_labels, evaluation_parts, stop, max_epochs: int, checkpoint_epochs=(), keep_best: str | None = None):
        unknown = sorted({whole for whole, _ in evaluation_parts.values()} - set(evaluation_labels))
        if unknown:
            raise ValueError(f"evaluation_parts name unknown evaluation set(s) {unknown}; the sets are: {sorted(evaluation_labels)}.")
        self.y_given, self.y_true, self.corrupted = y_given, y_true, corrupted
        self.evaluation_labels, self.evaluation_parts = evaluation_labels, evaluation_parts
        self.stop, self.max_epochs, self.keep_best = stop, max_epochs, keep_best
        self.checkpoint_epochs = set(checkpoint_epochs)
        self.rows, self.checkpoints, self.test_predictions = [], {}, []
        self.best_state, self.stopped = None, False
        self.learned_epoch = torch.full_like(y_given, -1)
        self._start = time.perf_counter()

    def record(self, epoch: int, loss: float, train_predictions: torch.Tensor, predictions: Mapping[str, torch.Tensor], state: Callable[[], dict]) -> bool:
        """Record ``epoch``; return whether training ends after it (the rule fired, or the cap).

        Parameters
        ----------
        epoch : int
            0 for the initial model.
        loss : float
            The epoch's mean training loss (NaN for epoch 0).
        train_predictions : Tensor of shape (n_train,), int64
            The running predictions (for epoch 0, the initial model's).
        predictions : dict of str to Tensor
            Each evaluation set's predicted classes.
        state : callable
            Returns the weights (a state dict), called only when some are kept; the recorder
            keeps copies (checkpoints on the CPU, the best weights where they are).
        """
        evaluations = {name: (predictions[name], labels) for name, labels in self.evaluation_labels.items()}
        for name, (whole, mask) in self.evaluation_parts.items():
            predicted, labels = evaluations[whole]
            evaluations[name] = (predicted[mask], labels[mask])
        row = history_row(epoch, loss, train_predictions, self.y_given, self.y_true, self.corrupted, evaluations)
        self.rows.append({**row, "seconds": time.perf_counter() - self._start})
        if "test" in predictions:
            self.test_predictions.append(predictions["test"].to("cpu", torch.int16))
        checkpoint = epoch in self.checkpoint_epochs
        best = self.keep_best is not None and _best_epoch(self.rows, self.keep_best) == epoch
        if checkpoint or best:
            weights = state()
            if checkpoint:
                self.checkpoints[epoch] = {name: value.detach().to("cpu", copy=True) for name, value in weights.items()}
            if best:
                self.best_state = {name: value.detach().clone() for name, value in weights.items()}
        self.learned_epoch = learned_since(self.learned_epoch, train_predictions == self.y_given, epoch)
        self.stopped = bool(self.stop(self.rows))
        return self.stopped or epoch >= self.max_epochs

    @property
    def history(self) -> list[dict]:
        """The rows so far (one dict per epoch)."""
        return self.rows

    def result(self, full_pass_train_accuracy: float) -> TrainingResult:
        """The :class:`TrainingResult` of the epochs recorded."""
        best_epoch = _best_epoch(self.rows, self.keep_best) if self.keep_best is not None else None
        kept = torch.stack(self.test_predictions) if self.test_predictions else None
        return TrainingResult(pd.DataFrame(self.rows), self.checkpoints, self.stopped, best_epoch, full_pass_train_accuracy, self.learned_epoch.cpu(), kept)


def train(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    y_true: torch.Tensor | None = None,
    corrupted: torch.Tensor | None = None,
    evaluation_sets: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    evaluation_parts: Mapping[str, tuple[str, torch.Tensor]] | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    stop: Callable[[Sequence[Mapping]], bool] | None = None,
    keep_best: str | None = None,
    after_epoch: Callable[[int, nn.Module, Sequence[Mapping]], None] | None = None,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    max_epochs: int = 500,
    checkpoint_epochs=(),
    seed: int = 0,
    device: str | torch.device = "auto",
    eval_batch_size: int = 1024,
    progress: bool = True,
) -> TrainingResult:
    """Train ``model`` on ``(x_train, y_train)`` until the stopping rule fires or ``max_epochs`` pass.

    Parameters
    ----------
    model : nn.Module
        Trained in place and left on ``device``, in evaluation mode.
    x_train : Tensor of shape (n_train, ...)
    y_train : Tensor of shape (n_train,), int64
        The labels to fit (possibly corrupted).
    y_true : Tensor of shape (n_train,), optional
        The true training labels, for the clean/corrupted split of the history; default ``y_train``.
    corrupted : Tensor of shape (n_train,), bool, optional
        The corrupted points; default the wrongly labelled ones
        (:func:`memnotebooks.corruption.wrong_labels`).
    evaluation_sets : dict of str to (x, y), optional
        Sets scored after every epoch, as history columns ``<name>_accuracy`` (e.g. ``"test"``).
    evaluation_parts : dict of str to (set name, mask), optional
        Parts of an evaluation set, scored from the same predictions (no extra forward pass),
        e.g. ``{"test_validation": ("test", mask)}`` with a boolean mask over that set.
    loss : callable, optional
        ``loss(logits, labels)`` to a scalar tensor; default cross-entropy.
    stop : callable, optional
        ``stop(history)`` with the rows so far (list of dicts, see :func:`history_row`) to
        ``True`` when training should end; checked on the initial model and after each epoch.
        Default ``StopAtTarget(1.0)``: every training point fitted.
    keep_best : str, optional
        A history column (higher is better): the returned model holds the weights of the first
        epoch where it was highest, not the last epoch's.
    after_epoch : callable, optional
        ``after_epoch(epoch, model, history)``, called after each epoch is recorded (epoch 0
        too) and before the stopping rule ends training; it may change the model's weights in
        place (the next epoch trains from them, with the optimizer's state as it was), e.g. to
        write a readout into the last layer at an epoch. Its return value is ignored.
    optimizer : {"sgd", "adam"}
        A fresh optimizer (no state carried over from earlier training).
    learning_rate, momentum, weight_decay : float
        ``momentum`` applies to SGD only; ``weight_decay`` is the L2 coefficient.
    batch_size : int
    max_epochs : int
    checkpoint_epochs : iterable of int
        Epochs whose weights to keep (0 is the initial model).
    seed : int
        Seed of the mini-batch order (see :func:`epoch_orders`).
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...; see :func:`memnotebooks.devices.resolve_device`.
    eval_batch_size : int
        Inputs per forward pass when evaluating.
    progress : bool
        Show a tqdm progress bar over epochs.

    Returns
    -------
    TrainingResult
    """
    check_settings(optimizer, learning_rate, batch_size, max_epochs)
    if len(x_train) != len(y_train):
        raise ValueError(f"x_train has {len(x_train)} samples but y_train has {len(y_train)}.")
    device = resolve_device(device)
    layout = memory_format(model)
    model.to(device, memory_format=layout)
    x_train, y_given = _in_layout(x_train.to(device), layout), y_train.to(device)
    y_true = y_given if y_true is None else y_true.to(device)
    corrupted = wrong_labels(y_true, y_given) if corrupted is None else torch.as_tensor(corrupted).to(device, torch.bool)
    evaluation_sets = {name: (_in_layout(x.to(device), layout), y.to(device)) for name, (x, y) in (evaluation_sets or {}).items()}
    evaluation_parts = {name: (whole, torch.as_tensor(mask).to(device)) for name, (whole, mask) in (evaluation_parts or {}).items()}
    recorder = EpochRecorder(
        y_given, y_true, corrupted, {name: y for name, (_, y) in evaluation_sets.items()}, evaluation_parts,
        StopAtTarget(1.0) if stop is None else stop, max_epochs, checkpoint_epochs, keep_best,
    )
    opt = make_optimizer(optimizer, model.parameters(), learning_rate, momentum, device, weight_decay)
    loss = nn.CrossEntropyLoss() if loss is None else loss

    def record(epoch: int, epoch_loss: float, train_predictions: torch.Tensor) -> bool:
        predictions = {name: predict(model, x, eval_batch_size) for name, (x, _) in evaluation_sets.items()}
        done = recorder.record(epoch, epoch_loss, train_predictions, predictions, model.state_dict)
        if after_epoch is not None:
            after_epoch(epoch, model, recorder.history)
        return done

    done = record(0, float("nan"), predict(model, x_train, eval_batch_size))
    train_predictions = torch.empty_like(y_given)
    orders = epoch_orders(len(y_given), seed)
    bar = progress_bar(max_epochs, "epochs", progress, leave=False)
    for epoch in range(1, max_epochs + 1):
        if done:
            break
        model.train()
        order = next(orders).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, len(order), batch_size):
            index = order[i : i + batch_size]
            logits = model(x_train[index])
            batch_loss = loss(logits, y_given[index])
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            total += batch_loss.detach() * len(index)
            train_predictions[index] = logits.detach().argmax(dim=1)
        done = record(epoch, float(total) / len(order), train_predictions)
        bar.update()
        bar.set_postfix({name: f"{recorder.history[-1][name]:.3f}" for name in ("train_accuracy", "test_accuracy") if name in recorder.history[-1]})
    bar.close()
    if keep_best is not None:
        model.load_state_dict(recorder.best_state)
    model.eval()
    full_pass = float((predict(model, x_train, eval_batch_size) == y_given).float().mean())
    return recorder.result(full_pass)
