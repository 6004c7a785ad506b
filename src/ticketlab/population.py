"""Exact population quantities of the Gaussian-input ReLU model (arc-cosine kernel of degree 1).

For x ~ N(0, I): E[relu(u.x) relu(v.x)] = (|u||v| sin t + (pi - t) u.v) / (2 pi), t = angle(u, v)
(Cho & Saul, 2009). Everything here is a closed form over weight matrices (..., d, K); no sampling.
"""

from __future__ import annotations

import math

import torch


def relu_kernel(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """E[relu(u_j.x) relu(v_k.x)] for all column pairs: U (..., d, J), V (..., d, L) -> (..., J, L)."""
    nu = U.norm(dim=-2)[..., :, None]
    nv = V.norm(dim=-2)[..., None, :]
    dot = U.transpose(-1, -2) @ V
    prod = nu * nv
    cos = torch.where(prod > 0, dot / torch.where(prod > 0, prod, 1.0), 0.0).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    sin_part = torch.sqrt(torch.clamp(prod**2 - dot**2, min=0.0))
    return (sin_part + (math.pi - theta) * dot) / (2 * math.pi)


def output_rms(W: torch.Tensor) -> torch.Tensor:
    """E_y: the root-mean-square of g(x; W) = (1/K) sum_j relu(w_j . x) over x ~ N(0, I)."""
    K = W.shape[-1]
    return torch.sqrt(relu_kernel(W, W).sum((-1, -2)) / K**2)


def population_mse(W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """E_x[(g(x; W) - g(x; W*))^2] exactly; the squared noiseless test RMSE."""
    K = W.shape[-1]
    total = relu_kernel(W, W).sum((-1, -2)) - 2 * relu_kernel(W, W_star).sum((-1, -2)) \
        + relu_kernel(W_star, W_star).sum((-1, -2))
    return torch.clamp(total, min=0.0) / K**2


def _kernel_grad(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """d/du_j of sum_k E[relu(u_j.x) relu(v_k.x)] = sum_k ((pi - t_jk) v_k + |v_k| sin t_jk u_j/|u_j|) / (2 pi)."""
    nu = U.norm(dim=-2)
    nv = V.norm(dim=-2)
    dot = U.transpose(-1, -2) @ V
    prod = nu[..., :, None] * nv[..., None, :]
    safe = torch.where(prod > 0, prod, 1.0)
    cos = torch.where(prod > 0, dot / safe, 0.0).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    sin = torch.sqrt(torch.clamp(1 - cos**2, min=0.0))
    term_v = V @ (math.pi - theta).transpose(-1, -2)  # (..., d, J)
    u_hat = U / torch.where(nu > 0, nu, 1.0)[..., None, :]
    term_u = u_hat * (sin * nv[..., None, :]).sum(-1)[..., None, :]
    return (term_v + term_u) / (2 * math.pi)


def population_risk(W: torch.Tensor, W_star: torch.Tensor, *, with_grad: bool = False):
    """R(W) = E_x[(g(x; W) - g(x; W*))^2] / 2 for x ~ N(0, I), and optionally its gradient dR/dW.

    The gradient is the closed form (no autograd), valid wherever no column of W is zero.
    """
    risk = population_mse(W, W_star) / 2
    if not with_grad:
        return risk
    K = W.shape[-1]
    grad = (_kernel_grad(W, W) - _kernel_grad(W, W_star)) / K**2
    return risk, grad
