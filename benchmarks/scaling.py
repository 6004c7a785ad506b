"""How the fast engine's cost grows with N, d, K, r and the number of trials.

From a base cell (N=300, d=100, K=5, r=20), one factor is doubled at a time; each row gives the
seconds per trial-iteration on one core (min of repeats) and its ratio to the base. Trials: wall time of a batch
of 2x and 8x the threads (trials run one per thread, so wall time should grow with trials/threads).
"""

from __future__ import annotations

import torch

from ticketlab.config import SolverSpec
from ticketlab.engine import fast

from .timing import measure
from .workloads import batch

BASE = dict(N=300, d=100, K=5, r=20)


def _time(N, d, K, r, trials, iters, repeats, threads):
    pr, W0 = batch(d, K, r, N, trials, seed0=7)
    solver = SolverSpec(max_iter=iters, tol=1e-300)
    fast.solve(pr.X[:1], pr.y[:1], pr.mask[:1], W0[:1], SolverSpec(max_iter=1))
    # min of repeats: on a shared machine other tenants only ever add time
    return measure(lambda: fast.solve(pr.X, pr.y, pr.mask, W0, solver, threads=threads), repeats)["min"]


def run(quick: bool = False) -> dict:
    iters = 200 if quick else 500
    reps = 5
    rows = []
    base = _time(**BASE, trials=2, iters=iters, repeats=reps, threads=1) / (2 * iters)
    rows.append({"change": "base", **BASE, "s": base, "ratio": 1.0})
    for key in ("N", "d", "K", "r"):
        cell = dict(BASE, **{key: 2 * BASE[key]})
        t = _time(**cell, trials=2, iters=iters, repeats=reps, threads=1) / (2 * iters)
        rows.append({"change": f"{key} x2", **cell, "s": t, "ratio": t / base})
    threads = torch.get_num_threads()
    walls = {m: _time(**BASE, trials=m * threads, iters=iters, repeats=reps, threads=threads) for m in (2, 8)}
    return {"rows": rows, "threads": threads, "trials": {2 * threads: walls[2], 8 * threads: walls[8]},
            "trials_ratio": walls[8] / walls[2], "iterations": iters}
