"""Issue 14: the shared-problem path (design='common') against today's engine, side by side in one run.

- ``workloads(quick)``: seconds per trial-iteration of Figure 2's workload (d=500, K=10, N=5000,
  the 10 start distances of a column share a problem) and Figure 6's (d=300, K=10, N=1000, its 4
  noise levels share X), for today's fast engine (one trial per thread, each its own data) and the
  shared-problem engine in float64 and float32, all on the same trials and thread count. Fixed
  iterations (no stopping), so every path does the same work; with the stopping rule the
  iteration counts are identical (tests/test_design.py), so the ratio per trial is the same.
- ``agreement(quick)``: a sample of Figure 2 cells at a reduced scale run both ways through the
  sweep: per-cell success rates of the common design against the independent one (Wilson 95%
  intervals, do they overlap), the float32 verdicts of the common design against float64 trial by
  trial, and what bisection over the start distance would have cost and concluded on the same
  problems (from the common design's full grid: each problem's grid is there).

Run: python -m benchmarks.design [--quick] [--json]
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from ticketlab.config import OracleSpec, SolverSpec
from ticketlab.engine import fast, shared
from ticketlab.experiments.base import paper_r_spread
from ticketlab.init.starts import local_start
from ticketlab.oracle import make_problem

from .machine import info

FIG2 = dict(d=500, K=10, N=5000, cols=(10, 15, 20), lams=tuple(x / 100 for x in range(2, 39, 4)))
FIG6 = dict(d=300, K=10, N=1000, cols=(3, 6, 10), noise=(1e-2, 1e-3, 1e-4, 1e-5))


def _group(d, K, N, s, seeds, lams, noises, dtype, spread=True):
    r = max(1, min(d, round(s * s)))
    spec = OracleSpec(d=d, K=K, r=r, r_spread=paper_r_spread(d, r) if spread else 0.0, layout="overlap")
    probs = [make_problem(spec.model_copy(update={"noise": nz}), N, seeds, dtype=dtype) for nz in noises]
    pr = probs[0]
    W0 = torch.stack([local_start(pr.W_star, pr.mask, lam, pr.seeds) for lam in lams], 1)  # (G, M, d, K)
    Y = torch.stack([p.y for p in probs], 1)
    return pr, W0, Y


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _compare(pr, W0, Y, iters: int, threads: int, dt64) -> dict:
    G, M = W0.shape[:2]
    solver = SolverSpec(max_iter=iters, tol=1e-300)
    warm = SolverSpec(max_iter=2, tol=1e-300)
    X, mask = pr.X, pr.mask
    # today's engine: each (problem, member) is its own trial with its own copy of X
    Xt = X.repeat_interleave(M, 0)
    Mt = mask.repeat_interleave(M, 0)
    Wt, Yt = W0.flatten(0, 1), Y.flatten(0, 1)
    fast.solve(Xt[:threads], Yt[:threads], Mt[:threads], Wt[:threads], warm, threads=threads)
    t_fast = _time(lambda: fast.solve(Xt, Yt, Mt, Wt, solver, threads=threads))
    out = {"members": M, "groups": G, "iterations": iters,
           "fast_layout": fast.layout(mask[:1], W0[:1, 0], X.shape[1])[0],
           "fast_us": 1e6 * t_fast / (G * M * iters)}
    for name, dt in (("shared64", torch.float64), ("shared32", torch.float32)):
        Xd, Yd, Wd = X.to(dt), Y.to(dt), W0.to(dt)
        shared.solve(Xd, Yd, mask.to(dt), Wd, warm, threads=threads)
        t = _time(lambda: shared.solve(Xd, Yd, mask.to(dt), Wd, solver, threads=threads))
        out[f"{name}_us"] = 1e6 * t / (G * M * iters)
        out[f"{name}_speedup"] = out["fast_us"] / out[f"{name}_us"]
    return out


def workloads(quick: bool = True) -> dict:
    threads = torch.get_num_threads()
    rows = []
    for fig, w, iters in (("fig2", FIG2, 10 if quick else 40), ("fig6", FIG6, 100 if quick else 400)):
        for s in w["cols"]:
            seeds = list(range(1, threads + 1))  # one problem per thread
            if fig == "fig2":
                pr, W0, Y = _group(w["d"], w["K"], w["N"], s, seeds, w["lams"], [0.0], torch.float64)
                Y = Y.expand(-1, len(w["lams"]), -1)
            else:
                pr, W0, Y = _group(w["d"], w["K"], w["N"], s, seeds, [0.2] * len(w["noise"]), w["noise"],
                                   torch.float64, spread=False)
            row = {"figure": fig, "sqrt_r_tilde": s, **_compare(pr, W0, Y, iters, threads, torch.float64)}
            rows.append(row)
            print(f"  {fig} sqrt(r~)={s:2d} M={row['members']:2d} ({row['fast_layout']}): today's fast engine "
                  f"{row['fast_us']:8.1f} us, shared float64 {row['shared64_us']:8.1f} us (x{row['shared64_speedup']:.1f}), "
                  f"shared float32 {row['shared32_us']:8.1f} us (x{row['shared32_speedup']:.1f}) per trial-iteration",
                  flush=True)
    per = {}
    for fig in ("fig2", "fig6"):
        sub = [r for r in rows if r["figure"] == fig]
        for k in ("shared64", "shared32"):  # equal weight per column: the ratio of summed times
            per[f"{fig}_{k}_speedup"] = sum(r["fast_us"] for r in sub) / sum(r[f"{k}_us"] for r in sub)
    print("  over the columns measured (sum of times): " + ", ".join(f"{k} x{v:.1f}" for k, v in per.items()))
    return {"threads": threads, "rows": rows, **per}


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    c = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    m = p + z * z / (2 * n)
    return (m - c) / (1 + z * z / n), (m + c) / (1 + z * z / n)


def _bisect(succ: list[bool]) -> tuple[int, list[int]]:
    """What ``trial.run_bisect`` concludes on one problem whose full grid of outcomes is known:
    (the edge it reports, the indices it solves)."""
    from ticketlab.trial import edge, next_start

    solved: dict[int, bool] = {}
    while (i := next_start(len(succ), solved)) is not None:
        solved[i] = succ[i]
    return edge(len(succ), solved), list(solved)


def agreement(quick: bool = True) -> dict:
    from ticketlab.app import make_config
    from ticketlab.experiments import get_experiment
    from ticketlab.store import Store
    from ticketlab.sweep import run_sweep

    exp = get_experiment("fig2")
    trials = 12 if quick else 40
    sets = ["sqrt_r_tilde=5,6", "lam=0.2,0.6,1.0,1.5,2.0,2.5", "max_iter=4000"]
    frames, walls = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for design, dtype in (("independent", "float64"), ("common", "float64"), ("common", "float32")):
            cfg = make_config(exp, "quick", trials, sets + [f"design={design}", f"dtype={dtype}"])
            with Store(Path(tmp) / f"{design}-{dtype}.db") as st:
                t = time.perf_counter()
                run_sweep("fig2", cfg, st, progress=False)
                walls[(design, dtype)] = time.perf_counter() - t
                frames[(design, dtype)] = exp.frame(cfg, st.frame("fig2"))
    ind, com, c32 = frames[("independent", "float64")], frames[("common", "float64")], frames[("common", "float32")]
    cells = []
    for (s, lam), a in ind.groupby(["sqrt_r_tilde_target", "lam"]):
        b = com[(com["sqrt_r_tilde_target"] == s) & (com["lam"] == lam)]
        ka, kb = int(a["success"].sum()), int(b["success"].sum())
        ia, ib = _wilson(ka, len(a)), _wilson(kb, len(b))
        cells.append({"sqrt_r_tilde": s, "lam": lam, "independent": f"{ka}/{len(a)}", "common": f"{kb}/{len(b)}",
                      "independent_ci": ia, "common_ci": ib, "overlap": ia[0] <= ib[1] and ib[0] <= ia[1]})
        print(f"  sqrt(r~)={s:g} lam={lam:<4g} independent {ka:2d}/{len(a)} [{ia[0]:.2f}, {ia[1]:.2f}]   "
              f"common {kb:2d}/{len(b)} [{ib[0]:.2f}, {ib[1]:.2f}]   intervals overlap: {cells[-1]['overlap']}")
    m = com.merge(c32, on=["sqrt_r_tilde_target", "lam", "trial"], suffixes=("", "_32"))
    same_verdict = int((m["success"] == m["success_32"]).sum())
    # bisection on the common design's problems: each trial index is one problem across the column
    lams = sorted(com["lam"].unique())
    solves = iters_bis = iters_grid = monotone = wrong = problems = 0
    for (s, t), sub in com.groupby(["sqrt_r_tilde_target", "trial"]):
        sub = sub.set_index("lam").loc[lams]
        succ = sub["success"].tolist()
        edge, asked = _bisect(succ)
        problems += 1
        solves += len(asked)
        iters_bis += int(sub["iterations"].iloc[asked].sum())
        iters_grid += int(sub["iterations"].sum())
        monotone += succ == sorted(succ, reverse=True)
        wrong += sum((i <= edge) != succ[i] for i in range(len(lams)))
    out = {"trials_per_cell": trials, "cells": cells, "all_overlap": all(c["overlap"] for c in cells),
           "wall_s": {f"{d}/{t}": w for (d, t), w in walls.items()},
           "float32_same_verdict": same_verdict, "float32_compared": int(len(m)),
           "common_capped": int((com["iterations"] == 4000).sum()), "common_diverged": int(com["failed"].sum()),
           "common_failures": int((~com["success"].astype(bool)).sum()),
           "bisection": {"problems": problems, "grid_points": len(lams), "solves_per_problem": solves / problems,
                         "iterations_fraction_of_grid": iters_bis / iters_grid,
                         "problems_monotone_in_lambda": monotone, "grid_verdicts_wrong": wrong,
                         "grid_verdicts": problems * len(lams)}}
    b = out["bisection"]
    print(f"  every cell's intervals overlap: {out['all_overlap']}; wall s: " +
          ", ".join(f"{k} {v:.1f}" for k, v in out["wall_s"].items()))
    print(f"  float32 common design: same verdict as float64 on {same_verdict} of {len(m)} trials")
    print(f"  early stop: of the common design's {out['common_failures']} failures {out['common_diverged']} diverged "
          f"(stopped early by the divergence rule) and {out['common_capped']} ran to the 4000 cap")
    print(f"  bisection over the {len(lams)} start distances: {b['solves_per_problem']:.1f} solves per problem, "
          f"{100 * b['iterations_fraction_of_grid']:.0f}% of the grid's iterations; success monotone in lambda "
          f"on {monotone} of {problems} problems; grid verdicts inferred wrongly: {wrong} of {b['grid_verdicts']}")
    return out


def run(quick: bool = True) -> dict:
    print("(g) shared-problem path (design='common') vs today's fast engine, same trials, same threads")
    w = workloads(quick)
    print("(h) Figure 2 sample (d=100, K=10, N=600): common vs independent design, float32, bisection")
    return {"workloads": w, "agreement": agreement(quick)}


if __name__ == "__main__":
    i = info()
    print(f"machine: {i['cpu']}, {i['cores']} cores, load average {', '.join(f'{x:.1f}' for x in i['load_average'])}")
    res = run("--quick" in sys.argv)
    if "--json" in sys.argv:
        print(json.dumps({"machine": i, **res}, default=str))


def paper_fig2_sample(cols=((10, None), (15, None), (20, 1000)), dtype=torch.float64, seed: int = 1) -> dict:
    """Paper-scale Figure 2 under design='common': one problem per sampled column, its 10 start
    distances solved together with the real stopping rule (tol 1e-8, cap 10,000, or the cap given,
    for columns known to run to it), one thread. Wall seconds per member-iteration and iterations."""
    torch.set_num_threads(1)
    rows = []
    for s, cap in cols:
        pr, W0, Y = _group(FIG2["d"], FIG2["K"], FIG2["N"], s, [seed], FIG2["lams"], [0.0], dtype)
        Y = Y.expand(-1, len(FIG2["lams"]), -1)
        solver = SolverSpec(max_iter=cap or 10_000)
        shared.solve(pr.X, Y, pr.mask, W0, SolverSpec(max_iter=2))
        t = time.perf_counter()
        res = shared.solve(pr.X, Y, pr.mask, W0, solver)[0]
        wall = time.perf_counter() - t
        its = res.iterations.tolist()
        rows.append({"sqrt_r_tilde": s, "cap": solver.max_iter, "wall_s": wall, "iterations": its,
                     "ms_per_member_iteration": 1e3 * wall / sum(its), "r_sum": int(pr.mask.sum()),
                     "converged": int(res.converged.sum())})
        print(rows[-1], flush=True)
    return {"dtype": str(dtype), "rows": rows}
