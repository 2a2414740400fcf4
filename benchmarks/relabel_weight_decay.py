"""The relabel/early-stopped rows of a weight-decayed run, with the fine-tuning's weight decay (the fix of issue 21)
and without it (the bug: relabel rebuilt train()'s keywords by hand and dropped it)."""
import shutil, sys, tempfile, time
from pathlib import Path
import pandas as pd
from memnotebooks import relabel, runs

weight_decay = float(sys.argv[1]) if len(sys.argv) > 1 else 5e-4
methods = ["early_stopped", "masc_corrupted", "masc_crossfit"]
rows = []
with tempfile.TemporaryDirectory() as tmp:
    fixed, buggy = Path(tmp, "fixed"), Path(tmp, "buggy")
    for seed in (0, 1, 2):
        config = runs.RunConfig(dataset="digits", model="mlp", corruption_degree=0.4, seed=seed, max_epochs=300, weight_decay=weight_decay)
        run_ = runs.run(config, artifacts_dir=fixed, device="cpu", progress=False)
        shutil.copytree(run_.path, buggy / run_.path.name)
        start = time.perf_counter()
        table = relabel.relabel_table(run_, methods)
        rows.append(table.assign(version="fixed (run's weight decay)"))
        original = runs.RunConfig.training_settings
        runs.RunConfig.training_settings = lambda self: {**original(self), "weight_decay": 0.0}
        try:
            table = relabel.relabel_table(runs.run(config, artifacts_dir=buggy, device="cpu"), methods)
        finally:
            runs.RunConfig.training_settings = original
        rows.append(table.assign(version="bug (no weight decay)"))
        print(f"seed {seed} done in {time.perf_counter() - start:.0f} s", flush=True)
out = pd.concat(rows)
keep = [c for c in ["version", "seed", "method", "accuracy_before", "accuracy_after", "accuracy", "epochs"] if c in out]
print(out.columns.tolist())
print(out[keep].to_string(index=False))
summary = out.groupby(["method", "version"]).agg(after=("accuracy_after", "mean") if "accuracy_after" in out else ("accuracy", "mean"))
print(summary.to_string())
