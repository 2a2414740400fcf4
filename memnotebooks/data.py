"""Datasets as in-memory tensors, normalized as the paper does.

Every dataset is read through torchvision's dataset classes and on-disk layouts
(``root/MNIST/raw``, ``root/FashionMNIST/raw``, ``root/cifar-10-batches-py``, ...) and
returned as one :class:`Dataset` of float32 tensors of shape ``(n, channels, height, width)``.
Pixels are scaled to ``[0, 1]`` and normalized with mean 0.5 and std 0.5 per channel, which is
exactly ``ToTensor()`` followed by ``Normalize(0.5, 0.5)`` but done once, in bulk.

The embedded default, ``digits``, is scikit-learn's bundled 8x8 digits set, so every chapter runs
without any download.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torchvision import datasets as tv_datasets
from torchvision.datasets.folder import default_loader

from .checks import integer, one_of
from .store import atomic_write

__all__ = [
    "DATASETS",
    "DatasetEntry",
    "VALIDATION_FRACTION",
    "VALIDATION_SEED",
    "Dataset",
    "DatasetNotFoundError",
    "default_root",
    "load_dataset",
    "validation_split",
]

@dataclass(frozen=True)
class DatasetEntry:
    """What the package knows of one dataset: one entry of :data:`DATASETS`.

    Attributes
    ----------
    load : callable
        ``load(root, download)`` to ``(x_train, y_train, x_test, y_test, classes)``, images
        normalized as :func:`load_dataset` returns them.
    n_classes : int
    target_accuracy : float
        The training accuracy on the given labels at which the paper stops training on it
        (1.0 for a set the paper did not use).
    paper_name : str or None
        Its name in the paper's table, ``None`` if the paper did not use it.
    """

    load: Callable
    n_classes: int
    target_accuracy: float
    paper_name: str | None = None


DATASETS = {
    "digits": DatasetEntry(lambda root, download: _load_digits(), 10, 1.0),
    "fashion_mnist": DatasetEntry(lambda root, download: _load_idx(tv_datasets.FashionMNIST, root, download), 10, 0.991, "FashionMNIST"),
    "mnist": DatasetEntry(lambda root, download: _load_idx(tv_datasets.MNIST, root, download), 10, 0.999, "MNIST"),
    "cifar10": DatasetEntry(lambda root, download: _load_cifar(tv_datasets.CIFAR10, root, download), 10, 1.0, "CIFAR10"),
    "cifar100": DatasetEntry(lambda root, download: _load_cifar(tv_datasets.CIFAR100, root, download), 100, 0.991, "CIFAR100"),
    "tiny_imagenet": DatasetEntry(lambda root, download: _load_tiny_imagenet(root), 200, 0.999, "TinyImageNet"),
}
"""The datasets :func:`load_dataset` reads, by name; adding one is one entry here."""

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the gzipped IDX files."""

_FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
# Digits: a fixed split so that every chapter and every seed sees the same train/test sets.
_DIGITS_TEST_FRACTION = 0.25
_SPLIT_SEED = 0


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for."""


@dataclass(frozen=True)
class Dataset:
    """A classification dataset held in memory.

    Attributes
    ----------
    name : str
        One of :data:`DATASETS`.
    x_train : Tensor of shape (n_train, channels, height, width), float32
        Normalized training images, values in ``[-1, 1]``.
    y_train : Tensor of shape (n_train,), int64
        True training labels, in ``[0, n_classes)``.
    x_test : Tensor of shape (n_test, channels, height, width), float32
    y_test : Tensor of shape (n_test,), int64
    classes : tuple of str
        Class names, indexed by label.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one image, ``(channels, height, width)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, n_classes={self.n_classes})"
        )


VALIDATION_FRACTION = 0.2
"""Share of the test set used to choose (a layer, an epoch); the relabel protocol's 20/80 split."""

VALIDATION_SEED = 0
"""Seed of the stratified validation split."""


def validation_split(y_test, fraction: float = VALIDATION_FRACTION, seed: int = VALIDATION_SEED) -> np.ndarray:
    """Boolean mask (n_test,): the stratified validation part of the test set (fixed seed).

    What is chosen on this part (a layer, an epoch) is scored on the rest, the *holdout*.
    """
    y_test = np.asarray(y_test)
    validation, _ = train_test_split(np.arange(len(y_test)), train_size=fraction, stratify=y_test, random_state=seed)
    mask = np.zeros(len(y_test), dtype=bool)
    mask[validation] = True
    return mask


def default_root() -> Path:
    """Where datasets live: ``$MEMNOTEBOOKS_DATA``, else ``~/.cache/memnotebooks/datasets``."""
    return Path(os.environ.get("MEMNOTEBOOKS_DATA", Path.home() / ".cache" / "memnotebooks" / "datasets"))


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    download: bool = False,
) -> Dataset:
    """Load a dataset as normalized tensors.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    root : path, optional
        Folder holding the datasets in torchvision's layouts; default :func:`default_root`.
        Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` package put it and
        unpacked into ``root/FashionMNIST/raw`` on first use.
    subset, test_subset : int, optional
        Keep a stratified random subset of this many training (test) points, for CPU-sized runs.
    seed : int
        Seed of the subsets.
    download : bool
        Let torchvision download a missing MNIST, Fashion-MNIST or CIFAR set. Off by default:
        a missing dataset raises :class:`DatasetNotFoundError` saying where it was looked for.

    Returns
    -------
    Dataset
    """
    entry = DATASETS[one_of("dataset", name, DATASETS)]
    root = Path(root) if root is not None else default_root()
    x_train, y_train, x_test, y_test, classes = entry.load(root, download)
    if subset is not None:
        x_train, y_train = _stratified_subset(x_train, y_train, subset, seed, "subset")
    if test_subset is not None:
        x_test, y_test = _stratified_subset(x_test, y_test, test_subset, seed, "test_subset")
    return Dataset(name, x_train, y_train, x_test, y_test, tuple(classes))


def _normalize(images: torch.Tensor, max_value: float = 255.0) -> torch.Tensor:
    """Scale (n, c, h, w) pixel values to [0, 1], then normalize with mean 0.5, std 0.5."""
    return images.to(torch.float32).div_(max_value).sub_(0.5).div_(0.5)


def _stratified_subset(x, y, size, seed, what):
    n = len(y)
    size = integer(f"{what} (for this dataset)", size, low=1, high=n)
    if size == n:
        return x, y
    index = np.arange(n)
    keep, _ = train_test_split(index, train_size=int(size), stratify=y.numpy(), random_state=seed)
    keep = torch.from_numpy(np.sort(keep))
    return x[keep], y[keep]


def _load_digits():
    bunch = load_digits()
    images = torch.from_numpy(bunch.images[:, None].astype(np.float32))  # (1797, 1, 8, 8), 0..16
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train, test = train_test_split(
        np.arange(len(labels)), test_size=_DIGITS_TEST_FRACTION, stratify=labels.numpy(), random_state=_SPLIT_SEED
    )
    x = _normalize(images, max_value=16.0)
    return x[train], labels[train], x[test], labels[test], [str(c) for c in bunch.target_names]


def _missing(name: str, where: Path, how: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{name} was not found in {where}. {how}")


def _unpack_debian_fashion_mnist(raw: Path) -> None:
    """Unzip Debian's Fashion-MNIST ``.gz`` files into torchvision's ``raw/`` folder, atomically."""
    if not DEBIAN_FASHION_MNIST.is_dir():
        return
    for name in _FASHION_MNIST_FILES:
        source, target = DEBIAN_FASHION_MNIST / f"{name}.gz", raw / name
        if target.exists() or not source.exists():
            continue
        atomic_write(target, functools.partial(_gunzip, source))


def _gunzip(source: Path, target: Path) -> None:
    with gzip.open(source, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def _load_idx(dataset_class, root: Path, download: bool):
    """MNIST and Fashion-MNIST: IDX files in ``root/<ClassName>/raw``."""
    if dataset_class is tv_datasets.FashionMNIST:
        _unpack_debian_fashion_mnist(root / "FashionMNIST" / "raw")
        how = (
            "Install Debian's package (apt-get install dataset-fashion-mnist) or pass download=True "
            "(needs the internet)."
        )
    else:
        how = "Copy the four unzipped IDX files there, or pass download=True (needs the internet)."
    try:
        splits = [dataset_class(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as error:
        raise _missing(dataset_class.__name__, root / dataset_class.__name__ / "raw", how) from error
    (train, test) = splits
    return (
        _normalize(train.data[:, None]),
        train.targets.to(torch.int64),
        _normalize(test.data[:, None]),
        test.targets.to(torch.int64),
        list(train.classes),
    )


def _load_cifar(dataset_class, root: Path, download: bool):
    """CIFAR-10/100: the python pickles in ``root/cifar-10-batches-py`` / ``root/cifar-100-python``."""
    try:
        splits = [dataset_class(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as error:
        how = f"Unpack {dataset_class.filename} from {dataset_class.url} there, or pass download=True."
        raise _missing(dataset_class.__name__, root / dataset_class.base_folder, how) from error
    (train, test) = splits

    def images(split):  # (n, 32, 32, 3) uint8 -> (n, 3, 32, 32)
        return _normalize(torch.from_numpy(split.data).permute(0, 3, 1, 2))

    def labels(split):
        return torch.as_tensor(split.targets, dtype=torch.int64)

    return images(train), labels(train), images(test), labels(test), list(train.classes)


def _read_rgb(paths) -> torch.Tensor:
    """Images as (n, 3, h, w) uint8, read by torchvision's ImageFolder loader (PIL, RGB)."""
    return torch.from_numpy(np.stack([np.asarray(default_loader(str(path))) for path in paths])).permute(0, 3, 1, 2)


def _load_tiny_imagenet(root: Path):
    """Tiny-ImageNet-200: ``train/<wnid>/images/*.JPEG`` (an ImageFolder) and the labelled ``val/``.

    The official test split has no labels, so the validation split serves as the test set.
    """
    base = root / "tiny-imagenet-200"
    annotations = base / "val" / "val_annotations.txt"
    if not (base / "train").is_dir() or not annotations.is_file():
        raise _missing("Tiny-ImageNet", base, f"Download {_TINY_IMAGENET_URL} and unzip it into {root}.")
    train = tv_datasets.ImageFolder(str(base / "train"))
    paths, targets = zip(*train.samples)
    val = [line.split("\t")[:2] for line in annotations.read_text().splitlines() if line.strip()]
    val_paths = [base / "val" / "images" / filename for filename, _ in val]
    val_targets = [train.class_to_idx[wnid] for _, wnid in val]
    words = base / "words.txt"
    names = dict(line.split("\t", 1) for line in words.read_text().splitlines()) if words.is_file() else {}
    classes = [names.get(wnid, wnid).strip() for wnid in train.classes]
    return (
        _normalize(_read_rgb(paths)),
        torch.as_tensor(targets, dtype=torch.int64),
        _normalize(_read_rgb(val_paths)),
        torch.as_tensor(val_targets, dtype=torch.int64),
        classes,
    )
