"""The ``Dataset`` every deep run trains on (a training pool and a test set as tensors), its held-out
validation split and its seeded subsets; the pixel standardization constants the built-in readers share."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...config import bad_value
from ...seeding import DATA, VALIDATION, substream

__all__ = ["MNIST_MEAN", "MNIST_STD", "CIFAR_MEAN", "CIFAR_STD", "Dataset", "default_val_size"]

#: MNIST's pixel mean and std (after /255), the usual standardization
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: CIFAR-10's per-channel pixel means and stds (after /255)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


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
            raise bad_value("task", "must be 'classify' or 'regress'", task)
        x_train, x_test = torch.as_tensor(x_train).float(), torch.as_tensor(x_test).float()
        y_train, y_test = torch.as_tensor(y_train), torch.as_tensor(y_test)
        for part, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            if len(x) != len(y) or len(x) == 0:
                raise bad_value("data", f"must have as many {part} targets as inputs, at least one", name,
                                hint=f"{part} has {len(x)} inputs and {len(y)} targets")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise bad_value("data", "must have test inputs shaped like its training inputs", name,
                            hint=f"test inputs have shape {tuple(x_test.shape[1:])}, training inputs {tuple(x_train.shape[1:])}")
        if task == "classify":
            y_train, y_test = y_train.long(), y_test.long()
            k = int(max(y_train.max(), y_test.max())) + 1
            num_classes = num_classes or k
            if k > num_classes or min(int(y_train.min()), int(y_test.min())) < 0:
                raise bad_value("data", f"must have labels in 0..{num_classes - 1}", name)
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
                    raise bad_value(f"{part}_loader", "must yield (inputs, targets) pairs", type(batch).__name__)
                xs.append(torch.as_tensor(batch[0]))
                ys.append(torch.as_tensor(batch[1]))
            if not xs:
                raise bad_value(f"{part}_loader", "must yield at least one batch", "none")
            return torch.cat(xs), torch.cat(ys)

        return cls.from_tensors(*read(train_loader, "train"), *read(test_loader, "test"), **kw)

    def holdout(self, n_val: int, split_seed: int) -> "Dataset":
        """A validation set of ``n_val`` pool items, drawn once from ``split_seed`` (the same for every run
        seed and every n_train); the training pool keeps the rest, in its order."""
        n_pool = len(self.x_train)
        if not 0 <= n_val < n_pool:
            raise bad_value("val_size", f"must be in [0, {n_pool - 1}] for data {self.name!r} (training pool of "
                            f"{n_pool})", n_val)
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
            raise bad_value("n_train", f"must be in [1, {n_pool}] for data {self.name!r}", n_train)
        gen = torch.Generator().manual_seed(substream(seed, DATA))
        idx = torch.randperm(n_pool, generator=gen)[:n_train]
        info = dict(self.info, n_train=n_train, subset_seed=seed)
        return Dataset(self.name, self.x_train[idx], self.y_train[idx], self.x_test, self.y_test, self.task,
                       self.in_shape, self.num_classes, info, self.reference_masks, self.x_val, self.y_val)


def default_val_size(n_pool: int) -> int:
    """5,000 held out of a pool of 50,000 or more (Frankle & Carbin's MNIST split), else 10 % of it."""
    return 5000 if n_pool >= 50000 else n_pool // 10
