"""Estimators for the paper's claims: transition boundaries with bootstrap intervals, linear fits."""

from __future__ import annotations

import math

import numpy as np


def fit_logistic(x: np.ndarray, k: np.ndarray, n: np.ndarray, ridge: float = 1e-3) -> tuple[float, float] | None:
    """Maximum-likelihood logistic fit p(x) = 1 / (1 + exp(-s (x - x0))) to k successes of n per x.

    Newton's method on (intercept, slope) over standardized x, with a small ridge on the slope so that
    perfectly separated data (a sharp transition between two grid points) still give a finite fit
    whose 50% point lies between them. Returns (x0, s), or None when the data hold no transition
    (all successes or all failures), since then x0 is not identified.
    """
    x, k, n = (np.asarray(a, dtype=float) for a in (x, k, n))
    if k.sum() == 0 or k.sum() == n.sum():
        return None
    mu, scale = x.mean(), max(np.ptp(x), 1e-12)
    A = np.stack([np.ones_like(x), (x - mu) / scale], 1)
    theta = np.zeros(2)
    R = np.diag([0.0, ridge])
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(A @ theta, -50, 50)))
        grad = A.T @ (k - n * p) - R @ theta
        H = (A * (n * p * (1 - p))[:, None]).T @ A + R + 1e-12 * np.eye(2)
        step = np.linalg.solve(H, grad)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    a, b = theta
    if b == 0:
        return None
    return float(mu - a / b * scale), float(b / scale)


def transition(x, k, n, *, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict:
    """The 50% point of success vs x, with a parametric bootstrap interval over trials.

    If the data hold no transition, the point is reported as beyond the grid (None) with the side.
    """
    x, k, n = (np.asarray(a, dtype=float) for a in (x, k, n))
    fit = fit_logistic(x, k, n)
    if fit is None:
        side = "below" if k.sum() == n.sum() else "above"
        return {"point": None, "ci_low": None, "ci_high": None, "slope": None, "outside_grid": side}
    x0, s = fit
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        # Jeffreys-smoothed rates: a cell with 0/n or n/n successes still varies, so a sharply
        # separated transition gets an interval as wide as the grid allows instead of zero width
        kb = rng.binomial(n.astype(int), (k + 0.5) / (n + 1))
        f = fit_logistic(x, kb, n)
        if f is not None:
            boots.append(f[0])
    lo = hi = None
    if len(boots) >= 10:
        lo, hi = (float(v) for v in np.quantile(boots, [(1 - level) / 2, (1 + level) / 2]))
    inside = x.min() <= x0 <= x.max()
    return {"point": x0, "ci_low": lo, "ci_high": hi, "slope": s, "outside_grid": None if inside else
            ("below" if x0 < x.min() else "above")}


def linear_fit(x, y) -> dict:
    """Least squares y = a x + b with R^2 and the slope's standard error."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or np.ptp(x) == 0:
        return {"a": None, "b": None, "r2": None, "a_se": None, "n": int(len(x))}
    A = np.stack([x, np.ones_like(x)], 1)
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    pred = a * x + b
    ss_res, ss_tot = float(((y - pred) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
    a_se = math.sqrt(ss_res / (len(x) - 2) / float(((x - x.mean()) ** 2).sum())) if len(x) > 2 else None
    return {"a": float(a), "b": float(b), "r2": float(r2), "a_se": a_se, "n": int(len(x))}


def spearman(x, y) -> float | None:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return None
    return float(spearmanr(x[ok], y[ok]).statistic)


def samples_to_reach(Ns: list[int], errs: list[float], target: float) -> float | None:
    """Smallest N at which the median error curve crosses ``target`` (log-log interpolation)."""
    for i, (n, e) in enumerate(zip(Ns, errs)):
        if e <= target:
            if i == 0:
                return float(n)
            n0, e0 = Ns[i - 1], errs[i - 1]
            t = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e))
            return float(math.exp(math.log(n0) + t * (math.log(n) - math.log(n0))))
    return None
