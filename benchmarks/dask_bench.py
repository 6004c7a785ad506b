"""The Figure 4 sweep on a 2-worker Dask LocalCluster against the local executor, same machine.

The local executor runs twice: with torch's default thread count (what a user gets) and with one
thread (what each worker gets).

quick: a reduced quick grid (r~ in {10, 30}, five N, 6 trials: 60 trials in 10 batches); full: the quick
Figure 4 sweep (240 trials in 40 batches). Both runs write a fresh store; the benchmark checks that every
trial's numbers are identical. Cluster start-up (spawning workers, importing torch, loading the
compiled engine: what each worker pays on its first batch) is timed apart from the sweep; the local
process is warmed the same way. Overhead per batch: the same batches pushed through the cluster with a function that
does no work (``noop``), wall seconds / batches, both with 2 workers in parallel and one batch at a time.

    python benchmarks/dask_bench.py [--full]
"""

from __future__ import annotations

import json
import os
import tempfile
import time

QUICK_SETS = ["r_tilde=10,30", "N=50,150,250,350,450"]


def noop(task):
    return len(task.trials)


def _warm():
    """What a process pays on its first batch: importing torch and the engine, loading numba's compiled code."""
    from ticketlab.cli.sweep import make_config
    from ticketlab.experiments import get_experiment

    exp = get_experiment("fig4")
    cfg = make_config(exp, "quick", 1, ["d=8", "K=2", "r_tilde=4", "N=16", "max_iter=20"])
    exp.run_cell(cfg, exp.cells(cfg)[0], [0], "cpu")
    return os.getpid()


def _numbers(db):
    from ticketlab.store import load

    df = load(db).set_index("trial_id").sort_index()
    return df.drop(columns=["wall_time", "git_commit"])  # timing, and the tree's state when the run started


def run(quick: bool, workers: int = 2) -> dict:
    import torch

    from ticketlab.cli.sweep import make_config
    from ticketlab.dask_executor import DaskExecutor
    from ticketlab.experiments import get_experiment
    from ticketlab.store import Store
    from ticketlab.sweep import plan, run_sweep

    exp = get_experiment("fig4")
    cfg = make_config(exp, "quick", None, QUICK_SETS if quick else [])
    load_start = os.getloadavg()
    _warm()  # both sides warm: first-batch costs are reported as the cluster's start-up
    with tempfile.TemporaryDirectory() as tmp:
        local_db, dask_db = os.path.join(tmp, "local.db"), os.path.join(tmp, "dask.db")
        threads = torch.get_num_threads()
        t = time.perf_counter()
        with Store(local_db) as st:
            counts = run_sweep("fig4", cfg, st, progress=False)
        local_s = time.perf_counter() - t
        torch.set_num_threads(1)  # the same per-process setting as each worker
        try:
            t = time.perf_counter()
            with Store(os.path.join(tmp, "local1.db")) as st:
                run_sweep("fig4", cfg, st, progress=False)
            local1_s = time.perf_counter() - t
        finally:
            torch.set_num_threads(threads)

        t = time.perf_counter()
        ex = DaskExecutor(workers=workers)
        try:
            ex.client.run(_warm)
            startup_s = time.perf_counter() - t
            t = time.perf_counter()
            with Store(dask_db) as st:
                run_sweep("fig4", cfg, st, progress=False, executor=ex)
            dask_s = time.perf_counter() - t
            with Store(os.path.join(tmp, "empty.db")) as st:
                tasks, _ = plan(exp, cfg, st)
            t = time.perf_counter()
            assert sum(n for _, n in ex.run(noop, tasks)) == counts["ran"]
            parallel_overhead = (time.perf_counter() - t) / len(tasks)
            t = time.perf_counter()
            for task in tasks:
                list(ex.run(noop, [task]))
            roundtrip = (time.perf_counter() - t) / len(tasks)
        finally:
            ex.close()
        a, b = _numbers(local_db), _numbers(dask_db)
        identical = bool(a.equals(b))
    out = {"bench": "dask_fig4_localcluster", "quick": quick, "trials": counts["ran"], "batches": len(tasks),
           "workers": workers, "local_torch_threads": threads, "cores": os.cpu_count(),
           "local_s": local_s, "local_1thread_s": local1_s, "dask_s": dask_s, "dask_vs_local": dask_s / local_s,
           "cluster_startup_s": startup_s, "overhead_per_batch_s": parallel_overhead,
           "roundtrip_per_batch_s": roundtrip, "identical_results": identical,
           "load_average_start": load_start, "load_average_end": os.getloadavg()}
    grid = "reduced quick grid" if quick else "quick sweep"
    print(f"dask ({workers}-worker LocalCluster) vs local, Figure 4 {grid}: "
          f"{out['trials']} trials in {out['batches']} batches")
    print(f"  local executor ({out['local_torch_threads']} torch threads): {local_s:.1f} s, with 1 torch thread: "
          f"{local1_s:.1f} s; dask: {dask_s:.1f} s "
          f"(x{out['dask_vs_local']:.2f} of the default local run); cluster start-up {startup_s:.1f} s, not included")
    print(f"  overhead per batch: {parallel_overhead * 1e3:.1f} ms ({workers} workers), round trip "
          f"{roundtrip * 1e3:.1f} ms (one at a time); identical results: {identical}; load average "
          f"{load_start[0]:.1f} -> {out['load_average_end'][0]:.1f}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    import sys

    run("--full" not in sys.argv)
