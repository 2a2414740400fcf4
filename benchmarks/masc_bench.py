"""MASC and activation extraction against the published code's way, timed in one run.

    python benchmarks/masc_bench.py [--n 20000] [--dims 250 1024] [--rank-fractions 0.05 0.02 0.005]
                                    [--device auto] [--images 2000]

1. MASC: synthetic class-structured ReLU activations (n points, d features, 10 classes) whose
   classes have ``rank_fraction * d`` latent factors, which sets the subspace dimension k (about
   8 x rank after the ReLU). The default fractions span what trained layers show: k/d of about
   0.4, 0.2 and 0.02 at d = 1024, against 0.002-0.5 measured on the hidden layers of the book's
   digits MLP and Fashion-MNIST CNN (most memorizing layers 0.05-0.2). Our MASC (torch, float32
   activations) and the published algorithm (numpy float64, np.cov of the stacked ±X, eigh,
   angles in batches of 100 through ``diag(x @ (x @ P.T).T)``, see ``tests/published_masc.py``)
   are fitted on n points and predict n others. Prints the times, the speed-up ratios and the
   agreement of predictions. Ours predicts with n d min(k, d - k) multiply-adds per class where
   the published algorithm needs n d^2, so the predict ratio grows as k/d moves away from 1/2.
   Both fits are dominated by the float64 eigendecomposition of each class's d x d second
   moment, which any exact MASC must do: the column ``eigh_s`` times those ten ``eigh`` calls
   alone, and ``fit_predict_ceiling`` is the published fit + predict time over it, the largest
   fit + predict ratio such a MASC could reach on this machine even if everything else were free.
2. Activation extraction of every probe layer of the paper's CNN on Fashion-MNIST test images:
   ours (normalize the whole set once, then batches through torchvision's feature extractor)
   against the published way (a DataLoader with batch_size=1 and per-sample ToTensor/Normalize,
   every layer's output copied with ``.clone()`` in each forward pass).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import published_masc as published  # noqa: E402

from memnotebooks.activations import extract_activations  # noqa: E402
from memnotebooks.data import default_root, load_dataset  # noqa: E402
from memnotebooks.masc import MASC  # noqa: E402
from memnotebooks.models import build_model  # noqa: E402
from memnotebooks.devices import resolve_device  # noqa: E402


def timed(function, *args, synchronize=False):
    start = time.perf_counter()
    result = function(*args)
    if synchronize:
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def eigh_floor(X: np.ndarray, y: np.ndarray, device: torch.device) -> float:
    """Seconds for one float64 ``eigh`` of each class's d x d second moment X_c^T X_c."""
    total = 0.0
    for c in np.unique(y):
        points = torch.from_numpy(X[y == c]).to(device, torch.float64)
        gram = points.T @ points
        total += timed(torch.linalg.eigh, gram, synchronize=device.type == "cuda")[1]
    return total


def bench_masc(n: int, d: int, rank_fraction: float, noise: float, device: torch.device) -> dict:
    rank = max(1, round(rank_fraction * d))
    X, y = published.synthetic_relu_activations(2 * n, d, rank=rank, seed=0, noise=noise)
    X_fit, y_fit, X_eval = X[:n], y[:n], X[n:]
    on_gpu = device.type == "cuda"
    X_fit_t, X_eval_t = torch.from_numpy(X_fit).to(device), torch.from_numpy(X_eval).to(device)
    if on_gpu:  # warm up CUDA kernels and cuSOLVER
        MASC().fit(X_fit_t[:2000], y_fit[:2000]).predict(X_eval_t[:2000])
    ours, fit_ours = timed(lambda: MASC().fit(X_fit_t, y_fit), synchronize=on_gpu)
    pred_ours, predict_ours = timed(ours.predict, X_eval_t, synchronize=on_gpu)
    (classes, projections, ks), fit_pub = timed(published.fit, X_fit, y_fit)
    pred_pub, predict_pub = timed(published.predict, X_eval, classes, projections)
    floor = eigh_floor(X_fit, y_fit, device)
    return {
        "d": d,
        "rank": rank,
        "k_over_d": float(ours.n_components_.mean() / d),
        "fit_ours_s": fit_ours,
        "fit_published_s": fit_pub,
        "predict_ours_s": predict_ours,
        "predict_published_s": predict_pub,
        "predict_ratio": predict_pub / predict_ours,
        "fit_predict_ratio": (fit_pub + predict_pub) / (fit_ours + predict_ours),
        "eigh_s": floor,
        "fit_predict_ceiling": (fit_pub + predict_pub) / floor,
        "agreement": float(np.mean(pred_ours == pred_pub)),
        "max_k_difference": int(np.abs(ours.n_components_ - ks).max()),
    }


def published_extraction(model, dataset, layers, device):
    """The published code's way: batch_size=1, per-sample transforms, a clone of every layer."""
    outputs = {name: [] for name in layers}
    hooks = [
        getattr(model, name).register_forward_hook(lambda _m, _i, out, name=name: outputs[name].append(out.clone()))
        for name in layers
    ]
    with torch.no_grad():
        for image, _ in DataLoader(dataset, batch_size=1, shuffle=False):
            model(image.to(device))
    for hook in hooks:
        hook.remove()
    return {name: torch.cat(chunks).flatten(1).cpu() for name, chunks in outputs.items()}


def bench_extraction(n_images: int, device: torch.device, root) -> dict:
    data = load_dataset("fashion_mnist", root)  # also unpacks Debian's files on first use
    torch.manual_seed(0)
    model = build_model("cnn", data.input_shape, data.n_classes).to(device).eval()
    # Hooks see module outputs: the hidden blocks and the flatten; the input needs none.
    layers = [name for name in model.probe_layers if name != "input"]
    per_sample = datasets.FashionMNIST(
        str(root), train=False, transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])
    )
    per_sample = Subset(per_sample, range(n_images))
    raw = datasets.FashionMNIST(str(root), train=False).data[:n_images]
    on_gpu = device.type == "cuda"

    def ours():
        x = raw[:, None].to(torch.float32).div(255).sub(0.5).div(0.5)  # the bulk normalization of data.py
        return extract_activations(model, x, layers, device=device)

    if on_gpu:
        ours()
    mine, ours_s = timed(ours, synchronize=on_gpu)
    theirs, published_s = timed(published_extraction, model, per_sample, layers, device, synchronize=on_gpu)
    for name in layers:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-4, atol=1e-4)
    return {"images": n_images, "ours_s": ours_s, "published_s": published_s, "ratio": published_s / ours_s}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="points to fit and to predict")
    parser.add_argument("--dims", type=int, nargs="+", default=[250, 1024])
    parser.add_argument(
        "--rank-fractions", type=float, nargs="+", default=[0.05, 0.02, 0.005],
        help="latent factors per class as a fraction of d; k/d is about 8 times this (0.4, 0.2, 0.02 at d=1024)",
    )
    parser.add_argument("--noise", type=float, default=0.03, help="isotropic noise of the synthetic classes")
    parser.add_argument("--images", type=int, default=2000, help="test images for the extraction benchmark")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; {platform.python_version()}")
    masc = pd.DataFrame([bench_masc(args.n, d, fraction, args.noise, device) for fraction in args.rank_fractions for d in args.dims])
    print(f"\nMASC, ours vs the published algorithm (fit on n={args.n}, predict n others, 10 classes):")
    print(masc.round(4).to_string(index=False))
    extraction = bench_extraction(args.images, device, args.data_root or default_root())
    print("\nActivation extraction (CNN, Fashion-MNIST, all probe layers), ours vs batch_size=1 + clones:")
    print(pd.DataFrame([extraction]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
