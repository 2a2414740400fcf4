"""Runs per hour of a grid trained as one stacked model against the same runs one by one.

    python benchmarks/grid_bench.py [--dataset digits] [--model cnn] [--subset N] [--epochs 5] [--runs 1 5 15] [--device auto] [--data-root DIR]

The grid of M runs differs in seed and corruption degree (0.2, 0.4, 0.6, 0.8 in turn), as a
chapter's grid does. Each run trains exactly ``--epochs`` epochs: with a corruption degree of at
least 0.2 none reaches the target accuracy that soon (checked: the script fails if one stops
early). Both ways write the runs to a temporary cache, as ``run_grid`` does:

- stacked: :func:`memnotebooks.runs.train_missing_stacked` (:func:`memnotebooks.stacked.train_stacked` on one stack of M runs);
- one by one: :func:`memnotebooks.runs.run` for each run; the time for M runs is the sum of the
  first M runs' times (each is measured once, for the largest M).

Times are wall times of whole runs (loading the data, building the models, the epoch-0
evaluation, writing the cache included). Runs per hour count runs of ``--epochs`` epochs; a run
trained to its target takes more epochs, which divides both columns alike and leaves the ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from memnotebooks import runs
from memnotebooks.data import DATASETS
from memnotebooks.devices import describe_device, resolve_device
from memnotebooks.runs import RunConfig

DEGREES = (0.2, 0.4, 0.6, 0.8)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def grid(args, n_runs: int) -> list[RunConfig]:
    base = RunConfig(dataset=args.dataset, model=args.model, subset=args.subset, max_epochs=args.epochs)
    return [base.replace(seed=i, corruption_degree=DEGREES[i % len(DEGREES)]) for i in range(n_runs)]


def timed(train, device) -> float:
    start = time.perf_counter()
    train()
    synchronize(device)
    return time.perf_counter() - start


def check_epochs(configs, cache: Path, epochs: int) -> None:
    trained = [json.loads((runs.run_path(c, cache) / "summary.json").read_text())["epochs"] for c in configs]
    if any(e != epochs for e in trained):
        raise SystemExit(f"runs trained {trained} epochs, not {epochs} each: lower --epochs so that none reaches its target")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=DATASETS)
    parser.add_argument("--model", default="cnn", choices=("mlp", "cnn", "alexnet"), help="resnet18 cannot be stacked (BatchNorm)")
    parser.add_argument("--subset", type=int, default=None, help="stratified training subset (default: the whole set)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 5, 15], help="grid sizes M")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    options = {"data_root": args.data_root, "device": device, "progress": False}
    largest = grid(args, max(args.runs))
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        # Warm up (data loading, thread pools, kernel selection) so that neither way pays it.
        warm = largest[0].replace(max_epochs=1)
        runs.train_missing_stacked([warm, warm.replace(seed=99)], artifacts_dir=cache / "warm", **options)
        runs.run(warm.replace(seed=98), artifacts_dir=cache / "warm", **options)
        one_by_one = [timed(lambda c=c: runs.run(c, artifacts_dir=cache / "single", **options), device) for c in largest]
        check_epochs(largest, cache / "single", args.epochs)
        rows = []
        for m in args.runs:
            folder = cache / f"stacked_{m}"
            seconds = timed(lambda: runs.train_missing_stacked(grid(args, m), artifacts_dir=folder, **options), device)
            check_epochs(grid(args, m), folder, args.epochs)
            single = sum(one_by_one[:m])
            rows.append(
                {
                    "runs": m,
                    "stacked_s": seconds,
                    "one_by_one_s": single,
                    "stacked_runs_per_hour": 3600 * m / seconds,
                    "one_by_one_runs_per_hour": 3600 * m / single,
                    "speed_up": single / seconds,
                }
            )
    subset = f"{args.subset} " if args.subset else ""
    print(f"device: {describe_device(device)}; torch {torch.__version__}; {args.model} on {subset}{args.dataset}, {args.epochs} epochs a run")
    print(pd.DataFrame(rows).round(2).to_string(index=False))
    print(f"runs per hour count runs of {args.epochs} epochs; a run of E epochs to its target: multiply by {args.epochs}/E")


if __name__ == "__main__":
    main()
