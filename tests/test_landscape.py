"""Landscape (Theorem 1): every Hessian, eigenvalue and population quantity against an independent truth."""

from __future__ import annotations

import json
import math

import pytest
import torch
import typer
from typer.testing import CliRunner

from ticketlab import landscape as L
from ticketlab.config import ConfigError, OracleSpec
from ticketlab.engine import gradient, risk
from ticketlab.oracle import forward, make_problem
from ticketlab.population import population_risk as population_risk_core

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def _trial(d=8, K=3, r=4, N=300, noise=0.1, seed=3):
    P = make_problem(OracleSpec(d=d, K=K, r=r, noise=noise), N, [seed])
    return P.X[0], P.y[0], P.W_star[0], P.mask[0]


def _generic_point(Ws, M, rel=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(Ws.shape, generator=gen, dtype=F64) * M
    return Ws + rel * Ws.norm() * D / D.norm()


def _kernel_sum(U: torch.Tensor, V: torch.Tensor, same: bool) -> torch.Tensor:
    """An independent closed form of sum_jk E[relu(u_j.x) relu(v_k.x)], twice differentiable by autograd off the
    diagonal (angle from atan2, accurate near 0 and pi); with same=True the diagonal is |u_j|^2/2."""
    nu, nv = U.norm(dim=0), V.norm(dim=0)
    uh, vh = U / nu, V / nv
    K = U.shape[1]
    gap = uh[:, :, None] - vh[:, None, :]
    if same:  # the diagonal is replaced below; a constant shift keeps its (discarded) derivatives finite
        off = ~torch.eye(K, dtype=torch.bool, device=U.device)
        gap = gap + (~off).to(U.dtype)[None]
    diff = gap.norm(dim=0)
    summ = (uh[:, :, None] + vh[:, None, :]).norm(dim=0)
    t = 2 * torch.atan2(diff, summ)
    kern = (nu[:, None] * nv[None, :] * torch.sin(t) + (math.pi - t) * (U.transpose(0, 1) @ V)) / (2 * math.pi)
    if same:
        kern = torch.where(off, kern, torch.diag(nu**2 / 2))
    return kern.sum()


def _unit(idx, shape, eps=1.0):
    E = torch.zeros(math.prod(shape), dtype=F64)
    E[idx] = eps
    return E.view(shape)


# ------------------------------------------------------------------------------- empirical Hessian

def test_generalized_hessian_matches_finite_differences_of_engine_gradient():
    X, y, Ws, M = _trial()
    W = _generic_point(Ws, M)
    eps = 1e-7
    # Central differences are exact for a piecewise quadratic unless a kink lies within eps.
    assert (X @ W).abs().min() > 10 * eps * X.abs().max()
    H = L.hessian_on_mask(X, y, W[None], M)[0]
    idx = L.kept_index(M)
    cols = []
    for i in idx.tolist():
        E = _unit(i, W.shape, eps)
        g = (gradient(X[None], y[None], (W + E)[None]) - gradient(X[None], y[None], (W - E)[None]))[0]
        cols.append(g.flatten()[idx] / (2 * eps))
    H_fd = torch.stack(cols, 1)
    assert torch.allclose(H, H_fd, rtol=1e-6, atol=1e-9 * H.abs().max())
    # and autograd of the engine's risk (relu'' = 0 a.e.) on the kept coordinates
    def f(theta):
        return risk(X[None], y[None], torch.zeros(W.numel(), dtype=F64).index_put((idx,), theta).view_as(W)[None])[0]
    assert torch.allclose(H, torch.autograd.functional.hessian(f, W.flatten()[idx]), rtol=1e-10, atol=1e-14)


def test_generalized_hessian_is_psd_and_smoothed_is_not_far_from_w_star():
    X, y, Ws, M = _trial(N=200, noise=0.0)
    far = torch.stack([_generic_point(Ws, M, rel=0.8, seed=s) for s in range(4)])
    ev_g = torch.linalg.eigvalsh(L.hessian_on_mask(X, y, far, M))
    assert (ev_g[:, 0] > -1e-14).all()  # J^T J / N
    ev_s = torch.linalg.eigvalsh(L.hessian_on_mask(X, y, far, M, bandwidth=0.02))
    assert (ev_s[:, 0] < 0).any()  # the negative kinks are what ends the convex ball


@pytest.mark.parametrize("bandwidth", [0.0, 0.1])
def test_hvp_matches_dense_hessian(bandwidth):
    X, y, Ws, M = _trial()
    W = _generic_point(Ws, M)
    H = L.hessian_on_mask(X, y, W[None], M, bandwidth=bandwidth)[0]
    assert torch.allclose(H, H.T, atol=1e-15)
    idx = L.kept_index(M)
    V = torch.randn(W.shape, generator=torch.Generator().manual_seed(1), dtype=F64) * M
    HV = L.hvp_on_mask(X, y, W, M, V, bandwidth=bandwidth)
    assert torch.allclose(HV.flatten()[idx], H @ V.flatten()[idx], rtol=1e-10, atol=1e-15)
    assert (HV * (1 - M)).abs().max() == 0  # pruned coordinates never move


def test_smoothed_hessian_tends_to_population_hessian_as_n_grows():
    # The kink term is the only thing the a.e. Hessian misses; with many samples and a small
    # bandwidth the smoothed empirical Hessian must match the exact population Hessian at generic W.
    d, K = 4, 2
    gen = torch.Generator().manual_seed(0)
    Ws = torch.rand(d, K, generator=gen, dtype=F64) - 0.5
    M = torch.ones(d, K, dtype=F64)
    W = _generic_point(Ws, M, rel=0.5, seed=2)
    X = torch.randn(300_000, d, generator=gen, dtype=F64)
    y = forward(X[None], Ws[None])[0]
    H_pop = L.population_hessian_at(W, Ws, M)
    H_s = L.hessian_on_mask(X, y, W[None], M, bandwidth=0.03)[0]
    H_g = L.hessian_on_mask(X, y, W[None], M)[0]
    err_s = (H_s - H_pop).norm() / H_pop.norm()
    err_g = (H_g - H_pop).norm() / H_pop.norm()
    assert err_s < 0.02, err_s
    assert err_g > 3 * err_s  # the kink curvature is real and the a.e. Hessian does not see it


@pytest.mark.parametrize("bandwidth", [0.0, 0.05])
def test_lanczos_matches_dense_eigensolver(bandwidth):
    X, y, Ws, M = _trial(d=30, K=4, r=10, N=600, noise=0.05)
    pts = torch.stack([Ws, _generic_point(Ws, M, 0.2)])
    lo_d, hi_d, m_d = L.extreme_eigenvalues(X, y, pts, M, bandwidth=bandwidth, dense_max=10_000)
    lo_l, hi_l, m_l = L.extreme_eigenvalues(X, y, pts, M, bandwidth=bandwidth, dense_max=0)
    assert (m_d, m_l) == ("dense", "lanczos")
    assert torch.allclose(lo_l, lo_d, rtol=1e-6) and torch.allclose(hi_l, hi_d, rtol=1e-6)


# ------------------------------------------------------------------------------- population (N = infinity)

def _mc_x(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_population_risk_is_reexported_and_matches_monte_carlo():
    assert L.population_risk is population_risk_core
    d, K, n = 5, 3, 1_000_000
    gen = torch.Generator().manual_seed(7)
    Ws = torch.rand(d, K, generator=gen, dtype=F64) - 0.5
    W = Ws + 0.3 * torch.randn(d, K, generator=gen, dtype=F64)
    R, G = L.population_risk(W, Ws, with_grad=True)
    X = _mc_x(n, d, 11)
    e = forward(X[None], W[None])[0] - forward(X[None], Ws[None])[0]
    samples = 0.5 * e**2
    se = samples.std() / math.sqrt(n)
    assert abs(samples.mean() - R) < 3 * se
    # gradient: E[e(x) (1/K) 1{w_j.x > 0} x], entry by entry
    per = (e[:, None, None] * (X @ W > 0)[:, None, :] * X[:, :, None]) / K  # (n, d, K)
    z = (per.mean(0) - G) / (per.std(0) / math.sqrt(n))
    assert z.abs().max() < 4.0, z  # 15 entries: a 3-sigma rule per entry would fail by chance ~4% of the time


def test_population_risk_gradient_matches_autograd_of_closed_form():
    gen = torch.Generator().manual_seed(5)
    for d, K in [(6, 3), (10, 4)]:
        Ws = (torch.rand(d, K, generator=gen, dtype=F64) - 0.5)
        W = (Ws + 0.4 * torch.randn(d, K, generator=gen, dtype=F64)).requires_grad_(True)
        ours = (_kernel_sum(W, W, True) - 2 * _kernel_sum(W, Ws, False) + _kernel_sum(Ws, Ws, True)) / (2 * K**2)
        (g_auto,) = torch.autograd.grad(ours, W)
        R, G = L.population_risk(W.detach(), Ws, with_grad=True)
        assert torch.allclose(ours.detach(), R, rtol=1e-12)
        assert torch.allclose(G, g_auto, rtol=1e-10, atol=1e-14)


def test_population_hessian_at_matches_finite_differences_of_population_gradient():
    gen = torch.Generator().manual_seed(2)
    Ws = torch.rand(6, 3, generator=gen, dtype=F64) - 0.5
    M = torch.ones_like(Ws)
    M[0, 0] = M[3, 2] = 0
    Ws = Ws * M
    W = _generic_point(Ws, M, 0.3, seed=4)
    H = L.population_hessian_at(W, Ws, M)
    idx, eps = L.kept_index(M), 1e-6
    cols = []
    for i in idx.tolist():
        E = _unit(i, W.shape, eps)
        g = L.population_risk(W + E, Ws, with_grad=True)[1] - L.population_risk(W - E, Ws, with_grad=True)[1]
        cols.append(g.flatten()[idx] / (2 * eps))
    assert torch.allclose(H, torch.stack(cols, 1), atol=1e-9)
    # and autograd of an independently written closed form of the risk
    K = W.shape[1]

    def R(theta):
        Wf = torch.zeros(W.numel(), dtype=F64).index_put((idx,), theta).view_as(W)
        return (_kernel_sum(Wf, Wf, True) - 2 * _kernel_sum(Wf, Ws, False)) / (2 * K**2)

    assert torch.allclose(H, torch.autograd.functional.hessian(R, W.flatten()[idx]), atol=1e-12)


def test_pair_block_limits():
    u = torch.tensor([0.3, -1.0, 2.0], dtype=F64)
    eye = torch.eye(3, dtype=F64)
    assert torch.allclose(L.pair_block(u, 2.5 * u), eye / 2, atol=1e-14)  # E[1{u.x>0} x x^T] = I/2
    assert torch.allclose(L.pair_block(u, -u), torch.zeros(3, 3, dtype=F64), atol=1e-14)  # never both active
    v = torch.tensor([1.0, 0.5, -0.2], dtype=F64)
    assert torch.allclose(L.pair_block(u, v), L.pair_block(v, u).T, atol=1e-15)
    # the kept-coordinate assembly of population_hessian agrees with the d x d blocks
    Ws = torch.stack([u, v, torch.tensor([-0.4, 0.1, 0.9], dtype=F64)], 1)
    H = L.population_hessian(Ws, torch.ones_like(Ws)).view(3, 3, 3, 3)
    for j in range(3):
        for k in range(3):
            assert torch.allclose(H[:, j, :, k], L.pair_block(Ws[:, j], Ws[:, k]) / 9, atol=1e-15)


def test_population_hessian_blocks_match_monte_carlo():
    d, K, n = 4, 3, 1_000_000
    gen = torch.Generator().manual_seed(9)
    Ws = torch.rand(d, K, generator=gen, dtype=F64) - 0.5
    M = torch.ones(d, K, dtype=F64)
    H = L.population_hessian(Ws, M).view(d, K, d, K)  # row-major (i, j) order = the full order
    X = _mc_x(n, d, 13)
    S = (X @ Ws > 0).to(F64)
    X2 = X * X
    for j in range(K):
        for k in range(K):
            w = S[:, j] * S[:, k] / K**2  # per-sample block = w x x^T
            mean = (X * w[:, None]).T @ X / n
            var = (X2 * (w * w)[:, None]).T @ X2 / n - mean**2
            z = (mean - H[:, j, :, k]) / (var / n).sqrt()
            assert z.abs().max() < 4.0, (j, k, z)  # 16 entries per block: 4 sigma keeps chance failures rare


def test_population_hessian_is_the_limit_of_the_exact_hessian_near_w_star_and_hvp_agrees():
    gen = torch.Generator().manual_seed(1)
    Ws = torch.rand(7, 3, generator=gen, dtype=F64) - 0.5
    M = (torch.rand(7, 3, generator=gen) < 0.7).to(F64)
    Ws = Ws * M
    H = L.population_hessian(Ws, M)
    near = L.population_hessian_at(_generic_point(Ws, M, 1e-6, seed=3), Ws, M)
    assert torch.allclose(H, near, atol=1e-5 * H.abs().max())
    V = torch.randn(Ws.shape, generator=gen, dtype=F64) * M
    idx = L.kept_index(M)
    assert torch.allclose(L.population_hvp(Ws, M, V).flatten()[idx], H @ V.flatten()[idx], atol=1e-14)
    lo, hi = L.population_extremes(Ws, M, dense_max=0)
    ev = torch.linalg.eigvalsh(H)
    assert math.isclose(lo, float(ev[0]), rel_tol=1e-6) and math.isclose(hi, float(ev[-1]), rel_tol=1e-6)


def test_empirical_eigenvalues_at_w_star_approach_population():
    spec = OracleSpec(d=20, K=3, r=5)
    errs = []
    for N in (300, 30_000):
        row = L.analyze(spec, N, 4, radius_grid=[0.1], points=1)
        errs.append((abs(row["lambda_min_at_star"] / row["lambda_min_population"] - 1),
                     abs(row["lambda_max_at_star"] / row["lambda_max_population"] - 1)))
    (lo_small, hi_small), (lo_big, hi_big) = errs
    assert lo_big < 0.1 and hi_big < 0.05, errs
    assert lo_big < lo_small and hi_big < hi_small, errs


# ------------------------------------------------------------------------------- convex radius and API

def test_convex_radius_rule():
    grid = [0.1, 0.2, 0.3, 0.5]
    assert L.convex_radius(grid, [True, True, False, True]) == 0.2  # the ball must be PD all the way in
    assert L.convex_radius(grid, [True] * 4) == 0.5
    assert L.convex_radius(grid, [False, True, True, True]) == 0.0
    assert L.convex_radius(grid, [True] * 4, pd_at_star=False) == 0.0
    assert L.convex_radius([0.5, 0.1], [True, False]) == 0.0  # sorted by rho, not by position


def test_convex_radius_shrinks_as_r_tilde_grows_at_fixed_n():
    grid = [0.05, 0.1, 0.2, 0.3, 0.5, 0.8]
    radius = {}
    for r in (5, 30):
        rows = L.analyze_trials(OracleSpec(d=40, K=4, r=r), 600, [1, 2, 3, 4], grid, 4, population=False)
        radius[r] = sum(row["convex_radius"] for row in rows) / len(rows)
        lam = sum(row["lambda_min_scaled_at_star"] for row in rows) / len(rows)
        radius[r, "lam"] = lam
    assert radius[5] > radius[30], radius
    assert radius[5, "lam"] > radius[30, "lam"], radius  # the eps1 ~ sqrt(r~/N) loss of Theorem 1


def test_generalized_hessian_gives_no_radius_but_smoothed_does():
    # J^T J / N is PD wherever the active samples span the kept coordinates: far out too.
    spec, grid = OracleSpec(d=30, K=3, r=10), [0.3, 1.0]
    gen = L.analyze(spec, 300, 2, grid, 4, hessian="generalized", population=False)
    assert gen["convex_radius"] == 1.0 and gen["convex_radius_censored"] and gen["bandwidth"] == 0.0
    smo = L.analyze(spec, 300, 2, grid, 4, hessian="smoothed", bandwidth=0.02, population=False)
    assert smo["convex_radius"] < 1.0 and not smo["convex_radius_censored"]
    assert smo["lambda_min_at_star"] == gen["lambda_min_at_star"]  # noise-free: same Hessian at W*


def test_analyze_is_deterministic_json_ready_and_matches_its_parts():
    spec = OracleSpec(d=12, K=3, r=4, noise=0.05)
    a = L.analyze(spec, 200, 17, [0.1, 0.3], 3)
    assert json.loads(json.dumps(a)) == a == L.analyze(spec, 200, 17, [0.1, 0.3], 3)
    batch = L.analyze_trials(spec, 200, [5, 17], [0.1, 0.3], 3)
    assert batch[1] == a  # a trial's numbers do not depend on its batch
    P = make_problem(spec, 200, [17])
    X, y, Ws, M = P.X[0], P.y[0], P.W_star[0], P.mask[0]
    ev = torch.linalg.eigvalsh(L.hessian_on_mask(X, y, Ws[None], M)[0])
    assert a["lambda_min_at_star"] == pytest.approx(float(ev[0]), rel=1e-12)
    assert a["lambda_max_scaled_at_star"] == pytest.approx(float(ev[-1]) * 3, rel=1e-12)
    D = L.perturbations(Ws, M, 17, 3)
    pts = Ws + 0.3 * Ws.norm() * D
    lo = torch.linalg.eigvalsh(L.hessian_on_mask(X, y, pts, M, bandwidth=0.05))[:, 0]
    assert a["radius_table"][1]["lambda_min"] == pytest.approx(float(lo.min()), rel=1e-12)
    assert a["radius_table"][1]["fraction_pd"] == float((lo > 0).double().mean())
    assert torch.allclose((pts - Ws).flatten(1).norm(dim=1) / Ws.norm(), torch.full((3,), 0.3, dtype=F64))


@pytest.mark.parametrize("kw, name", [
    ({"radius_grid": [0.1, -1.0]}, "radius_grid"), ({"radius_grid": []}, "radius_grid"),
    ({"radius_grid": ["abc"]}, "radius_grid"),
    ({"points": 0}, "points"), ({"hessian": "exact"}, "hessian"), ({"bandwidth": 0.0}, "bandwidth"),
    ({"dense_max": -1}, "dense_max"),
])
def test_bad_input_raises_config_error_naming_the_parameter(kw, name):
    args = {"radius_grid": [0.1], "points": 2, **kw}
    with pytest.raises(ConfigError, match=name):
        L.analyze(OracleSpec(d=8, K=2, r=3), 50, 0, **args)


def _app():
    from ticketlab.cli.landscape import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


def test_cli_json_and_errors():
    args = ["landscape", "--d", "12", "--K", "3", "--r", "4", "--N", "200", "--points", "3",
            "--radius-grid", "0.1,0.3", "--seed", "17", "--noise", "0.05"]
    res = CliRunner().invoke(_app(), args + ["--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out == L.analyze(OracleSpec(d=12, K=3, r=4, noise=0.05), 200, 17, [0.1, 0.3], 3)
    res = CliRunner().invoke(_app(), args)
    assert res.exit_code == 0 and "convex radius" in res.output
    bad = CliRunner().invoke(_app(), args[:-4] + ["--radius-grid", "0.1,abc"])
    assert isinstance(bad.exception, ConfigError) and "--radius-grid" in str(bad.exception)


def test_the_landscape_summary_brackets_each_radius_by_its_grid():
    """A radius is the largest grid value with every sampled point PD, so the truth lies below the next
    grid value: the summary's upper edge is the mean of those next values, and a radius of 0 (PD at W*
    but not at the first grid value) is counted as below the grid. Checked against the rule by hand."""
    import pandas as pd

    from ticketlab.app import make_config
    from ticketlab.experiments import get_experiment

    exp = get_experiment("landscape")
    cfg = make_config(exp, "quick", 3, ["r=5", "N=500", "radius_grid=0.02,0.05,0.1,0.2"])
    radii = [0.0, 0.05, 0.2]  # below the grid; between 0.05 and 0.1; at the grid's end (censored)
    df = pd.DataFrame({"r": 5, "N": 500, "r_tilde": 5.0, "convex_radius": radii,
                       "convex_radius_censored": [False, False, True], "lambda_min_scaled_at_star": 0.1,
                       "lambda_max_scaled_at_star": 0.3, "lambda_min_scaled_population": 0.2})
    (cell,) = exp.summarize(cfg, df)["cells"]
    assert cell["convex_radius"] == pytest.approx(sum(radii) / 3)
    assert cell["convex_radius_upper"] == pytest.approx((0.02 + 0.1 + 0.2) / 3)
    assert cell["below_grid"] == 1 and cell["censored_trials"] == 1


def test_the_landscape_figure_draws_every_sample_size_in_both_panels(tmp_path):
    """One line per N in the eigenvalue panel too (a regression: only the last N was drawn), and the
    paper's Figure 2 read-offs only on the paper's own setting."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    from matplotlib import pyplot as plt

    from ticketlab.app import make_config
    from ticketlab.experiments import get_experiment

    exp = get_experiment("landscape")
    cfg = make_config(exp, "quick", 1, ["r=5,10", "N=200,500", "radius_grid=0.02,0.05,0.1"])
    rows = [{"r": r, "N": n, "r_tilde": float(r), "convex_radius": rad, "convex_radius_censored": rad == 0.1,
             "lambda_min_scaled_at_star": 0.1, "lambda_max_scaled_at_star": 0.3, "lambda_min_scaled_population": 0.2}
            for r in (5, 10) for n, rad in ((200, 0.0), (500, 0.1))]
    df = pd.DataFrame(rows)
    seen = {}
    real_save = __import__("ticketlab.plotting", fromlist=["save"]).save

    def keep(fig, out_dir, name):
        seen["labels"] = [[ln.get_label() for ln in ax.get_lines()] for ax in fig.axes]
        return real_save(fig, out_dir, name)

    import ticketlab.plotting as plotting
    old, plotting.save = plotting.save, keep
    try:
        exp.plot(cfg, df, exp.summarize(cfg, df), tmp_path)
    finally:
        plotting.save = old
        plt.close("all")
    left, right = seen["labels"]
    assert [x for x in right if x.startswith("N = ")] == ["N = 200", "N = 500"]
    assert any("below the grid" in x for x in left) and any("grid's end" in x for x in left)
    assert not any("paper Fig. 2" in x for x in left)  # not the paper's setting
