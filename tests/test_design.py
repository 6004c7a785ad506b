"""design='common': the cells of a group share each trial's problem and are solved together; every
trial's result equals solving it alone (reference engine) on that problem."""

import math

import pytest

pytest.importorskip("numba")

from ticketlab.app import make_config  # noqa: E402
from ticketlab.config import stable_hash  # noqa: E402
from ticketlab.experiments import get_experiment  # noqa: E402
from ticketlab.store import Store  # noqa: E402
from ticketlab.sweep import plan, run_sweep  # noqa: E402
from ticketlab.trial import run_trials  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {
    "fig2": ["d=30", "K=3", "N=150", "sqrt_r_tilde=2.5", "lam=0.05,0.3,1.0", "max_iter=1500"],
    "fig6": ["d=30", "K=3", "N=150", "sqrt_r_tilde=2.5", "noise=0.01,0.001", "max_iter=1500"],
    "fig3": ["d=30", "K=3", "N=150", "r=6", "beta=0.2,0", "record_every=50", "max_iter=800"],
}


def _close(a, b, rel=1e-10, abs_tol=1e-300):
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


@pytest.mark.parametrize("name", ["fig2", "fig6", "fig3"])
def test_common_design_equals_each_trial_alone(tmp_path, name):
    exp = get_experiment(name)
    cfg = make_config(exp, "quick", 2, SMALL[name] + ["design=common"])
    cells = exp.cells(cfg)
    assert len({c.group for c in cells}) == 1 and cells[0].group is not None
    with Store(tmp_path / "s.db") as st:
        tasks, total = plan(exp, cfg, st)
        assert len(tasks) == 1 and len(tasks[0].cells()) == len(cells)  # one chunk solves the whole group
        assert run_sweep(name, cfg, st, progress=False)["written"] == total
        df = exp.frame(cfg, st.frame(name))
    assert len(df) == total
    seeds = sorted(set(df["seed"]))
    for c in cells:
        key = c.key(exp.name)
        sub = df[df["cell_id"] == key].sort_values("trial")
        assert sorted(sub["seed"]) == seeds  # every cell of the group has the same problems
        alone = run_trials(c.spec, list(sub["seed"]), backend="reference")
        for (_, row), ref in zip(sub.iterrows(), alone):
            for f in ("iterations", "converged", "failed", "success"):
                assert row[f] == ref[f], (c.params, f)
            # the errors are differences W - W* scaled by ||W*||: weights equal to 1e-10 relative
            # mean errors equal to 1e-10 absolute (near convergence their own digits cancel)
            assert _close(row["relative_error"], ref["relative_error"], 0, 1e-10), (c.params, row, ref)
            # the test RMSE resolves only about sqrt(machine epsilon) near W*: the closed form (Figure 3)
            # is the square root of a difference of O(1) terms, and the sampled one cancels O(1)
            # outputs too, so weights equal to 1e-16 can give RMSEs 1e-10 apart; held to 5e-8
            assert _close(row["test_rmse"], ref["test_rmse"], 0, 5e-8), (c.params, row, ref)
            for f in ("rate", "init_relative_error"):
                assert _close(row[f], ref[f], 1e-9), (c.params, f, row[f], ref[f])
            if "curve" in ref:
                assert all(_close(a, b, 0, 1e-10) for a, b in zip(row["curve"], ref["curve"]))


def test_default_design_is_independent_and_keeps_ids(tmp_path):
    exp = get_experiment("fig2")
    cfg = make_config(exp, "quick", 2, SMALL["fig2"])
    assert cfg.design == "independent"
    cells = exp.cells(cfg)
    assert all(c.group is None for c in cells)
    # the config id of the default design is the one of configs stored before the field existed
    assert cfg.config_id() == stable_hash(cfg.model_dump(mode="json", exclude={"trials", "scale", "design"}))
    # independent: each start distance draws its own problems; common: one problem per trial index
    ind = {exp.seed_key(c) for c in cells}
    com = {exp.seed_key(c) for c in exp.cells(cfg.model_copy(update={"design": "common"}))}
    assert len(ind) == len(cells) and len(com) == 1
    with Store(tmp_path / "s.db") as st:
        tasks, _ = plan(exp, cfg, st)
    assert len(tasks) == len(cells) and all(t.group == () for t in tasks)


def test_common_design_resumes_a_partial_group(tmp_path):
    exp = get_experiment("fig2")
    cfg2 = make_config(exp, "quick", 2, SMALL["fig2"] + ["design=common"])
    cfg3 = make_config(exp, "quick", 3, SMALL["fig2"] + ["design=common"])
    with Store(tmp_path / "s.db") as st:
        run_sweep("fig2", cfg2, st, progress=False)
        first = exp.frame(cfg2, st.frame("fig2")).set_index("trial_id")
        tasks, _ = plan(exp, cfg3, st)
        assert len(tasks) == 1 and tasks[0].trials == (2,)  # only the new trial index, for all cells at once
        assert run_sweep("fig2", cfg3, st, progress=False)["ran"] == 3
        again = exp.frame(cfg3, st.frame("fig2")).set_index("trial_id")
    assert len(again) == 9
    assert again.loc[first.index, "relative_error"].tolist() == first["relative_error"].tolist()


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device on this machine")
def test_common_design_on_cuda_matches_cpu():
    from ticketlab.trial import run_common

    exp = get_experiment("fig2")
    cfg = make_config(exp, "quick", 2, SMALL["fig2"] + ["design=common"])
    specs = [c.spec for c in exp.cells(cfg)]
    seeds = [t.seed for t in exp.trials(cfg)][:2]
    cpu, gpu = run_common(specs, seeds), run_common(specs, seeds, device="cuda")  # cuda: each member alone
    for a_cell, b_cell in zip(cpu, gpu):
        for a, b in zip(a_cell, b_cell):
            assert (a["iterations"], a["success"], a["failed"]) == (b["iterations"], b["success"], b["failed"])
            assert _close(a["relative_error"], b["relative_error"], 0, 1e-9)


def test_bisection_edge_by_brute_force():
    from itertools import product

    from ticketlab.trial import edge, next_start

    def _bisect(succ):
        solved = {}
        while (i := next_start(len(succ), solved)) is not None:
            assert i not in solved  # never the same start twice
            solved[i] = succ[i]
        return edge(len(succ), solved), list(solved)

    for n in range(1, 8):
        for succ in product([True, False], repeat=n):
            last, asked = _bisect(list(succ))
            monotone = list(succ) == sorted(succ, reverse=True)
            if monotone:  # exact: the last success, found from at most 2 + log2(n) solves
                assert last == (sum(succ) - 1) and len(asked) <= 2 + math.ceil(math.log2(max(n, 2)))
            assert last == -1 or (succ[last] and last in asked)  # whatever the data: a solved success


def test_bisect_design_matches_the_common_grid(tmp_path):
    exp = get_experiment("fig2")
    # N = 80 is hard enough that some problems fail inside the grid, and one of these six is not
    # monotone in the start distance (it fails at 4 and 6, succeeds at 8): bisection may misjudge it
    sets = ["d=30", "K=3", "N=80", "sqrt_r_tilde=2.5", "lam=0.5,1,2,4,6,8,12", "max_iter=1500"]
    common = make_config(exp, "quick", 6, sets + ["design=common"])
    bis = make_config(exp, "quick", 6, sets + ["design=bisect"])
    with Store(tmp_path / "s.db") as st:
        run_sweep("fig2", common, st, progress=False)
        run_sweep("fig2", bis, st, progress=False)
        a = exp.frame(common, st.frame("fig2"))
        b = exp.frame(bis, st.frame("fig2"))
    m = a.merge(b, on=["lam", "trial"], suffixes=("", "_b"))
    assert len(m) == len(a) == len(b) == 42 and (m["seed"] == m["seed_b"]).all()  # the same problems
    grid = a.pivot(index="trial", columns="lam", values="success")
    monotone = {t: list(r) == sorted(r, reverse=True) for t, r in zip(grid.index, grid.itertuples(index=False))}
    assert not all(monotone.values())
    inside = [t for t in grid.index if monotone[t] and grid.loc[t].any() and not grid.loc[t].all()]
    assert inside  # a monotone problem whose edge lies inside the grid: bisection has to find it
    mono = m[m["trial"].map(monotone)]
    assert (mono["success"] == mono["success_b"]).all()  # every verdict, solved or inferred, where monotone
    solved = m[~m["inferred_b"].astype(bool)]
    assert 0 < len(solved) < len(m)  # fewer solves than the grid
    assert (solved["success"] == solved["success_b"]).all()  # a solved cell is the common design's trial
    assert (solved["iterations"] == solved["iterations_b"]).all()
    assert all(_close(x, y, 0, 1e-10) for x, y in zip(solved["relative_error"], solved["relative_error_b"]))
    inferred = m[m["inferred_b"].astype(bool)]
    assert inferred["relative_error_b"].isna().all() and inferred["r_tilde_b"].notna().all()
