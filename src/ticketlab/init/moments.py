"""Method-of-moments starts for Algorithm 1, from data alone (X, y and the learner's mask; never W*).

Three estimators share the Hermite identities of ``hermite.py`` (derivation: docs/tensor-init.md):

- ``tensor``: the paper's construction (Zhong et al. 2017, Lemma 1) made mask-aware. Span from the
  second moment on the kept coordinates, directions from the fourth moment projected on that span and
  contracted with a random vector (the third vanishes for ReLU), decomposed by the whitened tensor
  power method; magnitudes from the second moment, signs from the first. Directions are then assigned
  to neurons by their energy on each neuron's support and cut to it.
- ``moments``: the mask-aware variant. Fits u_j (supported on S_j) to the second moment,
  M2 ~ sum_j u_j u_j^T, neuron by neuron with the others' rank-one terms deflated, starting from the
  ``tensor`` directions; then re-estimates the moments with the current model as a control variate
  (unbiased for any fixed model, far less variance) for a few rounds.
- ``dense``: ``tensor`` ignoring the mask (all d coordinates, no support assignment): the baseline.

Costs per trial: O(N |S| K) per pass over the data (|S| <= d the kept coordinates) plus O(N K^3) for
the projected fourth moment; no d x d, d^3 or d^4 array is formed.
"""

from __future__ import annotations


import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..config import Choice, Count, Flag, NonNegInt, Seeds, Tensor, bad_value, validated
from ..seeding import MOMENTS, substream
from .decomp import power_decompose
from .hermite import factor_m2, hermite4_moment, weights_from_factor

__all__ = [
    "MOMENT_STREAM", "MIN_SAMPLES_PER_NEURON", "tensor_init", "support_init", "dense_init",
    "plain_moments_init", "INIT_METHODS", "init_from_data", "moment_start",
]

MOMENT_STREAM = MOMENTS  #: sub-stream of the trial seed for the moment starts' random vectors
#: fewest samples per neuron (N >= this * K) the moment estimators accept
MIN_SAMPLES_PER_NEURON = 4


# ----------------------------------------------------------------------------------------------
# shared pieces


def _validate(X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, use_mask: bool) -> None:
    shapes = (tuple(X.shape), tuple(y.shape), tuple(mask.shape))
    if X.dim() != 3 or mask.dim() != 3 or y.shape != X.shape[:2] or mask.shape[:2] != (X.shape[0], X.shape[2]):
        raise bad_value("X, y, mask", "must have shapes (B, N, d), (B, N) and (B, d, K) for a moment init", shapes)
    B, N, d = X.shape
    K = mask.shape[-1]
    if N < MIN_SAMPLES_PER_NEURON * K:
        raise bad_value("N", f"must be >= {MIN_SAMPLES_PER_NEURON} K = {MIN_SAMPLES_PER_NEURON * K} for a moment "
                        f"init with K = {K}", N)
    if use_mask:
        r = (mask != 0).sum(-2)
        if bool((r == 0).any()):
            raise bad_value("mask", "must keep at least one input of every neuron for a moment init",
                            f"a neuron keeping {r.min().item()}")
        kept = int((mask != 0).any(-1).sum(-1).min())
        if kept < K:
            raise bad_value("K", f"must be <= the {kept} input coordinates the mask keeps in all, for a moment "
                            "init (K directions need K kept coordinates)", K)
    elif d < K:
        raise bad_value("K", f"must be <= d = {d} for a dense moment init", K)


def _kept_coordinates(mask: torch.Tensor, use_mask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (B, S) of the coordinates any neuron keeps, padded, and a 0/1 validity (B, S)."""
    B, d, _ = mask.shape
    if not use_mask:
        idx = torch.arange(d, device=mask.device).expand(B, d)
        return idx, torch.ones(B, d, dtype=mask.dtype, device=mask.device)
    kept = (mask != 0).any(-1)
    counts = kept.sum(-1)
    S = int(counts.max())
    order = torch.argsort((~kept).to(torch.int8), dim=-1, stable=True)  # kept ones first, in order
    idx = order[:, :S]
    valid = (torch.arange(S, device=mask.device)[None, :] < counts[:, None]).to(mask.dtype)
    return idx, valid


def _gather_columns(X: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """X[b][:, idx[b]] for every trial, zero in padded columns; one (B, N, S) allocation."""
    B, N, _ = X.shape
    out = X.new_empty(B, N, idx.shape[1])
    for b in range(B):
        torch.index_select(X[b], 1, idx[b], out=out[b])
    return out.mul_(valid[:, None, :])


def _xt(Xu: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(1/N) X^T v per trial: the sample mean of v_n x_n, (B, S), with no (B, N, S) temporary."""
    return (v[:, None, :] @ Xu)[:, 0] / Xu.shape[1]  # v^T X: never a transposed copy of X


def _scatter_rows(Wu: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor, d: int) -> torch.Tensor:
    B, _, K = Wu.shape
    out = torch.zeros(B, d, K, dtype=Wu.dtype, device=Wu.device)
    # padded rows are zero, so adding them to row 0 changes nothing
    return out.scatter_add_(1, idx[:, :, None].expand(-1, -1, K), Wu * valid[:, :, None])


def _draws(seeds: list[int], shapes: dict[str, tuple[int, ...]], device, dtype) -> dict[str, torch.Tensor]:
    """Standard normal draws per trial from its own seed, stacked. Shapes depend on (d, K) only, never
    on the batch, so a trial gets the same numbers alone or in any batch."""
    out = {k: [] for k in shapes}
    for seed in seeds:
        gen = torch.Generator().manual_seed(substream(seed, MOMENT_STREAM))
        for k, shape in shapes.items():
            out[k].append(torch.randn(shape, generator=gen, dtype=torch.float64))
    return {k: torch.stack(v).to(device=device, dtype=dtype) for k, v in out.items()}


def _block_width(K: int, kept: int) -> int:
    """Subspace-iteration block: K plus K oversampling columns, at most the kept coordinates."""
    return min(2 * K, kept)


def _second_moment_apply(Xu: torch.Tensor, e: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_n e_n (x_n x_n^T - I) Q without forming the matrix: (B, S, m)."""
    N = Xu.shape[1]
    return ((e[..., None] * (Xu @ Q)).transpose(1, 2) @ Xu).transpose(1, 2) / N - e.mean(-1)[:, None, None] * Q


def _top_eigenpairs(Xu, e, valid, K, Q0, iters):
    """Top-K (algebraic) eigenpairs of the empirical second moment on the kept coordinates.

    Subspace iteration on an oversampled block (negative noise eigenvalues may sit in it), then
    Rayleigh-Ritz. O(N S q) per iteration, q = block size.
    """
    Q = torch.linalg.qr(Q0 * valid[..., None])[0]
    for _ in range(iters):
        Q = torch.linalg.qr(_second_moment_apply(Xu, e, Q) * valid[..., None])[0]
    H = Q.transpose(1, 2) @ _second_moment_apply(Xu, e, Q)
    lam, vec = torch.linalg.eigh((H + H.transpose(1, 2)) / 2)
    lam, vec = lam.flip(-1)[:, :K], vec.flip(-1)[..., :K]
    return Q @ vec, lam


def _assign_to_supports(D: torch.Tensor, Mu: torch.Tensor) -> torch.Tensor:
    """Permutation (B, K): neuron j gets the direction with the most energy on its support (Hungarian)."""
    energy = (Mu.transpose(1, 2) @ (D**2)).detach().cpu().double().numpy()  # (B, neuron, direction)
    perms = [linear_sum_assignment(-c)[1] for c in energy]
    return torch.as_tensor(np.stack(perms), dtype=torch.long, device=D.device)


def _restrict(Ufac: torch.Tensor, Mu: torch.Tensor) -> torch.Tensor:
    """Cut each factor to its neuron's support, keeping its norm (the magnitude estimate)."""
    cut = Ufac * Mu
    scale = Ufac.norm(dim=1, keepdim=True) / cut.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return cut * scale


def _signs(Ufac: torch.Tensor, m1: torch.Tensor) -> torch.Tensor:
    """Signs s_j from E[y x] = (1/(2K)) sum_j s_j |w_j| w_hat_j: least squares over the K unit vectors."""
    K = Ufac.shape[-1]
    Wpos = weights_from_factor(Ufac, torch.ones(Ufac.shape[0], K, dtype=Ufac.dtype, device=Ufac.device))
    beta = torch.linalg.lstsq(Wpos, (2 * K * m1)[..., None], driver="gelsd" if Wpos.device.type == "cpu" else None)
    s = torch.sign(beta.solution[..., 0])
    return torch.where(s == 0, torch.ones_like(s), s)


class _Kept:
    """The data restricted to the coordinates the mask keeps (all d for the dense method)."""

    def __init__(self, X: torch.Tensor, mask: torch.Tensor, use_mask: bool):
        self.d, self.K = X.shape[-1], mask.shape[-1]
        self.idx, valid = _kept_coordinates(mask, use_mask)
        self.valid = valid.to(X.dtype)
        self.Xu = _gather_columns(X, self.idx, self.valid) if use_mask else X  # dense: no copy
        self.Mu = torch.gather(mask.to(X.dtype), 1, self.idx[:, :, None].expand(-1, -1, self.K)) * self.valid[..., None]

    def rows(self, A: torch.Tensor) -> torch.Tensor:
        """Rows of per-trial (B, d, m) arrays at the kept coordinates: (B, S, m)."""
        return torch.gather(A, 1, self.idx[:, :, None].expand(-1, -1, A.shape[-1])) * self.valid[..., None]

    def scatter(self, Wu: torch.Tensor) -> torch.Tensor:
        return _scatter_rows(Wu, self.idx, self.valid, self.d)


def _trial_draws(seeds, d, K, restarts, device, dtype):
    return _draws(seeds, {"Q0": (d, 2 * K), "alpha": (K,), "starts": (K, restarts, K), "Qs": (d, K)},
                  device, dtype)


def _in_groups(fn, X, y, mask, seeds, use_mask):
    """Run ``fn`` on sub-batches whose trials share a block width: no trial depends on its batch."""
    K = mask.shape[-1]
    kept = (mask != 0).any(-1).sum(-1).tolist() if use_mask else [X.shape[-1]] * X.shape[0]
    widths = torch.tensor([_block_width(K, int(k)) for k in kept])
    if bool((widths == widths[0]).all()):
        return fn(X, y, mask, seeds)
    out = torch.empty(X.shape[0], X.shape[-1], K, dtype=X.dtype, device=X.device)
    for w in widths.unique().tolist():
        sel = torch.nonzero(widths == w).flatten()
        out[sel.to(X.device)] = fn(X[sel], y[sel], mask[sel], [seeds[i] for i in sel.tolist()])
    return out


def _first_moment(Xu: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample mean of y (B, 1) and E[y x] on the kept coordinates (B, S)."""
    ybar = y.mean(-1, keepdim=True)
    return ybar, _xt(Xu, y - ybar)


# ----------------------------------------------------------------------------------------------
# the paper's method of moments (mask-aware, or dense)


def _tensor_factors(kp: _Kept, y, draws, *, restarts, power_iters, subspace_iters, center):
    """Unassigned M2 factors u_j = sqrt(a_j) w_hat_j (B, S, K) from the second and fourth moments,
    and the first-moment estimate m1 (B, S)."""
    Xu, K = kp.Xu, kp.K
    q = _block_width(K, int(kp.valid.sum(-1).min()))  # equal for all trials of a group
    ybar, m1 = _first_moment(Xu, y)
    # control variate: removing the constant and linear parts leaves every moment of order >= 2 unbiased
    e = y - ybar - (Xu @ m1[..., None])[..., 0] if center else y
    P, lam = _top_eigenpairs(Xu, e, kp.valid, K, kp.rows(draws["Q0"][..., :q]), subspace_iters)
    lam = lam.clamp_min(1e-12 * lam[:, :1].abs().clamp_min(1e-300))
    z = Xu @ P  # (B, N, K): standard Gaussian coordinates in the estimated span
    if center:  # also drop the fitted quadratic part in the span, orthogonal to He_4
        e = e - 0.5 * ((z**2 - 1) * lam[:, None, :]).sum(-1)
    alpha = draws["alpha"] / draws["alpha"].norm(dim=-1, keepdim=True)
    T = hermite4_moment(z, e, alpha)
    w = lam.rsqrt()  # whitening R^{-1/2}, R = P^T M2 P = diag(lam)
    Tw = T * w[:, :, None, None] * w[:, None, :, None] * w[:, None, None, :]
    mu, _ = power_decompose(Tw, draws["starts"][:, :, :restarts], iters=power_iters)
    V = lam.sqrt()[..., None] * mu  # R^{1/2} mu_j = sqrt(a_j) v_j
    return P @ V, m1


def _assigned(Ufac: torch.Tensor, Mu: torch.Tensor) -> torch.Tensor:
    perm = _assign_to_supports(Ufac, Mu)
    return _restrict(torch.gather(Ufac, 2, perm[:, None, :].expand_as(Ufac)), Mu)


@validated(X=Tensor, y=Tensor, mask=Tensor, seeds=Seeds, use_mask=Flag, restarts=Count, power_iters=Count,
           subspace_iters=NonNegInt, center=Flag)
def tensor_init(X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, seeds: list[int], *, use_mask: bool = True,
                restarts: int = 10, power_iters: int = 50, subspace_iters: int = 10,
                center: bool = True) -> torch.Tensor:
    """The tensor (method-of-moments) start W0 (B, d, K), on the mask when ``use_mask``.

    ``center``: subtract the sample mean, linear and fitted quadratic parts of y before the higher
    moments (control variates; the population moments are unchanged). ``use_mask=False`` is the dense
    construction on all d coordinates, returned dense.
    """
    _validate(X, y, mask, use_mask)

    def run(X, y, mask, seeds):
        kp = _Kept(X, mask, use_mask)
        draws = _trial_draws(seeds, kp.d, kp.K, restarts, X.device, X.dtype)
        Ufac, m1 = _tensor_factors(kp, y, draws, restarts=restarts, power_iters=power_iters,
                                   subspace_iters=subspace_iters, center=center)
        if use_mask:
            Ufac = _assigned(Ufac, kp.Mu)
        return kp.scatter(weights_from_factor(Ufac, _signs(Ufac, m1)))

    return _in_groups(run, X, y, mask, seeds, use_mask)


# ----------------------------------------------------------------------------------------------
# the mask-aware variant: a support-constrained fit of the second moment with model control variates


def _fit_supports(Xu, e, base, Mu, Q, Ufac, iters):
    """Fit M2 ~ sum_j u_j u_j^T with supp(u_j) in S_j by Gauss-Seidel sweeps over the neurons.

    The operator is  base base^T + (1/N) sum_n e_n (x_n x_n^T - I)  (an unbiased M2 estimate when base
    is the current model's factor and e its residual). Each step is one shifted power step for neuron
    j on its support block, with the other neurons' current rank-one terms deflated. Sequential, not
    simultaneous: updating all neurons at once (Jacobi) lets the entries of coordinates shared by many
    neurons (their diagonal couples all of them) drift to a wrong fixed point.
    """
    N, K = Xu.shape[1], Mu.shape[-1]
    r = Mu.sum(1)  # (B, K)
    shift = 2 * torch.sqrt(r * (e**2).mean(-1, keepdim=True) / N)  # ~ noise spectral edge of a block
    Q, Ufac = Q.clone(), Ufac.clone()
    for _ in range(iters):
        # neuron j's own vector changes only at its turn, so one pass over the data serves the sweep;
        # only the deflation uses the neurons already updated in it
        AQ = _second_moment_apply(Xu, e, Q) + base @ (base.transpose(1, 2) @ Q)
        for j in range(K):
            q = Q[:, :, j:j + 1]
            G = Ufac.transpose(1, 2) @ q  # (B, K, 1): u_k . q
            G[:, j] = 0
            z = (AQ[:, :, j:j + 1] - Ufac @ G) * Mu[:, :, j:j + 1]
            lam = (z * q).sum(1)  # Rayleigh quotient of the deflated block
            q = z + shift[:, None, j:j + 1] * q
            q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-300)
            Q[:, :, j:j + 1] = q
            Ufac[:, :, j:j + 1] = q * lam.clamp_min(0).sqrt()[:, None, :]
    return Q, Ufac


def _unique_coordinates(Mu: torch.Tensor) -> torch.Tensor:
    """0/1 (B, S, K): the coordinates of each support that no other neuron keeps."""
    return Mu * (Mu.sum(-1, keepdim=True) == 1).to(Mu.dtype)


def _all_have_unique(mask: torch.Tensor) -> torch.Tensor:
    """Per trial (B,): every neuron keeps at least one coordinate no other neuron keeps."""
    m = (mask != 0).to(torch.float64)
    return (_unique_coordinates(m).sum(-2) >= 1).all(-1).cpu()


@validated(X=Tensor, y=Tensor, mask=Tensor, seeds=Seeds, rounds=NonNegInt, iters=Count, first_iters=Count,
           start=Choice(("auto", "unique", "tensor", "supports")))
def support_init(X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, seeds: list[int], *, rounds: int = 3,
                 iters: int = 10, first_iters: int = 30, start: str = "auto", **tensor_kw) -> torch.Tensor:
    """The mask-aware moment start W0 (B, d, K) on the mask.

    start: where the support-constrained fit begins.
    'unique' - on the coordinates only neuron j keeps, M2 = u_j u_j^T exactly (no other neuron
    contributes), so u_j there is a top eigenvector; then (M2 u_j)_i / |u_j|^2 = u_ji on the rest of
    S_j. A consistent start that avoids the fit's spurious local minima; a neuron without unique
    coordinates starts from random vectors on its support.
    'tensor' - the ``tensor_init`` directions cut to the supports. 'supports' - random vectors on
    each support. 'auto' (default) - 'unique' for trials in which every neuron has a unique
    coordinate, else 'tensor'.
    rounds: control-variate refinements after the first fit (0: the plain deflated second-moment fit
    with polynomial control variates).
    """
    if start not in ("auto", "unique", "tensor", "supports"):
        raise bad_value("support_init start", "must be 'auto', 'unique', 'tensor' or 'supports'", start)
    if rounds < 0:
        raise bad_value("support_init rounds", "must be >= 0", rounds)
    _validate(X, y, mask, True)
    kw = {"rounds": rounds, "iters": iters, "first_iters": first_iters, **tensor_kw}
    if start == "auto":  # decided per trial, so that a trial's start never depends on its batch
        flags = _all_have_unique(mask)
        if bool(flags.all()) or not bool(flags.any()):
            start = "unique" if bool(flags.all()) else "tensor"
        else:
            out = torch.empty(X.shape[0], X.shape[-1], mask.shape[-1], dtype=X.dtype, device=X.device)
            for flag in (True, False):
                sel = torch.nonzero(flags == flag).flatten()
                out[sel.to(X.device)] = support_init(X[sel], y[sel], mask[sel], [seeds[i] for i in sel.tolist()],
                                                     start="unique" if flag else "tensor", **kw)
            return out
    tkw = {"restarts": 10, "power_iters": 50, "subspace_iters": 10, "center": True, **tensor_kw}

    def run(X, y, mask, seeds):
        kp = _Kept(X, mask, True)
        draws = _trial_draws(seeds, kp.d, kp.K, tkw["restarts"], X.device, X.dtype)
        Xu, K = kp.Xu, kp.K
        ybar, m1 = _first_moment(Xu, y)
        e = y - ybar - (Xu @ m1[..., None])[..., 0]  # round 0: mean and linear part as control variate
        base = torch.zeros_like(kp.Mu)
        U0 = None
        if start == "tensor":
            Ufac, _ = _tensor_factors(kp, y, draws, **tkw)
            Q = _assigned(Ufac, kp.Mu)
        elif start == "unique":
            uniq = _unique_coordinates(kp.Mu)
            has = (uniq.sum(1) >= 1).to(X.dtype)[:, None, :]
            Mstart = has * uniq + (1 - has) * kp.Mu
            Q = kp.rows(draws["Qs"]) * Mstart
            Q = Q / Q.norm(dim=1, keepdim=True).clamp_min(1e-300)
            Q, V = _fit_supports(Xu, e, base, Mstart, Q, torch.zeros_like(Q), first_iters)
            ext = _second_moment_apply(Xu, e, V) * kp.Mu / (V**2).sum(1, keepdim=True).clamp_min(1e-300)
            U0 = Q = has * ext + (1 - has) * V
        else:
            Q = kp.rows(draws["Qs"]) * kp.Mu
        Q = Q / Q.norm(dim=1, keepdim=True).clamp_min(1e-300)
        Ufac = torch.zeros_like(Q) if U0 is None else U0  # what the first sweep deflates
        best_W, best_risk = None, None
        for rnd in range(rounds + 1):
            Q, Ufac = _fit_supports(Xu, e, base, kp.Mu, Q, Ufac, iters if rnd else first_iters)
            W = weights_from_factor(Ufac, _signs(Ufac, m1))
            resid = y - torch.relu(Xu @ W).mean(-1)
            # keep, per trial, the round with the lowest empirical risk: at tiny N a round can overshoot
            risk = (resid**2).mean(-1)
            if best_W is None:
                best_W, best_risk = W, risk
            else:
                better = risk < best_risk
                best_W = torch.where(better[:, None, None], W, best_W)
                best_risk = torch.where(better, risk, best_risk)
            if rnd == rounds:
                break
            # next round: the model g(x; W) itself as control variate; its moments are closed forms
            m1 = W.sum(-1) / (2 * K) + _xt(Xu, resid)
            resid = resid - resid.mean(-1, keepdim=True)
            e = resid - (Xu @ _xt(Xu, resid)[..., None])[..., 0]
            base = factor_m2(W)
        W = best_W
        return kp.scatter(W)

    return _in_groups(run, X, y, mask, seeds, True)


# ----------------------------------------------------------------------------------------------
# entry points


def dense_init(X, y, mask, seeds, **kw) -> torch.Tensor:
    """The paper's construction without the mask (the dense baseline), returned dense."""
    return tensor_init(X, y, mask, seeds, use_mask=False, **kw)


def plain_moments_init(X, y, mask, seeds, **kw) -> torch.Tensor:
    """``support_init`` without the model control-variate rounds: a pure second-moment fit."""
    return support_init(X, y, mask, seeds, rounds=0, **kw)


#: start kind -> its function (X, y, mask, seeds, ...) -> W0 (B, d, K)
INIT_METHODS = {
    "tensor": tensor_init,
    "moments": support_init,
    "moments0": plain_moments_init,
    "dense": dense_init,
}


@validated(kind=Choice(INIT_METHODS), X=Tensor, y=Tensor, mask=Tensor, seeds=Seeds)
def init_from_data(kind: str, X, y, mask, seeds, **kw) -> torch.Tensor:
    """W0 (B, d, K) by one of ``INIT_METHODS`` from data alone."""
    if kind not in INIT_METHODS:
        raise bad_value("init_from_data kind", f"must be one of {', '.join(INIT_METHODS)}", kind)
    return INIT_METHODS[kind](X, y, mask, seeds, **kw)


def moment_start(problem, init) -> torch.Tensor:
    """The core's entry point: W0 (B, d, K) for init.kind 'tensor' or 'moments'. Uses X, y and the
    learner mask only, never W*."""
    W0 = init_from_data(init.kind, problem.X, problem.y, problem.mask, problem.seeds)
    return W0.to(dtype=problem.X.dtype)
