"""Retrain cached runs (of artifacts/, run from the repository root) with the current code into a fresh cache; compare bitwise."""
import sys, tempfile, time
import pandas as pd, torch, numpy as np
from memnotebooks import runs
cases = [runs.RunConfig(dataset="digits", model="mlp", corruption_degree=p, seed=s, max_epochs=300) for p, s in ((0.4, 0), (0.8, 1))]
cases.append(runs.RunConfig(dataset="digits", model="mlp", corruption_degree=0.8, seed=0, max_epochs=300, width=0.5, checkpoint_epochs=(0, 1, 2, 5, 10, 20, 40)))
with tempfile.TemporaryDirectory() as tmp:
    for c in cases:
        if not runs.is_complete(c, "artifacts"):
            print("not cached:", c); continue
        old = runs.run(c, artifacts_dir="artifacts", device="cpu")
        start = time.perf_counter()
        new = runs.run(c, artifacts_dir=tmp, device="cpu", progress=False)
        h_old, h_new = old.history.drop(columns="seconds"), new.history.drop(columns="seconds")
        same_history = h_old.equals(h_new)
        same_weights = all(torch.equal(a, b) for a, b in zip(old.model.state_dict().values(), new.model.state_dict().values()))
        same_preds = np.array_equal(old.test_predictions, new.test_predictions) and np.array_equal(old.learned_epoch, new.learned_epoch)
        print(f"p={c.corruption_degree} seed={c.seed} width={c.width}: epochs {old.summary['epochs']} vs {new.summary['epochs']}, history equal {same_history}, weights bitwise {same_weights}, per-example records equal {same_preds}, {time.perf_counter()-start:.0f} s", flush=True)
