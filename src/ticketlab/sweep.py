"""Turning an experiment into chunks of trials that are not yet in the store, running them on an
executor and writing each chunk to the store as it arrives. Nothing finished is ever lost: a killed
sweep loses only the chunks in flight, and rerunning it skips every stored trial."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tqdm.auto import tqdm

from .config import bad_value
from .experiments import get_experiment
from .provenance import provenance
from .store import Store

__all__ = [
    "DEFAULT_CHUNK", "PROGRESS_SPLIT", "Task", "estimate_seconds", "fmt_duration", "plan",
    "remaining_per_cell", "run_sweep", "run_task", "trials_per_chunk", "DEFAULT_MEMORY_BUDGET",
    "bytes_per_trial", "check_batching", "MAX_TRIALS", "available_memory", "fmt_bytes", "preflight",
    "TYPICAL_ITERATIONS", "split_size", "trial_threads", "trial_workload", "trial_seconds", "host_seconds",
    "typical_iterations", "WORKLOADS", "MEASURED_AT_MAX_ITER",
]

#: trials per chunk when neither --chunk-size nor the memory budget is smaller
DEFAULT_CHUNK = 32
DEFAULT_MEMORY_BUDGET = 2 * 2**30  #: bytes of trial data held at once by one chunk


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
    engine: str = "auto"  # the Algorithm 1 engine chosen for the sweep (engine.choose), same on every worker
    # design='common': further cells of the same group solved with this chunk on the same seeds,
    # as (cell index, their trial ids)
    group: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def cells(self) -> list[tuple[int, tuple[str, ...]]]:
        """Every (cell index, trial ids) this chunk runs."""
        return [(self.cell_index, self.trial_ids), *self.group]

    def all_trial_ids(self) -> list[str]:
        return [tid for _, ids in self.cells() for tid in ids]


def run_task(task: Task) -> list[dict]:
    """Run one chunk and return the store rows (called in-process or on a Dask worker)."""
    from . import engine

    exp = get_experiment(task.experiment)
    cfg = exp.Config(**task.config)
    all_cells = exp.cells(cfg)
    members = task.cells()
    cells = [all_cells[ci] for ci, _ in members]
    previous = engine.choose(task.engine)
    engine.used(reset=True)
    try:
        if len(cells) == 1:
            results = [exp.run_cell(cfg, cells[0], list(task.seeds), task.device)]
        else:
            results = exp.run_cells(cfg, cells, list(task.seeds), task.device)
    finally:
        engine.choose(previous)
    prov = provenance(task.device, cfg.dtype)
    # the engines that actually ran this chunk ('none': the experiment does not run Algorithm 1)
    prov["engine"] = ",".join(sorted(engine.used(reset=True))) or "none"
    prov["engine_choice"] = task.engine
    rows = []
    for cell, (_, ids), res_cell in zip(cells, members, results):
        key = cell.key(exp.name)
        rows += [{"trial_id": tid, "experiment": exp.name, "config_id": cfg.config_id(), "cell_id": key,
                  "cell": cell.params, "trial": t, "seed": s, "result": res, "provenance": prov}
                 for tid, t, s, res in zip(ids, task.trials, task.seeds, res_cell)]
    return rows


def bytes_per_trial(spec) -> int:
    """Memory one trial of ``spec`` holds while it runs (bytes): the engine's data and the fast engine's copy
    of the kept columns of X; it sizes the chunks."""
    from .engine.cost import bytes_per_trial as engine_bytes

    # the engine's own data plus the copy of the kept columns of X that the fast engine builds per trial
    return 2 * engine_bytes(spec.N, spec.oracle.d, spec.oracle.K, spec.dtype)


def check_batching(chunk_size=None, memory_budget=None) -> None:
    """--chunk-size and --memory-budget: None or a positive integer (ConfigError naming the flag)."""
    from .config import ConfigError

    for flag, value in (("--chunk-size", chunk_size), ("--memory-budget", memory_budget)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{flag}: must be a positive integer{' of bytes' if 'memory' in flag else ''} "
                              f"(got {value!r})")


def trials_per_chunk(spec, chunk_size: int | None = None, memory_budget: int | None = None) -> int:
    """How many trials of one cell a chunk holds: --chunk-size, within --memory-budget. The numbers of a
    trial never depend on this (every engine and metric works trial by trial; tests/test_faults.py)."""
    budget = memory_budget or DEFAULT_MEMORY_BUDGET
    return max(1, min(chunk_size or DEFAULT_CHUNK, budget // max(1, bytes_per_trial(spec))))


PROGRESS_SPLIT = 4  #: with a progress bar and no --chunk-size, a cell runs in at least this many chunks


def split_size(todo: int, per: int, split: int = 1, threads: int = 1) -> int:
    """Trials per chunk of a cell with ``todo`` trials left: ``per`` (trials_per_chunk), or with
    ``split`` > 1 small enough for at least ``split`` chunks (the bar moves after each), but never
    fewer than the ``threads`` trials the engine runs side by side (a smaller chunk idles cores)."""
    if split <= 1:
        return max(1, per)
    return max(1, min(per, max(todo // split, min(todo, threads))))


def trial_threads(exp, cfg) -> int:
    """How many trials of a chunk run side by side in this process: the fast engines solve one trial
    per torch thread (``torch.get_num_threads()``, which follows OMP_NUM_THREADS, within the cores
    this process may use); the landscape and init studies run their trials one after another."""
    if trial_workload(exp, cfg) in ("landscape", "init"):
        return 1
    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(torch.get_num_threads(), cores))


MAX_TRIALS = 10_000_000  #: trials in one sweep: beyond this the plan alone (ids, seeds) fills gigabytes


def available_memory(device: str = "cpu") -> int | None:
    """Bytes this machine (or the CUDA device) can give a sweep now; None if unknown."""
    if str(device).startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:  # no CUDA here: the workers check their own
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fmt_bytes(n: float) -> str:
    """A byte count for people, in binary units: '512 B', '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def preflight(exp, cfg, device: str = "cpu", memory_budget: int | None = None) -> None:
    """Refuse, before anything is written or allocated, a sweep that cannot fit: one trial must fit in
    the --memory-budget (when given) and in the machine's available memory (ConfigError with the
    estimate, the limit and the way out). Cheap: a few multiplications per cell."""
    from .config import ConfigError

    check_batching(None, memory_budget)
    cells = exp.cells(cfg)
    total = len(cells) * cfg.trials
    if total > MAX_TRIALS:
        raise ConfigError(f"{exp.name} trials: must give at most {MAX_TRIALS:,} trials in one sweep (got "
                          f"{len(cells)} cells x {cfg.trials} = {total:,}); lower --trials or the grids")
    if not exp.sweeps or not cells or not all(hasattr(c.spec, "oracle") for c in cells):
        return
    worst = max(cells, key=lambda c: bytes_per_trial(c.spec))
    need = bytes_per_trial(worst.spec)
    where = "the GPU's free memory" if str(device).startswith("cuda") else "this machine's available memory"
    have = available_memory(device)
    cell = ", ".join(f"{k}={v}" for k, v in worst.params.items())
    if memory_budget is not None and need > memory_budget:
        raise ConfigError(f"--memory-budget: must hold one trial; {exp.name} cell {cell} needs about "
                          f"{fmt_bytes(need)} (got {fmt_bytes(memory_budget)}); raise --memory-budget or lower N or d")
    if have is not None and need > have:
        raise ConfigError(f"{exp.name}: one trial of cell {cell} needs about {fmt_bytes(need)}, more than "
                          f"{where} ({fmt_bytes(have)}); lower N or d, or run on a bigger machine")


def plan(exp, cfg, store: Store, device: str = "cpu", chunk_size: int | None = None,
         memory_budget: int | None = None, engine: str = "auto", split: int = 1) -> tuple[list[Task], int]:
    """The chunks still to run, and how many trials the config has in all. ``split`` > 1 cuts each
    cell's remaining trials into at least that many chunks (so that a progress bar moves within a
    cell; each trial's numbers do not depend on its batch), each of at least as many trials as run
    side by side (``split_size``)."""
    check_batching(chunk_size, memory_budget)
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
        per = split_size(len(todo), trials_per_chunk(cells[ci].spec, chunk_size, memory_budget), split,
                         trial_threads(exp, cfg))
        for i in range(0, len(todo), per):
            part = todo[i:i + per]
            group = tuple((cj, tuple(r.trial_id for r in by_cell[cj][i:i + per])) for cj in members[1:])
            tasks.append(Task(exp.name, cfg.model_dump(mode="json"), ci, tuple(r.trial for r in part),
                              tuple(r.seed for r in part), tuple(r.trial_id for r in part), device, engine,
                              group))
    return tasks, len(refs)


def _claimed(tasks, store: Store, by_others: list, poll: float = 0.5):
    """The tasks this process claims in the store, in order; a task another live sweep holds is put off
    and taken up again once that sweep wrote it (skipped) or died (its claim lapses)."""
    import time

    owner = store.owner
    waiting = list(tasks)
    try:
        while waiting:
            later = []
            for task in waiting:
                state = store.claim(task.all_trial_ids(), owner)
                if state == "mine":
                    yield task
                elif state == "done":
                    by_others[0] += len(task.all_trial_ids())
                else:
                    later.append(task)
            if later:
                time.sleep(poll)
            waiting = later
    finally:
        store.release(owner)


def run_sweep(exp_name: str, cfg, store: Store, *, device: str = "cpu", executor=None, progress: bool = True,
              chunk_size: int | None = None, memory_budget: int | None = None, engine: str | None = None) -> dict:
    """Run every missing trial of ``cfg`` and return counts {total, skipped, ran, written}.

    ``executor``: an executor, or a zero-argument factory called only if some trials remain."""
    from . import engine as engines
    from .executors import LocalExecutor

    exp = get_experiment(exp_name)
    check_batching(chunk_size, memory_budget)
    preflight(exp, cfg, device, memory_budget)
    choice = engines.check_engine(engine or engines.chosen())
    store.save_config(exp.name, cfg.config_id(), cfg.model_dump(mode="json"))
    # a local run with a bar: split cells so the bar moves within each (a cluster balances chunks itself)
    split = PROGRESS_SPLIT if progress and chunk_size is None and (executor is None or getattr(
        executor, "name", "local") == "local") else 1
    tasks, total = plan(exp, cfg, store, device, chunk_size, memory_budget, choice, split=split)
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
    by_others = [0]
    if isinstance(executor, LocalExecutor):  # one chunk at a time: claim it, so racing sweeps share the work
        tasks = _claimed(tasks, store, by_others)
    try:
        for task, rows in executor.run(run_task, tasks):
            written += store.write(rows)
            for ci, _ in task.cells():
                cells_left[ci] = cells_left.get(ci, len(task.trials)) - len(task.trials)
                cells_done += cells_left[ci] == 0
            bar.set_postfix_str(f"cells {cells_done}/{n_cells}")
            bar.update(len(task.trials) * len(task.cells()))
    finally:
        bar.close()
    if by_others[0]:
        import sys

        print(f"{exp.name}: {by_others[0]} trials were written meanwhile by another sweep on this store; "
              "they were not run twice", file=sys.stderr)
    ran = todo - by_others[0]
    return {"total": total, "skipped": total - ran, "ran": ran, "written": written}


TYPICAL_ITERATIONS = 2500  #: iterations per trial to plan with, where an experiment gives none
WORKLOADS = ("agd", "found_mask", "imp", "landscape", "init")  #: what a trial's cost is made of (trial_seconds)


#: the iteration cap the paper-scale means (typical_iterations, capped_share) were measured at
MEASURED_AT_MAX_ITER = 10_000


def typical_iterations(exp, cfg) -> int:
    """Iterations a solve of ``cfg`` runs on average, to plan with: the experiment's measured
    ``typical_iterations`` (a number, or one per scale: a custom config takes the paper's), else
    TYPICAL_ITERATIONS; callers cap it at max_iter. Beyond the paper-scale runs' cap
    (MEASURED_AT_MAX_ITER), the share of solves that ran to it (the experiment's ``capped_share``) is
    planned to run to the new cap: an upper bound (some converge on the way), measured 1.05-1.45x the
    mean of five 50,000-iteration cap checks (docs/performance.md). Iteration counts are deterministic
    (same config and seeds, same counts), so a measured mean is a property of the grid, not of the machine;
    ``python -m benchmarks.cost_model --store STORE`` measures both from stored results."""
    t = getattr(exp, "typical_iterations", TYPICAL_ITERATIONS)
    if isinstance(t, dict):
        t = t.get(cfg.scale, t.get("paper", TYPICAL_ITERATIONS))
    cap = getattr(getattr(cfg, "solver", None), "max_iter", None)
    share = getattr(exp, "capped_share", 0.0)
    if cfg.scale != "quick" and cap is not None and cap > MEASURED_AT_MAX_ITER:
        t += share * (cap - MEASURED_AT_MAX_ITER)
    return int(t)


def trial_workload(exp, cfg) -> str:
    """What a trial of ``exp`` does, for its cost (the experiment's ``workload``): 'agd' (Algorithm 1
    on the cell's mask, the default), 'found_mask' (Figures 7-9: a dense learner, pruned, then
    Algorithm 1 on the found mask), 'imp' (Figure 10: one solve per level on a shrinking mask),
    'landscape' (Hessians, no Algorithm 1) or 'init' (the moment starts, no Algorithm 1)."""
    kind = getattr(exp, "workload", "agd")
    if kind not in WORKLOADS:
        raise ValueError(f"{exp.name}.workload: must be one of {', '.join(WORKLOADS)} (got {kind!r})")
    return kind


def host_seconds(exp, cfg, cell) -> float:
    """Seconds of a trial's work besides its solves, on the CPU whatever the device: drawing the data,
    start and metrics, and a sampled test error (which can outweigh the training: Figure 9 at paper
    scale, 99% of a trial)."""
    from .engine import cost

    s = cell.spec
    seconds = cost.setup_time(s.N, s.oracle.d)
    if getattr(s, "test_error", None) == "sampled":
        evaluations = cfg.rounds + 1 if trial_workload(exp, cfg) == "imp" else 1  # IMP: every round, one draw
        seconds += cost.test_error_time(s.n_test, s.oracle.d, s.oracle.K, evaluations)
    return seconds


def trial_seconds(exp, cfg, cell, members: int = 1, engine: str = "fast", batch: int = 100) -> float:
    """Seconds one trial of ``cell`` takes on one core (engine.cost): setup, then its workload's work.
    members > 1: one member of a group sharing its problems (design='common', the shared engine).
    ``engine``: the CPU engine that solves it ('fast', or 'reference' / 'slots' in batches of ``batch``
    trials)."""
    from .engine import ENGINES, cost

    runnable = [e for e in ENGINES if e != "auto"]  # what engine.resolve returns
    if engine not in runnable:
        raise bad_value("engine", f"must be {', '.join(runnable[:-1])} or {runnable[-1]}", engine)
    backend = "fast" if engine == "fast" else "reference"
    factor = cost.SLOTS_CPU_FACTOR if engine == "slots" else 1.0

    s = cell.spec
    o = s.oracle
    setup = host_seconds(exp, cfg, cell)
    kind = trial_workload(exp, cfg)
    if kind == "landscape":
        points = 1 + len(cfg.radius_grid) * cfg.points
        return setup + cost.landscape_trial_time(s.N, sum(o.r_values()), points, o.d, o.K)
    if kind == "init":
        return setup + cost.init_trial_time(s.N, o.d, min(o.d, sum(o.r_values())), cfg.kinds)
    its = min(s.solver.max_iter, typical_iterations(exp, cfg))

    def solve(r_sum, iterations):
        return factor * iterations * cost.iteration_time(s.N, o.d, o.K, max(1, round(r_sum)), backend, dtype=s.dtype,
                                                         batch=batch, members=members if backend == "fast" else 1)

    dense = o.d * o.K
    if kind == "found_mask":  # pre_iters on the dense learner, then the pruned training (Figure 8: twice)
        solves = 2 if hasattr(cfg, "levels") else 1
        return setup + solve(dense, cfg.pre_iters) + solves * solve((1 - cell.params["pruning"]) * dense, its)
    if kind == "imp":  # the dense training and one per round, each on (1 - rate) of the previous mask
        return setup + sum(solve(dense * (1 - cfg.rate) ** k, its) for k in range(cfg.rounds + 1))
    return setup + solve(sum(o.r_values()) + o.K * o.extra, its)


def remaining_per_cell(exp, cfg, store_path) -> dict[int, int]:
    """Trials of each cell (by index) that ``store_path`` does not hold yet (all, if no such file)."""
    from pathlib import Path

    refs = exp.trials(cfg)
    done: set[str] = set()
    if Path(store_path).is_file():
        with Store(store_path, create=False) as st:
            done = st.existing([r.trial_id for r in refs])
    out: dict[int, int] = {}
    for r in refs:
        if r.trial_id not in done:
            out[r.cell_index] = out.get(r.cell_index, 0) + 1
    return out


def estimate_seconds(exp, cfg, device="cpu", chunk_size: int | None = None,
                     memory_budget: int | None = None, remaining: dict[int, int] | None = None,
                     split: int = PROGRESS_SPLIT) -> float:
    """A planning estimate of a sweep's wall time in this process (or on one GPU, for a CUDA device),
    from the engine's cost model (good to about 2x; ``python -m benchmarks.cost_model`` compares it
    with measured quick sweeps). Each trial costs ``trial_seconds``; a chunk runs ``trial_threads``
    trials side by side, chunks one after another, cut as ``plan`` cuts them (``split``: the
    progress split of a run with a bar). Iterations per trial: ``typical_iterations``; on a GPU the
    batches are sized as ``plan`` sizes them. ``remaining`` (cell index -> trials still to run, from
    ``remaining_per_cell``) estimates a resume: only those trials count. The engine planned for is
    the one the sweep will run (``engine.resolve`` of this thread's choice): on the CPU the fast
    engine's model, or the batched reference's (the slot engine at ``cost.SLOTS_CPU_FACTOR`` times
    it); on a GPU the batched reference's for every engine (the slot engine's GPU cost is not
    measured yet, so it is planned at the reference's)."""
    import torch

    from . import engine as engines
    from .engine.cost import estimate

    chosen = engines.resolve(torch.device(str(device or "cpu")).type, load=False)

    total = 0.0
    cells = exp.cells(cfg)
    members = {}  # design='common': how many cells share each group's problems
    for cell in cells:
        members[cell.group] = members.get(cell.group, 0) + 1
    together = exp.solved_together(cfg)
    threads = trial_threads(exp, cfg)
    kind = trial_workload(exp, cfg)
    for ci, cell in enumerate(cells):
        n = cfg.trials if remaining is None else remaining.get(ci, 0)
        if n == 0:
            continue
        s = cell.spec
        per = trials_per_chunk(s, chunk_size, memory_budget)
        if str(device or "cpu").startswith("cuda") and kind not in ("landscape", "init"):
            # the GPU model is Algorithm 1's (batched, launch-bound): Figure 8 solves twice, IMP once a level;
            # the landscape and init studies have no GPU model here and keep the CPU one
            solves = cfg.rounds + 1 if kind == "imp" else 2 if hasattr(cfg, "levels") else 1
            r_sum = sum(s.oracle.r_values()) + s.oracle.K * s.oracle.extra
            its = min(s.solver.max_iter, typical_iterations(exp, cfg))
            total += solves * estimate(s.N, s.oracle.d, s.oracle.K, r_sum, its, n, "cuda", dtype=s.dtype,
                                       batch=per, max_iter=s.solver.max_iter)
            total += n * host_seconds(exp, cfg, cell)  # the draws and the sampled test error stay on the CPU
            if kind == "found_mask":  # the dense learner's pre_iters, batched on the GPU too
                total += estimate(s.N, s.oracle.d, s.oracle.K, s.oracle.d * s.oracle.K, cfg.pre_iters, n, "cuda",
                                  dtype=s.dtype, batch=per, max_iter=s.solver.max_iter)
            continue
        m = members[cell.group] if cell.group is not None and together else 1
        size = split_size(n, per, split if chunk_size is None else 1, threads)
        rounds = (n // size) * math.ceil(size / threads) + math.ceil((n % size) / threads)
        total += rounds * trial_seconds(exp, cfg, cell, members=m, engine=chosen, batch=size)
    return total * exp.solved_fraction(cfg)


def fmt_duration(seconds: float) -> str:
    """A duration for people: '45 s', '12 min', '3.5 h' ('unknown' if not finite)."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
