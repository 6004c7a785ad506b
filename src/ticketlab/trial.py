"""One oracle-learner experiment for a batch of seeds: draw, start, solve, measure.

This is the unit every sweep, the CLI's ``train`` and the Python API call. It returns one plain
dict per trial (JSON-ready), so the store, reports and Dask workers need to know nothing of torch.
"""

from __future__ import annotations

import math
import time

import torch

from . import engine
from .config import TrialSpec
from .device import DTYPES
from .init import make_start
from .metrics import SUCCESS_THRESHOLD, aligned_relative_error, test_rmse_exact, test_rmse_sampled
from .oracle import Problem, make_problem, mask_accuracy, pruning_ratio, r_tilde

__all__ = ["check_problem", "run_trials"]


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def check_problem(spec: TrialSpec, seeds: list[int], problem: Problem) -> None:
    """Refuse a prepared problem that contradicts ``spec`` (its d, K, N, noise) or the seeds: the
    stored result would carry a spec that did not produce it."""
    B, N, d = problem.X.shape
    K = problem.W_star.shape[-1]
    wrong = [f"{name} = {got} (spec: {want})" for name, got, want in
             (("d", d, spec.oracle.d), ("K", K, spec.oracle.K), ("N", N, spec.N), ("trials", B, len(seeds)))
             if got != want]
    if bool((problem.sigma > 0).any()) != (spec.oracle.noise > 0):
        wrong.append(f"noise {'present' if bool((problem.sigma > 0).any()) else 'absent'} "
                     f"(spec: noise = {spec.oracle.noise:g})")
    if list(problem.seeds) != list(seeds):
        wrong.append("seeds differ from the problem's")
    if wrong:
        raise ValueError("run_trials: the problem contradicts the spec: " + "; ".join(wrong))
def _per_trial(metric, W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """``metric`` over a batch, one trial at a time. A batched reduction may split its sums differently
    for another batch size, and the test RMSE near a recovered W* cancels large terms (it magnified
    1e-16 reorderings into 3e-4 relative differences between chunk sizes); per trial, a trial's
    numbers never depend on its batch (docs/reliability.md)."""
    return torch.cat([metric(W[b:b + 1], W_star[b:b + 1]).reshape(1) for b in range(len(W))])


def run_trials(spec: TrialSpec, seeds: list[int], *, device: str = "cpu", backend: str = "auto",
               problem: Problem | None = None, W0: torch.Tensor | None = None) -> list[dict]:
    """Run ``spec`` once per seed (batched) and return one result dict per trial.

    ``problem`` and ``W0`` may be given to solve prepared trials (e.g. a learner mask found by
    pruning); by default both are drawn from the seeds.
    """
    t0 = time.perf_counter()
    dtype = DTYPES[spec.dtype]
    if problem is None:
        problem = make_problem(spec.oracle, spec.N, seeds, device=device, dtype=dtype)
    else:
        check_problem(spec, seeds, problem)
    if W0 is None:
        W0 = make_start(problem, spec.init)
    init_err = _per_trial(lambda a, b: aligned_relative_error(a, b)[0], W0, problem.W_star)
    aligned_target = problem.W_star  # local starts are aligned with W* by construction
    res = engine.solve(problem.X, problem.y, problem.mask, W0, spec.solver, W_target=aligned_target,
                       record_every=spec.record_every, backend=backend)
    W = res.W.double()
    rel = _per_trial(lambda a, b: aligned_relative_error(a, b)[0], W, problem.W_star)
    perm = torch.cat([aligned_relative_error(W[b:b + 1], problem.W_star[b:b + 1])[1] for b in range(len(W))])
    if spec.test_error == "exact":
        test = _per_trial(test_rmse_exact, W, problem.W_star)
    else:
        test = test_rmse_sampled(W, problem.W_star, problem.seeds, spec.n_test)
    rt = r_tilde(problem.mask)
    acc = mask_accuracy(problem.oracle_mask, problem.mask, perm)
    pr = pruning_ratio(problem.mask)
    wall = (time.perf_counter() - t0) / len(seeds)
    rows = []
    for b, seed in enumerate(problem.seeds):
        failed = bool(res.failed[b]) or not math.isfinite(float(rel[b]))
        row = {
            "seed": int(seed),
            "relative_error": _num(rel[b]),
            "success": (not failed) and float(rel[b]) < SUCCESS_THRESHOLD,
            "iterations": int(res.iterations[b]),
            "converged": bool(res.converged[b]),
            "failed": failed,
            "rate": _num(res.rate[b]),
            "test_rmse": _num(test[b]),
            "init_relative_error": _num(init_err[b]),
            "r_tilde": float(rt[b]),
            "r_ave": float((problem.mask[b] != 0).sum(0).double().mean()),
            "mask_accuracy": float(acc[b]),
            "pruning_ratio": float(pr[b]),
            "wall_time": wall,
        }
        if res.curve is not None:
            # after a trial stops its error stays put: carry the last value forward
            curve, last = [], None
            for v in res.curve[b].tolist():
                last = _num(v) if math.isfinite(v) else last
                curve.append(last)
            row["curve"] = curve
            row["curve_every"] = spec.record_every
        rows.append(row)
    return rows
