"""Estimators for the paper's claims: transition boundaries with bootstrap intervals, linear fits,
and the count of trials that ran to the iteration cap (which decide nothing)."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "fit_logistic", "transition", "linear_fit", "predict", "capped", "capped_undecided", "near_cells",
    "log_ratio_se", "spearman", "samples_to_reach", "capped_table", "capped_near", "median_ci",
]


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


def transition(x, k, n, *, n_boot: int = 200, seed: int = 0, level: float = 0.95,
               falling: bool = False) -> dict:
    """The 50% point of success vs x, with a parametric bootstrap interval over trials.

    If the data hold no transition, the point is reported as beyond the grid (None) with the side:
    success rises with x (samples N) unless ``falling`` (start distance: Figure 2's radius), so that
    every trial succeeding puts the point below the grid when rising and above it when falling.
    """
    x, k, n = (np.asarray(a, dtype=float) for a in (x, k, n))
    fit = fit_logistic(x, k, n)
    if fit is None:
        all_succeed = k.sum() == n.sum()
        side = ("above" if all_succeed else "below") if falling else ("below" if all_succeed else "above")
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
    sxx = float(((x - x.mean()) ** 2).sum())
    s2 = ss_res / (len(x) - 2) if len(x) > 2 else None
    a_se = math.sqrt(s2 / sxx) if s2 is not None else None
    return {"a": float(a), "b": float(b), "r2": float(r2), "a_se": a_se, "n": int(len(x)),
            "x_mean": float(x.mean()), "sxx": sxx, "s2": s2}


def predict(fit: dict, x: float) -> tuple[float | None, float | None]:
    """The fitted line at x and the standard error of that mean prediction (None without residual dof)."""
    if fit.get("a") is None:
        return None, None
    y = fit["a"] * x + fit["b"]
    if fit.get("s2") is None:
        return float(y), None
    return float(y), math.sqrt(fit["s2"] * (1 / fit["n"] + (x - fit["x_mean"]) ** 2 / fit["sxx"]))


def capped(df, max_iter: int):
    """Per row: the trial ran to ``max_iter`` without meeting the stopping rule (and did not diverge). A
    row without iterations (a start that bisection inferred instead of solving, design=bisect) is not."""
    import pandas as pd

    out = pd.to_numeric(df["iterations"], errors="coerce").fillna(-1) >= int(max_iter)
    if "converged" in df:
        out &= ~df["converged"].astype(bool)
    if "failed" in df:
        out &= ~df["failed"].astype(bool)
    return out


def capped_undecided(df, max_iter: int):
    """Capped trials whose success is not settled: capped and not (yet) under the success threshold. A
    capped trial already under it stays a success with more iterations (the error only falls near W*)."""
    out = capped(df, max_iter)
    if "success" in df:
        out &= ~df["success"].astype(bool)
    return out


def near_cells(xs, point: float | None, ci_low: float | None, ci_high: float | None,
               outside: str | None = None) -> list:
    """The grid values "near" a boundary: the two grid points bracketing it and every grid point inside
    its interval; for a boundary beyond the grid, the grid's edge on that side."""
    xs = sorted(float(x) for x in xs)
    if not xs:
        return []
    if point is None:
        return [xs[0]] if outside == "below" else [xs[-1]] if outside == "above" else xs
    lo = ci_low if ci_low is not None else point
    hi = ci_high if ci_high is not None else point
    near = {x for x in xs if lo <= x <= hi}
    below = [x for x in xs if x <= point]
    above = [x for x in xs if x >= point]
    if below:
        near.add(below[-1])
    if above:
        near.add(above[0])
    return sorted(near)


def log_ratio_se(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int) -> float | None:
    """Standard error of log(m2 / m1) for two independent means with standard deviations s and sizes n
    (delta method)."""
    if min(n1, n2) < 2 or m1 <= 0 or m2 <= 0:
        return None
    return math.sqrt((s1 / m1) ** 2 / n1 + (s2 / m2) ** 2 / n2)


def spearman(x, y) -> float | None:
    """Spearman rank correlation of x and y over the pairs where both are finite (None below 3 pairs)."""
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


def capped_table(df, keys: list[str], max_iter: int):
    """Per cell: how many trials ran to the cap (``capped``) and how many of those were not yet
    successes (``capped_undecided``)."""
    d = df.assign(_capped=capped(df, max_iter).astype(int), _undecided=capped_undecided(df, max_iter).astype(int))
    return d.groupby(keys).agg(capped=("_capped", "sum"), capped_undecided=("_undecided", "sum")).reset_index()


def capped_near(cells: list[dict], x_key: str, near: list, column: str = "capped_undecided",
                where: dict | None = None) -> tuple[int, int]:
    """(capped, trials) summed over the cells whose ``x_key`` is in ``near`` (and match ``where``)."""
    near = {float(x) for x in near}
    sel = [c for c in cells if float(c[x_key]) in near and all(c.get(k) == v for k, v in (where or {}).items())]
    return int(sum(c.get(column, 0) for c in sel)), int(sum(c["trials"] for c in sel))


def median_ci(values, level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """The median and a distribution-free interval for it (order statistics, binomial coverage >= level).
    Censored values may be given as +inf: the interval then may reach +inf. (None, None, None) when empty;
    the bounds are None when too few values for the coverage."""
    from scipy.stats import binom

    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    if n == 0:
        return None, None, None
    med = float(np.quantile(v, 0.5, method="inverted_cdf"))
    # largest j with P(Bin(n, 1/2) < j) <= (1 - level) / 2: [v_(j), v_(n+1-j)] covers the median
    j = int(binom.ppf((1 - level) / 2, n, 0.5))
    while j >= 1 and binom.cdf(j - 1, n, 0.5) > (1 - level) / 2:
        j -= 1
    if j < 1:
        return med, None, None
    return med, float(v[j - 1]), float(v[n - j])
