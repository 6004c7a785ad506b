"""The Hessian of the empirical risk on the mask (generalized or kink-smoothed), its products with a
vector in closed form, and its extreme eigenvalues (dense eigvalsh or Lanczos). See the package
docstring for the two Hessians."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import Fraction, NonNegInt, Seed, Tensor, Tol, validated
from ..oracle import forward

__all__ = ["DENSE_MAX", "kept_index", "hessian_on_mask", "hvp_on_mask", "extreme_eigenvalues"]

DENSE_MAX = 1500  #: kept weights p up to which the Hessian is formed and eigvalsh'd (see docs/landscape.md)
_MEM_BUDGET = 2**28  # bytes of the (chunk, N, p) design tensors formed at once


def kept_index(mask: torch.Tensor) -> torch.Tensor:
    """Flat indices (row-major over (d, K)) of the kept coordinates of one mask (d, K)."""
    return torch.nonzero(mask.flatten() != 0).flatten()


def _kink_weight(Z: torch.Tensor, W: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """phi(u/h) / (h |w_j|) with u = z / |w_j|: the smoothed delta(w_j . x). Z (..., N, K), W (..., d, K)."""
    norm = W.norm(dim=-2).clamp_min(1e-300)[..., None, :]
    u = Z / norm
    return torch.exp(-0.5 * (u / bandwidth) ** 2) / (bandwidth * math.sqrt(2 * math.pi) * norm)


@validated(X=Tensor, y=Tensor, W=Tensor, mask=Tensor, bandwidth=Fraction)
def hessian_on_mask(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, mask: torch.Tensor, *,
                    bandwidth: float = 0.0) -> torch.Tensor:
    """The Hessian of f on the kept coordinates, dense: (P, p, p) for P points W (P, d, K) sharing one
    data set X (N, d), y (N,) and one mask (d, K). Coordinates are ordered like ``kept_index(mask)``.

    bandwidth = 0: the generalized (a.e.) Hessian; > 0: plus the smoothed kink term (module docstring).
    Memory is bounded: points are processed in chunks so the (chunk, N, p) design stays under ~256 MB.
    """
    N, d = X.shape
    K = W.shape[-1]
    idx = kept_index(mask)
    p = idx.numel()
    rows, cols = idx // K, idx % K  # input coordinate and neuron of each kept weight
    Xk = X[:, rows]  # (N, p)
    same = (cols[:, None] == cols[None, :]).to(X.dtype)
    chunk = max(1, _MEM_BUDGET // max(1, 8 * N * p * (2 if bandwidth > 0 else 1)))
    out = []
    for W_c in W.split(chunk):
        Z = X @ W_c  # (c, N, K)
        A = Xk * (Z > 0).to(X.dtype)[:, :, cols]  # J / (1/K) on the kept coordinates
        H = A.transpose(-1, -2) @ A / (N * K * K)
        if bandwidth > 0:
            e = forward(X, W_c) - y  # (c, N)
            C = (e[..., None] * _kink_weight(Z, W_c, bandwidth))[:, :, cols]  # (c, N, p)
            H = H + same * ((Xk * C).transpose(-1, -2) @ Xk) / (N * K)
        out.append(H)
    return torch.cat(out)


def _hvp_factors(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, bandwidth: float):
    """What H(W) V needs besides V, computed once per point: the activation pattern S (N, K) and the
    kink coefficient (N, K) (None when bandwidth = 0)."""
    Z = X @ W
    S = (Z > 0).to(X.dtype)
    kink = None
    if bandwidth > 0:
        kink = (forward(X, W) - y)[:, None] * _kink_weight(Z, W, bandwidth)
    return S, kink


def _hvp(X: torch.Tensor, S: torch.Tensor, kink, mask: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    N, K = S.shape
    XV = X @ V  # (N, K): x_n . v_j
    coef = S * (S * XV).sum(-1, keepdim=True) / (N * K * K)  # J^T J v
    if kink is not None:
        coef = coef + kink * XV / (N * K)
    return (X.transpose(0, 1) @ coef) * mask


def hvp_on_mask(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, mask: torch.Tensor, V: torch.Tensor, *,
                bandwidth: float = 0.0) -> torch.Tensor:
    """H(W) V for the Hessian of ``hessian_on_mask``, in closed form, O(N d K): X (N, d), W and V (d, K)
    (V on the mask) -> (d, K) on the mask. Never forms H."""
    S, kink = _hvp_factors(X, y, W, bandwidth)
    return _hvp(X, S, kink, mask, V)


def _eigsh_extremes(matvec, p: int, seed: int, tol: float) -> tuple[float, float]:
    """(lambda_min, lambda_max) of a symmetric p x p operator by implicitly restarted Lanczos (ARPACK),
    from a deterministic start vector."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    op = LinearOperator((p, p), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(p)
    ncv = min(p, 40)
    out = []
    for which in ("SA", "LA"):
        try:
            out.append(eigsh(op, k=1, which=which, v0=v0, tol=tol, ncv=ncv, maxiter=100 * p,
                             return_eigenvectors=False)[0])
        except ArpackNoConvergence as err:  # pragma: no cover - reported, never silently wrong
            raise RuntimeError(f"Lanczos ({which}) did not converge for p = {p}; raise dense_max to use "
                               f"the dense eigensolver") from err
    return float(out[0]), float(out[1])


@validated(X=Tensor, y=Tensor, W=Tensor, mask=Tensor, bandwidth=Fraction, dense_max=NonNegInt, tol=Tol, seed=Seed)
def extreme_eigenvalues(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, mask: torch.Tensor, *,
                        bandwidth: float = 0.0, dense_max: int = DENSE_MAX, tol: float = 1e-8,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(lambda_min (P,), lambda_max (P,), method) of the Hessian on the mask at each of P points W (P, d, K).

    method is 'dense' (eigvalsh) when p <= dense_max, else 'lanczos' (eigsh on ``hvp_on_mask``).
    """
    p = int(kept_index(mask).numel())
    if p <= max(dense_max, 2):  # ARPACK needs p >= 3
        chunk = max(1, _MEM_BUDGET // (8 * p * p))  # bounded memory: a few p x p matrices at a time
        ev = [torch.linalg.eigvalsh(hessian_on_mask(X, y, W_c, mask, bandwidth=bandwidth))[:, [0, -1]]
              for W_c in W.split(chunk)]
        ev = torch.cat(ev)
        return ev[:, 0], ev[:, 1], "dense"
    idx = kept_index(mask)
    lo, hi = [], []
    for Wp in W:
        S, kink = _hvp_factors(X, y, Wp, bandwidth)

        def matvec(v, S=S, kink=kink):
            V = torch.zeros(mask.numel(), dtype=X.dtype, device=X.device)
            V[idx] = torch.as_tensor(np.ravel(v), dtype=X.dtype, device=X.device)
            return _hvp(X, S, kink, mask, V.view_as(mask)).flatten()[idx].cpu().double().numpy()

        a, b = _eigsh_extremes(matvec, p, seed, tol)
        lo.append(a)
        hi.append(b)
    return torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64), "lanczos"
