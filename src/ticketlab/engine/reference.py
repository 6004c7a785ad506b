"""Algorithm 1 over a batch of independent trials, in plain batched torch (CPU or CUDA).

This is the reference every faster path is tested against. Each trial has its own data, mask and
weights; one batched matrix product serves them all. A trial that meets the stopping rule is
frozen at once (its weights stop changing) and dropped from the batch when enough have finished,
so converged trials stop costing compute; a trial whose iterates blow up is marked failed and
frozen the same way, never crashing the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import SolverSpec
from .rate import RATE_BURN_IN, fit_rate

__all__ = ["SolveResult", "step_scale", "gradient", "risk", "solve"]


@dataclass
class SolveResult:
    """Algorithm 1's result for a batch of B trials (every engine returns this; ``engine`` names which
    ran). Shapes: W (B, d, K); iterations, converged, failed, rate (B,); curve (B, R) at ``curve_iters``."""

    W: torch.Tensor  # (B, d, K) final weights
    iterations: torch.Tensor  # (B,) updates performed
    converged: torch.Tensor  # (B,) met the relative-change rule before max_iter
    failed: torch.Tensor  # (B,) diverged (non-finite or exploding iterates)
    rate: torch.Tensor  # (B,) fitted linear rate of ||W_t+1 - W_t|| (nan if too few iterations)
    curve: torch.Tensor | None  # (B, R) relative error to W_target every record_every iterations
    curve_iters: list[int]


def step_scale(convention: str, K: int) -> float:
    """The factor that multiplies eta (see docs/step-size.md)."""
    return {"literal": 1.0, "K": float(K), "K2": float(K * K)}[convention]


def gradient(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Gradient of f(W) = 1/(2N) sum_n ((1/K) sum_j relu(w_j.x_n) - y_n)^2 for a batch of trials.

    X (B, N, d), y (B, N), W (B, d, K) -> (B, d, K). relu'(0) is taken as 0, as autograd does.
    """
    N, K = X.shape[-2], W.shape[-1]
    Z = X @ W
    res = torch.relu(Z).mean(-1) - y
    return X.transpose(-1, -2) @ ((Z > 0).to(X.dtype) * res[..., None]) / (N * K)


def risk(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """f(W) per trial: the empirical risk of the paper (B,)."""
    return 0.5 * ((torch.relu(X @ W).mean(-1) - y) ** 2).mean(-1)


def solve(X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, W0: torch.Tensor, solver: SolverSpec,
          *, W_target: torch.Tensor | None = None, record_every: int = 0) -> SolveResult:
    """Run AGD (heavy ball; beta = 0 is GD) on the mask for every trial in the batch.

    W^(t+1) = W^(t) - eta' M (.) grad f(W^(t)) + beta (W^(t) - W^(t-1)), eta' = eta * step_scale.
    W0 must lie on the mask; then pruned coordinates stay exactly zero and gather no momentum.
    """
    B, N, d = X.shape
    K = W0.shape[-1]
    dev, dt = X.device, X.dtype
    step = solver.eta * step_scale(solver.step_convention, K)
    beta, tol = solver.beta, solver.tol
    T = solver.num_batches if solver.sampling == "fresh" else 1
    nb = N // T

    out_W = W0.clone()
    iterations = torch.zeros(B, dtype=torch.long, device=dev)
    converged = torch.zeros(B, dtype=torch.bool, device=dev)
    failed = torch.zeros(B, dtype=torch.bool, device=dev)
    # online least squares of log step-norm against t (t >= RATE_BURN_IN)
    acc = torch.zeros(5, B, dtype=torch.float64, device=dev)

    record = record_every > 0 and W_target is not None
    curve_iters = list(range(0, solver.max_iter + 1, record_every)) if record else []
    curve = torch.full((B, len(curve_iters)), float("nan"), dtype=torch.float64, device=dev) if record else None
    if record:
        tnorm = W_target.flatten(1).norm(dim=1).to(torch.float64)
        curve[:, 0] = (W0 - W_target).flatten(1).norm(dim=1) / tnorm

    idx = torch.arange(B, device=dev)  # trials still in the working batch
    live = torch.ones(B, dtype=torch.bool, device=dev)  # not yet finished, within the working batch
    Xa, ya, Ma = X, y, mask
    W, W_prev = W0.clone(), W0.clone()
    norm0 = W0.flatten(1).norm(dim=1).clamp_min(torch.finfo(dt).tiny)
    Wt = W_target

    for t in range(solver.max_iter):
        if T > 1:
            s = (t % T) * nb
            Xb, yb = Xa[:, s:s + nb], ya[:, s:s + nb]
        else:
            Xb, yb = Xa, ya
        G = gradient(Xb, yb, W) * Ma
        W_new = W - step * G + beta * (W - W_prev)
        diff = (W_new - W).flatten(1).norm(dim=1)
        rel = diff / W.flatten(1).norm(dim=1).clamp_min(torch.finfo(dt).tiny)
        bad = ~torch.isfinite(rel) | (W_new.flatten(1).norm(dim=1) > solver.diverge_factor * norm0[idx])
        done = live & (bad | (rel < tol))
        if t + 1 > RATE_BURN_IN:
            ok = live & torch.isfinite(rel) & (diff > 0)
            ly = torch.log(torch.where(ok, diff, 1.0)).to(torch.float64)
            w = ok.to(torch.float64)
            tt = float(t + 1)
            acc[:, idx] += torch.stack([w, w * tt, w * tt * tt, w * ly, w * tt * ly])
        iterations[idx] += live.to(torch.long)
        # freeze finished trials at their last iterate (the one that met the rule)
        keep = live[:, None, None]
        W_prev = torch.where(keep, W, W_prev)
        W = torch.where(keep, W_new, W)
        if record and (t + 1) % record_every == 0:
            c = (t + 1) // record_every
            err = (W - Wt).flatten(1).norm(dim=1) / tnorm[idx]
            curve[idx, c] = torch.where(live, err.to(torch.float64), curve[idx, c])
        if bool(done.any()):
            failed[idx[done & bad]] = True
            converged[idx[done & ~bad]] = True
            live = live & ~done
            n_live = int(live.sum())
            if n_live == 0:
                out_W[idx] = W
                break
            if n_live <= 0.75 * len(idx):
                out_W[idx] = W
                keep_i = torch.nonzero(live).flatten()
                idx = idx[keep_i]
                Xa, ya, Ma, W, W_prev = Xa[keep_i], ya[keep_i], Ma[keep_i], W[keep_i], W_prev[keep_i]
                Wt = Wt[keep_i] if Wt is not None else None
                live = torch.ones(len(idx), dtype=torch.bool, device=dev)
    else:
        out_W[idx] = W

    return SolveResult(out_W, iterations, converged, failed, fit_rate(acc), curve, curve_iters)
