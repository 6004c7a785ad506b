"""The linear rate of a run: least squares of log ||W_t+1 - W_t|| against t, from running sums.

Every engine accumulates, per trial, the five sums (n, sum t, sum t^2, sum log, sum t log) over the
iterations t + 1 > RATE_BURN_IN with a finite, non-zero step; ``fit_rate`` turns them into the rate.
"""

from __future__ import annotations

import torch

__all__ = ["RATE_BURN_IN", "fit_rate"]

RATE_BURN_IN = 10  #: iterations skipped before fitting the linear rate (transient of the start)


def fit_rate(sums: torch.Tensor) -> torch.Tensor:
    """exp(slope) of the least-squares line through (t, log step norm), per trial.

    sums: (5, B) float64, rows n, sum t, sum t^2, sum log, sum t log. NaN where fewer than three
    iterations were fitted (or the t values are degenerate)."""
    n, st, stt, sy, sty = sums.to(torch.float64)
    den = n * stt - st * st
    ok = (n >= 3) & (den > 0)
    slope = torch.where(ok, (n * sty - st * sy) / torch.where(ok, den, torch.ones_like(den)),
                        torch.full_like(den, float("nan")))
    return torch.exp(slope)
