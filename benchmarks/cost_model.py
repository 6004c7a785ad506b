"""The sweep estimate against the measured sweep, for every quick figure, on this machine.

``python -m benchmarks.cost_model [--only fig2,fig7] [--engine reference] [--json]`` runs each store experiment's quick
sweep into a fresh store, as ``ticketlab sweep NAME`` runs it (the same chunks: the progress split,
its bar silenced), times it, and prints beside it what ``sweep.estimate_seconds`` said before it
started, the ratio and whether it is within 2x (the cost model's promise, issue 17). It also prints
the mean iterations the trials ran against the ``typical_iterations`` the estimate planned with.
Run it on a quiet machine with ``OMP_NUM_THREADS=1`` for numbers comparable to docs/performance.md;
the load average at start and end is printed with the table (a busy machine makes every ratio larger).
``--engine`` runs the sweeps with that Algorithm 1 engine (as ``ticketlab sweep --engine``), and the
estimate plans for it.
Figure 11 is not a store sweep (IMP on real data runs its own loop) and has no estimate.

``python -m benchmarks.cost_model --store results/paper/tables`` runs nothing: for every experiment the
store holds (the config a report shows), it prints the mean iterations per solve and the share of
solves that ran to max_iter, beside the ``typical_iterations`` and ``capped_share`` the estimate plans
with at the paper's scale (how those constants were measured).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

QUICK = ("fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "landscape", "init")


def _mean_iterations(df) -> float | None:
    """Mean Algorithm 1 iterations per trial (Figure 10: per trial, summed over its rounds)."""
    if "iterations" not in df.columns or df.empty:
        return None
    vals = [sum(v) if isinstance(v, (list, tuple)) else v for v in df["iterations"]]
    vals = [float(v) for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def measure(name: str, tmp: Path) -> dict:
    """One quick sweep of ``name``: the estimate before it starts, then its measured wall time."""
    from ticketlab.experiments import get_experiment
    from ticketlab.store import Store
    from ticketlab.sweep import estimate_seconds, run_sweep, trial_threads, trial_workload, typical_iterations

    exp = get_experiment(name)
    cfg = exp.default_config("quick")
    est = estimate_seconds(exp, cfg)
    with Store(tmp / f"{name}.db") as st:
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # the bar, as the CLI draws it, out of sight
            counts = run_sweep(name, cfg, st, progress=True)
        wall = time.perf_counter() - t0
        df = st.frame(name)
    planned = None if trial_workload(exp, cfg) in ("landscape", "init") else \
        min(cfg.solver.max_iter, typical_iterations(exp, cfg)) * (cfg.rounds + 1 if hasattr(cfg, "rounds") else 1)
    return {"experiment": name, "workload": trial_workload(exp, cfg), "cells": len(exp.cells(cfg)),
            "trials": counts["ran"], "threads": trial_threads(exp, cfg), "estimate_s": est, "measured_s": wall,
            "ratio": wall / est if est > 0 else float("inf"), "within_2x": est > 0 and 0.5 <= wall / est <= 2.0,
            "iterations_mean": _mean_iterations(df), "iterations_planned": planned}


def _solves(df):
    """Every solve's iteration count (Figure 10 stores one per IMP round; a cell that bisection inferred
    has none)."""
    for v in df["iterations"]:
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            if x is not None and x == x:
                yield float(x)


def calibration(store, say=print) -> list[dict]:
    """Per experiment a store holds: the mean iterations per solve and the share at max_iter, measured,
    beside what ``sweep.typical_iterations`` plans with for that config (its own cap)."""
    from ticketlab.experiments import available, get_experiment
    from ticketlab.sweep import typical_iterations

    rows = []
    say(f"{'figure':10s} {'config':12s} {'cap':>6s} {'solves':>7s} {'mean its':>9s} {'planned':>8s} "
        f"{'at cap':>7s} {'capped_share':>12s}")
    for name in available():
        exp = get_experiment(name)
        if not exp.sweeps or not exp.has_results(store):
            continue
        cfg = exp.stored_config(store)
        solver = getattr(cfg, "solver", None) if cfg is not None else None
        if solver is None:  # the landscape and init studies run no Algorithm 1
            continue
        df = exp.load(cfg, store)
        its = list(_solves(df)) if "iterations" in df.columns else []
        if not its:
            continue
        at_cap = sum(x >= solver.max_iter for x in its) / len(its)
        row = {"experiment": name, "config_id": cfg.config_id(), "max_iter": solver.max_iter, "solves": len(its),
               "mean_iterations": sum(its) / len(its), "planned": min(solver.max_iter, typical_iterations(exp, cfg)),
               "at_cap": at_cap, "capped_share": getattr(exp, "capped_share", 0.0)}
        rows.append(row)
        say(f"{name:10s} {row['config_id'][:12]:12s} {solver.max_iter:6d} {len(its):7d} {row['mean_iterations']:9.0f} "
            f"{row['planned']:8d} {at_cap:7.2f} {row['capped_share']:12.2f}")
    return rows


def _machine() -> dict:
    import subprocess

    import torch

    from .machine import info

    m = info()
    try:
        up = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        up = ""
    return {"cpu": m["cpu"], "cores": m["cores"], "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "uptime": up, "load_average": os.getloadavg()}


def run(quick: bool = True, only=None, say=print, engine: str = "auto") -> dict:
    """Every quick figure (or ``only``): estimate, measurement, ratio; prints the table. ``engine``:
    the Algorithm 1 engine the sweeps run and the estimate plans for."""
    from ticketlab import engine as engines

    names = [n for n in QUICK if not only or n in only]
    start = _machine()
    before = engines.chosen()
    engines.choose(engine)
    say(f"machine: {start['cpu']}, {start['cores']} cores, torch threads {start['torch_threads']} "
        f"(OMP_NUM_THREADS={start['OMP_NUM_THREADS']}); engine {engine}")
    say(f"  at start: {start['uptime']}")
    say(f"{'figure':10s} {'workload':10s} {'cells':>5s} {'trials':>6s} {'thr':>3s} {'estimate':>9s} {'measured':>9s} "
        f"{'meas/est':>8s}  2x   iterations (mean / planned)")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in names:
                r = measure(name, Path(tmp))
                rows.append(r)
                its = "-" if r["iterations_mean"] is None else \
                    f"{r['iterations_mean']:.0f} / {r['iterations_planned'] if r['iterations_planned'] else '-'}"
                say(f"{name:10s} {r['workload']:10s} {r['cells']:5d} {r['trials']:6d} {r['threads']:3d} "
                    f"{r['estimate_s']:8.1f}s {r['measured_s']:8.1f}s {r['ratio']:8.2f}  "
                    f"{'yes' if r['within_2x'] else 'NO '}  {its}")
    finally:
        engines.choose(before)
    end = _machine()
    say(f"  at end:   {end['uptime']}")
    say(f"within 2x: {sum(r['within_2x'] for r in rows)} of {len(rows)}; measured in all "
        f"{sum(r['measured_s'] for r in rows):.1f} s, estimated {sum(r['estimate_s'] for r in rows):.1f} s")
    say("fig11: not a store sweep (IMP on real data, its own loop): no estimate")
    return {"machine_start": start, "machine_end": end, "engine": engine, "rows": rows}


def main(argv=None) -> dict:
    from ticketlab.engine import ENGINES

    ap = argparse.ArgumentParser(prog="python -m benchmarks.cost_model", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated experiments (default: every quick figure)")
    ap.add_argument("--json", action="store_true", help="print one JSON object after the table")
    ap.add_argument("--store", default=None, help="run nothing: measure mean iterations and the share at the cap "
                    "from the results in STORE (a store or packed tables) beside what the estimate plans with")
    ap.add_argument("--engine", default="auto", choices=ENGINES,
                    help="the Algorithm 1 engine the sweeps run (default auto: fast on the CPU)")
    args = ap.parse_args(argv)
    if args.store:
        rows = calibration(args.store)
        if args.json:
            print(json.dumps(rows, default=str))
        return {"calibration": rows}
    only = [x.strip() for x in args.only.split(",") if x.strip()] or None
    bad = [x for x in only or () if x not in QUICK]
    if bad:
        ap.error(f"--only: choose from {', '.join(QUICK)} (got {', '.join(bad)})")
    out = run(True, only, engine=args.engine)
    if args.json:
        print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main()
