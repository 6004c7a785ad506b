"""Local and random starts on the learner's mask, each drawn from the trial's own generator."""

from __future__ import annotations

import torch

from ..config import PositiveFloat, Seeds, Tensor, validated
from ..seeding import RANDOM_START, START, substream

__all__ = ["local_start", "random_start", "make_start"]


@validated(W_star=Tensor, mask=Tensor, lam=PositiveFloat, seeds=Seeds)
def local_start(W_star: torch.Tensor, mask: torch.Tensor, lam: float, seeds: list[int]) -> torch.Tensor:
    """W0 = M (.) W* + P with P Gaussian on the mask, scaled so ||P||_F = lam ||W*||_F.

    With an accurate mask, ||W0 - W*||_F / ||W*||_F = lam exactly (the experiments' start).
    """
    out = []
    for b, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(substream(seed, START))
        M = mask[b].detach().to("cpu", torch.float64)
        P = torch.randn(M.shape, generator=gen, dtype=torch.float64) * M
        Ws = W_star[b].detach().to("cpu", torch.float64)
        P = P * (lam * Ws.norm() / P.norm().clamp_min(1e-300))
        out.append(M * Ws + P)
    return torch.stack(out).to(device=W_star.device, dtype=W_star.dtype)


@validated(mask=Tensor, seeds=Seeds)
def random_start(mask: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """Entries uniform on [-0.5, 0.5] on the mask: the oracle's own distribution, no knowledge of W*."""
    out = []
    for b, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(substream(seed, RANDOM_START))
        M = mask[b].detach().to("cpu", torch.float64)
        out.append((torch.rand(M.shape, generator=gen, dtype=torch.float64) - 0.5) * M)
    return torch.stack(out).to(device=mask.device, dtype=mask.dtype)


def make_start(problem, init) -> torch.Tensor:
    """W0 for a Problem and an InitSpec."""
    if init.kind == "local":
        return local_start(problem.W_star, problem.mask, init.lam, problem.seeds)
    if init.kind == "random":
        return random_start(problem.mask, problem.seeds)
    from .moments import moment_start  # the method-of-moments starts (tensor, moments)

    return moment_start(problem, init)

