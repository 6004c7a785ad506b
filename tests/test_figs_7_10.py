"""Figures 7-10: masks found by pruning on the oracle model, and training on them.

Trend tests run the experiments end to end at a tiny scale (d=40, K=3, r*=6 where the paper has
d=100, K=5, r*=20) and assert each trend's direction from the data; the math helpers are checked
against explicit Hessians, brute-force counts and Monte-Carlo error bars."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ticketlab import engine
from ticketlab.app import make_config
from ticketlab.config import ConfigError, OracleSpec, SolverSpec
from ticketlab.experiments import get_experiment
from ticketlab.experiments import masks as mk
from ticketlab import metrics
from ticketlab.oracle import forward, make_problem
from ticketlab.seeding import TEST, substream

PAPER = json.loads((Path(__file__).parents[1] / "src/ticketlab/paper_figures.json").read_text())
TINY = ["d=40", "K=3", "r=6"]


def run(name, sets, seeds=range(100, 200)):
    """Every cell of a config, in process, as the store's frame would hold it."""
    exp = get_experiment(name)
    cfg = make_config(exp, "quick", None, TINY + sets)
    rows = []
    for cell in exp.cells(cfg):
        for r in exp.run_cell(cfg, cell, list(seeds)[:cfg.trials], "cpu"):
            rows.append({**cell.params, **r})
    df = pd.DataFrame(rows)
    summary = exp.summarize(cfg, df)
    return exp, cfg, df, summary, exp.claims(cfg, summary, PAPER)


def small_problem(B=3, N=40, d=8, K=2, r=3):
    spec = OracleSpec(d=d, K=K, r=r, layout="overlap")
    return make_problem(spec, N, list(range(B)), learner_mask=torch.ones(d, K, dtype=torch.float64))


# --------------------------------------------------------------------------- mask helpers


def test_grasp_abs_is_abs_theta_hessian_gradient_from_explicit_hessian():
    P = small_problem()
    W = torch.randn(P.W_star.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = mk._scores("grasp_abs", P, W, P.mask)
    for b in range(P.batch):
        def f(w):
            return engine.risk(P.X[b:b + 1], P.y[b:b + 1], w.reshape(1, *W.shape[1:]))[0]

        w = W[b].reshape(-1)
        g = torch.autograd.functional.jacobian(f, w)
        H = torch.autograd.functional.hessian(f, w)
        want = (w * (H @ g)).abs().reshape(W.shape[1:])
        torch.testing.assert_close(got[b], want, rtol=1e-9, atol=1e-14)


def test_prune_learner_counts_scopes_and_nesting():
    P = small_problem(B=2, d=10, K=3, r=4)
    W = torch.randn(P.W_star.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    M = mk.prune_learner("magnitude", P, W, P.mask, 0.5, scope="global")
    assert torch.all(M.sum((-1, -2)) == 15)  # exactly half of 30 per trial
    # brute force: the 15 largest |w| are kept
    for b in range(2):
        thr = W[b].abs().flatten().sort().values[15]
        assert torch.equal(M[b] != 0, W[b].abs() >= thr)
    Mn = mk.prune_learner("magnitude", P, W, P.mask, 0.6, scope="neuron")
    assert torch.all(Mn.sum(-2) == 4)  # every neuron keeps 4 of 10
    M2 = mk.prune_learner("magnitude", P, W, M, 0.2, of="kept")
    assert torch.all(M2 <= M) and torch.all(M2.sum((-1, -2)) == 12)
    with pytest.raises(ConfigError, match="scope"):
        mk.prune_learner("magnitude", P, W, P.mask, 0.5, scope="layer")


def test_random_masks_depend_on_the_trial_seed_only():
    P = small_problem(B=3)
    W = torch.zeros(P.W_star.shape, dtype=torch.float64)
    M = mk.prune_learner("random", P, W, P.mask, 0.5)
    M1 = mk.prune_learner("random", P.select([2]), W[2:], P.mask[2:], 0.5)
    assert torch.equal(M[2:], M1) and not torch.equal(M[0], M[1])


def test_mask_quality_against_brute_force_count_after_alignment():
    P = small_problem(B=1, d=10, K=3, r=4)
    perm = torch.tensor([2, 0, 1])  # learner neuron perm[k] plays oracle neuron k
    Ws = P.W_star[0]
    W = torch.empty_like(Ws)
    W[:, perm] = Ws
    Ms = P.oracle_mask[0]
    M = torch.zeros_like(Ms)
    M[:, perm] = Ms
    drop = torch.nonzero(Ms[:, 0]).flatten()[:2]
    M[drop, perm[0]] = 0  # lose 2 true weights of oracle neuron 0
    M[torch.nonzero(Ms[:, 1] == 0).flatten()[:3], perm[1]] = 1  # keep 3 false ones
    q = mk.mask_quality(P, M[None], W[None])
    true = int(Ms.sum())
    assert math.isclose(float(q["accuracy"][0]), (true - 2) / true, rel_tol=1e-6)
    assert math.isclose(float(q["precision"][0]), (true - 2) / (true - 2 + 3), rel_tol=1e-6)


def test_found_mask_training_keeps_pruned_weights_at_zero():
    spec = OracleSpec(d=20, K=2, r=4, layout="overlap")
    fm = mk.find_mask(spec, 50, [1, 2], ratio=0.7, method="grasp_abs", pre_iters=5, lam_min=0.3, lam_max=0.6,
                      solver=SolverSpec(max_iter=200))
    P = fm.problem
    assert torch.all(P.mask.sum((-1, -2)) == 12)
    assert torch.all(fm.W0[P.mask == 0] == 0)
    res = engine.solve(P.X, P.y, P.mask, fm.W0, SolverSpec(max_iter=300, tol=1e-300), backend="reference")
    assert torch.all(res.W[P.mask == 0] == 0)
    lam = mk.trial_lambdas([1, 2], 0.3, 0.6)
    assert torch.all((lam >= 0.3) & (lam <= 0.6)) and torch.equal(lam, fm.lam)


def test_sampled_test_error_agrees_with_exact_within_monte_carlo_error():
    P = small_problem(B=2, d=10, K=3, r=4)
    W = P.W_star + 0.05 * torch.randn(P.W_star.shape, generator=torch.Generator().manual_seed(3),
                                      dtype=torch.float64)
    n = 40_000
    sampled = metrics.test_rmse_sampled(W, P.W_star, P.seeds, n)
    exact = metrics.test_rmse_exact(W, P.W_star)
    for b in range(2):
        # the estimator's own spread, from an independent draw: se(RMSE) ~ sd(sq) / (2 RMSE sqrt(n))
        X = torch.randn(1, n, 10, generator=torch.Generator().manual_seed(substream(99, TEST)), dtype=torch.float64)
        sq = (forward(X, W[b:b + 1]) - forward(X, P.W_star[b:b + 1])) ** 2
        se = float(sq.std()) / (2 * float(exact[b]) * math.sqrt(n))
        assert abs(float(sampled[b]) - float(exact[b])) < 4 * se, (float(sampled[b]), float(exact[b]), se)
        assert se < 0.02 * float(exact[b])  # the check has teeth: the error bar is tight


# --------------------------------------------------------------------------- figures end to end


def test_fig7_error_falls_with_accuracy_and_with_pruning_at_equal_accuracy():
    exp, cfg, df, s, claims = run("fig7", ["pruning=0.3,0.8", "N=60", "trials=12", "max_iter=800",
                                           "lam_min=0.1", "lam_max=1.0"])
    assert s["fit"]["c_acc"] < 0 and s["fit"]["c_prune"] < 0
    assert [c["verdict"] for c in claims] == ["reproduced", "reproduced"]  # both slopes' 95% intervals < 0
    assert df["pruned_zero"].all()
    np.testing.assert_allclose(df["pruning_ratio"], df["pruning"], atol=1e-12)
    assert ((df["precision"] > 0) & (df["precision"] <= 1)).all()


def test_fig8_more_pruning_needs_fewer_iterations():
    # near-accurate masks (magnitude at a close start): the regime of Theorem 2. On GraSP masks of
    # accuracy ~0.8 many trials do not converge at all (docs/inaccurate-masks.md).
    exp, cfg, df, s, claims = run("fig8", ["N=150", "pruning=0.5,0.8", "acc_low=0", "acc_high=1", "trials=8",
                                           "max_iter=3000", "lam_min=0.1", "lam_max=0.2", "levels=0.01,0.0001",
                                           "method=magnitude"])
    med = {r["pruning"]: r["levels"][-1]["median"] for r in s["ratios"]}
    assert med[0.5] is not None and med[0.8] is not None and med[0.8] < med[0.5]
    # the order shows, but a trial at 80% never reached the level within max_iter (1 of 8 >= 5%):
    # the verdict is withheld, and says why
    assert claims[0]["verdict"] == "undecided" and "ran to max_iter" in claims[0]["reason"]
    # iterations to a deeper level are never fewer
    for its in df["iters_to"]:
        if None not in its:
            assert its == sorted(its)


def test_fig9_more_pruning_needs_fewer_samples():
    exp, cfg, df, s, claims = run("fig9", ["N_grid=30,60,120,240", "pruning=0.3,0.8", "trials=6", "max_iter=3000",
                                           "lam_min=0.1", "lam_max=0.2", "noise=0.001", "method=magnitude",
                                           "level=0.01"])
    need = {c["pruning"]: c["samples_to_floor"] for c in s["series"]}
    assert need[0.8] is not None and (need[0.3] is None or need[0.8] < need[0.3])
    # trials near the 30% crossing ran to the cap: their error is not yet the floor, so no verdict
    assert claims[0]["verdict"] == "undecided" and "ran to max_iter" in claims[0]["reason"]


def test_fig10_imp_improves_until_over_pruned_and_small_n_fails():
    exp, cfg, df, s, claims = run("fig10", ["N_grid=30,200", "rate=0.25", "rounds=9", "trials=3",
                                            "max_iter=2000"])
    assert df["nested"].all() and df["pruned_zero"].all()
    big = [x for x in s["series"] if x["N"] == 200][0]
    assert big["best"] < 0.5 * big["dense"] and big["best_remaining"] >= cfg.r / cfg.d
    assert big["over_pruned"] > 2 * big["best"]
    # judged at the level fixed in advance (the sparsest keeping >= r*/d): the fall's value is not the
    # paper's setting (d=40), the jump holds, and 3 trials give the smallest N no median interval
    assert [c["verdict"] for c in claims] == ["undecided", "reproduced", "undecided"]
    assert "d = 40 (paper 100)" in claims[0]["reason"]
    rem = np.array(df["remaining"].iloc[0])
    np.testing.assert_allclose(rem[1:] / rem[:-1], 0.75, atol=0.02)  # 25 % of the kept weights per round


def test_sweep_end_to_end_store_resume_and_plot(tmp_path):
    from ticketlab.app import run_experiment
    from ticketlab.store import Store

    sets = TINY + ["pruning=0.5", "N=40", "max_iter=100"]
    store = tmp_path / "s.db"
    exp, cfg, summary, counts = run_experiment("fig7", trials=2, sets=sets, store=str(store), progress=False)
    again = run_experiment("fig7", trials=2, sets=sets, store=str(store), progress=False)[3]
    assert counts["ran"] == 2 and again["ran"] == 0 and summary["trials"] == 2
    with Store(str(store)) as st:
        df = exp.frame(cfg, st.frame("fig7"))
    assert len(df) == 2
    paths = exp.plot(cfg, df, exp.summarize(cfg, df), tmp_path)
    assert all(p.exists() for p in paths)


@pytest.mark.parametrize("name,bad", [("fig7", "pruning=1.5"), ("fig7", "lam_max=0.01"), ("fig10", "rate=1.2"),
                                      ("fig8", "method=best")])
def test_bad_config_raises_config_error_naming_the_field(name, bad):
    with pytest.raises(ConfigError, match=bad.split("=")[0]):
        make_config(get_experiment(name), "quick", None, [bad])


@pytest.mark.parametrize("name,field", [("fig7", "test_error=exact"), ("fig8", "levels=0.1"), ("fig9", "method=random"),
                                        ("fig10", "test_error=exact")])
def test_settings_that_change_rows_change_the_trial_ids(name, field):
    """A stored trial is reused only by a config that would compute the same row."""
    exp = get_experiment(name)
    base = make_config(exp, "paper", None, [])
    other = make_config(exp, "paper", None, [field])
    assert {c.key(name) for c in exp.cells(base)}.isdisjoint({c.key(name) for c in exp.cells(other)})


def test_one_test_draw_for_every_round_gives_the_per_round_values_exactly():
    """IMP's rounds share one draw of each trial's test inputs (metrics.test_rmse_sampled_each): the values
    must equal one test_rmse_sampled call per weight tensor bit for bit, chunk boundaries included."""
    P = small_problem(B=3, d=10, K=3, r=4)
    gen = torch.Generator().manual_seed(5)
    Ws = [P.W_star + s * torch.randn(P.W_star.shape, generator=gen, dtype=torch.float64) for s in (0.3, 0.05, 0.0)]
    n, chunk = 2_500, 1_000  # 2.5 chunks: a partial last chunk too

    def one_draw_per_tensor(W):  # the per-round loop Figure 10 ran before (one fresh draw per tensor)
        out = []
        for b, seed in enumerate(P.seeds):
            gen = torch.Generator().manual_seed(substream(seed, TEST))
            sq, left = 0.0, n
            while left > 0:
                m = min(chunk, left)
                X = torch.randn(1, m, 10, generator=gen, dtype=torch.float64)
                sq += float(((forward(X, W[b:b + 1]) - forward(X, P.W_star[b:b + 1])) ** 2).sum())
                left -= m
            out.append(math.sqrt(sq / n))
        return torch.tensor(out, dtype=torch.float64)

    each = metrics.test_rmse_sampled_each(Ws, P.W_star, P.seeds, n, chunk)
    for W, got in zip(Ws, each):
        assert torch.equal(got, one_draw_per_tensor(W))
        assert torch.equal(got, metrics.test_rmse_sampled(W, P.W_star, P.seeds, n, chunk))
    assert torch.all(each[2] == 0) and torch.all(each[0] > each[1])  # W* itself scores 0; farther is worse
