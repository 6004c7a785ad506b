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
