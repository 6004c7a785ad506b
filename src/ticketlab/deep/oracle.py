"""A deep pruned oracle: a multi-layer ReLU teacher whose every neuron has r kept inputs.

The multi-layer counterpart of ``ticketlab.oracle``: the truth (weights and masks of every layer)
is known, so one can ask whether IMP on a deep student finds the teacher's sparsity and whether a
pruned student needs fewer samples. Inputs x ~ N(0, I_d); y = teacher(x) + noise, with the noise
std given relative to the RMS of the noiseless outputs (as sigma / E_y in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..seeding import DATA, ORACLE_TEST, ORACLE_TRAIN, substream
from .models import MLP, prunable

__all__ = ["DeepOracleSpec", "make_teacher", "sample", "oracle_data"]


@dataclass(frozen=True)
class DeepOracleSpec:
    """d inputs, hidden ``widths``, one output; neuron j of every layer keeps ``r`` inputs (capped
    at the layer's fan-in); noise = sigma / E_y."""

    d: int = 32
    widths: tuple[int, ...] = (16, 8)
    r: int = 8
    noise: float = 0.0


def make_teacher(spec: DeepOracleSpec, seed: int) -> tuple[MLP, dict[str, torch.Tensor]]:
    """The teacher MLP (float64, CPU) and its masks; kept weights ~ N(0, 2 / r) (He scale on the
    kept fan-in, so activations stay O(1) through depth). Same seed, same teacher."""
    gen = torch.Generator().manual_seed(substream(seed, DATA))
    teacher = MLP([spec.d, *spec.widths, 1]).double()
    masks = {}
    with torch.no_grad():
        for name, w in prunable(teacher).items():
            fan_out, fan_in = w.shape
            r = min(spec.r, fan_in)
            keep = torch.rand(fan_out, fan_in, generator=gen, dtype=torch.float64).argsort(dim=1)[:, :r]
            m = torch.zeros(fan_out, fan_in, dtype=torch.float64).scatter_(1, keep, 1.0)
            w.copy_(torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64) * (2.0 / r) ** 0.5 * m)
            masks[name] = m
    return teacher, masks


def sample(spec: DeepOracleSpec, teacher: MLP, n: int, seed: int,
           stream: int = ORACLE_TRAIN) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples (X (n, d), y (n, 1)) in float64; noise std = spec.noise * RMS of clean outputs of
    this sample; ``stream``: ORACLE_TRAIN or ORACLE_TEST (``ticketlab.seeding``)."""
    gen = torch.Generator().manual_seed(substream(seed, stream))
    X = torch.randn(n, spec.d, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = teacher(X)
    if spec.noise > 0:
        sigma = spec.noise * y.pow(2).mean().sqrt()
        y = y + sigma * torch.randn(y.shape, generator=gen, dtype=torch.float64)
    return X, y


def oracle_data(spec: DeepOracleSpec, n_train: int, n_test: int,
                seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, MLP, dict[str, torch.Tensor]]:
    """Train and (noiseless) test samples of one teacher: (X_tr, y_tr, X_te, y_te, teacher, masks)."""
    teacher, masks = make_teacher(spec, seed)
    X, y = sample(spec, teacher, n_train, seed, ORACLE_TRAIN)
    Xt, yt = sample(DeepOracleSpec(spec.d, spec.widths, spec.r, 0.0), teacher, n_test, seed, ORACLE_TEST)
    return X, y, Xt, yt, teacher, masks
