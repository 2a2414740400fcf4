"""Many runs of one architecture trained as one stacked model.

Runs that differ only in their seed, corruption degree and mode (so in their initial weights,
data order and labels) and in when they stop (target accuracy, epoch cap, checkpoints) compute
the same function of different weights. :func:`train_stacked` stacks their weights along a new
leading dimension (``torch.func.stack_module_state``) and evaluates all of them in one call of
``torch.func.functional_call`` under ``vmap``: one batched product per layer instead of M small
ones, which is what keeps a GPU busy on models this small. A CPU gains nothing from it, as each
small product already keeps its cores busy: with one thread the stack trains 0.86 to 0.94 times
as many runs an hour as one by one (MLP and CNN on digits, ``benchmarks/grid_bench.py``).

Each run keeps everything a run trained alone by :func:`memnotebooks.runs.run` has:

- its own mini-batch order (:func:`memnotebooks.training.epoch_orders` with its seed), so each
  step of the stack feeds run m the batch that run m alone would have seen;
- its own labels, and its own inputs in ``random_inputs`` mode;
- its own optimizer state: SGD's and Adam's updates are elementwise, so one optimizer over the
  stacked weights updates each run's slice as an optimizer of that run alone would, and the loss
  is the *sum* over runs of each run's mean cross-entropy, whose gradient for run m's slice is
  run m's own gradient;
- its own history rows, stopping rule, checkpoints and per-example learning epochs.

A run that reaches its target (or its epoch cap) leaves the stack: its weights are kept as they are and the stack,
with its optimizer state, is sliced to the runs still training. It is then the run that stopped at
that epoch, as alone, and later epochs cost only the runs still training. The runs are written
to the cache exactly as :func:`memnotebooks.runs.run` writes them (its ``summary.json`` adds
``stacked_with``, the number of runs in the stack, and ``stack``, its name; its ``seconds`` is
the stack's wall time until the run stopped),
so ``run`` then reads them unchanged. Stacked and single runs differ by floating-point rounding
only (batched products sum in another order); Adam, which divides each gradient by its running
magnitude, magnifies that rounding where gradients are near zero (on 500 digits, after one epoch
the MLP's weights agree to 1e-5; after six, one run of three differs by 0.012), SGD does not
(1e-4).

What cannot be stacked is trained one by one, with a warning that says why: dropout (``vmap``
draws other masks than the single run, so it would not be the same run) and models with buffers
(ResNet-18's BatchNorm statistics update in place during training).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import warnings
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from .corruption import corrupted_points
from .devices import resolve_device
from .progress import progress_bar
from .runs import RunConfig, _summary, _write_run, build_run_model, is_complete, run_grid, run_path, summary_table, test_parts, training_data
from .training import StopAtTarget, TrainingResult, _check_settings, _learned_since, epoch_orders, history_row, make_optimizer, predict

__all__ = ["PER_RUN_FIELDS", "stacking_groups", "train_stacked"]

PER_RUN_FIELDS = ("seed", "corruption_degree", "corruption_mode", "target_accuracy", "max_epochs", "checkpoint_epochs")
"""The :class:`~memnotebooks.runs.RunConfig` fields in which runs of one stack may differ; every
other field (dataset, subsets, model, optimizer settings, batch size, dropout, weight decay) must
be equal."""


def stacking_groups(configs: Sequence[RunConfig]) -> tuple[list[list[RunConfig]], dict[RunConfig, str]]:
    """Split runs into groups that can each train as one stacked model.

    Parameters
    ----------
    configs : sequence of RunConfig
        Distinct configurations.

    Returns
    -------
    groups : list of list of RunConfig
        Runs equal in every field but :data:`PER_RUN_FIELDS`, in the order given.
    one_by_one : dict of RunConfig to str
        The runs that cannot be stacked, each with the reason.
    """
    configs = _checked(configs)
    groups, one_by_one = {}, {}
    for config in configs:
        if config.dropout:
            one_by_one[config] = (
                f"dropout {config.dropout}: vmap would draw other dropout masks than the run trained alone, so it would be another run"
            )
        else:
            shared = config.replace(**{name: RunConfig.__dataclass_fields__[name].default for name in PER_RUN_FIELDS})
            groups.setdefault(shared, []).append(config)
    return list(groups.values()), one_by_one


def _checked(configs) -> list[RunConfig]:
    configs = list(configs)
    wrong = [c for c in configs if not isinstance(c, RunConfig)]
    if wrong:
        raise TypeError(f"configs must be RunConfig instances, got {wrong[0]!r} ({type(wrong[0]).__name__}).")
    repeated = {c for c in configs if configs.count(c) > 1}
    if repeated:
        raise ValueError(f"Each run must be given once; repeated: {sorted(map(str, repeated))}.")
    return configs


def train_stacked(
    configs: Sequence[RunConfig],
    *,
    artifacts_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> dict[RunConfig, str]:
    """Train the runs missing from the cache, stacked where they can be, and write them to it.

    Runs already in the cache are left alone (:func:`memnotebooks.runs.run` reads them). The
    others are grouped by :func:`stacking_groups`; each group is trained as one stacked model
    and each of its runs written to the cache as :func:`memnotebooks.runs.run` would write it.
    The runs that cannot be stacked, or whose model has buffers, are named in a ``UserWarning``
    with the reason and left to be trained one by one.

    Parameters
    ----------
    configs : sequence of RunConfig
        Distinct configurations.
    artifacts_dir, data_root, device, progress
        As for :func:`memnotebooks.runs.run`.

    Returns
    -------
    dict of RunConfig to str
        The runs not trained here (still to be trained one by one), each with the reason.
    """
    configs = _checked(configs)
    if not configs:
        raise ValueError("No runs to train: configs is empty.")
    device = resolve_device(device)
    groups, one_by_one = stacking_groups([c for c in configs if not is_complete(c, artifacts_dir)])
    for group in groups:
        data = [training_data(c, data_root) for c in group]
        models = [build_run_model(c, dataset) for c, (dataset, _, _) in zip(group, data)]
        if list(models[0].buffers()):
            reason = f"model {group[0].model} has buffers (BatchNorm statistics) that change in place during training"
            one_by_one.update(dict.fromkeys(group, reason))
            continue
        results = _train_group(group, data, models, device, progress)
        # Names the stack, so that a report counts its shared wall time once.
        stack = hashlib.sha1(" ".join(sorted(c.key() for c in group)).encode()).hexdigest()[:12]
        for config, (_, labels, mask), model, result in zip(group, data, models, results):
            # Its seconds are the stack's wall time until it stopped, shared with the other runs.
            summary = {**_summary(result, device), "stacked_with": len(group), "stack": stack}
            _write_run(run_path(config, artifacts_dir), config, model, result, labels, mask, summary)
    if one_by_one:
        warnings.warn(f"{len(one_by_one)} run(s) cannot be stacked and train one by one. {_by_reason(one_by_one)}", stacklevel=2)
    return one_by_one


def _by_reason(one_by_one: dict[RunConfig, str]) -> str:
    """The runs named briefly (their key, dataset, model, degree, mode and seed), grouped by reason."""
    runs_by_reason = {}
    for c, why in one_by_one.items():
        name = f"{c.key()} ({c.model} on {c.dataset}, {c.corruption_mode} degree {c.corruption_degree}, seed {c.seed})"
        runs_by_reason.setdefault(why, []).append(name)
    return " ".join(f"Because {why}: {', '.join(names)}." for why, names in runs_by_reason.items())


class _Stack:
    """The stacked weights of the runs still training and one optimizer over them.

    Each weight is stored as a contiguous tensor whose dimensions are permuted to the layout its
    gradient comes in (:meth:`_gradient_orders`), and handed to the model as the permuted-back
    view ``params[name]`` of shape (m, ...).
    """

    def __init__(self, config: RunConfig, models: list[nn.Module], example: torch.Tensor, device: torch.device):
        self.config, self.device = config, device
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
        c = self.config
        return make_optimizer(c.optimizer, self.leaves.values(), c.learning_rate, c.momentum, self.device, c.weight_decay)

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


def _train_group(group, data, models, device, progress, eval_batch_size: int = 1024) -> list[TrainingResult]:
    """Train one group as a stack; per run its :class:`TrainingResult` (``models`` are left with
    the final weights, in evaluation mode)."""
    config = group[0]
    _check_settings(config.optimizer, config.learning_rate, config.batch_size, config.max_epochs)
    start = time.perf_counter()
    dataset = data[0][0]
    x_test, y_test = dataset.x_test.to(device), dataset.y_test.to(device)
    parts = {name: mask.to(device) for name, (_, mask) in test_parts(dataset).items()}
    # Runs share their inputs unless some replace points by noise (random_inputs): then each run
    # has its own copy, M times the training set's memory.
    shared_x = all(d.x_train is dataset.x_train for d, _, _ in data)
    x_train = (dataset.x_train if shared_x else torch.stack([d.x_train for d, _, _ in data])).to(device)
    labels = torch.stack([y for _, y, _ in data]).to(device)
    y_true = dataset.y_train.to(device)
    corrupted = [torch.from_numpy(corrupted_points(dataset.y_train.numpy(), y.numpy(), mask, c.corruption_mode)).to(device) for c, (_, y, mask) in zip(group, data)]
    stops = [StopAtTarget(c.target_accuracy) for c in group]
    rows, checkpoints, kept = [[] for _ in group], [{} for _ in group], [[] for _ in group]
    results = [None] * len(group)
    stack = _Stack(config, models, x_train[:2] if shared_x else x_train[0, :2], device)

    def record(epoch, losses) -> list[int]:
        """Append the history rows of the runs in the stack; return the positions of those that stop."""
        test_predictions = stack.predict(x_test, eval_batch_size)
        stopping = []
        for position in range(len(stack.runs)):
            m = int(stack.runs[position])
            predictions = test_predictions[position]
            evaluations = {"test": (predictions, y_test), **{name: (predictions[mask], y_test[mask]) for name, mask in parts.items()}}
            row = history_row(epoch, losses[position], train_predictions[m], labels[m], y_true, corrupted[m], evaluations)
            rows[m].append({**row, "seconds": time.perf_counter() - start})
            kept[m].append(predictions.to("cpu", torch.int16))
            if epoch in group[m].checkpoint_epochs:
                checkpoints[m][epoch] = {name: value.cpu() for name, value in stack.state(position).items()}
            if stops[m](rows[m]) or epoch == group[m].max_epochs:
                stopping.append(position)
        return stopping

    def finish(position) -> None:
        m = int(stack.runs[position])
        model = models[m]
        model.load_state_dict(stack.state(position))
        model.eval()
        full_pass = float((predict(model, x_train if shared_x else x_train[m], eval_batch_size) == labels[m]).float().mean())
        stopped = stops[m](rows[m])
        results[m] = TrainingResult(pd.DataFrame(rows[m]), checkpoints[m], stopped, None, full_pass, learned[m].cpu(), torch.stack(kept[m]))

    n = labels.shape[1]
    train_predictions = stack.predict(x_train, eval_batch_size, shared=shared_x)
    learned = [_learned_since(torch.full_like(labels[m], -1), train_predictions[m] == labels[m], 0) for m in range(len(group))]
    orders = [epoch_orders(n, c.seed) for c in group]
    bar = progress_bar(max(c.max_epochs for c in group), f"epochs, {len(group)} runs stacked", progress, leave=False)
    epoch, stopping = 0, record(0, [float("nan")] * len(group))
    while True:
        for position in stopping:
            finish(position)
        still = [p for p in range(len(stack.runs)) if p not in stopping]
        if not still:
            break
        if stopping:
            stack.keep(torch.tensor(still, device=device))
        epoch += 1
        losses = _epoch(stack, x_train, shared_x, labels, orders, train_predictions, config.batch_size)
        for m in stack.runs.tolist():
            learned[m] = _learned_since(learned[m], train_predictions[m] == labels[m], epoch)
        stopping = record(epoch, losses)
        bar.update()
        bar.set_postfix(training=len(stack.runs) - len(stopping))
    bar.close()
    return results


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


def main(argv=None) -> None:
    """Train a grid into a run cache from the command line, stacked where it can be: the entry
    point for machines without Jupyter (``python -m memnotebooks.report`` then compares the cache
    with the paper)."""
    parser = argparse.ArgumentParser(prog="python -m memnotebooks.stacked", description="Train a grid of runs (degrees x seeds) as stacked models into a run cache.")
    parser.add_argument("artifacts_dir", help="the run cache to train into (runs already there are read, not trained)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--degrees", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8], help="corruption degrees p")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--subset", type=int, default=None, help="stratified training subset (default: all)")
    parser.add_argument("--test-subset", type=int, default=None, help="stratified test subset (default: all)")
    parser.add_argument("--max-epochs", type=int, default=500)
    parser.add_argument("--data-root", default=None, help="dataset folder (default $MEMNOTEBOOKS_DATA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        config = RunConfig(dataset=args.dataset, model=args.model, subset=args.subset, test_subset=args.test_subset, max_epochs=args.max_epochs)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    start = time.perf_counter()
    grid = run_grid(config, args.degrees, args.seeds, stacked=True, artifacts_dir=args.artifacts_dir, data_root=args.data_root, device=args.device, progress=not args.no_progress)
    columns = ["corruption_degree", "seed", "epochs", "reached_target", "test_accuracy"]
    print(summary_table(grid)[columns].to_string(index=False))
    print(f"{len(grid)} runs in {args.artifacts_dir}, {time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    main()
