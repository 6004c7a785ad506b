"""Data sets read from the user's files in their original formats: MNIST's IDX files (both namings,
plain or gzip, torchvision's folders) and CIFAR-10's python batches. A missing or corrupt file is a
ConfigError naming the file and what was expected."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import torch

from ...config import ConfigError, bad_value
from .dataset import CIFAR_MEAN, CIFAR_STD, MNIST_MEAN, MNIST_STD, Dataset

__all__ = ["read_idx", "MNIST_DIRS", "mnist_names", "mnist_folder", "mnist_dir", "cifar_dir"]


def _find(directory: str, names: list[str], what: str) -> str:
    for n in names:
        p = os.path.join(directory, n)
        if os.path.isfile(p):
            return p
    raise ConfigError(f"missing {what}: none of {names} found in {directory!r}")


def read_idx(path: str, expect_ndim: int) -> np.ndarray:
    """An IDX file (unsigned bytes, big-endian header), gzipped or not, as a uint8 array."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ConfigError(f"corrupt file {path!r}: cannot read it ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expect_ndim:
        raise ConfigError(f"corrupt file {path!r}: expected an IDX header 00 00 08 {expect_ndim:02x} "
                          f"(unsigned bytes, {expect_ndim} dims), got {raw[:4].hex(' ') or 'nothing'}")
    head = 4 + 4 * expect_ndim
    if len(raw) < head:
        raise ConfigError(f"corrupt file {path!r}: truncated header")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(expect_ndim)]
    size = int(np.prod(dims))
    if len(raw) - head != size:
        raise ConfigError(f"corrupt file {path!r}: header says {dims} = {size} bytes of data, "
                          f"file has {len(raw) - head}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


MNIST_DIRS = ("", os.path.join("MNIST", "raw"), "raw")  #: as given, torchvision's root, its raw folder


def mnist_names(prefix: str, kind: str, ndim: int) -> list[str]:
    """Both namings found in the wild (``train-images-idx3-ubyte``, LeCun's site and torchvision;
    ``train-images.idx3-ubyte``, many mirrors), each plain or gzipped."""
    base = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [n + ext for n in base for ext in ("", ".gz")]


def mnist_folder(directory: str) -> str:
    """The folder holding the IDX files: DIR itself, or torchvision's DIR/MNIST/raw or DIR/raw."""
    for sub in MNIST_DIRS:
        d = os.path.join(directory, sub) if sub else directory
        if os.path.isdir(d) and any(os.path.isfile(os.path.join(d, n)) for n in mnist_names("train", "images", 3)):
            return d
    return directory


def _mnist_paths(directory: str, prefix: str):
    img = _find(directory, mnist_names(prefix, "images", 3), f"MNIST {prefix} images")
    lab = _find(directory, mnist_names(prefix, "labels", 1), f"MNIST {prefix} labels")
    return img, lab


def _mnist_part(prefix: str, img: str, lab: str):
    X, y = read_idx(img, 3), read_idx(lab, 1)
    if len(X) != len(y):
        raise ConfigError(f"corrupt MNIST {prefix} files: {img!r} has {len(X)} images, {lab!r} {len(y)} labels")
    if y.size and y.max() > 9:
        raise ConfigError(f"corrupt file {lab!r}: labels must be 0..9, found {int(y.max())}")
    X = (X.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD
    return torch.from_numpy(X[:, None]), torch.from_numpy(y.astype(np.int64))


def mnist_dir(directory: str) -> Dataset:
    """MNIST from the IDX files in ``directory`` (see ``mnist_folder``): the official 60,000 / 10,000 split."""
    if not os.path.isdir(directory):
        raise bad_value("data", "must name a directory after 'mnist:'", f"mnist:{directory}",
                        hint=f"{directory!r} is not a directory")
    folder = mnist_folder(directory)
    paths = {p: _mnist_paths(folder, p) for p in ("train", "t10k")}  # all present before any parsing
    xtr, ytr = _mnist_part("train", *paths["train"])
    xte, yte = _mnist_part("t10k", *paths["t10k"])
    if xte.shape[1:] != xtr.shape[1:]:
        raise bad_value("data", "must hold test and training images of one size", f"mnist:{directory}",
                        hint=f"test images are {tuple(xte.shape[2:])} pixels, training images {tuple(xtr.shape[2:])}")
    return Dataset("mnist", xtr, ytr, xte, yte, "classify", tuple(xtr.shape[1:]), 10,
                   {"source": folder, "n_pool": len(xtr), "n_test": len(xte)})


def _cifar_batch(path: str):
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ConfigError(f"corrupt file {path!r}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"corrupt file {path!r}: expected a pickled dict, got {type(d).__name__}")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise ConfigError(f"corrupt file {path!r}: expected keys b'data' and b'labels', got {sorted(map(str, d))}")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ConfigError(f"corrupt file {path!r}: expected data uint8 (n, 3072) and n labels, got "
                          f"{data.dtype} {data.shape} and {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ConfigError(f"corrupt file {path!r}: labels must be 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def cifar_dir(directory: str) -> Dataset:
    """CIFAR-10 from the pickled python batches in ``directory``: the official split, standardized per
    channel with ``CIFAR_MEAN`` / ``CIFAR_STD``."""
    if not os.path.isdir(directory):
        raise bad_value("data", "must name a directory after 'cifar10:'", f"cifar10:{directory}",
                        hint=f"{directory!r} is not a directory")
    sub = os.path.join(directory, "cifar-10-batches-py")
    if os.path.isdir(sub):
        directory = sub
    paths = [_find(directory, [f"data_batch_{i}"], f"CIFAR-10 data_batch_{i}") for i in range(1, 6)]
    test_path = _find(directory, ["test_batch"], "CIFAR-10 test_batch")  # all present before any parsing
    parts = [_cifar_batch(p) for p in paths]
    xte, yte = _cifar_batch(test_path)
    xtr, ytr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    mean = np.array(CIFAR_MEAN, np.float32)[:, None, None]
    std = np.array(CIFAR_STD, np.float32)[:, None, None]

    def norm(x):
        return torch.from_numpy((x.astype(np.float32) / 255.0 - mean) / std)

    return Dataset("cifar10", norm(xtr), torch.from_numpy(ytr), norm(xte), torch.from_numpy(yte), "classify",
                   (3, 32, 32), 10, {"source": directory, "n_pool": len(xtr), "n_test": len(xte)})
