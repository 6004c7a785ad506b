"""Peak memory of each paper-scale figure, measured: ``python -m benchmarks.memory``.

A sweep holds one batch (chunk) of trials at a time, so its peak is that of its largest batch. For
each figure this runs, in a fresh process, the first batch of the paper-scale cell with the most data
per trial (5 iterations: memory, not time, is measured), under the default memory budget and under
a 256 MiB one, and reports the process's peak resident memory (ru_maxrss) next to the baseline of
a process that only imported ticketlab.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

FIGURES = ("fig2", "fig3", "fig4", "fig5", "fig6")
BUDGETS = (None, 256 * 2**20)


def _peak_rss() -> int:
    """This process's peak resident memory in bytes. VmHWM belongs to the process image (reset by
    exec); ru_maxrss can carry over the parent's peak from fork, so it is only the fallback."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(name: str, budget: int | None) -> dict:
    import tempfile

    from ticketlab.experiments import get_experiment
    from ticketlab.store import Store
    from ticketlab.sweep import bytes_per_trial, plan, run_task

    exp = get_experiment(name)
    cfg = exp.Config(**{**exp.default_config("paper").model_dump(), "max_iter": 5})
    cells = exp.cells(cfg)
    with tempfile.TemporaryDirectory() as tmp, Store(f"{tmp}/m.db") as st:
        tasks, _ = plan(exp, cfg, st, memory_budget=budget)
    task = max(tasks, key=lambda t: bytes_per_trial(cells[t.cell_index].spec) * len(t.trials))
    base = _peak_rss()
    run_task(task)
    peak = _peak_rss()
    spec = cells[task.cell_index].spec
    return {"figure": name, "budget": budget, "trials_in_batch": len(task.trials),
            "batch_data_bytes": bytes_per_trial(spec) * len(task.trials), "cell": cells[task.cell_index].params,
            "baseline_rss": base, "peak_rss": peak}


def run(quick: bool = True) -> dict:
    out = []
    for name in FIGURES:
        for budget in BUDGETS:
            res = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", name, str(budget or 0)],
                                 capture_output=True, text=True, timeout=600)
            if res.returncode != 0:
                print(f"{name}: failed: {res.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(res.stdout.strip().splitlines()[-1])
            out.append(row)
            b = "default (2 GiB)" if not row["budget"] else f"{row['budget'] / 2**20:.0f} MiB"
            print(f"{name:5s} budget {b:15s}: batch of {row['trials_in_batch']:3d} trials "
                  f"({row['batch_data_bytes'] / 2**20:7.1f} MiB of trial data), peak RSS "
                  f"{row['peak_rss'] / 2**20:7.1f} MiB (imports alone {row['baseline_rss'] / 2**20:.0f} MiB)")
    return {"rows": out}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]) or None), default=str))
    else:
        run()
