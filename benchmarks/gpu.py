"""``python -m benchmarks.gpu [--quick]``: the engine on CUDA against the CPU, on one machine, in one run.

Prints the device, then (a) trials per second of the Figure 4 workload on CUDA (batched reference
engine) and on this machine's CPU (fast engine, all cores), (b) seconds per trial-iteration of the
paper-scale Figure 2 and Figure 3 workloads on CUDA, and the paper-scale wall times they imply,
(c) a CPU/CUDA agreement check on a few trials. Needs a CUDA device; says so and exits otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from ticketlab.config import InitSpec, OracleSpec, SolverSpec, TrialSpec
from ticketlab.engine import solve
from ticketlab.init import local_start
from ticketlab.oracle import make_problem
from ticketlab.trial import run_trials


def _time_solve(spec: OracleSpec, N: int, trials: int, iters: int, device: str, backend: str, reps: int = 2):
    p = make_problem(spec, N, list(range(trials)), device=device)
    W0 = local_start(p.W_star, p.mask, 0.2, p.seeds)
    solver = SolverSpec(max_iter=iters, tol=1e-300)  # a fixed iteration count
    times = []
    for _ in range(reps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        solve(p.X, p.y, p.mask, W0, solver, backend=backend)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {"seconds": best, "per_trial_iteration": best / (trials * iters), "trials_per_second_at_1000_iters":
            trials / best * iters / 1000}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device on this machine: nothing to measure")
        return {}
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cpu_cores": os.cpu_count(),
           "cpu_threads": torch.get_num_threads()}
    print(f"device: {out['device']}, torch {out['torch']}, CPU cores {out['cpu_cores']}")
    iters = 200 if args.quick else 1000

    fig4 = OracleSpec(d=100, K=5, r=50)
    out["fig4"] = {}
    for B in (100, 1000, 4000):
        out["fig4"][f"cuda_B{B}"] = _time_solve(fig4, 300, B, iters, "cuda", "reference")
    out["fig4"]["cpu_fast_B100"] = _time_solve(fig4, 300, 100, iters, "cpu", "fast")
    print("(a) Figure 4 workload (d=100, K=5, r=50, N=300), trials/s at 1000 iterations:")
    for k, v in out["fig4"].items():
        print(f"  {k:14s} {v['trials_per_second_at_1000_iters']:9.1f} trials/s   "
              f"{v['per_trial_iteration'] * 1e6:8.2f} us per trial-iteration")
    best_gpu = max(v["trials_per_second_at_1000_iters"] for k, v in out["fig4"].items() if k.startswith("cuda"))
    print(f"  best CUDA / CPU fast engine (this machine's {out['cpu_cores']} cores): "
          f"x{best_gpu / out['fig4']['cpu_fast_B100']['trials_per_second_at_1000_iters']:.1f}")

    # paper-scale workloads; iterations per trial from the paper's Figure 3a (600-2400) and Figure 4 (~2400)
    w2 = _time_solve(OracleSpec(d=500, K=10, r=225), 5000, 100, iters // 4, "cuda", "reference", reps=1)
    w3 = _time_solve(OracleSpec(d=300, K=10, r=70), 5000, 40, iters // 2, "cuda", "reference", reps=1)
    out["fig2_paper"] = {**w2, "trials": 11 * 10 * 100, "assumed_iterations": 3000,
                         "estimated_wall_s": w2["per_trial_iteration"] * 11 * 10 * 100 * 3000}
    out["fig3_paper"] = {**w3, "trials": 5 * 2 * 20, "assumed_iterations": 2500,
                         "estimated_wall_s": w3["per_trial_iteration"] * 5 * 2 * 20 * 2500}
    print("(b) paper scale on CUDA (float64, batched reference engine):")
    for k in ("fig2_paper", "fig3_paper"):
        v = out[k]
        print(f"  {k}: {v['per_trial_iteration'] * 1e6:.1f} us per trial-iteration -> about "
              f"{v['estimated_wall_s'] / 60:.1f} min for {v['trials']} trials x {v['assumed_iterations']} iterations")

    spec = TrialSpec(oracle=OracleSpec(d=40, K=3, r=10), N=300, init=InitSpec(lam=0.3), solver=SolverSpec(max_iter=3000))
    cpu = run_trials(spec, list(range(8)), device="cpu", backend="reference")
    gpu = run_trials(spec, list(range(8)), device="cuda", backend="reference")
    diff = max(abs(a["relative_error"] - b["relative_error"]) / max(a["relative_error"], 1e-12)
               for a, b in zip(cpu, gpu))
    same = all(a["success"] == b["success"] for a, b in zip(cpu, gpu))
    out["agreement"] = {"max_rel_diff_relative_error": diff, "same_verdicts": same,
                        "iterations_cpu": [a["iterations"] for a in cpu], "iterations_cuda": [b["iterations"] for b in gpu]}
    print(f"(c) CPU vs CUDA on 8 trials: same verdicts {same}, max relative difference of the error {diff:.1e}, "
          f"iterations {out['agreement']['iterations_cpu']} vs {out['agreement']['iterations_cuda']}")
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
