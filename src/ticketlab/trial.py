"""One oracle-learner experiment for a batch of seeds: draw, start, solve, measure.

This is the unit every sweep, the CLI's ``train`` and the Python API call. It returns one plain
dict per trial (JSON-ready), so the store, reports and Dask workers need to know nothing of torch.
"""

from __future__ import annotations

import math
import time

import torch

from . import engine
from .config import Choice, Device, Instance, Seeds, Tensor, TrialSpec, bad_value, validated
from .device import DTYPES
from .init import make_start
from .metrics import SUCCESS_THRESHOLD, aligned_relative_error, test_rmse_exact, test_rmse_sampled
from .oracle import Problem, make_problem, mask_accuracy, pruning_ratio, r_tilde

__all__ = ["check_problem", "edge", "next_start", "run_bisect", "run_common", "run_trials", "PROBLEM_FIELDS"]


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
        wrong.append("other seeds")
    if wrong:
        raise bad_value("run_trials problem", "must match the spec (its d, K, N, noise) and the seeds", "; ".join(wrong))


def _per_trial(metric, W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """``metric`` over a batch, one trial at a time. A batched reduction may split its sums differently
    for another batch size, and the test RMSE near a recovered W* cancels large terms (it magnified
    1e-16 reorderings into 3e-4 relative differences between chunk sizes); per trial, a trial's
    numbers never depend on its batch (docs/reliability.md)."""
    return torch.cat([metric(W[b:b + 1], W_star[b:b + 1]).reshape(1) for b in range(len(W))])


@validated(spec=Instance(TrialSpec), seeds=Seeds, device=Device, backend=Choice(engine.ENGINES),
           problem=Instance(Problem) | None, W0=Tensor | None)
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
    res = engine.solve(problem.X, problem.y, problem.mask, W0, spec.solver, W_target=problem.W_star,
                       record_every=spec.record_every, backend=backend)
    return _measure(spec, problem, W0, res, (time.perf_counter() - t0) / len(seeds))


def _measure(spec: TrialSpec, problem: Problem, W0: torch.Tensor, res, wall: float) -> list[dict]:
    """One result dict per trial of a solved batch (W* is the aligned target of local starts)."""
    init_err = _per_trial(lambda a, b: aligned_relative_error(a, b)[0], W0, problem.W_star)
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


def _common_solver_fields(spec: TrialSpec) -> dict:
    return spec.solver.model_dump(exclude={"beta"})


@validated(specs=list[Instance(TrialSpec)], seeds=Seeds, device=Device, backend=Choice(engine.ENGINES))
def run_common(specs: list[TrialSpec], seeds: list[int], *, device: str = "cpu",
               backend: str = "auto") -> list[list[dict]]:
    """Run several trial specs that share their problems (the ``common`` design): for each seed the
    members draw the same X, W* and mask (they may differ in the noise level, the start distance and
    the momentum) and are solved together, X read once an iteration for all of them
    (``engine.shared``). Returns one list of result dicts per spec, each equal (to rounding) to
    ``run_trials(spec, seeds)``. Falls back to solving each spec alone where the shared engine does
    not apply (where ``engine.resolve`` picks the reference engine, or a non-0/1 mask)."""
    t0 = time.perf_counter()
    first = specs[0]

    def shared(s):
        return {"N": s.N, "dtype": s.dtype, "record_every": s.record_every,
                "oracle": s.oracle.model_dump(exclude={"noise"}), "solver": _common_solver_fields(s)}

    for i, s in enumerate(specs[1:], 1):
        differ = {k: v for k, v in shared(s).items() if v != shared(first)[k]}
        if differ:
            raise bad_value(f"run_common specs[{i}]", "must share N, dtype, record_every, the oracle (noise aside) and "
                            "the solver (beta aside) with specs[0]", differ)
    dtype = DTYPES[first.dtype]
    problems = {}
    for s in specs:  # one draw per noise level; X, W* and the mask are the same for all of them
        key = s.oracle.noise
        if key not in problems:
            problems[key] = make_problem(s.oracle, s.N, seeds, device=device, dtype=dtype)
    base = problems[first.oracle.noise]
    for p in problems.values():
        if not (torch.equal(p.X, base.X) and torch.equal(p.mask, base.mask) and torch.equal(p.W_star, base.W_star)):
            raise ValueError("the members' problems differ: they do not share X, W* and the mask")
    starts = [make_start(problems[s.oracle.noise], s.init) for s in specs]
    W0 = torch.stack(starts, 1)  # (B, M, d, K)
    # the shared engine is the fast engine's sibling: it runs where the fast engine would (engine.resolve)
    shared = _shared_module() if engine.resolve(torch.device(device).type, backend) == "fast" else None
    if shared is None or not all(shared.supports(base.mask[b], W0[b]) for b in range(len(seeds))):
        return [run_trials(s, seeds, device=device, backend=backend, problem=problems[s.oracle.noise], W0=w0)
                for s, w0 in zip(specs, starts)]
    Y = torch.stack([problems[s.oracle.noise].y for s in specs], 1)  # (B, M, N)
    results = shared.solve(base.X, Y, base.mask, W0, first.solver, [s.solver.beta for s in specs],
                           W_target=base.W_star, record_every=first.record_every)
    engine.mark_used("shared")
    wall = (time.perf_counter() - t0) / (len(seeds) * len(specs))
    out = []
    for m, s in enumerate(specs):
        res = engine.SolveResult(
            W=torch.stack([r.W[m] for r in results]), iterations=torch.stack([r.iterations[m] for r in results]),
            converged=torch.stack([r.converged[m] for r in results]), failed=torch.stack([r.failed[m] for r in results]),
            rate=torch.stack([r.rate[m] for r in results]),
            curve=None if results[0].curve is None else torch.stack([r.curve[m] for r in results]),
            curve_iters=results[0].curve_iters)
        out.append(_measure(s, problems[s.oracle.noise], starts[m], res, wall))
    return out


def _shared_module():
    """engine.shared, or None where numba is missing (then each member is solved alone)."""
    try:
        from .engine import shared
    except ImportError:
        return None
    return shared


PROBLEM_FIELDS = ("r_tilde", "r_ave", "mask_accuracy", "pruning_ratio")  #: same for every start of a problem


def next_start(n: int, solved: dict[int, bool]) -> int | None:
    """Bisection over a grid of n start distances (increasing) on one problem: the index to solve
    next given the outcomes so far (index -> success), or None once the grid is decided. The
    nearest start first (if it fails, every farther one is taken to fail), then the farthest (if it
    succeeds, so does every nearer one), then halving the bracket between the last success and
    the first failure: at most 2 + ceil(log2 n) solves."""
    if 0 not in solved:
        return 0
    if not solved[0]:
        return None
    if n - 1 not in solved:
        return n - 1
    lo, hi = edge(n, solved), min([i for i, ok in solved.items() if not ok], default=n)
    return None if hi - lo <= 1 else (lo + hi) // 2


def edge(n: int, solved: dict[int, bool]) -> int:
    """The last index taken to succeed (-1: none): the largest success below the first failure."""
    first_fail = min([i for i, ok in solved.items() if not ok], default=n)
    return max([i for i, ok in solved.items() if ok and i < first_fail], default=-1)


@validated(specs=list[Instance(TrialSpec)], seeds=Seeds, device=Device, backend=Choice(engine.ENGINES))
def run_bisect(specs: list[TrialSpec], seeds: list[int], *, device: str = "cpu",
               backend: str = "auto") -> list[list[dict]]:
    """The common design's grid of start distances by bisection (design='bisect', Figure 2).

    specs: one column's cells, ordered by increasing start distance, sharing their problems (the
    same seeds). Per problem (seed) only the starts ``next_start`` asks for are solved, the open
    problems of a round batched by start distance. Cells not solved get a row with
    ``inferred: True`` and the success the bracket implies (index <= ``edge``), assuming success
    falls with the start distance on a problem (measured: docs/performance.md); their other outcome
    fields are None, the problem's own (r~, mask) are copied. One list of rows per spec."""
    n = len(specs)
    rows: list[list[dict | None]] = [[None] * len(seeds) for _ in range(n)]
    solved: list[dict[int, bool]] = [{} for _ in seeds]
    while True:
        todo: dict[int, list[int]] = {}
        for b in range(len(seeds)):
            i = next_start(n, solved[b])
            if i is not None:
                todo.setdefault(i, []).append(b)
        if not todo:
            break
        for i, bs in todo.items():
            for b, row in zip(bs, run_trials(specs[i], [seeds[b] for b in bs], device=device, backend=backend)):
                rows[i][b] = {**row, "inferred": False}
                solved[b][i] = bool(row["success"])
    for b in range(len(seeds)):
        known = next(rows[i][b] for i in range(n) if rows[i][b] is not None)
        last = edge(n, solved[b])
        for i in range(n):
            if rows[i][b] is None:
                rows[i][b] = {**{k: None for k in known}, **{k: known[k] for k in PROBLEM_FIELDS},
                              "seed": int(seeds[b]), "success": i <= last, "inferred": True}
    return rows
