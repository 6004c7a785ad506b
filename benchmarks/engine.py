"""Engines side by side: the batched torch reference, the compiled fast engine, a numpy loop.

``issue2``: 100 trials of the Figure 4 workload for a fixed number of iterations (tol tiny), so
every engine does the same work; reported per trial-iteration and as ratios.
``grid``: a sample of Figure 4 cells with the real stopping rule (tol 1e-8), where trials stop at
different iterations: what a sweep actually sees.
"""

from __future__ import annotations

import numpy as np
import torch

from ticketlab.config import SolverSpec
from ticketlab.engine import fast, reference, step_scale

from .baseline_numpy import solve_numpy
from .timing import measure, scaled
from .workloads import FIG4, batch


def _numpy_args(pr, W0):
    return pr.X.numpy(), pr.y.numpy(), pr.mask.numpy(), W0.numpy()


def issue2(quick: bool = False) -> dict:
    trials = 100
    iters = 50 if quick else 1000
    repeats = 3 if quick else 5
    pr, W0 = batch(FIG4["d"], FIG4["K"], FIG4["r"], FIG4["N"], trials, r_spread=FIG4["r_spread"])
    solver = SolverSpec(max_iter=iters, tol=1e-300)
    step = solver.eta * step_scale(solver.step_convention, FIG4["K"])
    fast.solve(pr.X[:2], pr.y[:2], pr.mask[:2], W0[:2], solver)  # compile / load the cache first
    args = _numpy_args(pr, W0)
    runs = {
        "reference": lambda: reference.solve(pr.X, pr.y, pr.mask, W0, solver),
        "fast": lambda: fast.solve(pr.X, pr.y, pr.mask, W0, solver),
        "numpy_loop": lambda: solve_numpy(*args, step, solver.beta, solver.tol, iters),
    }
    out = {"workload": dict(FIG4, trials=trials, iterations=iters, layouts=sorted(set(fast.layout(pr.mask, W0, FIG4["N"]))))}
    for name, fn in runs.items():
        out[name] = scaled(measure(fn, repeats), trials * iters)  # seconds per trial-iteration
    # same answers, or the timing means nothing
    a = reference.solve(pr.X[:4], pr.y[:4], pr.mask[:4], W0[:4], solver)
    b = fast.solve(pr.X[:4], pr.y[:4], pr.mask[:4], W0[:4], solver)
    out["max_rel_diff_fast_vs_reference"] = float(((a.W - b.W).flatten(1).norm(dim=1)
                                                  / a.W.flatten(1).norm(dim=1)).max())
    med = {k: out[k]["median"] for k in runs}
    out["speedup_fast_vs_reference"] = med["reference"] / med["fast"]
    out["speedup_fast_vs_numpy_loop"] = med["numpy_loop"] / med["fast"]
    out["speedup_numpy_loop_vs_reference"] = med["reference"] / med["numpy_loop"]
    return out


def grid(quick: bool = False) -> dict:
    """Figure-4-like cells (r~, N) with tol 1e-8: wall time of the numpy loop and the fast engine."""
    # easy (N = 15 r~), on the boundary (N = 6 r~: slow, often capped) and well above it
    cells = [(20, 300), (50, 300), (50, 600)]
    if not quick:
        cells += [(10, 100), (20, 150), (90, 600)]
    trials = 3 if quick else 10
    max_iter = 3000 if quick else 10_000
    solver = SolverSpec(max_iter=max_iter)
    step = solver.eta * step_scale(solver.step_convention, FIG4["K"])
    rows = []
    t_np = t_fast = 0.0
    for r, N in cells:
        pr, W0 = batch(FIG4["d"], FIG4["K"], r, N, trials, r_spread=FIG4["r_spread"], seed0=1000 * r + N)
        res = {}
        t_f = measure(lambda: res.setdefault("fast", fast.solve(pr.X, pr.y, pr.mask, W0, solver)), 1)["median"]
        t_n = measure(lambda: res.setdefault("np", solve_numpy(*_numpy_args(pr, W0), step, solver.beta,
                                                                solver.tol, max_iter)), 1)["median"]
        same = bool(np.array_equal(res["fast"].iterations.numpy(), res["np"][1]))
        rows.append({"r": r, "N": N, "trials": trials, "iterations_mean": float(res["fast"].iterations.double().mean()),
                     "converged": int(res["fast"].converged.sum()), "numpy_loop_s": t_n, "fast_s": t_f,
                     "speedup": t_n / t_f, "same_iterations": same})
        t_np += t_n
        t_fast += t_f
    return {"max_iter": max_iter, "cells": rows, "numpy_loop_s": t_np, "fast_s": t_fast, "speedup": t_np / t_fast}


def run(quick: bool = False) -> dict:
    return {"issue2": issue2(quick), "grid": grid(quick), "torch_threads": torch.get_num_threads()}
