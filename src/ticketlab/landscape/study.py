"""Theorem 1 measured on one trial: random points at relative radii around W*, positive definiteness of
the Hessian there, the convex radius, and the per-trial driver ``analyze_trials``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..config import (Choice, Count, Device, DType, Flag, Fraction, Instance, NonNegInt, OracleSpec, Seed,
                      Seeds, Tensor, bad_value, validated)
from ..oracle import make_problem, r_tilde
from ..seeding import LANDSCAPE, substream
from .empirical import DENSE_MAX, extreme_eigenvalues, kept_index
from .population import population_extremes, population_hessian_at

__all__ = [
    "LANDSCAPE_STREAM", "PD_RTOL", "perturbations", "convex_radius", "RADIUS_GRID_RULE", "radius_values",
    "check_radius_grid", "analyze_trials", "analyze",
]

LANDSCAPE_STREAM = LANDSCAPE  #: substream of the trial seed for the random directions around W*
PD_RTOL = 1e-10  #: positive definite: lambda_min > PD_RTOL * lambda_max (round-off guard)


@validated(W_star=Tensor, mask=Tensor, seed=Seed, points=Count)
def perturbations(W_star: torch.Tensor, mask: torch.Tensor, seed: int, points: int) -> torch.Tensor:
    """``points`` unit-Frobenius-norm Gaussian directions on the mask (points, d, K), from the trial's
    own stream. The same directions serve every radius (common random numbers across rho)."""
    gen = torch.Generator().manual_seed(substream(seed, LANDSCAPE_STREAM))
    M = mask.detach().to("cpu", torch.float64)
    D = torch.randn((points, *M.shape), generator=gen, dtype=torch.float64) * M
    D = D / D.flatten(1).norm(dim=1).clamp_min(1e-300)[:, None, None]
    return D.to(device=W_star.device, dtype=W_star.dtype)


def convex_radius(radius_grid: Sequence[float], all_pd: Sequence[bool], pd_at_star: bool = True) -> float:
    """The largest rho of the (sorted) grid such that every sampled point at every rho' <= rho was PD;
    0.0 when W* itself or the smallest rho fails."""
    if not pd_at_star:
        return 0.0
    best = 0.0
    for rho, ok in sorted(zip(radius_grid, all_pd)):
        if not ok:
            break
        best = rho
    return float(best)


#: what a radius grid must be, worded once for every message
RADIUS_GRID_RULE = "must be one or more finite numbers > 0"


def radius_values(radius_grid) -> list[float] | None:
    """The relative radii as floats (a sequence, or text '0.1,0.2'), or None unless they are one or
    more finite numbers > 0: the one rule of the grid (the CLI, the landscape experiment's config and
    ``analyze_trials`` all apply it).

    >>> radius_values("0.1,0.05"), radius_values([0.1, -1.0])
    ([0.1, 0.05], None)
    """
    if isinstance(radius_grid, str):
        radius_grid = [v for v in radius_grid.split(",") if v.strip()]
    try:
        values = [float(r) for r in radius_grid]
    except (TypeError, ValueError):
        return None
    return values if values and all(math.isfinite(r) and r > 0 for r in values) else None


def check_radius_grid(radius_grid, name: str = "radius_grid") -> list[float]:
    """``radius_values`` or a ConfigError naming the parameter."""
    values = radius_values(radius_grid)
    if values is None:
        raise bad_value(name, RADIUS_GRID_RULE, radius_grid)
    return values


def _validate(N, points, bandwidth, hessian, dense_max):
    if N < 1:
        raise bad_value("analyze_trials N", "must be >= 1", N)
    if points < 1:
        raise bad_value("analyze_trials points", "must be >= 1", points)
    if hessian not in ("smoothed", "generalized"):
        raise bad_value("analyze_trials hessian", "must be 'smoothed' or 'generalized'", hessian)
    if hessian == "smoothed" and not (0 < bandwidth <= 1):
        raise bad_value("analyze_trials bandwidth", "must be in (0, 1] for hessian='smoothed'", bandwidth)
    if dense_max < 0:
        raise bad_value("analyze_trials dense_max", "must be >= 0", dense_max)


@validated(oracle_spec=Instance(OracleSpec), N=Count, seeds=Seeds, points=Count, hessian=Choice(("smoothed", "generalized")),
           bandwidth=Fraction, dense_max=NonNegInt, population=Flag, both=Flag, device=Device, dtype=DType)
def analyze_trials(oracle_spec: OracleSpec, N: int, seeds: Sequence[int], radius_grid: Sequence[float] = (
        0.02, 0.05, 0.1, 0.2, 0.3, 0.5), points: int = 8, *, hessian: str = "smoothed", bandwidth: float = 0.05,
        dense_max: int = DENSE_MAX, population: bool = True, both: bool = True, device: str = "cpu",
        dtype: torch.dtype = torch.float64) -> list[dict]:
    """Theorem 1, measured: one JSON-ready dict per trial seed (same data as ``train`` for that seed).

    At W* and at ``points`` random points at each relative radius rho (W* + rho ||W*||_F D, D a unit
    Gaussian direction on the learner's mask, as ``init.local_start``), the extreme eigenvalues of the
    Hessian on the mask; the fraction of points whose Hessian is positive definite; the convex radius;
    the scaled lambda_min K^2 and lambda_max K; and (``population``) the N = infinity values at W*.
    ``hessian`` picks the Hessian that decides positive definiteness (module docstring); the generalized
    one is reported at W* always and at every point when ``both`` (False halves the cost). All points of
    one trial share its data and mask and are evaluated as one batch (dense) or one by one (Lanczos).
    """
    radius_grid = check_radius_grid(radius_grid, "analyze_trials radius_grid")
    if len(seeds) < 1:
        raise bad_value("analyze_trials seeds", "must give at least one trial seed", list(seeds))
    bw = bandwidth if hessian == "smoothed" else 0.0
    _validate(N, points, bandwidth, hessian, dense_max)
    grid = sorted(radius_grid)
    problem = make_problem(oracle_spec, N, list(seeds), device=device, dtype=dtype)
    rts = r_tilde(problem.mask)
    out = []
    for b, seed in enumerate(problem.seeds):
        X, y, Ws, M = problem.X[b], problem.y[b], problem.W_star[b], problem.mask[b]
        K = Ws.shape[-1]
        p = int(kept_index(M).numel())
        D = perturbations(Ws, M, seed, points)
        scale = Ws.norm()
        pts = torch.cat([Ws[None], *[(Ws + rho * scale * D) for rho in grid]])  # (1 + R P, d, K)
        lo, hi, method = extreme_eigenvalues(X, y, pts, M, bandwidth=bw, dense_max=dense_max, seed=seed)
        if bw > 0:  # the generalized Hessian too: at W* (Theorem 1's object), everywhere if asked
            lo_g, hi_g, _ = extreme_eigenvalues(X, y, pts if both else pts[:1], M, dense_max=dense_max, seed=seed)
        else:
            lo_g, hi_g = lo, hi
        pd = (lo > PD_RTOL * hi.abs()).tolist()
        table = []
        for i, rho in enumerate(grid):
            sl = slice(1 + i * points, 1 + (i + 1) * points)
            table.append({
                "rho": rho,
                "fraction_pd": float(np.mean(pd[sl])),
                "lambda_min": float(lo[sl].min()),
                "lambda_min_median": float(lo[sl].median()),
                "lambda_max": float(hi[sl].max()),
                "lambda_min_scaled": float(lo[sl].min()) * K**2,
            })
            if len(lo_g) > 1:
                table[-1]["lambda_min_generalized"] = float(lo_g[sl].min())
        radius = convex_radius(grid, [row["fraction_pd"] == 1.0 for row in table], pd[0])
        pop_radius = None
        if population and p <= dense_max:
            # N = infinity: the population Hessian (kinks included) at the same points.
            pev = torch.stack([torch.linalg.eigvalsh(population_hessian_at(w, Ws, M))[[0, -1]] for w in pts[1:]])
            pop_pd = (pev[:, 0] > PD_RTOL * pev[:, 1].abs()).tolist()
            for i, trow in enumerate(table):
                sl = slice(i * points, (i + 1) * points)
                trow["fraction_pd_population"] = float(np.mean(pop_pd[sl]))
                trow["lambda_min_population"] = float(pev[sl, 0].min())
            pop_radius = convex_radius(grid, [t["fraction_pd_population"] == 1.0 for t in table])
        row = {
            "seed": int(seed), "d": int(X.shape[1]), "K": int(K), "N": int(N), "p": p,
            "r_tilde": float(rts[b]), "r_ave": p / K,
            "hessian": hessian, "bandwidth": bw, "method": method, "points": int(points),
            "lambda_min_at_star": float(lo_g[0]), "lambda_max_at_star": float(hi_g[0]),
            "lambda_min_at_star_smoothed": float(lo[0]),
            "lambda_min_scaled_at_star": float(lo_g[0]) * K**2,  # Theorem 1: Theta(1 - eps0 - eps1)
            "lambda_max_scaled_at_star": float(hi_g[0]) * K,  # Theorem 1: O(1)
            "convex_radius": radius,
            # True when every grid radius passed: the radius is then only a lower bound.
            "convex_radius_censored": bool(pd[0]) and radius == grid[-1],
            "radius_table": table,
        }
        if population:
            plo, phi = population_extremes(Ws, M, dense_max=dense_max, seed=seed)
            row.update({"convex_radius_population": pop_radius,
                        "lambda_min_population": plo, "lambda_max_population": phi,
                        "lambda_min_scaled_population": plo * K**2, "lambda_max_scaled_population": phi * K})
        out.append(row)
    return out


@validated(oracle_spec=Instance(OracleSpec), N=Count, seed=Seed, points=Count)
def analyze(oracle_spec: OracleSpec, N: int, seed: int, radius_grid: Sequence[float] = (
        0.02, 0.05, 0.1, 0.2, 0.3, 0.5), points: int = 8, **kw) -> dict:
    """``analyze_trials`` for one seed: one JSON-ready dict (keys listed in docs/landscape.md)."""
    return analyze_trials(oracle_spec, N, [seed], radius_grid, points, **kw)[0]
