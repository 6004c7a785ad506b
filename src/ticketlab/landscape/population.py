"""The exact Hessian of the population (N = infinity) risk on the mask, at W* and at any W, from the
arc-cosine kernel's closed forms; its extreme eigenvalues."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import NonNegInt, Seed, Tensor, Tol, validated
from ..population import unit_angle
from .empirical import DENSE_MAX, _eigsh_extremes, kept_index

__all__ = ["pair_block", "population_hessian", "population_hvp", "population_extremes", "population_hessian_at"]


def pair_block(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """E[1{u.x > 0} 1{v.x > 0} x x^T] for x ~ N(0, I), closed form: u, v (..., d) -> (..., d, d).

    With t the angle between u and v, e the unit vector of v's component orthogonal to u:
    ((pi - t) I + sin t [cos t (u^ u^T - e e^T) + sin t (u^ e^T + e u^T)]) / (2 pi)
    (= the mixed second derivative of the arc-cosine kernel); t = 0 gives I/2, t = pi gives 0.
    """
    d = u.shape[-1]
    uh = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    vh = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    cos = (uh * vh).sum(-1).clamp(-1.0, 1.0)
    t = unit_angle(uh, vh)
    sin = torch.sin(t)
    ortho = vh - cos[..., None] * uh
    on = ortho.norm(dim=-1, keepdim=True)
    e = torch.where(on > 1e-12, ortho / on.clamp_min(1e-300), torch.zeros_like(ortho))
    outer = lambda a, b: a[..., :, None] * b[..., None, :]  # noqa: E731
    c, s = cos[..., None, None], sin[..., None, None]
    eye = torch.eye(d, dtype=u.dtype, device=u.device)
    rest = s * (c * (outer(uh, uh) - outer(e, e)) + s * (outer(uh, e) + outer(e, uh)))
    return ((math.pi - t)[..., None, None] * eye + rest) / (2 * math.pi)


def population_hessian(W_star: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The Hessian of the population risk E[(g(x;W) - g(x;W*))^2]/2 at W = W*, on the kept coordinates.

    At W* the residual vanishes, so it is the Gauss-Newton matrix: block (j, k) = pair_block(w*_j, w*_k) / K^2
    (I/(2K^2) on the diagonal). W_star (d, K) or (B, d, K), mask alike -> (p, p) or (B, p, p); ordering
    as ``kept_index``. Needs equal p across a batch.
    """
    if W_star.dim() == 3:
        return torch.stack([population_hessian(w, m) for w, m in zip(W_star, mask)])
    return population_hessian_at(W_star, W_star, mask)  # the kink terms cancel exactly at W = W*


def population_hvp(W_star: torch.Tensor, mask: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """population_hessian(W*, M) times V (d, K), in O(d K^2) without forming any d x d block."""
    K = W_star.shape[-1]
    U = W_star / W_star.norm(dim=0, keepdim=True).clamp_min(1e-300)  # (d, K) unit columns
    G = U.transpose(0, 1) @ U  # cos t_jk
    cos = G.clamp(-1.0, 1.0)
    t = unit_angle(U[:, :, None], U[:, None, :], dim=0)
    sin = torch.sin(t)
    # e_jk = (u_k - cos u_j) / sin for the pair (j, k); the block acts on v_k.
    uv = U.transpose(0, 1) @ V  # (K, K): u_j . v_k  at [j, k]
    uk_vk = torch.diagonal(uv)  # u_k . v_k
    safe = torch.where(sin > 1e-12, sin, torch.ones_like(sin))
    e_dot_v = torch.where(sin > 1e-12, (uk_vk[None, :] - cos * uv) / safe, torch.zeros_like(sin))  # e_jk . v_k
    # block_jk v_k = ((pi - t) v_k + sin [cos (u_j (u_j.v_k) - e (e.v_k)) + sin (u_j (e.v_k) + e (u_j.v_k))]) / 2pi
    a = sin * (cos * uv + sin * e_dot_v)  # coefficient of u_j
    b = sin * (-cos * e_dot_v + sin * uv)  # coefficient of e_jk
    out = V @ (math.pi - t).transpose(0, 1)  # sum_k (pi - t_jk) v_k -> column j
    out = out + U * a.sum(1)[None, :]
    # e_jk = (u_k - cos_jk u_j) / sin_jk: split into u_k and u_j parts
    be = torch.where(sin > 1e-12, b / safe, torch.zeros_like(b))
    out = out + U @ be.transpose(0, 1) - U * (be * cos).sum(1)[None, :]
    return out * mask / (2 * math.pi * K**2)


@validated(W_star=Tensor, mask=Tensor, dense_max=NonNegInt, tol=Tol, seed=Seed)
def population_extremes(W_star: torch.Tensor, mask: torch.Tensor, *, dense_max: int = DENSE_MAX,
                        tol: float = 1e-8, seed: int = 0) -> tuple[float, float]:
    """(lambda_min, lambda_max) of population_hessian(W*, M) for one trial, dense or Lanczos."""
    idx = kept_index(mask)
    p = idx.numel()
    if p <= max(dense_max, 2):
        ev = torch.linalg.eigvalsh(population_hessian(W_star, mask))
        return float(ev[0]), float(ev[-1])

    def matvec(v):
        V = torch.zeros(mask.numel(), dtype=W_star.dtype, device=W_star.device)
        V[idx] = torch.as_tensor(np.ravel(v), dtype=W_star.dtype, device=W_star.device)
        return population_hvp(W_star, mask, V.view_as(mask)).flatten()[idx].cpu().double().numpy()

    return _eigsh_extremes(matvec, p, seed, tol)


def _geometry(A: torch.Tensor, B: torch.Tensor):
    """For the columns a_j of A and b_k of B (d, K): unit a^ (d, K), angle t, cos t, sin t (K, K), and
    E (K, K, d) with E[j, k] the unit vector of b^_k's component orthogonal to a^_j (0 when parallel)."""
    ah = A / A.norm(dim=0, keepdim=True).clamp_min(1e-300)
    bh = B / B.norm(dim=0, keepdim=True).clamp_min(1e-300)
    cos = (ah.transpose(0, 1) @ bh).clamp(-1.0, 1.0)
    t = unit_angle(ah[:, :, None], bh[:, None, :], dim=0)
    ortho = bh.transpose(0, 1)[None, :, :] - cos[:, :, None] * ah.transpose(0, 1)[:, None, :]
    on = ortho.norm(dim=-1, keepdim=True)
    E = torch.where(on > 1e-12, ortho / on.clamp_min(1e-300), torch.zeros_like(ortho))
    return ah, t, cos, torch.sin(t), E


def population_hessian_at(W: torch.Tensor, W_star: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The exact Hessian of the population risk E[(g(x;W) - g(x;W*))^2]/2 at any W (d, K) with non-zero
    columns, kink curvature included, on the kept coordinates (p, p), built entry by entry on the kept
    coordinates only (O(p^2 + K^2 d) memory, never d x d blocks). Closed form, K^2 H_jk =
      pair_block(w_j, w_k)                                                   (all j, k; I/2 when j = k)
      + [j = k] (sum_{l != j} kink(w_j, w_l) - sum_l kink(w_j, w*_l)),
    kink(u, v) = d^2/du^2 E[relu(u.x) relu(v.x)] = |v| sin t / (2 pi |u|) (I - u^ u^T + e e^T),
    the curvature that the kinks of relu(u.x) carry. At W = W* the kink sums cancel (the residual is 0)."""
    K = W.shape[-1]
    idx = kept_index(mask)
    ra, ca = idx // K, idx % K  # input coordinate and neuron of each kept weight
    U, t, cos, sin, E = _geometry(W, W)
    same_row = (ra[:, None] == ra[None, :]).to(W.dtype)
    same_col = (ca[:, None] == ca[None, :]).to(W.dtype)
    j, k = ca[:, None], ca[None, :]
    u_a, u_b = U[ra, ca][:, None], U[ra[None, :], j]  # u^_j at row a and at row b
    e_a, e_b = E[j, k, ra[:, None]], E[j, k, ra[None, :]]  # e_jk at row a and at row b
    s, c = sin[j, k], cos[j, k]
    H = (math.pi - t[j, k]) * same_row + s * (c * (u_a * u_b - e_a * e_b) + s * (u_a * e_b + e_a * u_b))
    # kink curvature on the diagonal blocks: sum_l coef_jl (I - u^_j u^_j^T + e_jl e_jl^T)
    norms, norms_s = W.norm(dim=0), W_star.norm(dim=0)
    _, _, _, sin_s, E_s = _geometry(W, W_star)
    own = norms[None, :] * sin / norms.clamp_min(1e-300)[:, None] * (1 - torch.eye(K, dtype=W.dtype, device=W.device))
    star = norms_s[None, :] * sin_s / norms.clamp_min(1e-300)[:, None]
    net = (own - star).sum(1)  # (K,)
    Ea, Esa = E[ca, :, ra], E_s[ca, :, ra]  # (p, K): e_{j l} at the row of a, j = a's neuron
    kink = net[ca][:, None] * (same_row - u_a * u_b) + (Ea * own[ca]) @ Ea.transpose(0, 1) \
        - (Esa * star[ca]) @ Esa.transpose(0, 1)
    return (H + same_col * kink) / (2 * math.pi * K**2)
