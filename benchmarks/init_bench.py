"""Benchmark of the method-of-moments starts: wall time and peak extra memory at d=1000, K=10, N=20,000.

Each init runs in a fresh process that maps the trial's data from disk and touches it, so the peak
resident memory above that point is the init's own working memory (`peak_extra_mb`). ``run(quick)`` prints a
table and returns the numbers; quick uses N=5,000.

    python benchmarks/init_bench.py [--quick]
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time

D, K, R, N_FULL, N_QUICK = 1000, 10, 50, 20_000, 5_000
KINDS = ("tensor", "moments", "moments0", "dense")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); ru_maxrss would carry the parent's peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _child(path: str, kind: str, threads: int, queue) -> None:
    import torch

    from ticketlab.init.moments import INIT_METHODS
    from ticketlab.metrics import aligned_relative_error

    torch.set_num_threads(threads)
    # mmap: no read buffer beside the tensors, so the load itself sets no higher peak than the data
    X, y, mask, W_star, seeds = torch.load(path, mmap=True)
    float(X.sum() + y.sum())  # touch every page: the data is resident before the baseline is taken
    base = _status_mb("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    W0 = INIT_METHODS[kind](X, y, mask, seeds)
    wall = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    err, _ = aligned_relative_error(W0, W_star)
    queue.put({"kind": kind, "wall_s": wall, "peak_extra_mb": max(0.0, peak - base),
               "data_mb": X.numel() * X.element_size() / 2**20, "init_relative_error": float(err[0])})


def run(quick: bool = False, threads: int | None = None) -> dict:
    import torch

    from ticketlab.config import OracleSpec
    from ticketlab.oracle import make_problem

    N = N_QUICK if quick else N_FULL
    threads = threads or torch.get_num_threads()
    p = make_problem(OracleSpec(d=D, K=K, r=R), N, [0])
    kept = int((p.mask != 0).any(-1).sum())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trial.pt")
        torch.save((p.X, p.y, p.mask, p.W_star, p.seeds), path)
        del p
        ctx = mp.get_context("spawn")
        for kind in KINDS:
            q = ctx.Queue()
            proc = ctx.Process(target=_child, args=(path, kind, threads, q))
            proc.start()
            rows.append(q.get())
            proc.join()
    out = {"d": D, "K": K, "r": R, "N": N, "kept_coordinates": kept, "threads": threads, "rows": rows}
    print(f"moment inits, d={D}, K={K}, r={R} (kept coordinates {kept}), N={N}, {threads} thread(s)")
    print(f"{'kind':<9} {'time (s)':>9} {'peak extra MB':>14} {'data MB':>8} {'init error':>11}")
    for r in rows:
        print(f"{r['kind']:<9} {r['wall_s']:>9.2f} {r['peak_extra_mb']:>14.1f} {r['data_mb']:>8.1f} "
              f"{r['init_relative_error']:>11.3g}")
    return out


if __name__ == "__main__":
    res = run(quick="--quick" in sys.argv)
    if "--json" in sys.argv:
        print(json.dumps(res))
