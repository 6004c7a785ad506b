"""Algorithm 1 compiled per trial (numba): the fast CPU engine, same semantics as ``reference``.

Why this shape: one iteration of one small trial is a few hundred kflops, so a Python-level loop
is dominated by interpreter overhead, and a batched ``torch.bmm`` streams every trial's data from
memory on every iteration. Here the whole AGD loop of one trial runs compiled, its data stays in
cache across iterations, and trials run one per thread (``nogil``) with dynamic scheduling, since
they stop at different iterations.

Each trial gets the cheaper of two sample-major layouts, chosen from its mask by
``ticketlab.engine.cost.prefer_packed``:
- packed: for every sample, the kept inputs of each neuron side by side (N x sum_j r_j);
  4 N sum_j r_j flops per iteration and nothing multiplied by a pruned zero;
- dense: the union of the kept columns (N x u) shared by all neurons, with masked weights;
  4 N u K flops but fewer bytes when the supports overlap heavily.
A start with weight off the mask (the reference keeps such weight fixed but still uses it in the
forward pass) falls back to dense over all d columns, so semantics never depend on the layout.

Compiled with ``fastmath={'reassoc', 'contract'}`` only: dot products may be vectorised and fused,
but NaN/Inf keep their meaning, so the divergence rule works as in the reference. Results agree
with the reference to rounding (~1e-15 relative in float64). The first call per dtype compiles two
functions (about 3 s on a busy 2-core machine); ``cache=True`` stores them next to this file, and
later processes load them in under a second.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit  # ImportError here makes engine.solve fall back to the reference

from ..config import SolverSpec
from . import cost
from .reference import RATE_BURN_IN, SolveResult, step_scale

_FLAGS = {"reassoc", "contract"}
RUNNING, CONVERGED, FAILED = 0, 1, 2


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _gather(X, cols):
    """D[n, l] = X[n, cols[l]]: one trial's data in the chosen layout, sample-major."""
    N, L = X.shape[0], cols.shape[0]
    D = np.empty((N, L), dtype=X.dtype)
    for n in range(N):
        for l in range(L):
            D[n, l] = X[n, cols[l]]
    return D


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _agd(D, y, seg_off, seg_len, w_off, gm, W, W_t, err2_rest, tnorm, T, nb, step, beta, tol,
         divf, tiny, max_iter, burn_in, record_every, curve, acc):
    """Run Algorithm 1 for one trial in place on W (its stored coordinates).

    Neuron j reads row segment D[n, seg_off[j]:+seg_len[j]] and owns W[w_off[j]:+seg_len[j]];
    gm holds the mask value of each stored coordinate. Returns (iterations, status).
    """
    K = seg_off.shape[0]
    P = W.shape[0]
    dt = W.dtype
    G = np.empty(P, dtype=dt)
    W_prev = W.copy()
    W_new = np.empty(P, dtype=dt)
    z = np.empty(K, dtype=dt)
    Z4 = np.empty((4, K), dtype=dt)
    C4 = np.empty((4, K), dtype=dt)
    norm0 = 0.0
    for p in range(P):
        norm0 += float(W[p]) * float(W[p])
    norm0 = max(math.sqrt(norm0), tiny)
    record = record_every > 0 and curve.shape[0] > 0
    inv = 1.0 / (nb * K)
    status = RUNNING
    it = 0
    for t in range(max_iter):
        s = (t % T) * nb
        G[:] = 0
        n = s
        while n + 4 <= s + nb:  # four samples at a time: one pass over w_j and g_j serves four rows
            r0, r1, r2, r3 = D[n], D[n + 1], D[n + 2], D[n + 3]
            for j in range(K):
                o, wo, m = seg_off[j], w_off[j], seg_len[j]
                w = W[wo:wo + m]
                x0, x1, x2, x3 = r0[o:o + m], r1[o:o + m], r2[o:o + m], r3[o:o + m]
                a0 = a1 = a2 = a3 = dt.type(0)
                for i in range(m):
                    a0 += x0[i] * w[i]
                    a1 += x1[i] * w[i]
                    a2 += x2[i] * w[i]
                    a3 += x3[i] * w[i]
                Z4[0, j], Z4[1, j], Z4[2, j], Z4[3, j] = a0, a1, a2, a3
            for q in range(4):
                out = dt.type(0)
                for j in range(K):
                    if Z4[q, j] > 0:
                        out += Z4[q, j]
                res = dt.type(out / K - y[n + q])
                for j in range(K):
                    C4[q, j] = res if Z4[q, j] > 0 else dt.type(0)
            for j in range(K):
                o, wo, m = seg_off[j], w_off[j], seg_len[j]
                g = G[wo:wo + m]
                x0, x1, x2, x3 = r0[o:o + m], r1[o:o + m], r2[o:o + m], r3[o:o + m]
                c0, c1, c2, c3 = C4[0, j], C4[1, j], C4[2, j], C4[3, j]
                for i in range(m):
                    g[i] += c0 * x0[i] + c1 * x1[i] + c2 * x2[i] + c3 * x3[i]
            n += 4
        for n in range(n, s + nb):  # the last N mod 4 samples
            row = D[n]  # slices, not 2-D indexing: LLVM vectorises these loops, not the others
            out = dt.type(0)
            for j in range(K):
                x = row[seg_off[j]:seg_off[j] + seg_len[j]]
                w = W[w_off[j]:w_off[j] + seg_len[j]]
                a = dt.type(0)
                for i in range(x.shape[0]):
                    a += x[i] * w[i]
                z[j] = a
                if a > 0:
                    out += a
            res = dt.type(out / K - y[n])
            for j in range(K):
                if z[j] > 0:
                    x = row[seg_off[j]:seg_off[j] + seg_len[j]]
                    g = G[w_off[j]:w_off[j] + seg_len[j]]
                    for i in range(x.shape[0]):
                        g[i] += res * x[i]
        diff2 = 0.0
        w2 = 0.0
        wn2 = 0.0
        for p in range(P):
            g = G[p] * inv * gm[p]
            wn = W[p] - step * g + beta * (W[p] - W_prev[p])
            W_new[p] = wn
            dd = float(wn) - float(W[p])
            diff2 += dd * dd
            w2 += float(W[p]) * float(W[p])
            wn2 += float(wn) * float(wn)
        diff = math.sqrt(diff2)
        rel = diff / max(math.sqrt(w2), tiny)
        bad = (not math.isfinite(rel)) or math.sqrt(wn2) > divf * norm0
        if t + 1 > burn_in and math.isfinite(rel) and diff > 0:
            tt = float(t + 1)
            ly = math.log(diff)
            acc[0] += 1.0
            acc[1] += tt
            acc[2] += tt * tt
            acc[3] += ly
            acc[4] += tt * ly
        it += 1
        for p in range(P):  # W_prev <- W, W <- W_new without allocating
            W_prev[p] = W[p]
            W[p] = W_new[p]
        if record and (t + 1) % record_every == 0:
            e2 = err2_rest
            for p in range(P):
                e = float(W[p]) - float(W_t[p])
                e2 += e * e
            curve[(t + 1) // record_every] = math.sqrt(e2) / tnorm
        if bad:
            status = FAILED
            break
        if rel < tol:
            status = CONVERGED
            break
    return it, status


def _plan(mask: np.ndarray, W0: np.ndarray, N: int, dtype) -> tuple:
    """Layout for one trial: (cols, seg_off, seg_len, w_off, rows, cols_of_W, layout name).

    rows/cols_of_W index the (d, K) matrix: stored coordinate p is W[rows[p], cols_of_W[p]].
    """
    d, K = mask.shape
    kept = mask != 0
    off_mask_weight = bool(np.any(W0[~kept] != 0))
    binary = bool(np.all((mask == 0) | (mask == 1)))
    r = kept.sum(0)
    union = np.flatnonzero(kept.any(1)) if not off_mask_weight else np.arange(d)
    u = len(union)
    packed = (binary and not off_mask_weight
              and cost.prefer_packed(N, d, K, int(r.sum()), u, np.dtype(dtype).itemsize))
    if packed:
        rows = np.concatenate([np.flatnonzero(kept[:, j]) for j in range(K)])
        cj = np.repeat(np.arange(K), r)
        seg_len = r.astype(np.int64)
        seg_off = np.concatenate([[0], np.cumsum(seg_len)[:-1]]).astype(np.int64)
        return rows, seg_off, seg_len, seg_off.copy(), rows, cj, "packed"
    seg_len = np.full(K, u, dtype=np.int64)
    seg_off = np.zeros(K, dtype=np.int64)
    w_off = (np.arange(K) * u).astype(np.int64)
    rows = np.tile(union, K)
    cj = np.repeat(np.arange(K), u)
    return union, seg_off, seg_len, w_off, rows, cj, "dense"


def solve(X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, W0: torch.Tensor, solver: SolverSpec,
          *, W_target: torch.Tensor | None = None, record_every: int = 0,
          threads: int | None = None) -> SolveResult:
    """Algorithm 1 for a batch of trials on the CPU; the interface and result of ``reference.solve``.

    threads: trials solved at once (default ``torch.get_num_threads()``, which follows
    OMP_NUM_THREADS and ``torch.set_num_threads``).
    """
    if X.device.type != "cpu":
        raise ValueError(f"the fast engine runs on the CPU (got X on {X.device}); use backend='reference'")
    if X.dtype not in (torch.float64, torch.float32):
        raise ValueError(f"the fast engine supports float64 and float32 (got {X.dtype})")
    B, N, d = X.shape
    K = W0.shape[-1]
    dt = X.dtype
    npdt = np.float64 if dt == torch.float64 else np.float32
    step = solver.eta * step_scale(solver.step_convention, K)
    T = solver.num_batches if solver.sampling == "fresh" else 1
    nb = N // T
    tiny = float(torch.finfo(dt).tiny)

    Xn = X.detach().contiguous().numpy()
    yn = y.detach().to(dt).contiguous().numpy()
    Mn = mask.detach().to(dt).contiguous().numpy()
    W0n = W0.detach().to(dt).contiguous().numpy()
    record = record_every > 0 and W_target is not None
    curve_iters = list(range(0, solver.max_iter + 1, record_every)) if record else []
    curve = np.full((B, len(curve_iters)), np.nan)
    Wtn = W_target.detach().to(dt).contiguous().numpy() if record else None

    W_out = W0n.copy()
    iters = np.zeros(B, dtype=np.int64)
    status = np.zeros(B, dtype=np.int64)
    acc = np.zeros((B, 5))
    empty = np.empty(0)

    def one(b: int) -> None:
        cols, seg_off, seg_len, w_off, rows, cj, _ = _plan(Mn[b], W0n[b], N, npdt)
        D = Xn[b] if len(cols) == d and np.array_equal(cols, np.arange(d)) else _gather(Xn[b], cols)
        W = np.ascontiguousarray(W0n[b][rows, cj])
        gm = np.ascontiguousarray(Mn[b][rows, cj])
        if record:
            Wt = Wtn[b]
            tn = float(np.linalg.norm(Wt.astype(np.float64)))
            rest = (W0n[b] - Wt).astype(np.float64)
            rest[rows, cj] = 0.0
            err2_rest = float((rest * rest).sum())
            curve[b, 0] = float(np.linalg.norm((W0n[b] - Wt).astype(np.float64))) / tn
            Wt_s, crv = np.ascontiguousarray(Wt[rows, cj]), curve[b]
        else:
            Wt_s, crv, err2_rest, tn = W, empty, 0.0, 1.0
        iters[b], status[b] = _agd(D, yn[b], seg_off, seg_len, w_off, gm, W, Wt_s, err2_rest, tn, T, nb,
                                   step, solver.beta, solver.tol, solver.diverge_factor, tiny,
                                   solver.max_iter, RATE_BURN_IN, record_every if record else 0, crv, acc[b])
        W_out[b][rows, cj] = W

    n_threads = max(1, min(B, threads or torch.get_num_threads()))
    if n_threads == 1:
        for b in range(B):
            one(b)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(one, range(B)))  # list() re-raises a worker's exception here

    n, st, stt, sy, sty = acc.T
    den = n * stt - st * st
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where((n >= 3) & (den > 0), (n * sty - st * sy) / np.where(den > 0, den, 1.0), np.nan)
    return SolveResult(
        W=torch.from_numpy(W_out),
        iterations=torch.from_numpy(iters),
        converged=torch.from_numpy(status == CONVERGED),
        failed=torch.from_numpy(status == FAILED),
        rate=torch.from_numpy(np.exp(slope)),
        curve=torch.from_numpy(curve) if record else None,
        curve_iters=curve_iters,
    )


def layout(mask: torch.Tensor, W0: torch.Tensor, N: int) -> list[str]:
    """The layout ('packed' or 'dense') each trial of a batch would get (for benchmarks and docs)."""
    Mn, Wn = mask.detach().cpu().numpy(), W0.detach().cpu().numpy()
    return [_plan(Mn[b], Wn[b], N, Wn.dtype)[-1] for b in range(Mn.shape[0])]
