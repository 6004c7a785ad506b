"""Metrics every experiment shares: aligned relative error, test error, success."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .config import Count, Seeds, Tensor, validated
from .oracle import forward
from .population import population_mse
from .seeding import TEST, substream

__all__ = [
    "SUCCESS_THRESHOLD", "align", "permute_neurons", "aligned_relative_error", "test_rmse_exact",
    "test_rmse_sampled",
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
    out = []
    for b, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(substream(seed, TEST))
        w, ws = W[b:b + 1].detach().cpu().double(), W_star[b:b + 1].detach().cpu().double()
        sq, left = 0.0, n_test
        while left > 0:
            m = min(chunk, left)
            X = torch.randn(1, m, w.shape[1], generator=gen, dtype=torch.float64)
            sq += float(((forward(X, w) - forward(X, ws)) ** 2).sum())
            left -= m
        out.append(np.sqrt(sq / n_test))
    return torch.tensor(out, dtype=torch.float64)
