"""Method-of-moments starts: Hermite identities by Monte Carlo against closed forms, the tensor
decomposition, mask use, determinism, errors, the study and its CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import typer
from scipy import integrate
from typer.testing import CliRunner

from ticketlab.config import ConfigError, InitSpec, OracleSpec, SolverSpec, TrialSpec
from ticketlab.init import make_start
from ticketlab.init.decomp import power_decompose
from ticketlab.init.hermite import (RELU_HERMITE, factor_m2, hermite3_contract, hermite4_moment,
                                    population_m4_contracted, population_moments, weights_from_factor)
from ticketlab.init.moments import INIT_METHODS, moment_start, support_init, tensor_init
from ticketlab.analysis import samples_to_reach as _samples_to_reach
from ticketlab.experiments.init import init_study
from ticketlab.metrics import aligned_relative_error
from ticketlab.oracle import Problem, forward, make_problem

pytestmark = pytest.mark.usefixtures("one_thread")


HE = [lambda t: 1.0, lambda t: t, lambda t: t**2 - 1, lambda t: t**3 - 3 * t, lambda t: t**4 - 6 * t**2 + 3]


@pytest.mark.parametrize("k", range(5))
def test_relu_hermite_coefficients_by_quadrature(k):
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    val, _ = integrate.quad(lambda t: t * HE[k](t) * phi(t), 0, np.inf)
    assert val == pytest.approx(RELU_HERMITE[k], abs=1e-10)


def _mc_oracle(d=4, K=2, N=400_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(d, K, generator=g, dtype=torch.float64) - 0.5
    X = torch.randn(N, d, generator=g, dtype=torch.float64)
    y = forward(X[None], W[None])[0]
    return W, X, y


def _assert_mc(samples: torch.Tensor, closed: torch.Tensor, z: float = 5.0):
    """Mean of per-sample values (N, ...) equals ``closed`` within z standard errors (computed from the
    samples) plus a rounding floor."""
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    assert torch.all((mean - closed).abs() <= z * se + 1e-12), (mean, closed, se)


def test_first_and_second_moment_identities():
    W, X, y = _mc_oracle()
    pop = population_moments(W)
    _assert_mc(y[:, None], pop["M0"][None])
    _assert_mc(y[:, None] * X, pop["M1"])
    d = X.shape[1]
    xxT = X[:, :, None] * X[:, None, :] - torch.eye(d, dtype=X.dtype)
    _assert_mc(y[:, None, None] * xxT, pop["M2"])
    # the closed form itself: M2 = (1/(K sqrt(2 pi))) sum_j w_j w_j^T / |w_j| and its factor
    K = W.shape[1]
    direct = sum(torch.outer(W[:, j], W[:, j]) / W[:, j].norm() for j in range(K)) / (K * math.sqrt(2 * math.pi))
    assert torch.allclose(pop["M2"], direct, atol=1e-14)


def test_third_hermite_moment_vanishes_for_relu():
    W, X, y = _mc_oracle(seed=1)
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(2, X.shape[1], generator=g, dtype=torch.float64)
    _assert_mc(y[:, None] * hermite3_contract(X, a, b), torch.zeros(X.shape[1], dtype=X.dtype))


def test_fourth_moment_projected_and_contracted():
    W, X, y = _mc_oracle(d=5, K=3, seed=2)
    g = torch.Generator().manual_seed(7)
    P = torch.linalg.qr(torch.randn(5, 3, generator=g, dtype=torch.float64))[0]
    alpha = torch.randn(3, generator=g, dtype=torch.float64)
    closed = population_m4_contracted(W, P, alpha)
    z = X @ P
    chunks = torch.stack([hermite4_moment(zc, yc, alpha) for zc, yc in zip(z.chunk(40), y.chunk(40))])
    _assert_mc(chunks, closed)  # chunk means are i.i.d., so their spread gives the standard error
    assert closed.abs().max() > 0.01  # the identity being checked is not trivially zero


def test_hermite4_moment_matches_explicit_tensor():
    g = torch.Generator().manual_seed(3)
    m, N = 3, 50
    z = torch.randn(N, m, generator=g, dtype=torch.float64)
    w = torch.randn(N, generator=g, dtype=torch.float64)
    alpha = torch.randn(m, generator=g, dtype=torch.float64)
    I = torch.eye(m, dtype=torch.float64)
    He4 = (torch.einsum("na,nb,nc,nd->nabcd", z, z, z, z)
           - sum(torch.einsum(s, z, z, I) for s in ("na,nb,cd->nabcd", "na,nc,bd->nabcd", "na,nd,bc->nabcd",
                                                     "nb,nc,ad->nabcd", "nb,nd,ac->nabcd", "nc,nd,ab->nabcd"))
           + (torch.einsum("ab,cd->abcd", I, I) + torch.einsum("ac,bd->abcd", I, I)
              + torch.einsum("ad,bc->abcd", I, I))[None])
    explicit = torch.einsum("n,nabcd,d->abc", w, He4, alpha) / N
    assert torch.allclose(hermite4_moment(z, w, alpha), explicit, atol=1e-12)


def test_factor_roundtrip():
    g = torch.Generator().manual_seed(4)
    W = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
    U = factor_m2(W)
    assert torch.allclose(U @ U.transpose(1, 2), population_moments(W)["M2"], atol=1e-14)
    assert torch.allclose(weights_from_factor(U, torch.sign(W[:, 0, :]) * torch.sign(U[:, 0, :])), W, atol=1e-12)


def test_power_method_recovers_orthogonal_decomposition():
    g = torch.Generator().manual_seed(0)
    B, m = 3, 5
    mu = torch.linalg.qr(torch.randn(B, m, m, generator=g, dtype=torch.float64))[0]
    rho = torch.randn(B, m, generator=g, dtype=torch.float64).abs() + 0.5
    rho = rho * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    T = torch.einsum("bj,bij,bkj,blj->bikl", rho, mu, mu, mu)
    starts = torch.randn(B, m, 8, m, generator=g, dtype=torch.float64)
    mu_hat, rho_hat = power_decompose(T, starts)
    # each true component is found once, up to sign (rho mu^3 = (-rho)(-mu)^3)
    overlap = (mu.transpose(1, 2) @ mu_hat).abs()
    assert torch.allclose(overlap.max(-1).values, torch.ones(B, m, dtype=torch.float64), atol=1e-8)
    rebuilt = torch.einsum("bj,bij,bkj,blj->bikl", rho_hat, mu_hat, mu_hat, mu_hat)
    assert torch.allclose(rebuilt, T, atol=1e-8)


@pytest.fixture(scope="module")
def small():
    return make_problem(OracleSpec(d=40, K=3, r=10), 3000, [0, 1, 2])


@pytest.mark.parametrize("kind", ["tensor", "moments", "moments0"])
def test_moment_starts_recover_and_stay_on_mask(small, kind):
    W0 = INIT_METHODS[kind](small.X, small.y, small.mask, small.seeds)
    assert torch.all(W0[small.mask == 0] == 0)
    err, perm = aligned_relative_error(W0, small.W_star)
    bound = {"tensor": 0.5, "moments0": 0.25, "moments": 0.02}[kind]
    assert float(err.max()) < bound
    # neurons come back in the mask's order (assigned by support), so no permutation is needed
    assert torch.equal(perm, torch.arange(3).expand(3, 3))


def test_moment_start_never_reads_w_star(small):
    blind = Problem(small.X, small.y, torch.full_like(small.W_star, float("nan")), small.oracle_mask,
                    small.mask, small.sigma, small.seeds)
    for kind in ("tensor", "moments"):
        W0 = moment_start(blind, InitSpec(kind=kind))
        assert torch.equal(W0, make_start(small, InitSpec(kind=kind)))


def test_deterministic_and_batch_independent(small):
    for kind in ("tensor", "moments"):
        a = INIT_METHODS[kind](small.X, small.y, small.mask, small.seeds)
        b = INIT_METHODS[kind](small.X, small.y, small.mask, small.seeds)
        assert torch.equal(a, b)
        one = small.select([1])
        c = INIT_METHODS[kind](one.X, one.y, one.mask, one.seeds)
        assert torch.allclose(a[1:2], c, atol=1e-9, rtol=0)


def test_mask_beats_dense_and_error_falls_with_n():
    p = make_problem(OracleSpec(d=200, K=3, r=10), 3000, [10, 11, 12])
    masked, _ = aligned_relative_error(tensor_init(p.X, p.y, p.mask, p.seeds), p.W_star)
    dense, _ = aligned_relative_error(tensor_init(p.X, p.y, p.mask, p.seeds, use_mask=False), p.W_star)
    assert float(masked.median()) < 0.5 * float(dense.median())
    big = make_problem(OracleSpec(d=200, K=3, r=10), 12000, [10, 11, 12])
    e_small, _ = aligned_relative_error(support_init(p.X, p.y, p.mask, p.seeds, rounds=0), p.W_star)
    e_big, _ = aligned_relative_error(support_init(big.X, big.y, big.mask, big.seeds, rounds=0), big.W_star)
    # a moment estimate: error ~ N^(-1/2), so 4x the samples should roughly halve it
    assert 0.3 < float(e_big.median() / e_small.median()) < 0.75


def test_support_start_choices_agree(small):
    a = support_init(small.X, small.y, small.mask, small.seeds, start="tensor")
    b = support_init(small.X, small.y, small.mask, small.seeds, start="supports")
    c = support_init(small.X, small.y, small.mask, small.seeds, start="unique")
    ea, _ = aligned_relative_error(a, small.W_star)
    for other in (b, c):
        eo, _ = aligned_relative_error(other, small.W_star)
        assert torch.allclose(ea, eo, atol=1e-3)


def test_moments_fit_does_not_stall_on_shared_anchor():
    """Regression: with simultaneous (Jacobi) neuron updates this trial stalled at error 0.107, the
    anchor coordinate kept by all neurons absorbing the error; Gauss-Seidel sweeps reach the fit."""
    p = make_problem(OracleSpec(d=100, K=5, r=10), 16000, [3029042132199941966])
    err, _ = aligned_relative_error(support_init(p.X, p.y, p.mask, p.seeds), p.W_star)
    assert float(err[0]) < 1e-3


def test_impossible_requests_raise_config_error(small):
    X, y, seeds = small.X, small.y, small.seeds
    thin = torch.zeros_like(small.mask)
    thin[:, :2, :] = 1.0  # 2 kept coordinates for K = 3 neurons
    with pytest.raises(ConfigError, match=r"^K: must be <= the 2 input coordinates .*\(got 3\)$"):
        tensor_init(X, y, thin, seeds)
    with pytest.raises(ConfigError, match=r"^N: must be >= 4 K = 12 .*\(got 5\)$"):
        tensor_init(X[:, :5], y[:, :5], small.mask, seeds)
    empty = small.mask.clone()
    empty[:, :, 0] = 0
    with pytest.raises(ConfigError, match="^mask: must keep at least one input"):
        support_init(X, y, empty, seeds)
    with pytest.raises(ConfigError, match="start"):
        support_init(X, y, small.mask, seeds, start="nope")
    with pytest.raises(ConfigError, match="kinds"):
        init_study([100], [5], [20], K=2, kinds=["nope"])


def test_agd_from_tensor_start_recovers_small():
    spec = TrialSpec(oracle=OracleSpec(d=30, K=2, r=8), N=2000, init=InitSpec(kind="tensor"),
                     solver=SolverSpec(max_iter=2000, tol=1e-7))
    from ticketlab.trial import run_trials

    rows = run_trials(spec, [0, 1], backend="reference")
    assert all(r["init_relative_error"] < 0.5 for r in rows)
    assert all(r["success"] for r in rows), rows


@pytest.mark.slow
def test_agd_from_tensor_start_recovers_paper_setting():
    """d=100, K=5, r=20, N=20,000: the default tensor start lands in AGD's basin for several seeds."""
    from ticketlab.trial import run_trials

    spec = TrialSpec(oracle=OracleSpec(d=100, K=5, r=20), N=20_000, init=InitSpec(kind="tensor"))
    rows = run_trials(spec, [1, 2, 3, 4])
    assert np.median([r["init_relative_error"] for r in rows]) < 0.5
    assert all(r["success"] for r in rows), rows


def test_samples_to_reach_interpolates_log_log():
    # err = 10 / sqrt(N): reaches 0.1 at N = 10,000 exactly
    Ns = [100, 1000, 100_000]
    errs = [10 / math.sqrt(n) for n in Ns]
    assert _samples_to_reach(Ns, errs, 0.1) == pytest.approx(10_000, rel=1e-9)
    assert _samples_to_reach(Ns, errs, 1e-3) is None


def test_init_study_cli(tmp_path):
    from ticketlab.cli.init_study import register

    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)
    args = ["init-study", "--N-grid", "300,1200", "--r-grid", "4", "--d-grid", "20,60", "--K", "2",
            "--trials", "1", "--out", str(tmp_path), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert len(out["rows"]) == 2 * 2 * 1 * 4  # N x d x trials x kinds
    assert {s["kind"] for s in out["sample_ratio"]} == {"tensor", "moments", "moments0"}
    for name in ("init_study.json", "init_study.png", "init_study.pdf"):
        assert (tmp_path / name).stat().st_size > 0
    res = CliRunner().invoke(app, ["init-study", "--N-grid", "a,b"])
    assert isinstance(res.exception, ConfigError) and "--N-grid" in str(res.exception)


def test_init_experiment_matches_the_study_function(tmp_path):
    """The `init` experiment (store rows, one per trial) gives the study function's numbers and verdicts."""
    from ticketlab.app import run_experiment
    from ticketlab.report import write_report

    sets = ["N=300,1200", "r=4", "d=20,60", "K=2"]
    exp, cfg, summary, counts = run_experiment("init", trials=1, sets=sets, store=str(tmp_path / "s.db"),
                                               progress=False)
    assert counts["ran"] == 4 and counts["written"] == 4
    direct = init_study([300, 1200], [4], [20, 60], K=2, trials=1)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]  # noqa: E731
    assert strip(summary["rows"]) == strip(sorted(direct["rows"], key=lambda r: (r["d"], r["r"], r["N"], r["trial"])))
    assert strip(summary["summary"]) == strip(direct["summary"])
    assert summary["sample_ratio"] == direct["sample_ratio"]
    res = write_report(tmp_path / "s.db", tmp_path / "rep")
    sec = next(s for s in res["sections"] if s["name"] == "init")
    assert len(sec["claims"]) == 2 and "init_study.png" in " ".join(sec["figures"])
    assert "samples to reach median error" in sec["markdown"]
