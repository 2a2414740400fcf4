"""Our training loop against a plain DataLoader loop, timed in one run.

    python benchmarks/training_bench.py [--dataset fashion_mnist] [--model cnn] [--subset 10000] [--epochs 3] [--device auto]

Both train the same model (same initial weights, optimizer and batch size: the paper's) for the
same number of epochs on the same data:

- ours: :func:`memnotebooks.training.train` (the whole set stays on the device; each batch is an
  index into it), given no test set;
- plain: ``DataLoader(dataset, batch_size, shuffle=True)`` over torchvision's dataset class
  with per-sample ``ToTensor`` and ``Normalize``, each batch copied to the device, as the
  published code trains.

Prints seconds per epoch for each and their ratio. Ours is timed from its history (epochs 1 to
N, after the initial model's evaluation); its per-epoch bookkeeping (running accuracies on the
clean and corrupted subsets) is included.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from memnotebooks.data import default_root, load_dataset
from memnotebooks.models import build_model
from memnotebooks.devices import resolve_device
from memnotebooks.paper import paper_settings
from memnotebooks.training import StopAtTarget, train

TORCHVISION_CLASSES = {"fashion_mnist": datasets.FashionMNIST, "mnist": datasets.MNIST}


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(model, dataset, settings, epochs, device):
    loader = DataLoader(dataset, batch_size=settings["batch_size"], shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])
    loss_fn = nn.CrossEntropyLoss()
    model.to(device).train()
    for _ in range(epochs):
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    synchronize(device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist", choices=sorted(TORCHVISION_CLASSES))
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--subset", type=int, default=10000, help="training images (the first N)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    root = args.data_root or default_root()
    data = load_dataset(args.dataset, root)
    x, y = data.x_train[: args.subset], data.y_train[: args.subset]
    settings = paper_settings(args.model, args.dataset)
    if settings["optimizer"] != "adam":
        raise SystemExit(f"this benchmark's plain loop uses Adam; {args.model} trains with {settings['optimizer']}")
    per_sample = Subset(
        TORCHVISION_CLASSES[args.dataset](
            str(root), train=True, transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])
        ),
        range(args.subset),
    )

    def fresh_model():
        torch.manual_seed(0)
        return build_model(args.model, data.input_shape, data.n_classes)

    # Warm up (thread pools, kernel selection) so that neither loop pays it inside its timing.
    plain_loop(fresh_model(), Subset(per_sample, range(settings["batch_size"] * 4)), settings, 1, device)
    result = train(
        fresh_model(), x, y, optimizer="adam", learning_rate=settings["learning_rate"], batch_size=settings["batch_size"],
        stop=StopAtTarget(1.0), max_epochs=args.epochs, device=device, progress=False,
    )
    # Epochs 1..N only: epoch 0 is the initial model's evaluation, which the plain loop lacks.
    seconds = result.history["seconds"]
    ours = (seconds.iloc[-1] - seconds.iloc[0]) / args.epochs
    start = time.perf_counter()
    plain_loop(fresh_model(), per_sample, settings, args.epochs, device)
    plain = (time.perf_counter() - start) / args.epochs
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; {args.model} on {args.subset} {args.dataset} images, batch {settings['batch_size']}")
    print(pd.DataFrame([{"ours_s_per_epoch": ours, "dataloader_s_per_epoch": plain, "ratio": plain / ours}]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
