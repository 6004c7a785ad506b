"""Exact population quantities of the Gaussian-input ReLU model (arc-cosine kernel of degree 1).

For x ~ N(0, I): E[relu(u.x) relu(v.x)] = (|u||v| sin t + (pi - t) u.v) / (2 pi), t = angle(u, v)
(Cho & Saul, 2009). Everything here is a closed form over weight matrices (..., d, K); no sampling.
"""

from __future__ import annotations

import math

import torch

from .config import Flag, Tensor, validated

__all__ = ["unit_angle", "relu_kernel", "output_rms", "population_mse", "population_risk"]


def unit_angle(uh: torch.Tensor, vh: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The angle between unit vectors along ``dim`` (broadcast), accurate near 0 and pi:
    t = 2 atan2(|u^ - v^|, |u^ + v^|) (Kahan).

    arccos(u.v) loses half the digits for nearly parallel vectors, which is exactly where a
    recovered W sits; the test error at 1e-6 depends on these digits.

    >>> import torch
    >>> float(unit_angle(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])))  # doctest: +ELLIPSIS
    1.5707963...
    """
    return 2 * torch.atan2((uh - vh).norm(dim=dim), (uh + vh).norm(dim=dim))


def _angles(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Angles between the columns of U and those of V (..., d, K) -> (..., K, K) (``unit_angle``)."""
    Uh = U / U.norm(dim=-2, keepdim=True).clamp_min(torch.finfo(U.dtype).tiny)
    Vh = V / V.norm(dim=-2, keepdim=True).clamp_min(torch.finfo(V.dtype).tiny)
    return unit_angle(Uh.transpose(-1, -2)[..., :, None, :], Vh.transpose(-1, -2)[..., None, :, :])


def _curved_part(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """h(u, v) = |u||v| (sin t - t cos t) / (2 pi): the kernel minus its linear part u.v / 2."""
    t = _angles(U, V)
    prod = U.norm(dim=-2)[..., :, None] * V.norm(dim=-2)[..., None, :]
    return prod * (torch.sin(t) - t * torch.cos(t)) / (2 * math.pi)


def relu_kernel(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """E[relu(u_j.x) relu(v_k.x)] for all column pairs: U (..., d, J), V (..., d, L) -> (..., J, L)."""
    return U.transpose(-1, -2) @ V / 2 + _curved_part(U, V)


def output_rms(W: torch.Tensor) -> torch.Tensor:
    """E_y: the root-mean-square of g(x; W) = (1/K) sum_j relu(w_j . x) over x ~ N(0, I)."""
    K = W.shape[-1]
    return torch.sqrt(relu_kernel(W, W).sum((-1, -2)) / K**2)


def population_mse(W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """E_x[(g(x; W) - g(x; W*))^2] exactly; the squared noiseless test RMSE.

    Split as k(u, v) = u.v / 2 + h(u, v): the linear parts combine into |sum_j (w_j - w*_j)|^2 / 2,
    computed from the difference itself, so no digits are lost when W is close to W*.
    """
    K = W.shape[-1]
    lin = (W - W_star).sum(-1).pow(2).sum(-1) / 2
    curved = _curved_part(W, W).sum((-1, -2)) - 2 * _curved_part(W, W_star).sum((-1, -2)) \
        + _curved_part(W_star, W_star).sum((-1, -2))
    return torch.clamp(lin + curved, min=0.0) / K**2


def _kernel_grad(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """d/du_j of sum_k E[relu(u_j.x) relu(v_k.x)] = sum_k ((pi - t_jk) v_k + |v_k| sin t_jk u_j/|u_j|) / (2 pi)."""
    nu = U.norm(dim=-2)
    nv = V.norm(dim=-2)
    theta = _angles(U, V)
    sin = torch.sin(theta)
    term_v = V @ (math.pi - theta).transpose(-1, -2)  # (..., d, J)
    u_hat = U / torch.where(nu > 0, nu, 1.0)[..., None, :]
    term_u = u_hat * (sin * nv[..., None, :]).sum(-1)[..., None, :]
    return (term_v + term_u) / (2 * math.pi)


@validated(W=Tensor, W_star=Tensor, with_grad=Flag)
def population_risk(W: torch.Tensor, W_star: torch.Tensor, *,
                    with_grad: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """R(W) = E_x[(g(x; W) - g(x; W*))^2] / 2 for x ~ N(0, I), and optionally its gradient dR/dW.

    The gradient is the closed form (no autograd), valid wherever no column of W is zero.
    """
    risk = population_mse(W, W_star) / 2
    if not with_grad:
        return risk
    K = W.shape[-1]
    grad = (_kernel_grad(W, W) - _kernel_grad(W, W_star)) / K**2
    return risk, grad
