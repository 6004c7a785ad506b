"""Hermite moments of the ReLU oracle: the population identities the moment initializations use.

For x ~ N(0, I_d) and y = (1/K) sum_j relu(w_j . x) (+ independent zero-mean noise), Stein's lemma
gives E[y He_k(x)] = (1/K) sum_j |w_j| c_k w_hat_j^{(x)k}, with c_k = E[relu(t) He_k(t)], t ~ N(0, 1):

    c_0 = 1/sqrt(2 pi),  c_1 = 1/2,  c_2 = 1/sqrt(2 pi),  c_3 = 0,  c_4 = -1/sqrt(2 pi).

c_3 = 0 because relu(t) - t/2 = |t|/2 is even: the third moment carries no information, so the
directions come from the fourth. Every quantity here is a closed form or a per-sample Hermite
feature; nothing forms a d^3 or d^4 tensor (see docs/tensor-init.md).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "SQRT_2PI", "RELU_HERMITE", "population_moments", "factor_m2", "weights_from_factor",
    "population_m4_contracted", "hermite3_contract", "hermite4_moment",
]

#: sqrt(2 pi)
SQRT_2PI = math.sqrt(2 * math.pi)
#: E[relu(t) He_k(t)] for k = 0..4 (He_k the probabilists' Hermite polynomials).
RELU_HERMITE = (1 / SQRT_2PI, 0.5, 1 / SQRT_2PI, 0.0, -1 / SQRT_2PI)


def population_moments(W: torch.Tensor) -> dict[str, torch.Tensor]:
    """Closed forms of E[y], E[y x], E[y (x x^T - I)] for the oracle W (..., d, K), no noise term.

    M0 = (1/K) sum |w_j| / sqrt(2 pi);  M1 = (1/(2K)) sum w_j;  M2 = (1/(K sqrt(2 pi))) sum w_j w_j^T / |w_j|.
    """
    K = W.shape[-1]
    norms = W.norm(dim=-2)
    U = factor_m2(W)
    return {
        "M0": norms.sum(-1) / (K * SQRT_2PI),
        "M1": W.sum(-1) / (2 * K),
        "M2": U @ U.transpose(-1, -2),
    }


def factor_m2(W: torch.Tensor) -> torch.Tensor:
    """U with M2 = U U^T: u_j = sqrt(|w_j| / (K sqrt(2 pi))) w_hat_j (zero columns stay zero)."""
    K = W.shape[-1]
    norms = W.norm(dim=-2, keepdim=True)
    return W / norms.clamp_min(1e-300).sqrt() / math.sqrt(K * SQRT_2PI)


def weights_from_factor(U: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Invert ``factor_m2`` given each neuron's sign: |w_j| = K sqrt(2 pi) |u_j|^2, w_j = s_j |w_j| u_j/|u_j|."""
    K = U.shape[-1]
    n = U.norm(dim=-2, keepdim=True)
    return signs[..., None, :] * U * n * (K * SQRT_2PI)


def population_m4_contracted(W: torch.Tensor, P: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """E[y He_4(x)](P, P, P, P alpha) in closed form, for P (..., d, m) with orthonormal columns.

    = -(1/(K sqrt(2 pi))) sum_j |w_j| (alpha . v_j) v_j (x) v_j (x) v_j, v_j = P^T w_hat_j: (..., m, m, m).
    """
    K = W.shape[-1]
    norms = W.norm(dim=-2)
    V = P.transpose(-1, -2) @ (W / norms[..., None, :].clamp_min(1e-300))
    coef = RELU_HERMITE[4] * norms * (alpha[..., None, :] @ V)[..., 0, :] / K
    return torch.einsum("...j,...aj,...bj,...cj->...abc", coef, V, V, V)


def hermite3_contract(z: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """He_3(z)(I, a, b) per sample: z (..., N, m), a, b (..., m) -> (..., N, m)."""
    za = (z * a[..., None, :]).sum(-1, keepdim=True)
    zb = (z * b[..., None, :]).sum(-1, keepdim=True)
    ab = (a * b).sum(-1)[..., None, None]
    return z * za * zb - z * ab - a[..., None, :] * zb - b[..., None, :] * za


def hermite4_moment(z: torch.Tensor, weight: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_n weight_n He_4(z_n)(I, I, I, alpha) without forming any per-sample tensor.

    z (..., N, m) standard Gaussian coordinates, weight (..., N), alpha (..., m) -> (..., m, m, m).
    He_4(z)(.,.,.,alpha)_abc = z_a z_b z_c (z.alpha) - [z_a z_b alpha_c]_3 - (z.alpha)[z_a delta_bc]_3
    + [delta_ab alpha_c]_3, [.]_3 the sum over the three placements; cost O(N m^3).
    """
    N, m = z.shape[-2], z.shape[-1]
    za = (z * alpha[..., None, :]).sum(-1)
    w1 = weight * za
    t4 = torch.einsum("...n,...na,...nb,...nc->...abc", w1, z, z, z) / N
    s2 = torch.einsum("...n,...na,...nb->...ab", weight, z, z) / N  # sum w z z^T
    s1 = (w1[..., None] * z).sum(-2) / N  # sum w (z.alpha) z
    wbar = weight.mean(-1)
    eye = torch.eye(m, dtype=z.dtype, device=z.device)
    t2 = (torch.einsum("...ab,...c->...abc", s2, alpha) + torch.einsum("...ac,...b->...abc", s2, alpha)
          + torch.einsum("...bc,...a->...abc", s2, alpha))
    t1 = (torch.einsum("...a,bc->...abc", s1, eye) + torch.einsum("...b,ac->...abc", s1, eye)
          + torch.einsum("...c,ab->...abc", s1, eye))
    t0 = (torch.einsum("ab,...c->...abc", eye, alpha) + torch.einsum("ac,...b->...abc", eye, alpha)
          + torch.einsum("bc,...a->...abc", eye, alpha)) * wbar[..., None, None, None]
    return t4 - t2 - t1 + t0
