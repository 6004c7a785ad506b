"""``python -m benchmarks.slots [--quick] [--device cuda]``: the slot engine against the batched reference,
side by side in one run, on the same trials.

The workload is Figure 4's (d = 100, K = 5, r~ = 50): cells of the (N, start) grid whose trials end
after very different iteration counts, as the paper's grid does (a quarter run to the cap). The
reference solves each cell's batch until its slowest trial; the slot engine pools every cell's
trials in one set of slots, refilled as trials finish (on CUDA each block is a CUDA graph replay).
Prints the machine, trials per second of both and their ratio, and checks that every trial's
iteration count and verdict agree.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from benchmarks import machine
from ticketlab import engine
from ticketlab.config import OracleSpec, SolverSpec
from ticketlab.engine import slots
from ticketlab.init import local_start
from ticketlab.oracle import make_problem


def _cells(quick: bool, device: str, dtype):
    Ns = (150, 300) if quick else (100, 200, 300, 400)
    lams = (0.1, 0.6, 1.2) if quick else (0.1, 0.3, 0.6, 0.9, 1.2)
    trials = 16 if quick else 50
    out = []
    for i, N in enumerate(Ns):
        for j, lam in enumerate(lams):
            p = make_problem(OracleSpec(d=100, K=5, r=10), N, list(range(1000 * (i * 10 + j), 1000 * (i * 10 + j) + trials)),
                             device=device, dtype=dtype)
            out.append((p, local_start(p.W_star, p.mask, lam, p.seeds)))
    return out


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.slots", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a smaller grid and cap (about a minute on 2 cores)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    solver = SolverSpec(max_iter=1500 if args.quick else 10_000, tol=1e-8)
    cells = _cells(args.quick, args.device, dtype)
    n = sum(p.X.shape[0] for p, _ in cells)
    info = machine.info()
    out = {"machine": info, "device": args.device, "dtype": args.dtype, "cells": len(cells), "trials": n,
           "max_iter": solver.max_iter}
    if args.device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(0)
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} x{info['torch_threads']} threads, "
          f"load {info['load_average'][0]:.1f}; device {args.device}{' (' + out['gpu'] + ')' if 'gpu' in out else ''}, {args.dtype}")
    print(f"Figure 4 workload: {len(cells)} cells, {n} trials, cap {solver.max_iter}")

    _sync(args.device)
    t0 = time.perf_counter()
    ref = [engine.solve(p.X, p.y, p.mask, W0, solver, backend="reference") for p, W0 in cells]
    _sync(args.device)
    t_ref = time.perf_counter() - t0

    modes = {"slots": None} if not args.device.startswith("cuda") else {"slots, eager": False, "slots, CUDA graphs": True}
    results = {}
    for label, graphs in modes.items():
        server = slots.SlotServer(block=slots.DEFAULT_BLOCK, graphs=graphs)

        def run(cell, server=server):  # one thread per cell, all sharing the server's slots
            p, W0 = cell
            with slots.serving(server):
                return engine.solve(p.X, p.y, p.mask, W0, solver, backend="slots")

        _sync(args.device)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(cells)) as pool:
            got = list(pool.map(run, cells))
        server.close()
        _sync(args.device)
        results[label] = (time.perf_counter() - t0, got)

    its = torch.cat([r.iterations for r in ref]).double()
    out["iterations"] = {"mean": float(its.mean()), "max": int(its.max()), "capped_share": float((its == solver.max_iter).double().mean())}
    print(f"iterations per trial: mean {its.mean():.0f}, max {its.max():.0f}, "
          f"{100 * out['iterations']['capped_share']:.0f}% at the cap")
    out["reference_s"] = t_ref
    print(f"  reference (a batch per cell)   {t_ref:8.2f} s   {n / t_ref:9.1f} trials/s")
    for label, (sec, got) in results.items():
        same = all(torch.equal(a.iterations, b.iterations) and torch.equal(a.converged, b.converged)
                   and torch.equal(a.failed, b.failed) for a, b in zip(ref, got))
        out[label] = {"seconds": sec, "trials_per_second": n / sec, "speedup": t_ref / sec, "same_verdicts": same}
        print(f"  {label:30s} {sec:8.2f} s   {n / sec:9.1f} trials/s   x{t_ref / sec:.2f}   "
              f"iterations and verdicts identical: {same}")
    if args.json:
        print(json.dumps(out))
    return out


def run(quick: bool = True) -> dict:
    """The entry ``python -m benchmarks`` calls: this benchmark on the default device, float64."""
    return main(["--quick"] if quick else [])


if __name__ == "__main__":
    main()
