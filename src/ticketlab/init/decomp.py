"""Orthogonal symmetric tensor decomposition: the tensor power method with restarts and deflation.

T = sum_j rho_j mu_j (x) mu_j (x) mu_j with orthonormal mu_j (a whitened moment tensor). Batched over
trials; the restart vectors are given by the caller (drawn from each trial's own seed), so the result
is deterministic. Anandkumar, Ge, Hsu, Kakade, Telgarsky (2014), Algorithm 1.
"""

from __future__ import annotations

import torch

__all__ = ["power_decompose"]


def _apply(T: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """T(I, theta, theta) for T (B, m, m, m), theta (B, L, m) -> (B, L, m)."""
    return torch.einsum("bijk,blj,blk->bli", T, theta, theta)


def _value(T: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return (_apply(T, theta) * theta).sum(-1)


def _normalize(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)


def power_decompose(T: torch.Tensor, starts: torch.Tensor, iters: int = 50,
                    polish: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Decompose T (B, m, m, m) into k = starts.shape[1] components.

    starts (B, k, L, m): L restart vectors per component. Each component keeps the restart with the
    largest |T(theta, theta, theta)| after ``iters`` power steps, is polished, then deflated.
    Returns mu (B, m, k) unit columns and rho (B, k) with T ~ sum_j rho_j mu_j^(x)3.
    """
    B, k, L, m = starts.shape
    T = T.clone()
    mus, rhos = [], []
    idx = torch.arange(B, device=T.device)
    for j in range(k):
        theta = _normalize(starts[:, j])
        for _ in range(iters):
            theta = _normalize(_apply(T, theta))
        best = _value(T, theta).abs().argmax(-1)
        theta = theta[idx, best][:, None, :]
        for _ in range(polish):
            theta = _normalize(_apply(T, theta))
        rho = _value(T, theta)[:, 0]
        mu = theta[:, 0]
        T = T - rho[:, None, None, None] * torch.einsum("bi,bj,bk->bijk", mu, mu, mu)
        mus.append(mu)
        rhos.append(rho)
    return torch.stack(mus, -1), torch.stack(rhos, -1)
