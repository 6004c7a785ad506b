"""Measurements behind issue 14 (structure of the experiments, not faster arithmetic).

- ``fig4_activation(cells, trials)``: for the Figure 4 trials that run to the iteration cap, how many
  of their iterations keep the ReLU activation pattern (sign of X W per sample and neuron) of the
  previous iteration, and from which iteration on the pattern never changes again. A closed-form
  advance of the (then linear) recurrence only pays if most capped iterations run on a fixed pattern.
- ``shared_kernels(quick)``: seconds per trial-iteration at Figure 2's shapes (d=500, K=10,
  N=5000) of the fast engine (one trial, its own X) against M trials that share one X solved with
  one dense matrix product per iteration (the shared-problem lever), float64 and float32.

Run: python -m benchmarks.structure [--quick]
"""

from __future__ import annotations

import sys
import time

import torch

from ticketlab.config import InitSpec, OracleSpec, SolverSpec
from ticketlab.engine import solve
from ticketlab.engine.reference import gradient, step_scale
from ticketlab.experiments.base import paper_r_spread
from ticketlab.init import local_start
from ticketlab.oracle import make_problem

from .machine import info


def _activation_run(X, y, M, W0, solver: SolverSpec, iters: int):
    """Plain AGD for ``iters`` iterations (no stopping): per trial, the iterations whose activation
    pattern equals the previous one, and the last iteration at which it changed."""
    B = X.shape[0]
    step = solver.eta * step_scale(solver.step_convention, W0.shape[-1])
    W, W_prev = W0.clone(), W0.clone()
    pat = (X @ W) > 0
    same = torch.zeros(B, dtype=torch.long)
    last = torch.zeros(B, dtype=torch.long)
    for t in range(iters):
        W_new = W - step * gradient(X, y, W) * M + solver.beta * (W - W_prev)
        W_prev, W = W, W_new
        p = (X @ W) > 0
        changed = (p != pat).flatten(1).any(1)
        same += (~changed).long()
        last = torch.where(changed, torch.full_like(last, t + 1), last)
        pat = p
    return same, last


def fig4_activation(cells=((20, 150), (50, 300), (50, 350), (90, 600)), trials: int = 5,
                    d: int = 100, K: int = 5, lam: float = 0.2, seed: int = 0) -> list[dict]:
    torch.set_num_threads(1)
    solver = SolverSpec(eta=0.5, beta=0.2, max_iter=10_000, tol=1e-8)
    out = []
    for rt, N in cells:
        spec = OracleSpec(d=d, K=K, r=rt, r_spread=paper_r_spread(d, rt), layout="overlap")
        seeds = [seed * 1000 + 17 * rt + N + i for i in range(trials)]
        prob = make_problem(spec, N, seeds)
        W0 = local_start(prob.W_star, prob.mask, lam, prob.seeds)
        res = solve(prob.X, prob.y, prob.mask, W0, solver)
        capped = torch.nonzero(res.iterations == solver.max_iter).flatten()
        row = {"r_tilde": rt, "N": N, "trials": trials, "capped": int(len(capped))}
        if len(capped):
            same, last = _activation_run(prob.X[capped], prob.y[capped], prob.mask[capped], W0[capped],
                                         solver, solver.max_iter)
            row["unchanged_fraction"] = float(same.sum()) / (len(capped) * solver.max_iter)
            row["last_change"] = last.tolist()
        out.append(row)
        print(row, flush=True)
    return out


def _t(f, n):
    f()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def shared_kernels(quick: bool = True, d: int = 500, K: int = 10, N: int = 5000, members=(1, 4, 10)) -> list[dict]:
    torch.set_num_threads(1)
    iters = 5 if quick else 20
    solver = SolverSpec(eta=0.5, beta=0.2, max_iter=iters, tol=1e-30)
    out = []
    for dt in (torch.float64, torch.float32):
        for s in (10, 15, 20):
            r = s * s
            spec = OracleSpec(d=d, K=K, r=r, r_spread=paper_r_spread(d, r), layout="overlap")
            prob = make_problem(spec, N, [1], dtype=dt)
            W0 = local_start(prob.W_star, prob.mask, 0.1, prob.seeds)
            fast = _t(lambda: solve(prob.X, prob.y, prob.mask, W0, solver, backend="fast"), 1) / iters
            row = {"dtype": str(dt).split(".")[-1], "sqrt_r_tilde": s, "fast_us": 1e6 * fast}
            X, y = prob.X[0], prob.y[0]
            for m in members:
                W = W0[0].repeat(1, m)  # d x (K m): m members side by side
                Mk = prob.mask[0].repeat(1, m)

                def step():
                    Z = X @ W
                    res = torch.relu(Z).view(N, m, K).mean(-1) - y[:, None]
                    C = (Z > 0).to(dt) * res.repeat_interleave(K, 1)
                    return (X.T @ C) * Mk

                row[f"shared_dense_M{m}_us"] = 1e6 * _t(step, iters) / m
            out.append(row)
            print({k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return out


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    print(info())
    if "--fig4" in sys.argv or "--all" in sys.argv:
        fig4_activation(trials=3 if quick else 5)
    if "--shared" in sys.argv or "--all" in sys.argv:
        shared_kernels(quick)
