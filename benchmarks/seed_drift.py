"""What "same seed, same result" means: the same runs trained with one thread and with the default.

Each run is trained twice in a fresh process, with ``OMP_NUM_THREADS=1`` and with the machine's
default thread count, into separate caches; the script prints both test accuracies and epochs and
their differences. Another thread count sums floating-point numbers in another order, as another
CPU does, so the gap it prints is the size of the drift the book's computed prose absorbs.

    python benchmarks/seed_drift.py --degrees 0.4 0.8 --seeds 0 1 2
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import pandas as pd

TRAIN = """
import json, sys
from memnotebooks import runs
r = runs.run(runs.RunConfig(corruption_degree=float(sys.argv[1]), seed=int(sys.argv[2])), artifacts_dir=sys.argv[3], device="cpu", progress=False)
print(json.dumps({"test_accuracy": r.summary["test_accuracy"], "epochs": r.summary["epochs"]}))
"""


def train(degree: float, seed: int, threads: str | None, cache: str) -> dict:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    out = subprocess.run([sys.executable, "-c", TRAIN, str(degree), str(seed), cache], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degrees", type=float, nargs="+", default=[0.8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as default:
        for degree in args.degrees:
            for seed in args.seeds:
                a, b = train(degree, seed, "1", one), train(degree, seed, None, default)
                rows.append({"p": degree, "seed": seed, "test, 1 thread": a["test_accuracy"], "test, default": b["test_accuracy"],
                             "test difference": b["test_accuracy"] - a["test_accuracy"], "epochs, 1 thread": a["epochs"], "epochs, default": b["epochs"]})
    table = pd.DataFrame(rows)
    print(table.round(3).to_string(index=False))
    print(f"largest test-accuracy difference: {table['test difference'].abs().max():.3f} (default threads: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
