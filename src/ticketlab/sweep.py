"""Turning an experiment into chunks of trials that are not yet in the store, running them on an
executor and writing each chunk to the store as it arrives. Nothing finished is ever lost: a killed
sweep loses only the chunks in flight, and rerunning it skips every stored trial."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tqdm.auto import tqdm

from .experiments import get_experiment
from .provenance import provenance
from .store import Store

DEFAULT_CHUNK = 32
DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes of trial data held at once by one chunk


@dataclass(frozen=True)
class Task:
    """A picklable batch of trials of one cell: enough for any worker to recompute them exactly."""

    experiment: str
    config: dict
    cell_index: int
    trials: tuple[int, ...]
    seeds: tuple[int, ...]
    trial_ids: tuple[str, ...]
    device: str
    # design='common': further cells of the same group solved with this chunk on the same seeds,
    # as (cell index, their trial ids)
    group: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def cells(self) -> list[tuple[int, tuple[str, ...]]]:
        """Every (cell index, trial ids) this chunk runs."""
        return [(self.cell_index, self.trial_ids), *self.group]


def run_task(task: Task) -> list[dict]:
    """Run one chunk and return the store rows (called in-process or on a Dask worker)."""
    exp = get_experiment(task.experiment)
    cfg = exp.Config(**task.config)
    all_cells = exp.cells(cfg)
    members = task.cells()
    cells = [all_cells[ci] for ci, _ in members]
    if len(cells) == 1:
        results = [exp.run_cell(cfg, cells[0], list(task.seeds), task.device)]
    else:
        results = exp.run_cells(cfg, cells, list(task.seeds), task.device)
    prov = provenance(task.device, cfg.dtype)
    rows = []
    for cell, (_, ids), res_cell in zip(cells, members, results):
        key = cell.key(exp.name)
        rows += [{"trial_id": tid, "experiment": exp.name, "config_id": cfg.config_id(), "cell_id": key,
                  "cell": cell.params, "trial": t, "seed": s, "result": res, "provenance": prov}
                 for tid, t, s, res in zip(ids, task.trials, task.seeds, res_cell)]
    return rows


def bytes_per_trial(spec) -> int:
    from .engine.cost import bytes_per_trial as engine_bytes

    # the engine's own data plus the copy of the kept columns of X that the fast engine builds per trial
    return 2 * engine_bytes(spec.N, spec.oracle.d, spec.oracle.K, spec.dtype)


def trials_per_chunk(spec, chunk_size: int | None = None, memory_budget: int | None = None) -> int:
    """How many trials of one cell a chunk holds: --chunk-size, within --memory-budget."""
    budget = memory_budget or DEFAULT_MEMORY_BUDGET
    return max(1, min(chunk_size or DEFAULT_CHUNK, budget // max(1, bytes_per_trial(spec))))


def plan(exp, cfg, store: Store, device: str = "cpu", chunk_size: int | None = None,
         memory_budget: int | None = None) -> tuple[list[Task], int]:
    """The chunks still to run, and how many trials the config has in all."""
    refs = exp.trials(cfg)
    done = store.existing([r.trial_id for r in refs])
    cells = exp.cells(cfg)
    by_cell: dict[int, list] = {}
    for r in refs:
        if r.trial_id not in done:
            by_cell.setdefault(r.cell_index, []).append(r)
    # design='common': cells of one group whose missing trials are the same (same seeds) run together
    units: dict = {}
    for ci, todo in by_cell.items():
        g = cells[ci].group
        units.setdefault((ci,) if g is None else (g, tuple(r.trial for r in todo)), []).append(ci)
    tasks = []
    for members in units.values():
        ci = members[0]
        todo = by_cell[ci]
        per = trials_per_chunk(cells[ci].spec, chunk_size, memory_budget)
        for i in range(0, len(todo), per):
            part = todo[i:i + per]
            group = tuple((cj, tuple(r.trial_id for r in by_cell[cj][i:i + per])) for cj in members[1:])
            tasks.append(Task(exp.name, cfg.model_dump(mode="json"), ci, tuple(r.trial for r in part),
                              tuple(r.seed for r in part), tuple(r.trial_id for r in part), device, group))
    return tasks, len(refs)


def run_sweep(exp_name: str, cfg, store: Store, *, device: str = "cpu", executor=None, progress: bool = True,
              chunk_size: int | None = None, memory_budget: int | None = None) -> dict:
    """Run every missing trial of ``cfg`` and return counts {total, skipped, ran, written}.

    ``executor``: an executor, or a zero-argument factory called only if some trials remain."""
    from .executors import LocalExecutor

    exp = get_experiment(exp_name)
    store.save_config(exp.name, cfg.config_id(), cfg.model_dump(mode="json"))
    tasks, total = plan(exp, cfg, store, device, chunk_size, memory_budget)
    todo = sum(len(t.trials) * len(t.cells()) for t in tasks)
    if not tasks:  # fully resumed: start no executor (a cluster takes seconds to come up)
        return {"total": total, "skipped": total, "ran": 0, "written": 0}
    if executor is None:
        executor = LocalExecutor()
    elif not hasattr(executor, "run"):
        executor = executor()  # a factory: the executor is made only when there is work
    written = 0
    n_cells = len({ci for t in tasks for ci, _ in t.cells()})
    bar = tqdm(total=todo, desc=f"{exp.name}", unit="trial", disable=not progress, dynamic_ncols=True)
    cells_left = {}
    for t in tasks:
        for ci, _ in t.cells():
            cells_left[ci] = cells_left.get(ci, 0) + len(t.trials)
    cells_done = 0
    try:
        for task, rows in executor.run(run_task, tasks):
            written += store.write(rows)
            for ci, _ in task.cells():
                cells_left[ci] -= len(task.trials)
                cells_done += cells_left[ci] == 0
            bar.set_postfix_str(f"cells {cells_done}/{n_cells}")
            bar.update(len(task.trials) * len(task.cells()))
    finally:
        bar.close()
    return {"total": total, "skipped": total - todo, "ran": todo, "written": written}


TYPICAL_ITERATIONS = 2500  # iterations per trial to plan with, where an experiment gives none


def estimate_seconds(exp, cfg, device="cpu", chunk_size: int | None = None,
                     memory_budget: int | None = None) -> float:
    """A planning estimate of a sweep's wall time on this machine (or one GPU, for a CUDA device),
    from the engine's cost model (good to about 2x). Iterations per trial: the experiment's
    ``typical_iterations`` (measured where given) or 2500, at most max_iter; on a GPU the batches
    are sized as ``plan`` sizes them."""
    import os

    from .engine.cost import estimate

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    total = 0.0
    cells = exp.cells(cfg)
    members = {}  # design='common': how many cells share each group's problems
    for cell in cells:
        members[cell.group] = members.get(cell.group, 0) + 1
    together = exp.solved_together(cfg)
    for cell in cells:
        s = cell.spec
        r_sum = sum(s.oracle.r_values()) + s.oracle.K * s.oracle.extra
        its = min(s.solver.max_iter, getattr(exp, "typical_iterations", TYPICAL_ITERATIONS))
        if str(device or "cpu").startswith("cuda"):
            total += estimate(s.N, s.oracle.d, s.oracle.K, r_sum, its, cfg.trials, "cuda", dtype=s.dtype,
                              batch=trials_per_chunk(s, chunk_size, memory_budget), max_iter=s.solver.max_iter)
        else:
            total += estimate(s.N, s.oracle.d, s.oracle.K, r_sum, its, cfg.trials, cores=cores, dtype=s.dtype,
                              members=members[cell.group] if cell.group is not None and together else 1)
    return total * exp.solved_fraction(cfg)


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
