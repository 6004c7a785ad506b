"""The paper's workloads as ready-to-solve batches (data, mask, local start)."""

from __future__ import annotations

import torch

from ticketlab.config import OracleSpec
from ticketlab.init.starts import local_start
from ticketlab.oracle import make_problem


def batch(d: int, K: int, r: int, N: int, trials: int, *, r_spread: float = 0.0, lam: float = 0.3,
          seed0: int = 0, dtype=torch.float64):
    """(problem, W0) for ``trials`` trials of one cell, seeds seed0.. (overlapping supports)."""
    pr = make_problem(OracleSpec(d=d, K=K, r=r, r_spread=r_spread), N, list(range(seed0, seed0 + trials)),
                      dtype=dtype)
    return pr, local_start(pr.W_star, pr.mask, lam, pr.seeds)


FIG4 = dict(d=100, K=5, r=50, N=300, r_spread=0.1)  # K not stated by the paper: 5 is our choice
FIG3 = dict(d=300, K=10, N=5000)  # r = 10..130
