import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets as tv_datasets
from torchvision import transforms

from memnotebooks.data import DATASETS, DEBIAN_FASHION_MNIST, DatasetNotFoundError, load_dataset, validation_split

TO_TENSOR_NORMALIZED = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])


def write_idx(path, array):
    """An IDX file as MNIST ships it: magic (0, 0, type 0x08, ndim), big-endian sizes, bytes."""
    array = np.asarray(array, dtype=np.uint8)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def fake_images(n, *shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def test_digits_is_a_stratified_normalized_split():
    data = load_dataset("digits")
    assert data.x_train.shape == (1347, 1, 8, 8) and data.x_test.shape == (450, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.x_train.min() == -1 and data.x_train.max() == 1
    assert data.n_classes == 10 and data.input_shape == (1, 8, 8)
    train_share = torch.bincount(data.y_train) / len(data.y_train)
    test_share = torch.bincount(data.y_test) / len(data.y_test)
    assert torch.allclose(train_share, test_share, atol=0.01)
    # The split is fixed: the same on every call.
    assert torch.equal(load_dataset("digits").x_test, data.x_test)


def test_subset_is_stratified_seeded_and_validated():
    a = load_dataset("digits", subset=500, test_subset=100, seed=1)
    b = load_dataset("digits", subset=500, test_subset=100, seed=1)
    c = load_dataset("digits", subset=500, seed=2)
    assert len(a.y_train) == 500 and len(a.y_test) == 100
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    assert torch.bincount(a.y_train).min() >= 48
    with pytest.raises(ValueError, match=r"subset \(for this dataset\) must be an integer in \[1, 1347\], got 5000"):
        load_dataset("digits", subset=5000)


def test_unknown_dataset_lists_the_names():
    with pytest.raises(ValueError, match="'imagenet'.*" + ", ".join(DATASETS)):
        load_dataset("imagenet")


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("cifar10", "cifar-10-batches-py"),
                                          ("cifar100", "cifar-100-python"), ("tiny_imagenet", "tiny-imagenet-200")])
def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, name, folder):
    with pytest.raises(DatasetNotFoundError, match=rf"not found in {tmp_path}/{folder}.*(download|Download|Copy|Unpack)"):
        load_dataset(name, tmp_path)
    assert not any(tmp_path.rglob("*.gz")) and not any(tmp_path.rglob("*.zip"))  # nothing was downloaded


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(),
    reason=f"Debian's dataset-fashion-mnist package is not installed ({DEBIAN_FASHION_MNIST} is missing); .ci/run installs it",
)
def test_real_fashion_mnist_from_debians_package(tmp_path):
    data = load_dataset("fashion_mnist", tmp_path)
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(data.y_train), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(data.y_test), torch.full((10,), 1000))
    assert data.classes[0] == "T-shirt/top"
    assert sorted(p.name for p in (tmp_path / "FashionMNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
    ]
    # Bulk normalization equals torchvision's per-sample ToTensor + Normalize(0.5, 0.5).
    dataset = tv_datasets.FashionMNIST(str(tmp_path), train=False, transform=TO_TENSOR_NORMALIZED)
    torch.testing.assert_close(dataset[17][0], data.x_test[17])


def test_mnist_reads_idx_files_in_torchvisions_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images, labels = fake_images(30, 28, 28), np.arange(30) % 10
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    data = load_dataset("mnist", tmp_path)
    assert data.x_train.shape == (30, 1, 28, 28) and data.classes[3] == "3 - three"
    torch.testing.assert_close(data.x_train[5, 0], torch.from_numpy(images[5]).float() / 127.5 - 1)
    assert torch.equal(data.y_test, torch.from_numpy(labels))


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pin_checksums(monkeypatch, dataset_class, folder):
    """Our tiny files have other checksums than the real ones: give torchvision theirs."""
    for attribute in ("train_list", "test_list"):
        pinned = [[name, _md5(folder / name)] for name, _ in getattr(dataset_class, attribute)]
        monkeypatch.setattr(dataset_class, attribute, pinned)
    meta = dict(dataset_class.meta, md5=_md5(folder / dataset_class.meta["filename"]))
    monkeypatch.setattr(dataset_class, "meta", meta)


def test_cifar10_reads_python_pickles(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = fake_images(12, 3, 32, 32)  # CIFAR stores rows of 3072 bytes, channel-major
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": images.reshape(12, -1), "labels": list(range(10)) + [0, 1]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    _pin_checksums(monkeypatch, tv_datasets.CIFAR10, folder)
    data = load_dataset("cifar10", tmp_path)
    assert data.x_train.shape == (60, 3, 32, 32) and data.x_test.shape == (12, 3, 32, 32)
    torch.testing.assert_close(data.x_test[4], torch.from_numpy(images[4]).float() / 127.5 - 1)
    assert data.classes[9] == "class9" and data.y_test.tolist()[-2:] == [0, 1]


def test_cifar100_reads_python_pickles(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = fake_images(200, 3, 32, 32)
    for name in ("train", "test"):
        with open(folder / name, "wb") as f:
            pickle.dump({"data": images.reshape(200, -1), "fine_labels": [i % 100 for i in range(200)]}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"fine{i}" for i in range(100)]}, f)
    _pin_checksums(monkeypatch, tv_datasets.CIFAR100, folder)
    data = load_dataset("cifar100", tmp_path, subset=100)
    assert data.n_classes == 100 and data.x_train.shape == (100, 3, 32, 32)
    assert torch.equal(torch.bincount(data.y_train), torch.ones(100, dtype=torch.int64))


def test_tiny_imagenet_reads_its_folders(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    pixels = {}
    for k, wnid in enumerate(wnids):
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(3):
            pixels[wnid, i] = np.full((64, 64, 3), 40 * k + 10 * i, dtype=np.uint8)
            Image.fromarray(pixels[wnid, i]).save(folder / f"{wnid}_{i}.JPEG", quality=100)
    (base / "val" / "images").mkdir(parents=True)
    lines = []
    for i, wnid in enumerate(["n01629819", "n01443537"]):
        Image.fromarray(np.full((64, 64, 3), 200, dtype=np.uint8)).save(base / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n")
    data = load_dataset("tiny_imagenet", tmp_path)
    assert data.x_train.shape == (6, 3, 64, 64) and data.x_test.shape == (2, 3, 64, 64)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1] and data.y_test.tolist() == [1, 0]
    assert data.classes == ("goldfish, Carassius auratus", "European fire salamander")
    assert abs(float(data.x_train[4].mean()) - (50 / 127.5 - 1)) < 0.02


def test_validation_split_is_stratified_and_fixed():
    y = np.repeat(np.arange(10), 50)
    mask = validation_split(y)
    assert mask.sum() == 100 and np.all(np.bincount(y[mask]) == 10)
    np.testing.assert_array_equal(mask, validation_split(y))
