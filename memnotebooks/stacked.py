"""Many runs of one architecture trained as one stacked model: models and tensors in,
one :class:`~memnotebooks.training.TrainingResult` per run out.

Runs that differ only in their initial weights, data order, labels (and inputs) and in when they
stop (stopping rule, epoch cap, checkpoints) compute the same function of different weights.
:func:`train_stacked` stacks their weights along a new
leading dimension (``torch.func.stack_module_state``) and evaluates all of them in one call of
``torch.func.functional_call`` under ``vmap``: one batched product per layer instead of M small
ones, which is what keeps a GPU busy on models this small. A CPU gains nothing from it, as each
small product already keeps its cores busy: with one thread the stack trains 0.86 to 0.94 times
as many runs an hour as one by one (MLP and CNN on digits, ``benchmarks/grid_bench.py``).

Each run keeps everything a run trained alone by :func:`memnotebooks.training.train` has:

- its own mini-batch order (:func:`memnotebooks.training.epoch_orders` with its seed), so each
  step of the stack feeds run m the batch that run m alone would have seen;
- its own labels, and its own inputs in ``random_inputs`` mode;
- its own optimizer state: SGD's and Adam's updates are elementwise, so one optimizer over the
  stacked weights updates each run's slice as an optimizer of that run alone would, and the loss
  is the *sum* over runs of each run's mean cross-entropy, whose gradient for run m's slice is
  run m's own gradient;
- its own history rows, stopping rule, checkpoints and per-example learning epochs, kept by the
  same :class:`~memnotebooks.training.EpochRecorder` as a run trained alone.

A run that reaches its target (or its epoch cap) leaves the stack: its weights are kept as they are and the stack,
with its optimizer state, is sliced to the runs still training. It is then the run that stopped at
that epoch, as alone, and later epochs cost only the runs still training; its history's
``seconds`` are the stack's wall time until it stopped. Which configurations may share a stack,
and writing the runs to the cache, is the grid's business (:func:`memnotebooks.runs.run_grid`).
Stacked and single runs differ by floating-point rounding
only (batched products sum in another order); Adam, which divides each gradient by its running
magnitude, magnifies that rounding where gradients are near zero (on 500 digits, after one epoch
the MLP's weights agree to 1e-5; after six, one run of three differs by 0.012), SGD does not
(1e-4).

What cannot be stacked is refused, with the reason (:func:`unstackable`): active dropout (``vmap``
draws other masks than the single run, so it would not be the same run) and models with buffers
(ResNet-18's BatchNorm statistics update in place during training).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .devices import resolve_device
from .progress import progress_bar
from .training import EpochRecorder, StopAtTarget, TrainingResult, check_settings, epoch_orders, make_optimizer, predict

__all__ = ["dropout_reason", "train_stacked", "unstackable"]

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def dropout_reason(rates) -> str:
    """Why runs with these dropout rates cannot train in a stack."""
    return f"dropout {', '.join(map(str, rates))}: vmap would draw other dropout masks than the run trained alone, so it would be another run"


def unstackable(model: nn.Module) -> str | None:
    """Why ``model`` cannot train in a stack, or ``None`` if it can."""
    rates = sorted({module.p for module in model.modules() if isinstance(module, _DROPOUT) and module.p > 0})
    if rates:
        return dropout_reason(rates)
    if list(model.buffers()):
        return f"the model ({type(model).__name__}) has buffers (BatchNorm statistics) that change in place during training"
    return None


def _per_run(name: str, value, n_runs: int) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n_runs
    if len(values) != n_runs:
        raise ValueError(f"{name} gives {len(values)} values for {n_runs} runs.")
    return values


def train_stacked(
    models: Sequence[nn.Module],
    x_train: torch.Tensor | Sequence[torch.Tensor],
    y_train: torch.Tensor,
    *,
    y_true: torch.Tensor,
    corrupted: torch.Tensor,
    seeds: Sequence[int],
    stops: Sequence[Callable] | None = None,
    max_epochs: int | Sequence[int] = 500,
    checkpoint_epochs: Sequence = (),
    evaluation_sets: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    evaluation_parts: Mapping[str, tuple[str, torch.Tensor]] | None = None,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    device: str | torch.device = "auto",
    eval_batch_size: int = 1024,
    progress: bool = True,
) -> list[TrainingResult]:
    """Train ``models`` (one architecture, M initial weights) as one stacked model, each run as
    :func:`memnotebooks.training.train` would train it alone with the same arguments.

    Parameters
    ----------
    models : sequence of M nn.Module
        Same architecture; each is left with its run's final weights, in evaluation mode.
    x_train : Tensor of shape (n, ...), or sequence of M such tensors
        The training inputs, shared by every run, or each run's own (``random_inputs`` mode);
        a sequence whose tensors are one object is shared.
    y_train : Tensor of shape (M, n), int64
        Each run's training labels.
    y_true : Tensor of shape (n,), int64
        The true training labels.
    corrupted : Tensor of shape (M, n), bool
        Each run's corrupted points.
    seeds : sequence of M int
        Each run's mini-batch order seed.
    stops : sequence of M callables, optional
        Each run's stopping rule; default ``StopAtTarget(1.0)``.
    max_epochs : int or sequence of M int
    checkpoint_epochs : iterable of int, or sequence of M of them
    evaluation_sets, evaluation_parts
        As for :func:`~memnotebooks.training.train`, shared by every run.
    optimizer, learning_rate, momentum, weight_decay, batch_size
        Shared by every run, as for :func:`~memnotebooks.training.train`.
    device, eval_batch_size, progress
        As for :func:`~memnotebooks.training.train`.

    Returns
    -------
    list of M TrainingResult
        In the order of ``models``.

    Raises
    ------
    ValueError
        If a model cannot be stacked (:func:`unstackable`), or the per-run arguments do not
        give one value per model.
    """
    models, n_runs = list(models), len(models)
    if not n_runs:
        raise ValueError("No runs to train: models is empty.")
    reasons = {reason for reason in map(unstackable, models) if reason}
    if reasons:
        raise ValueError(f"These models cannot be stacked: {'; '.join(sorted(reasons))}.")
    caps = _per_run("max_epochs", max_epochs, n_runs)
    check_settings(optimizer, learning_rate, batch_size, max(caps))
    checkpoint_epochs = list(checkpoint_epochs)
    nested = bool(checkpoint_epochs) and not isinstance(checkpoint_epochs[0], int)  # one list per run
    checkpoints = _per_run("checkpoint_epochs", checkpoint_epochs if nested else [tuple(checkpoint_epochs)] * n_runs, n_runs)
    stops = _per_run("stops", stops if stops is not None else StopAtTarget(1.0), n_runs)
    seeds = _per_run("seeds", list(seeds), n_runs)
    if tuple(y_train.shape[:1]) != (n_runs,) or tuple(corrupted.shape) != tuple(y_train.shape):
        raise ValueError(f"y_train and corrupted must be of shape (runs, n) = ({n_runs}, n); got {tuple(y_train.shape)} and {tuple(corrupted.shape)}.")
    device = resolve_device(device)
    # Runs share their inputs unless some replace points by noise (random_inputs): then each run
    # has its own copy, M times the training set's memory.
    inputs = list(x_train) if isinstance(x_train, (list, tuple)) else [x_train] * n_runs
    shared_x = all(x is inputs[0] for x in inputs)
    x_train = (inputs[0] if shared_x else torch.stack(inputs)).to(device)
    labels, y_true, corrupted = y_train.to(device), y_true.to(device), corrupted.to(device, torch.bool)
    evaluation_sets = {name: (x.to(device), y.to(device)) for name, (x, y) in (evaluation_sets or {}).items()}
    evaluation_parts = {name: (whole, torch.as_tensor(mask).to(device)) for name, (whole, mask) in (evaluation_parts or {}).items()}
    evaluation_labels = {name: y for name, (_, y) in evaluation_sets.items()}
    recorders = [
        EpochRecorder(labels[m], y_true, corrupted[m], evaluation_labels, evaluation_parts, stops[m], caps[m], checkpoints[m])
        for m in range(n_runs)
    ]
    settings = {"optimizer": optimizer, "learning_rate": learning_rate, "momentum": momentum, "weight_decay": weight_decay}
    stack = _Stack(models, x_train[:2] if shared_x else x_train[0, :2], device, settings)
    results = [None] * n_runs

    def record(epoch, losses, train_predictions) -> list[int]:
        """Record the runs in the stack; return the positions of those that stop."""
        predictions = {name: stack.predict(x, eval_batch_size) for name, (x, _) in evaluation_sets.items()}
        stopping = []
        for position, m in enumerate(stack.runs.tolist()):
            own = {name: value[position] for name, value in predictions.items()}
            if recorders[m].record(epoch, losses[position], train_predictions[m], own, lambda: stack.state(position)):
                stopping.append(position)
        return stopping

    def finish(position) -> None:
        m = int(stack.runs[position])
        models[m].load_state_dict(stack.state(position))
        models[m].eval()
        full_pass = float((predict(models[m], x_train if shared_x else x_train[m], eval_batch_size) == labels[m]).float().mean())
        results[m] = recorders[m].result(full_pass)

    train_predictions = stack.predict(x_train, eval_batch_size, shared=shared_x)
    orders = [epoch_orders(labels.shape[1], seed) for seed in seeds]
    bar = progress_bar(max(caps), f"epochs, {n_runs} runs stacked", progress, leave=False)
    epoch, stopping = 0, record(0, [float("nan")] * n_runs, train_predictions)
    while True:
        for position in stopping:
            finish(position)
        still = [p for p in range(len(stack.runs)) if p not in stopping]
        if not still:
            break
        if stopping:
            stack.keep(torch.tensor(still, device=device))
        epoch += 1
        losses = _epoch(stack, x_train, shared_x, labels, orders, train_predictions, batch_size)
        stopping = record(epoch, losses, train_predictions)
        bar.update()
        bar.set_postfix(training=len(stack.runs) - len(stopping))
    bar.close()
    return results


class _Stack:
    """The stacked weights of the runs still training and one optimizer over them.

    Each weight is stored as a contiguous tensor whose dimensions are permuted to the layout its
    gradient comes in (:meth:`_gradient_orders`), and handed to the model as the permuted-back
    view ``params[name]`` of shape (m, ...).
    """

    def __init__(self, models: list[nn.Module], example: torch.Tensor, device: torch.device, optimizer_settings: dict):
        self.optimizer_settings, self.device = optimizer_settings, device
        template = models[0]
        stacked, _ = torch.func.stack_module_state([m.to(device) for m in models])
        self.runs = torch.arange(len(models), device=device)

        def forward(params, x):
            return torch.func.functional_call(template, params, (x,))

        self._own = torch.func.vmap(forward)  # run m's weights on run m's inputs
        self._shared = torch.func.vmap(forward, in_dims=(0, None))  # every run on the same inputs
        self._orders = _gradient_orders(self._own, stacked, example)
        self.leaves = {name: p.detach().permute(self._orders[name]).contiguous().requires_grad_() for name, p in stacked.items()}
        self.optimizer = self._optimizer()

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The stacked weights, each of shape (m, *the weight's shape)."""
        return {name: leaf.permute(_inverse(self._orders[name])) for name, leaf in self.leaves.items()}

    def _optimizer(self):
        s = self.optimizer_settings
        return make_optimizer(s["optimizer"], self.leaves.values(), s["learning_rate"], s["momentum"], self.device, s["weight_decay"])

    def logits(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """(m, b, classes) from ``x`` (b, ...) given to every run, or (m, b, ...) one batch a run."""
        return (self._shared if shared else self._own)(self.params, x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int, shared: bool = True) -> torch.Tensor:
        """Each run's predicted classes of ``x`` (n, ...), or of its own ``x[m]`` from (m, n, ...),
        int64 of shape (m, n)."""
        n = x.shape[0 if shared else 1]
        chunks = (x[i : i + batch_size] if shared else x[:, i : i + batch_size] for i in range(0, n, batch_size))
        return torch.cat([self.logits(chunk, shared).argmax(dim=2) for chunk in chunks], dim=1)

    def state(self, position: int) -> dict:
        """The state dict of the run at ``position`` in the stack (a copy)."""
        return {name: p[position].detach().contiguous() for name, p in self.params.items()}

    def keep(self, positions: torch.Tensor) -> None:
        """Go on with the runs at ``positions`` only, with their optimizer state."""
        # The other runs leave the optimizer, so its momentum can no longer move them (as restoring
        # their slices after each step would also ensure), and later steps cost only the runs kept.
        state = self.optimizer.state_dict()
        for per_leaf in state["state"].values():
            for name, value in per_leaf.items():
                if torch.is_tensor(value) and value.dim() > 0:  # moments are per weight; Adam's step count is shared
                    per_leaf[name] = value[positions]
        self.leaves = {name: leaf.detach()[positions].requires_grad_() for name, leaf in self.leaves.items()}
        self.runs = self.runs[positions]
        self.optimizer = self._optimizer()
        self.optimizer.load_state_dict(state)


def _gradient_orders(forward, params: dict[str, torch.Tensor], example: torch.Tensor) -> dict[str, list[int]]:
    """Per stacked weight, the order of its dimensions in memory (the run's first) in which
    ``forward(params, x)`` returns its gradient, found by one backward pass from ``example``
    (a batch of one run's inputs).

    Batched linear layers return their weights' gradients transposed. A weight stored in the
    layout of its gradient takes it as it is; otherwise autograd (or the fused optimizer, for a
    weight merely strided like it) copies every gradient into the other layout, which took 40 %
    of a stacked MLP's step on a CPU.
    """
    n_runs = len(next(iter(params.values())))
    logits = forward(params, example.expand(n_runs, *example.shape))
    gradients = torch.autograd.grad(logits.sum(), list(params.values()))
    return {name: [0, *sorted(range(1, g.dim()), key=lambda d: -g.stride(d))] for name, g in zip(params, gradients)}


def _inverse(order: list[int]) -> list[int]:
    return sorted(range(len(order)), key=order.__getitem__)


def _epoch(stack: _Stack, x_train, shared_x: bool, labels, orders, train_predictions, batch_size: int) -> list[float]:
    """One epoch of every run in the stack, each in its own order; the running predictions are
    written into ``train_predictions`` (runs, n); returns each run's mean loss."""
    runs = stack.runs
    order = torch.stack([next(orders[m]) for m in runs.tolist()]).to(stack.device)
    rows = runs[:, None]
    total = torch.zeros(len(runs), device=stack.device)
    for i in range(0, order.shape[1], batch_size):
        index = order[:, i : i + batch_size]
        logits = stack.logits(x_train[index] if shared_x else x_train[rows, index], shared=False)
        per_run = nn.functional.cross_entropy(logits.flatten(0, 1), labels[rows, index].flatten(), reduction="none").view(index.shape).mean(dim=1)
        stack.optimizer.zero_grad(set_to_none=True)
        per_run.sum().backward()  # d(sum)/d(run m's weights) is run m's own gradient
        stack.optimizer.step()
        total += per_run.detach() * index.shape[1]
        train_predictions[rows, index] = logits.detach().argmax(dim=2)
    return (total / order.shape[1]).tolist()
