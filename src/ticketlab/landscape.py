"""The landscape of Theorem 1: the Hessian of the empirical risk on the mask, its extreme
eigenvalues, the convex radius around W*, and the exact population (N = infinity) reference.

Model and risk: g(x; W) = (1/K) sum_j relu(w_j . x), f(W) = 1/(2N) sum_n (g(x_n; W) - y_n)^2, over the
p kept coordinates of the mask M (W = M (.) W). Writing s_nj = 1{w_j . x_n > 0} and e_n = g(x_n; W) - y_n,

    d2f / dw_j dw_k = 1/(N K^2) sum_n s_nj s_nk x_n x_n^T  +  [j = k] 1/(N K) sum_n e_n delta(w_j . x_n) x_n x_n^T.

The second (kink) term is a sum of Dirac masses on the hyperplanes w_j . x_n = 0: it is zero almost
everywhere, infinite on the kinks, and negative wherever a kink has a negative residual, so with finite
N the ReLU risk is, strictly, convex on no ball around W*. Two Hessians are offered (docs/landscape.md):

* ``generalized`` (bandwidth = 0): the almost-everywhere Hessian, i.e. the Gauss-Newton matrix
  J^T J / N with relu' = 1{z > 0} (relu'(0) = 0, as autograd and ``engine.gradient``). It is the object
  Theorem 1 bounds; it is positive semi-definite everywhere, so on its own it never ends a convex ball.
* ``smoothed`` (bandwidth h > 0): adds the kink term with delta(w_j . x) replaced by a Gaussian of
  width h in the normalized pre-activation u = w_j . x / |w_j| (which is N(0, 1) under the data), i.e.
  delta(w_j . x) ~ phi(u / h) / (h |w_j|). As N -> infinity then h -> 0 it tends to the Hessian of the
  population risk, which *does* lose convexity at a finite distance from W*; at finite N it counts the
  negative curvature of the kinks seen at resolution h. This one defines the convex radius by default.

Eigenvalues: dense ``eigvalsh`` of the p x p matrix when p <= ``dense_max``; otherwise Lanczos
(``scipy.sparse.linalg.eigsh``) on Hessian-vector products in closed form, O(N d K) each, never
forming the matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .config import ConfigError, OracleSpec
from .oracle import forward, make_problem, r_tilde
from .population import population_risk  # noqa: F401  (re-exported: the exact N = infinity risk and gradient)
from .seeding import LANDSCAPE, substream

__all__ = [
    "DENSE_MAX", "LANDSCAPE_STREAM", "analyze", "analyze_trials", "convex_radius", "extreme_eigenvalues",
    "hessian_on_mask", "hvp_on_mask", "kept_index", "pair_block", "perturbations", "population_hessian",
    "population_extremes", "population_hessian_at", "population_hvp", "population_risk",
]

DENSE_MAX = 1500  # kept weights p up to which the Hessian is formed and eigvalsh'd (see docs/landscape.md)
LANDSCAPE_STREAM = LANDSCAPE  # substream of the trial seed for the random directions around W*
PD_RTOL = 1e-10  # positive definite: lambda_min > PD_RTOL * lambda_max (round-off guard)
_MEM_BUDGET = 2**28  # bytes of the (chunk, N, p) design tensors formed at once


def kept_index(mask: torch.Tensor) -> torch.Tensor:
    """Flat indices (row-major over (d, K)) of the kept coordinates of one mask (d, K)."""
    return torch.nonzero(mask.flatten() != 0).flatten()


def _kink_weight(Z: torch.Tensor, W: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """phi(u/h) / (h |w_j|) with u = z / |w_j|: the smoothed delta(w_j . x). Z (..., N, K), W (..., d, K)."""
    norm = W.norm(dim=-2).clamp_min(1e-300)[..., None, :]
    u = Z / norm
    return torch.exp(-0.5 * (u / bandwidth) ** 2) / (bandwidth * math.sqrt(2 * math.pi) * norm)


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


# ----------------------------------------------------------------------------------- population (N = infinity)

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
    t = 2 * torch.atan2((uh - vh).norm(dim=-1), (uh + vh).norm(dim=-1))  # accurate near 0 and pi
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
    t = 2 * torch.atan2((U[:, :, None] - U[:, None, :]).norm(dim=0), (U[:, :, None] + U[:, None, :]).norm(dim=0))
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
    diff, summ = (ah[:, :, None] - bh[:, None, :]).norm(dim=0), (ah[:, :, None] + bh[:, None, :]).norm(dim=0)
    t = 2 * torch.atan2(diff, summ)  # accurate near 0 and pi
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


# ------------------------------------------------------------------------------------------- convex radius

def perturbations(W_star: torch.Tensor, mask: torch.Tensor, seed: int, points: int) -> torch.Tensor:
    """``points`` unit-Frobenius-norm Gaussian directions on the mask (points, d, K), from the trial's
    own stream. The same directions serve every radius (common random numbers across rho)."""
    gen = torch.Generator().manual_seed(substream(seed, LANDSCAPE_STREAM))
    M = mask.detach().to("cpu", torch.float64)
    D = torch.randn((points, *M.shape), generator=gen, dtype=torch.float64) * M
    D = D / D.flatten(1).norm(dim=1).clamp_min(1e-300)[:, None, None]
    return D.to(device=W_star.device, dtype=W_star.dtype)


def convex_radius(radius_grid: Sequence[float], all_pd: Sequence[bool], pd_at_star: bool = True) -> float:
    """The largest rho of the (sorted) grid such that every sampled point at every rho' <= rho was PD;
    0.0 when W* itself or the smallest rho fails."""
    if not pd_at_star:
        return 0.0
    best = 0.0
    for rho, ok in sorted(zip(radius_grid, all_pd)):
        if not ok:
            break
        best = rho
    return float(best)


def _validate(N, radius_grid, points, bandwidth, hessian, dense_max):
    if N < 1:
        raise ConfigError(f"invalid N (got {N!r}): must be >= 1")
    if points < 1:
        raise ConfigError(f"invalid points (got {points!r}): must be >= 1")
    if not radius_grid or any((not math.isfinite(r)) or r <= 0 for r in radius_grid):
        raise ConfigError(f"invalid radius_grid (got {list(radius_grid)!r}): give one or more finite values > 0")
    if hessian not in ("smoothed", "generalized"):
        raise ConfigError(f"invalid hessian (got {hessian!r}): must be 'smoothed' or 'generalized'")
    if hessian == "smoothed" and not (0 < bandwidth <= 1):
        raise ConfigError(f"invalid bandwidth (got {bandwidth!r}): must be in (0, 1] for hessian='smoothed'")
    if dense_max < 0:
        raise ConfigError(f"invalid dense_max (got {dense_max!r}): must be >= 0")


def analyze_trials(oracle_spec: OracleSpec, N: int, seeds: Sequence[int], radius_grid: Sequence[float] = (
        0.02, 0.05, 0.1, 0.2, 0.3, 0.5), points: int = 8, *, hessian: str = "smoothed", bandwidth: float = 0.05,
        dense_max: int = DENSE_MAX, population: bool = True, both: bool = True, device: str = "cpu",
        dtype: torch.dtype = torch.float64) -> list[dict]:
    """Theorem 1, measured: one JSON-ready dict per trial seed (same data as ``train`` for that seed).

    At W* and at ``points`` random points at each relative radius rho (W* + rho ||W*||_F D, D a unit
    Gaussian direction on the learner's mask, as ``init.local_start``), the extreme eigenvalues of the
    Hessian on the mask; the fraction of points whose Hessian is positive definite; the convex radius;
    the scaled lambda_min K^2 and lambda_max K; and (``population``) the N = infinity values at W*.
    ``hessian`` picks the Hessian that decides positive definiteness (module docstring); the generalized
    one is reported at W* always and at every point when ``both`` (False halves the cost). All points of
    one trial share its data and mask and are evaluated as one batch (dense) or one by one (Lanczos).
    """
    try:
        radius_grid = [float(r) for r in radius_grid]
    except (TypeError, ValueError):
        raise ConfigError(f"invalid radius_grid (got {radius_grid!r}): give one or more numbers > 0") from None
    if len(seeds) < 1:
        raise ConfigError("invalid seeds (got none): give at least one trial seed")
    bw = bandwidth if hessian == "smoothed" else 0.0
    _validate(N, radius_grid, points, bandwidth, hessian, dense_max)
    grid = sorted(radius_grid)
    problem = make_problem(oracle_spec, N, list(seeds), device=device, dtype=dtype)
    rts = r_tilde(problem.mask)
    out = []
    for b, seed in enumerate(problem.seeds):
        X, y, Ws, M = problem.X[b], problem.y[b], problem.W_star[b], problem.mask[b]
        K = Ws.shape[-1]
        p = int(kept_index(M).numel())
        D = perturbations(Ws, M, seed, points)
        scale = Ws.norm()
        pts = torch.cat([Ws[None], *[(Ws + rho * scale * D) for rho in grid]])  # (1 + R P, d, K)
        lo, hi, method = extreme_eigenvalues(X, y, pts, M, bandwidth=bw, dense_max=dense_max, seed=seed)
        if bw > 0:  # the generalized Hessian too: at W* (Theorem 1's object), everywhere if asked
            lo_g, hi_g, _ = extreme_eigenvalues(X, y, pts if both else pts[:1], M, dense_max=dense_max, seed=seed)
        else:
            lo_g, hi_g = lo, hi
        pd = (lo > PD_RTOL * hi.abs()).tolist()
        table = []
        for i, rho in enumerate(grid):
            sl = slice(1 + i * points, 1 + (i + 1) * points)
            table.append({
                "rho": rho,
                "fraction_pd": float(np.mean(pd[sl])),
                "lambda_min": float(lo[sl].min()),
                "lambda_min_median": float(lo[sl].median()),
                "lambda_max": float(hi[sl].max()),
                "lambda_min_scaled": float(lo[sl].min()) * K**2,
            })
            if len(lo_g) > 1:
                table[-1]["lambda_min_generalized"] = float(lo_g[sl].min())
        radius = convex_radius(grid, [row["fraction_pd"] == 1.0 for row in table], pd[0])
        pop_radius = None
        if population and p <= dense_max:
            # N = infinity: the population Hessian (kinks included) at the same points.
            pev = torch.stack([torch.linalg.eigvalsh(population_hessian_at(w, Ws, M))[[0, -1]] for w in pts[1:]])
            pop_pd = (pev[:, 0] > PD_RTOL * pev[:, 1].abs()).tolist()
            for i, trow in enumerate(table):
                sl = slice(i * points, (i + 1) * points)
                trow["fraction_pd_population"] = float(np.mean(pop_pd[sl]))
                trow["lambda_min_population"] = float(pev[sl, 0].min())
            pop_radius = convex_radius(grid, [t["fraction_pd_population"] == 1.0 for t in table])
        row = {
            "seed": int(seed), "d": int(X.shape[1]), "K": int(K), "N": int(N), "p": p,
            "r_tilde": float(rts[b]), "r_ave": p / K,
            "hessian": hessian, "bandwidth": bw, "method": method, "points": int(points),
            "lambda_min_at_star": float(lo_g[0]), "lambda_max_at_star": float(hi_g[0]),
            "lambda_min_at_star_smoothed": float(lo[0]),
            "lambda_min_scaled_at_star": float(lo_g[0]) * K**2,  # Theorem 1: Theta(1 - eps0 - eps1)
            "lambda_max_scaled_at_star": float(hi_g[0]) * K,  # Theorem 1: O(1)
            "convex_radius": radius,
            # True when every grid radius passed: the radius is then only a lower bound.
            "convex_radius_censored": bool(pd[0]) and radius == grid[-1],
            "radius_table": table,
        }
        if population:
            plo, phi = population_extremes(Ws, M, dense_max=dense_max, seed=seed)
            row.update({"convex_radius_population": pop_radius,
                        "lambda_min_population": plo, "lambda_max_population": phi,
                        "lambda_min_scaled_population": plo * K**2, "lambda_max_scaled_population": phi * K})
        out.append(row)
    return out


def analyze(oracle_spec: OracleSpec, N: int, seed: int, radius_grid: Sequence[float] = (
        0.02, 0.05, 0.1, 0.2, 0.3, 0.5), points: int = 8, **kw) -> dict:
    """``analyze_trials`` for one seed: one JSON-ready dict (keys listed in docs/landscape.md)."""
    return analyze_trials(oracle_spec, N, [seed], radius_grid, points, **kw)[0]
