"""Wall time of each theory figure's quick sweep, measured, and of its paper-scale sweep, estimated.

``python -m benchmarks.figures`` runs every quick sweep of Figures 2-6 into a fresh store (so
nothing is skipped), times it, and prints beside it the cost model's estimate for the paper-scale
grid on this machine (paper-scale sweeps take hours to days on 2 cores: run them with
``ticketlab sweep FIG --scale paper``, on a GPU or a cluster).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

FIGURES = ("fig2", "fig3", "fig4", "fig5", "fig6")


def run(quick: bool = True) -> dict:
    from ticketlab.experiments import get_experiment
    from ticketlab.store import Store
    from ticketlab.sweep import estimate_seconds, fmt_duration, run_sweep

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in FIGURES:
            exp = get_experiment(name)
            cfg = exp.default_config("quick")
            with Store(Path(tmp) / f"{name}.db") as st:
                t0 = time.perf_counter()
                counts = run_sweep(name, cfg, st, progress=False)
                wall = time.perf_counter() - t0
            paper = exp.default_config("paper")
            out[name] = {"quick_wall_s": wall, "quick_trials": counts["ran"],
                         "quick_estimate_s": estimate_seconds(exp, cfg),
                         "paper_trials": len(exp.cells(paper)) * paper.trials,
                         "paper_estimate_s": estimate_seconds(exp, paper)}
            print(f"{name}: quick {wall:6.1f} s measured ({counts['ran']} trials, model said "
                  f"{fmt_duration(out[name]['quick_estimate_s'])}); paper scale {out[name]['paper_trials']} trials, "
                  f"estimated {fmt_duration(out[name]['paper_estimate_s'])}")
    total = sum(v["quick_wall_s"] for v in out.values())
    print(f"quick Figures 2-6 together: {total:.1f} s")
    out["quick_total_s"] = total
    return out


if __name__ == "__main__":
    print(json.dumps(run()))


def fig4_floor(trials_per_cell: int = 2, pk: dict | None = None) -> dict:
    """What the paper-scale Figure 4 costs at the least: its useful flops over this machine's peak.

    Runs the paper grid (120 cells, the paper's stopping rule and cap) with a few trials per cell,
    measures the iterations each cell takes, and scales the useful work (4 N sum_j r_j flops per
    trial-iteration) to 100 trials per cell. Dividing by the measured all-core matmul peak gives
    the wall time no implementation of this algorithm can beat here; the engine's own time on the
    sample is scaled the same way.
    """
    import torch

    from ticketlab.experiments import get_experiment
    from ticketlab.store import Store, load
    from ticketlab.sweep import run_sweep

    from .machine import peaks

    pk = pk or peaks(True)
    threads = torch.get_num_threads()
    exp = get_experiment("fig4")
    cfg = exp.default_config("paper").model_copy(update={"trials": trials_per_cell})
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "fig4.db") as st:
            t0 = time.perf_counter()
            run_sweep("fig4", cfg, st, progress=False)
            wall = time.perf_counter() - t0
        df = load(Path(tmp) / "fig4.db")
    per_trial = 4 * df.N * df.r_ave * cfg.K * df.iterations  # useful flops; r_ave * K = sum_j r_j
    capped = df.iterations >= cfg.max_iter
    work = float(per_trial.sum())
    scale = 100 / trials_per_cell
    peak_all = pk[f"matmul_float64_x{threads}_flops"]
    peak_sum = threads * pk["matmul_float64_x1_flops"]
    out = {"trials_per_cell": trials_per_cell, "mean_iterations": float(df.iterations.mean()),
           "share_at_cap": float(capped.mean()), "work_share_at_cap": float(per_trial[capped].sum()) / work,
           "paper_useful_tflop": work * scale / 1e12, "sample_wall_s": wall,
           "engine_paper_estimate_s": wall * scale,
           "floor_at_measured_peak_s": work * scale / peak_all,
           "floor_at_cores_times_one_core_peak_s": work * scale / peak_sum, "threads": threads}
    out["peak_fraction_needed_for_5_min"] = out["floor_at_measured_peak_s"] / 300
    out["achieved_useful_gflops"] = work / wall / 1e9
    out["achieved_fraction_of_measured_peak"] = work / wall / peak_all
    out["achieved_fraction_of_cores_times_one_core_peak"] = work / wall / peak_sum
    print(f"paper-scale Figure 4 ({trials_per_cell} trials per cell measured, scaled to 100): mean "
          f"{out['mean_iterations']:.0f} iterations per trial, {100 * out['share_at_cap']:.0f}% of trials at the "
          f"{cfg.max_iter}-iteration cap ({100 * out['work_share_at_cap']:.0f}% of the work); "
          f"{out['paper_useful_tflop']:.1f} Tflop useful")
    print(f"  at 100% of the measured float64 matmul peak ({threads} threads, {peak_all / 1e9:.1f} GFLOP/s): "
          f"{out['floor_at_measured_peak_s'] / 60:.1f} min (at {threads} x one core's peak: "
          f"{out['floor_at_cores_times_one_core_peak_s'] / 60:.1f} min); 5 min would need "
          f"{100 * out['peak_fraction_needed_for_5_min']:.0f}% of the peak")
    print(f"  the fast engine on this sample: {wall:.1f} s, {out['achieved_useful_gflops']:.1f} GFLOP/s useful = "
          f"{100 * out['achieved_fraction_of_measured_peak']:.0f}% of the measured peak "
          f"({100 * out['achieved_fraction_of_cores_times_one_core_peak']:.0f}% of {threads} x one core's); "
          f"about {out['engine_paper_estimate_s'] / 60:.1f} min for the full grid (an overestimate: with "
          f"{trials_per_cell} trials per cell a thread idles while the slower trial of a cell finishes)")
    return out
