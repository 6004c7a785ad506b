"""The cost model against cases computed by hand, the estimate against the plan it estimates, and
the progress bar of a sweep counted update by update (issue 17: progress that tells the truth)."""

from __future__ import annotations

import math
import os

import pytest
import torch

from ticketlab import sweep
from ticketlab.app import make_config
from ticketlab.engine import cost
from ticketlab.experiments import get_experiment
from ticketlab.store import Store


# --- the cost model, by hand (float64, the constants of engine/cost.py) ---------------------------

def test_found_mask_trial_by_hand():
    """Figure 7's quick cell at 60 % pruning: d=100, K=5, N=200, pre_iters=20, 2000 iterations.
    Setup: 1 ms + 40 ns * 200 * 100 = 1.8 ms. The data (200 x 100 x 8 B = 160 kB) stay in cache:
    both kernels 1.6x faster than streaming. The dense learner keeps 500 weights over 100 columns:
    union 4*200*500/8e9 = 50 us, rows 200 * (5 * 10 ns + 4 * 500 / 16e9 s) = 35 us -> 35 / 1.6 =
    21.875 us x 20 = 0.4375 ms. The found mask keeps 40 % of 500 = 200 weights: union 4*200*200/8e9
    = 20 us < rows 35 us -> 12.5 us x 2000 = 25 ms. In all 27.2375 ms (measured here: about 21 ms
    a trial quiet, 40 ms busy)."""
    exp = get_experiment("fig7")
    cfg = exp.default_config("quick")
    cell = next(c for c in exp.cells(cfg) if c.params["pruning"] == 0.6)
    assert sweep.trial_workload(exp, cfg) == "found_mask"
    assert sweep.trial_seconds(exp, cfg, cell) == pytest.approx(27.2375e-3)


def test_imp_trial_by_hand():
    """Figure 10 with rate 0.5 and 2 rounds at N=100 (d=100, K=5), 100 iterations per round: the
    masks keep 500, 250 and 125 weights (u = 100 columns, in cache). Union: 4*100*{500,250,125}/8e9
    = 25, 12.5, 6.25 us; rows: 100 * (50 ns + 4*500/16e9 s) = 17.5 us -> 17.5 + 12.5 + 6.25 = 36.25 us,
    in cache (80 kB) / 1.6 = 22.65625 us a round-iteration, x 100 = 2.265625 ms; setup 1 ms + 40 ns *
    100 * 100 = 1.4 ms. In all 3.665625 ms."""
    exp = get_experiment("fig10")
    cfg = make_config(exp, "quick", 1, ["N_grid=100", "rate=0.5", "rounds=2", "max_iter=100"])
    assert sweep.trial_workload(exp, cfg) == "imp"
    assert sweep.trial_seconds(exp, cfg, exp.cells(cfg)[0]) == pytest.approx(3.665625e-3)


def test_landscape_and_init_trials_by_hand():
    """Landscape, r=20 (p = 100 kept weights), N=2000, 7 radii x 4 points + W* = 29 points: Hessians
    2.1e-10 * 2000 * 100^2 * 29 = 0.1218 s, eigenvalues 2 * 3.4e-10 * 100^3 * 29 = 0.01972 s, fixed
    0.035 s, setup 1 ms + 40 ns * 2000 * 100 = 9 ms: 0.18552 s (measured here: 0.21 s quiet, 0.32 s busy).
    Init, d=300, N=4000, r=10 (K=5: at most 50 kept columns), the four kinds: 4 * 0.025 s + 3 * 9e-8
    * 4000 * 50 = 0.054 s + dense 3.5e-11 * 4000 * 300^2 = 0.0126 s, setup 1 ms + 40 ns * 1.2e6 =
    49 ms: 0.2156 s (measured here, quiet: 0.12 s of starts + 0.02 s of draw)."""
    land = get_experiment("landscape")
    cfg = land.default_config("quick")
    cell = next(c for c in land.cells(cfg) if c.params == {"r": 20, "N": 2000})
    assert sweep.trial_seconds(land, cfg, cell) == pytest.approx(0.18552, rel=1e-4)
    init = get_experiment("init")
    icfg = init.default_config("quick")
    icell = next(c for c in init.cells(icfg) if c.params == {"d": 300, "r": 10, "N": 4000})
    assert sweep.trial_seconds(init, icfg, icell) == pytest.approx(0.2156, rel=1e-4)


def test_init_trial_time_counts_each_kind_once():
    # no kinds: nothing to run; only the dense kind: 0.025 s + 3.5e-11 * 1000 * 100^2 = 0.02535 s
    assert cost.init_trial_time(1000, 100, 50, []) == 0
    assert cost.init_trial_time(1000, 100, 50, ["dense"]) == pytest.approx(0.02535)
    # one masked kind: 0.025 s + 9e-8 * 1000 * 50 = 0.0295 s, independent of d
    assert cost.init_trial_time(1000, 100, 50, ["tensor"]) == cost.init_trial_time(1000, 5000, 50, ["tensor"]) \
        == pytest.approx(0.0295)


# --- the estimate runs the plan it estimates -------------------------------------------------------

def _fig4(trials):
    exp = get_experiment("fig4")
    return exp, make_config(exp, "quick", trials, ["r_tilde=10", "N=100", "max_iter=100"])


@pytest.mark.parametrize("trials,threads", [(8, 1), (8, 2), (3, 2), (5, 2), (2, 2), (1, 2), (7, 4)])
def test_estimate_counts_the_rounds_of_the_planned_chunks(tmp_path, monkeypatch, trials, threads):
    """A chunk runs ``threads`` trials side by side: the estimate must charge ceil(chunk / threads)
    trial times per chunk of the plan the sweep will actually run (with the progress split)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(threads)), raising=False)
    exp, cfg = _fig4(trials)
    with Store(tmp_path / "r.db") as st:
        tasks, _ = sweep.plan(exp, cfg, st, split=sweep.PROGRESS_SPLIT)
    rounds = sum(math.ceil(len(t.trials) / threads) for t in tasks)
    one = sweep.trial_seconds(exp, cfg, exp.cells(cfg)[0])
    assert sweep.estimate_seconds(exp, cfg) == pytest.approx(rounds * one)
    # never a chunk smaller than the threads it could keep busy, unless the cell has fewer trials
    assert all(len(t.trials) >= min(threads, trials) for t in tasks[:-1])
    # a resume with one trial left costs one trial time, whatever the grid
    assert sweep.estimate_seconds(exp, cfg, remaining={0: 1}) == pytest.approx(one)


def test_split_size_cases():
    # 8 trials, one thread: 4 chunks of 2; 6 trials: 6 chunks of 1 (at least 4); with 2 threads the
    # chunks keep both busy (3 of 2); a cell with fewer trials than threads is one chunk
    assert sweep.split_size(8, 32, 4, 1) == 2
    assert sweep.split_size(6, 32, 4, 1) == 1
    assert sweep.split_size(6, 32, 4, 2) == 2
    assert sweep.split_size(2, 32, 4, 4) == 2
    # the memory budget's chunk size still caps; no split: the budget's size
    assert sweep.split_size(400, 8, 4, 2) == 8
    assert sweep.split_size(400, 8, 1, 2) == 8


# --- the bar, counted -----------------------------------------------------------------------------

class FakeBar:
    """Stands in for tqdm: records its total and every update."""

    made: list = []

    def __init__(self, total=None, **kw):
        self.total, self.updates, self.closed = total, [], False
        FakeBar.made.append(self)

    def update(self, n=1):
        self.updates.append(n)

    def set_postfix_str(self, s):
        pass

    def close(self):
        self.closed = True


def _count(monkeypatch, name, cfg, db, threads=1):
    """Run the sweep with a fake bar; return (bar, updates per cell index)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(sweep, "tqdm", FakeBar)
    order = []
    real = sweep.run_task

    def spy(task):
        order.append([ci for ci, _ in task.cells()])
        return real(task)

    monkeypatch.setattr(sweep, "run_task", spy)
    FakeBar.made.clear()
    with Store(db) as st:
        sweep.run_sweep(name, cfg, st, progress=True)
    bar = FakeBar.made[-1] if FakeBar.made else None
    per_cell: dict[int, int] = {}
    for cells in order:
        for ci in cells:
            per_cell[ci] = per_cell.get(ci, 0) + 1
    return bar, per_cell, order


TINY = {  # one of each workload, a second or so each
    "fig4": ["r_tilde=10", "N=100", "max_iter=100"],
    "fig7": ["d=20", "K=2", "r=4", "N=50", "pruning=0.5", "max_iter=50", "pre_iters=5"],
    "fig10": ["d=20", "K=2", "r=4", "N_grid=60", "rounds=2", "max_iter=50"],
    "landscape": ["d=20", "K=2", "r=4", "N=200", "points=1", "radius_grid=0.1,0.5"],
    "init": ["d=20", "r=4", "N=400", "K=2"],
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_bar_moves_within_every_cell(tmp_path, monkeypatch, name):
    """With a bar, every cell of every kind of experiment (Algorithm 1, found masks, IMP, the
    landscape's Hessians, the init study's moments) reports after each of at least 4 chunks."""
    exp = get_experiment(name)
    cfg = make_config(exp, "quick", 4, TINY[name])
    bar, per_cell, order = _count(monkeypatch, name, cfg, tmp_path / "r.db")
    n_cells = len(exp.cells(cfg))
    assert bar.total == 4 * n_cells and sum(bar.updates) == bar.total and bar.closed
    assert len(bar.updates) == len(order)  # one update per finished chunk, none lost
    assert sorted(per_cell) == list(range(n_cells))
    assert all(k >= 4 for k in per_cell.values()), per_cell


def test_bar_with_two_threads_still_moves_within_a_cell(tmp_path, monkeypatch):
    """Two threads: chunks of two trials (both cores busy), so 6 trials report 3 times a cell; the
    landscape, whose trials run one after another, keeps chunks of one."""
    exp, cfg = _fig4(6)
    bar, per_cell, _ = _count(monkeypatch, "fig4", cfg, tmp_path / "a.db", threads=2)
    assert bar.updates == [2, 2, 2] and per_cell == {0: 3}
    land = get_experiment("landscape")
    lcfg = make_config(land, "quick", 4, TINY["landscape"])
    bar, per_cell, _ = _count(monkeypatch, "landscape", lcfg, tmp_path / "b.db", threads=2)
    assert set(bar.updates) == {1} and all(k == 4 for k in per_cell.values())


def test_resumed_bar_counts_only_the_remaining_trials(tmp_path, monkeypatch):
    """A sweep killed after 3 of its 8 chunks: the resumed bar spans the 5 chunks left and the
    estimate of the resume is 5/8 of the whole."""
    exp, cfg = _fig4(8)
    db = tmp_path / "r.db"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    with Store(db) as st:
        st.save_config(exp.name, cfg.config_id(), cfg.model_dump(mode="json"))
        tasks, total = sweep.plan(exp, cfg, st, split=8)
        for t in tasks[:3]:
            st.write(sweep.run_task(t))
    left = sweep.remaining_per_cell(exp, cfg, db)
    assert left == {0: 5}
    full = sweep.estimate_seconds(exp, cfg, split=8)
    assert sweep.estimate_seconds(exp, cfg, remaining=left, split=8) == pytest.approx(full * 5 / 8)
    bar, per_cell, _ = _count(monkeypatch, "fig4", cfg, db)
    assert bar.total == 5 and sum(bar.updates) == 5 and len(bar.updates) >= 4


def test_reproduce_estimate_of_a_resume_counts_only_what_the_store_lacks(tmp_path):
    from ticketlab.app import reproduce_estimates

    exp = get_experiment("fig4")
    cfg = exp.default_config("quick")
    db = tmp_path / "r.db"
    with Store(db) as st:
        st.save_config(exp.name, cfg.config_id(), cfg.model_dump(mode="json"))
        first = sweep.plan(exp, cfg, st)[0][0]  # the first cell, all its trials
        st.write(sweep.run_task(first))
    full = reproduce_estimates(["fig4"], "quick")["fig4"]
    part = reproduce_estimates(["fig4"], "quick", store=db)["fig4"]
    cell = exp.cells(cfg)[first.cell_index]
    assert sweep.estimate_seconds(exp, cfg) == pytest.approx(full)
    assert 0 < part < full
    assert full - part == pytest.approx(sweep.estimate_seconds(exp, cfg, remaining={first.cell_index: cfg.trials}))
    assert sweep.trial_seconds(exp, cfg, cell) > 0


def test_landscape_beyond_the_dense_limit_is_lanczos_by_hand():
    """p = 2000 kept weights > 1500: no p x p Hessian; each Hessian-vector product runs through the dense
    N x d data and d x K weights, so (29 + 1) points x 8e-8 s x N=2000 x d=500 x K=10 = 24 s + 0.035 s
    fixed, and the same at p = 4000 (the paper grid: flat in p). Just below the limit, p = 1500, the dense
    path: 29 x (2.1e-10 x 2000 x 1500^2 + 2 x 3.4e-10 x 1500^3) = 29 x (0.945 + 2.295) s = 93.96 s + 0.035 s."""
    assert cost.landscape_trial_time(2000, 2000, 29, 500, 10) == pytest.approx(24.035)
    assert cost.landscape_trial_time(2000, 4000, 29, 500, 10) == pytest.approx(24.035)
    assert cost.landscape_trial_time(2000, 1500, 29, 500, 10) == pytest.approx(93.995)


def test_gpu_estimate_counts_every_solve_of_a_trial():
    """On a GPU an IMP trial solves once per level (rounds + 1), Figure 8 twice: the estimate is that
    many Algorithm 1 sweeps of the cell, plus each trial's CPU-side set-up (1 ms + 40 ns a value of its
    100 x 100 data: 1.4 ms); the landscape has no GPU model and keeps the CPU estimate."""
    f10 = get_experiment("fig10")
    cfg = make_config(f10, "quick", 4, ["N_grid=100", "rounds=3", "max_iter=100"])
    one = cost.estimate(100, cfg.d, cfg.K, cfg.K * cfg.r, 100, 4, "cuda", batch=4, max_iter=100)
    assert sweep.estimate_seconds(f10, cfg, "cuda") == pytest.approx(4 * one + 4 * 1.4e-3)
    land = get_experiment("landscape")
    lcfg = land.default_config("quick")
    assert sweep.estimate_seconds(land, lcfg, "cuda") == pytest.approx(sweep.estimate_seconds(land, lcfg))


# by hand: n_test x d values drawn at 17 ns, plus (1 + evaluations) networks of K neurons at 0.3 ns a
# value and neuron: 1e5 x 100 x (17e-9 + 2 x 5 x 0.3e-9) = 0.20 s (Figures 8, 9: one evaluation) and, for
# Figure 10's 22 rounds, 1e5 x 100 x (17e-9 + 24 x 5 x 0.3e-9) = 0.53 s; the profile measured 0.20 s a trial
@pytest.mark.parametrize("name,by_hand", [("fig9", 0.20), ("fig8", 0.20), ("fig10", 0.53)])
def test_a_sampled_test_error_is_planned_for(name, by_hand):
    """At paper scale a trial's 100,000-input test draw is most of its time (Figure 9: 99% in a profile);
    the plan must add its cost (IMP: one draw, every round evaluated on it) and nothing for the exact error,
    on the CPU and on a GPU alike (the draw runs on the CPU)."""
    exp = get_experiment(name)
    sampled = make_config(exp, "paper", None, [])
    exact = make_config(exp, "paper", None, ["test_error=exact"])
    cell_s, cell_e = exp.cells(sampled)[0], exp.cells(exact)[0]
    extra = sweep.trial_seconds(exp, sampled, cell_s) - sweep.trial_seconds(exp, exact, cell_e)
    assert extra == pytest.approx(by_hand, rel=0.01)
    gpu = (sweep.estimate_seconds(exp, sampled, "cuda") - sweep.estimate_seconds(exp, exact, "cuda"))
    assert gpu == pytest.approx(by_hand * sampled.trials * len(exp.cells(sampled)), rel=0.01)


# --- iterations planned beyond the cap the paper-scale means were measured at --------------------

def test_a_raised_cap_plans_the_capped_share_to_run_to_it():
    """Figure 5 at paper scale: mean 7,460 iterations, 43% of solves at the 10,000 cap. At a 50,000 cap
    the plan is 7,460 + 0.43 * 40,000 = 24,660 (an upper bound: measured 16,735 on the cap check); at the
    measured cap or below it nothing is added; the quick scale plans with its own mean."""
    exp = get_experiment("fig5")
    paper = make_config(exp, "paper")
    assert sweep.typical_iterations(exp, paper) == 7460
    raised = make_config(exp, "paper", sets=["max_iter=50000"])
    assert sweep.typical_iterations(exp, raised) == 7460 + int(0.43 * 40000)
    assert sweep.typical_iterations(exp, make_config(exp, "paper", sets=["max_iter=5000"])) == 7460
    assert sweep.typical_iterations(exp, exp.default_config("quick")) == 4650  # the quick sweep's own mean
    cell = exp.cells(raised)[0]
    base = sweep.trial_seconds(exp, paper, exp.cells(paper)[0])
    assert sweep.trial_seconds(exp, raised, cell) == pytest.approx(
        sweep.host_seconds(exp, raised, cell) + (base - sweep.host_seconds(exp, paper, exp.cells(paper)[0]))
        * (7460 + int(0.43 * 40000)) / 7460)
    # an experiment that never hit the cap plans the same iterations at any cap
    fig3 = get_experiment("fig3")
    assert sweep.typical_iterations(fig3, make_config(fig3, "paper", sets=["max_iter=50000"])) == 2800


def test_the_calibration_reads_the_mean_and_the_capped_share_from_the_store(tmp_path):
    """benchmarks.cost_model --store against the trials' own rows: a tiny Figure 4 whose cap (300) stops
    some solves and not others."""
    from benchmarks.cost_model import calibration

    exp = get_experiment("fig4")
    cfg = make_config(exp, "quick", 2, ["d=24", "K=2", "r_tilde=4,8", "N=16,48", "max_iter=300"])
    db = tmp_path / "c.db"
    with Store(db) as st:
        sweep.run_sweep("fig4", cfg, st, progress=False)
        its = [float(x) for x in exp.load(cfg, db)["iterations"]]
    assert 0 < sum(x >= 300 for x in its) < len(its)  # the case is not trivial
    lines = []
    (row,) = calibration(db, say=lines.append)
    assert row["experiment"] == "fig4" and row["solves"] == len(its) == 8
    assert row["mean_iterations"] == pytest.approx(sum(its) / len(its))
    assert row["at_cap"] == pytest.approx(sum(x >= 300 for x in its) / len(its))
    assert row["planned"] == 300 and row["capped_share"] == 0.25
    assert lines[1].split()[:2] == ["fig4", cfg.config_id()[:12]]


# --- the estimate plans for the engine the sweep will run -------------------------------------------

def test_reference_iteration_by_hand():
    """In cache (200 x 100 x 8 B = 160 kB): compute 4*200*100*5/2e9 = 200 us, memory 2*200*100*8/1e10
    = 3.2 us, launch 1.5 ms / 10 trials = 150 us: 350 us / 3.2 = 109.375 us. Streaming (5000 x 500):
    compute 50 ms, memory 4 ms, launch 1.5 ms / 100: 50.015 ms, no cache speedup."""
    assert cost.iteration_time(200, 100, 5, 50, "reference", batch=10) == pytest.approx(109.375e-6)
    assert cost.iteration_time(5000, 500, 10, 50, "reference", batch=100) == pytest.approx(50.015e-3)


def test_estimate_follows_the_engine_choice():
    """One trial left of fig4's first cell: the estimate is that trial's time under the chosen engine
    (auto = fast here), the slot engine's solve SLOTS_CPU_FACTOR times the reference's; fast on a GPU is
    refused with the --engine wording, as the run would refuse it."""
    from ticketlab import engine
    from ticketlab.config import ConfigError

    pytest.importorskip("numba", reason="auto plans for the fast engine only where numba is installed")
    exp, cfg = _fig4(2)
    cell = exp.cells(cfg)[0]
    setup = sweep.host_seconds(exp, cfg, cell)
    before = engine.chosen()
    try:
        est = {}
        for name in ("auto", "fast", "reference", "slots"):
            engine.choose(name)
            est[name] = sweep.estimate_seconds(exp, cfg, remaining={0: 1})
        assert est["auto"] == pytest.approx(est["fast"]) == pytest.approx(sweep.trial_seconds(exp, cfg, cell))
        assert est["reference"] == pytest.approx(sweep.trial_seconds(exp, cfg, cell, engine="reference", batch=1))
        assert est["reference"] > 3 * est["fast"]
        assert est["slots"] - setup == pytest.approx(cost.SLOTS_CPU_FACTOR * (est["reference"] - setup))
        engine.choose("fast")
        with pytest.raises(ConfigError, match="--engine fast: must run on the CPU"):
            sweep.estimate_seconds(exp, cfg, "cuda")
    finally:
        engine.choose(before)
    with pytest.raises(ConfigError, match=r"^engine: must be fast, reference or slots \(got 'gpu'\)"):
        sweep.trial_seconds(exp, cfg, cell, engine="gpu")
