"""Metrics every experiment shares: aligned relative error, test error, success."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import linear_sum_assignment

from .config import Count, Seeds, Tensor, validated
from .oracle import forward
from .population import population_mse
from .seeding import TEST, substream

__all__ = [
    "SUCCESS_THRESHOLD", "align", "permute_neurons", "aligned_relative_error", "test_rmse_exact",
    "test_rmse_sampled", "test_rmse_sampled_each",
]

SUCCESS_THRESHOLD = 1e-4  #: the paper's verdict: relative error below this recovers W*


def align(W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """The optimal assignment of learner neurons to oracle neurons, per trial.

    Returns perm (B, K) with perm[b, k] = learner neuron matched to oracle neuron k, minimizing
    sum_k ||w_perm[k] - w*_k||^2 (Hungarian algorithm on the K x K cost matrix).
    """
    cost = torch.cdist(W_star.transpose(-1, -2).double(), W.transpose(-1, -2).double()) ** 2
    cost = cost.cpu().numpy()
    perms = []
    for c in cost:
        if not np.isfinite(c).all():
            perms.append(np.arange(c.shape[0]))
            continue
        _, cols = linear_sum_assignment(c)
        perms.append(cols)
    return torch.as_tensor(np.stack(perms), dtype=torch.long, device=W.device)


def permute_neurons(W: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """W with its neurons (last axis) reordered: out[..., :, k] = W[..., :, perm[..., k]] (W (B, d, K), perm (B, K))."""
    return torch.gather(W, -1, perm[..., None, :].expand_as(W))


def aligned_relative_error(W: torch.Tensor, W_star: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """min over permutations P of ||W P - W*||_F / ||W*||_F per trial, and the minimizing perm."""
    perm = align(W, W_star)
    err = (permute_neurons(W, perm) - W_star).flatten(1).norm(dim=1) / W_star.flatten(1).norm(dim=1)
    return err.double(), perm


def test_rmse_exact(W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """sqrt(E_x[(g(x;W) - g(x;W*))^2]), x ~ N(0, I): closed form, no sampling."""
    return torch.sqrt(population_mse(W.double(), W_star.double()))


@validated(W=Tensor, W_star=Tensor, seeds=Seeds, n_test=Count, chunk=Count)
def test_rmse_sampled(W: torch.Tensor, W_star: torch.Tensor, seeds: list[int], n_test: int,
                      chunk: int = 20_000) -> torch.Tensor:
    """RMSE of g(x;W) against the noiseless oracle on n_test fresh Gaussian inputs per trial."""
    return test_rmse_sampled_each([W], W_star, seeds, n_test, chunk)[0]


@validated(Ws=Annotated[list[Tensor], Field(min_length=1)], W_star=Tensor, seeds=Seeds, n_test=Count, chunk=Count)
def test_rmse_sampled_each(Ws: list[torch.Tensor], W_star: torch.Tensor, seeds: list[int], n_test: int,
                           chunk: int = 20_000) -> list[torch.Tensor]:
    """``test_rmse_sampled`` for several weight tensors of the same trials (IMP's rounds) on one draw
    of each trial's test inputs: the values equal one call per tensor bit for bit (same inputs, same
    order of sums), and the n_test x d draw, most of the cost, is made once instead of once a tensor."""
    out = [[] for _ in Ws]
    for b, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(substream(seed, TEST))
        ws = W_star[b:b + 1].detach().cpu().double()
        mine = [W[b:b + 1].detach().cpu().double() for W in Ws]
        sq, left = [0.0] * len(Ws), n_test
        while left > 0:
            m = min(chunk, left)
            X = torch.randn(1, m, ws.shape[1], generator=gen, dtype=torch.float64)
            target = forward(X, ws)
            for i, w in enumerate(mine):
                sq[i] += float(((forward(X, w) - target) ** 2).sum())
            left -= m
        for i in range(len(Ws)):
            out[i].append(np.sqrt(sq[i] / n_test))
    return [torch.tensor(o, dtype=torch.float64) for o in out]
