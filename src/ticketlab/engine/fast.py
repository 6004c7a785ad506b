"""Algorithm 1 compiled per trial (numba): the fast CPU engine, same semantics as ``reference``.

Why this shape: one iteration of one small trial is a few hundred kflops, so a Python-level loop
is dominated by interpreter overhead, and a batched ``torch.bmm`` streams every trial's data from
memory on every iteration. Here the whole AGD loop of one trial runs compiled, its data stays in
cache across iterations, and trials run one per thread (``nogil``) with dynamic scheduling, since
they stop at different iterations.

Two data layouts, one copy per trial built once, chosen per trial from the mask by
``ticketlab.engine.cost.prefer_union``:
- union (sparse masks): the union of the kept columns (u of them), feature-major,
  ``P[batch, column, sample]``. Neuron j owns a list of column indices into the union, so an
  iteration costs 4 N sum_j r_j flops (nothing multiplied by a pruned zero) on N x u values shared
  by all neurons (no column copied per neuron). Every inner loop runs over all the batch's samples:
  long, contiguous and the same length for every neuron however few inputs it keeps (short
  per-neuron rows made the earlier sample-major "packed" layout overhead-bound at r = 10-50).
- dense (supports overlapping so much that u K is under about 2 sum_j r_j): sample-major rows over the
  union, every neuron multiplies all u columns with its masked weights; 4 N u K flops, but eight
  samples share each pass over a neuron's weights and gradient, the fastest kernel per flop.
A start with weight off the mask, or a mask with values other than 0/1 (the reference keeps such
weight fixed but still uses it in the forward pass), gets the ``dense`` layout over all d
columns, the mask scaling the gradient, so semantics never depend on the layout.

Compiled with ``fastmath={'reassoc', 'contract'}`` only: dot products may be vectorised and fused,
but NaN/Inf keep their meaning, so the divergence rule works as in the reference. Results agree
with the reference to rounding (~1e-15 relative in float64). The first call per dtype compiles two
functions (a few seconds); ``cache=True`` stores them next to this file, and later processes load
them in under a second.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit  # ImportError here makes engine.solve fall back to the reference

from ..config import SolverSpec, bad_value
from . import cost
from .rate import RATE_BURN_IN, fit_rate
from .reference import SolveResult, step_scale

__all__ = ["LAYOUTS", "RUNNING", "CONVERGED", "FAILED", "solve", "layout"]

_FLAGS = {"reassoc", "contract"}
#: a trial's state in the batched loop: still iterating
RUNNING = 0
#: a trial's state: met the stopping rule
CONVERGED = 1
#: a trial's state: diverged (a non-finite error, or an iterate past the divergence bound)
FAILED = 2
#: the memory layouts of the kernel: auto picks union or dense per trial by the cost model
LAYOUTS = ("auto", "union", "dense")


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _gradient_union(P, y, b, idx, seg_off, seg_len, W, G, Z, C, K):
    """G = sum over batch b's samples of d(loss)/d(stored weights), up to the 1/(nb K) factor.

    P[b] holds the batch's stored columns, feature-major (column, sample); neuron j's stored
    coordinates are seg_off[j] .. + seg_len[j], reading columns idx[...]. Columns are taken eight
    (then four, then one) at a time so that one pass over the accumulator or the error vector
    serves eight columns: the loops are bound by loads, not stores.
    """
    S = P.shape[2]
    dt = W.dtype
    zero = dt.type(0)
    acc = np.empty(S, dtype=dt)
    G[:] = 0
    Pp = P[b]
    for j in range(K):  # forward: acc[s] = <x_s restricted to neuron j's support, w_j>
        o, m = seg_off[j], seg_len[j]
        acc[:] = 0
        t = 0
        while t + 8 <= m:
            w0, w1, w2, w3 = W[o + t], W[o + t + 1], W[o + t + 2], W[o + t + 3]
            w4, w5, w6, w7 = W[o + t + 4], W[o + t + 5], W[o + t + 6], W[o + t + 7]
            r0, r1, r2, r3 = Pp[idx[o + t]], Pp[idx[o + t + 1]], Pp[idx[o + t + 2]], Pp[idx[o + t + 3]]
            r4, r5, r6, r7 = Pp[idx[o + t + 4]], Pp[idx[o + t + 5]], Pp[idx[o + t + 6]], Pp[idx[o + t + 7]]
            for s in range(S):
                acc[s] += ((w0 * r0[s] + w1 * r1[s]) + (w2 * r2[s] + w3 * r3[s])
                           + ((w4 * r4[s] + w5 * r5[s]) + (w6 * r6[s] + w7 * r7[s])))
            t += 8
        while t + 4 <= m:
            w0, w1, w2, w3 = W[o + t], W[o + t + 1], W[o + t + 2], W[o + t + 3]
            r0, r1, r2, r3 = Pp[idx[o + t]], Pp[idx[o + t + 1]], Pp[idx[o + t + 2]], Pp[idx[o + t + 3]]
            for s in range(S):
                acc[s] += (w0 * r0[s] + w1 * r1[s]) + (w2 * r2[s] + w3 * r3[s])
            t += 4
        while t < m:
            w0, r0 = W[o + t], Pp[idx[o + t]]
            for s in range(S):
                acc[s] += w0 * r0[s]
            t += 1
        Z[j, :] = acc
    base = b * S
    for s in range(S):  # residual of the mean of the ReLUs; C[j, s] = residual where neuron j fires
        out = zero
        for j in range(K):
            if Z[j, s] > 0:
                out += Z[j, s]
        res = dt.type(out / K - y[base + s])
        for j in range(K):
            C[j, s] = res if Z[j, s] > 0 else zero
    for j in range(K):  # backward: G[t] += <column idx[t], C[j]>
        c = C[j]
        o, m = seg_off[j], seg_len[j]
        t = 0
        while t + 8 <= m:
            r0, r1, r2, r3 = Pp[idx[o + t]], Pp[idx[o + t + 1]], Pp[idx[o + t + 2]], Pp[idx[o + t + 3]]
            r4, r5, r6, r7 = Pp[idx[o + t + 4]], Pp[idx[o + t + 5]], Pp[idx[o + t + 6]], Pp[idx[o + t + 7]]
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
            for s in range(S):
                cs = c[s]
                a0 += r0[s] * cs
                a1 += r1[s] * cs
                a2 += r2[s] * cs
                a3 += r3[s] * cs
                a4 += r4[s] * cs
                a5 += r5[s] * cs
                a6 += r6[s] * cs
                a7 += r7[s] * cs
            G[o + t] += a0
            G[o + t + 1] += a1
            G[o + t + 2] += a2
            G[o + t + 3] += a3
            G[o + t + 4] += a4
            G[o + t + 5] += a5
            G[o + t + 6] += a6
            G[o + t + 7] += a7
            t += 8
        while t < m:
            r0 = Pp[idx[o + t]]
            a0 = zero
            for s in range(S):
                a0 += r0[s] * c[s]
            G[o + t] += a0
            t += 1


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _gradient_rows(D, y, s0, nb, seg_off, seg_len, w_off, W, G, Z8, C8, z, K):
    """The same gradient from sample-major rows D[n] (the ``dense`` layout): neuron j reads the row
    segment D[n, seg_off[j]:+seg_len[j]] and owns W[w_off[j]:+seg_len[j]]. Samples s0 .. s0+nb-1,
    eight at a time, so that one pass over w_j and g_j serves eight rows.
    """
    dt = W.dtype
    G[:] = 0
    n = s0
    while n + 8 <= s0 + nb:
        r0, r1, r2, r3 = D[n], D[n + 1], D[n + 2], D[n + 3]
        r4, r5, r6, r7 = D[n + 4], D[n + 5], D[n + 6], D[n + 7]
        for j in range(K):
            o, wo, m = seg_off[j], w_off[j], seg_len[j]
            w = W[wo:wo + m]
            x0, x1, x2, x3 = r0[o:o + m], r1[o:o + m], r2[o:o + m], r3[o:o + m]
            x4, x5, x6, x7 = r4[o:o + m], r5[o:o + m], r6[o:o + m], r7[o:o + m]
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = dt.type(0)
            for i in range(m):
                wi = w[i]
                a0 += x0[i] * wi
                a1 += x1[i] * wi
                a2 += x2[i] * wi
                a3 += x3[i] * wi
                a4 += x4[i] * wi
                a5 += x5[i] * wi
                a6 += x6[i] * wi
                a7 += x7[i] * wi
            Z8[0, j], Z8[1, j], Z8[2, j], Z8[3, j] = a0, a1, a2, a3
            Z8[4, j], Z8[5, j], Z8[6, j], Z8[7, j] = a4, a5, a6, a7
        for q in range(8):
            out = dt.type(0)
            for j in range(K):
                if Z8[q, j] > 0:
                    out += Z8[q, j]
            res = dt.type(out / K - y[n + q])
            for j in range(K):
                C8[q, j] = res if Z8[q, j] > 0 else dt.type(0)
        for j in range(K):
            o, wo, m = seg_off[j], w_off[j], seg_len[j]
            g = G[wo:wo + m]
            x0, x1, x2, x3 = r0[o:o + m], r1[o:o + m], r2[o:o + m], r3[o:o + m]
            x4, x5, x6, x7 = r4[o:o + m], r5[o:o + m], r6[o:o + m], r7[o:o + m]
            c0, c1, c2, c3 = C8[0, j], C8[1, j], C8[2, j], C8[3, j]
            c4, c5, c6, c7 = C8[4, j], C8[5, j], C8[6, j], C8[7, j]
            for i in range(m):
                g[i] += (c0 * x0[i] + c1 * x1[i]) + (c2 * x2[i] + c3 * x3[i]) + ((c4 * x4[i] + c5 * x5[i]) + (c6 * x6[i] + c7 * x7[i]))
        n += 8
    for n in range(n, s0 + nb):  # the last N mod 8 samples
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


@njit(cache=True, nogil=True, fastmath=_FLAGS, inline="always")
def _start_norm(W, tiny):
    """||W|| in float64, at least tiny: the scale of the divergence rule."""
    n2 = 0.0
    for p in range(W.shape[0]):
        n2 += float(W[p]) * float(W[p])
    return max(math.sqrt(n2), tiny)


@njit(cache=True, nogil=True, fastmath=_FLAGS, inline="always")
def _agd_step(t, W, W_prev, W_new, G, gm, inv, step, beta, norm0, tol, divf, tiny, burn_in, acc,
              record_every, curve, err2_rest, W_t, tnorm):
    """Iteration t of Algorithm 1 on one trial's stored coordinates, given its gradient sums G.
    Returns RUNNING, CONVERGED or FAILED.

    W <- W - step inv gm G + beta (W - W_prev), W_prev <- the old W (W_new is scratch); the relative
    change and the divergence test (norm0: the start's norm), the rate sums acc (5) past burn_in,
    and every record_every iterations the error curve against W_t (err2_rest: the squared error of
    the coordinates not stored, tnorm: the target's norm). The one update both engines run (the
    shared engine per member). inline='always' puts it into each caller before LLVM runs, so the
    caller's constants fold into it as if written there (a plain call stays a call: LLVM keeps the
    separate 1/(nb K) factor and rounds differently). numba's cache keys a kernel on its own file:
    after editing this function, also touch shared.py (or clear __pycache__).
    """
    NP = W.shape[0]
    diff2 = 0.0
    w2 = 0.0
    wn2 = 0.0
    for p in range(NP):
        W_new[p] = W[p] - step * (G[p] * inv * gm[p]) + beta * (W[p] - W_prev[p])
        wn = W_new[p]  # the stored iterate (rounded to float32 there), as the reference measures it
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
    for p in range(NP):  # W_prev <- W, W <- W_new without allocating
        W_prev[p] = W[p]
        W[p] = W_new[p]
    if record_every > 0 and curve.shape[0] > 0 and (t + 1) % record_every == 0:
        e2 = err2_rest
        for p in range(NP):
            e = float(W[p]) - float(W_t[p])
            e2 += e * e
        curve[(t + 1) // record_every] = math.sqrt(e2) / tnorm
    if bad:
        return FAILED
    if rel < tol:
        return CONVERGED
    return RUNNING


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _agd(P, idx, D, y, seg_off, seg_len, w_off, gm, W, W_t, err2_rest, tnorm, T, nb, step,
         beta, tol, divf, tiny, max_iter, burn_in, record_every, curve, acc):
    """Run Algorithm 1 for one trial in place on W (its stored coordinates). Returns (iterations, status).

    Layout ``union`` when D is empty (gradient from the feature-major blocks P), ``dense``
    otherwise (gradient from the rows of D). Iteration t uses batch t mod T. gm holds the mask value
    of each stored coordinate.
    """
    K = seg_off.shape[0]
    NP = W.shape[0]
    dt = W.dtype
    S = P.shape[2]
    G = np.empty(NP, dtype=dt)
    Z = np.empty((K, S), dtype=dt)
    C = np.empty((K, S), dtype=dt)
    Z8 = np.empty((8, K), dtype=dt)
    C8 = np.empty((8, K), dtype=dt)
    z = np.empty(K, dtype=dt)
    rows = D.shape[0] > 0
    W_prev = W.copy()
    W_new = np.empty(NP, dtype=dt)
    norm0 = _start_norm(W, tiny)
    inv = 1.0 / (nb * K)
    status = RUNNING
    it = 0
    for t in range(max_iter):
        if rows:
            _gradient_rows(D, y, (t % T) * nb, nb, seg_off, seg_len, w_off, W, G, Z8, C8, z, K)
        else:
            _gradient_union(P, y, t % T, idx, seg_off, seg_len, W, G, Z, C, K)
        status = _agd_step(t, W, W_prev, W_new, G, gm, inv, step, beta, norm0, tol, divf, tiny, burn_in, acc,
                           record_every, curve, err2_rest, W_t, tnorm)
        it += 1
        if status != RUNNING:
            break
    return it, status


def _plan(mask: np.ndarray, W0: np.ndarray, N: int, itemsize: int, layout: str = "auto") -> tuple:
    """Layout for one trial: (cols, idx, seg_off, seg_len, w_off, rows, cols_of_W, layout name).

    cols: the columns of X stored; rows/cols_of_W index the (d, K) weight matrix: stored coordinate
    p is W[rows[p], cols_of_W[p]]. union: idx[p] is the position in cols that coordinate p reads,
    neuron j owns p in seg_off[j] .. + seg_len[j]. dense: neuron j reads the whole row (seg_off 0,
    seg_len len(cols)) and owns p in w_off[j] .. + seg_len[j].
    """
    d, K = mask.shape
    kept = mask != 0
    exact = bool(np.all((mask == 0) | (mask == 1))) and not bool(np.any(W0[~kept] != 0))
    if layout == "union" and not exact:
        raise bad_value("solve layout", "must not be 'union' unless the mask is 0/1 and the start has no weight off "
                        "it", layout, hint="use layout 'auto' or 'dense'")
    cols = np.flatnonzero(kept.any(1)) if exact else np.arange(d)
    r = kept.sum(0).astype(np.int64)
    if layout == "auto":
        layout = "union" if exact and cost.prefer_union(N, K, int(r.sum()), len(cols), itemsize) else "dense"
    if layout == "union":
        cols, idx, seg_off, seg_len, rows, cj = _union_plan(mask)
        return cols, idx, seg_off, seg_len, seg_off, rows, cj, "union"
    u = len(cols)
    seg_len = np.full(K, u, dtype=np.int64)
    return (cols, np.empty(0, np.int64), np.zeros(K, np.int64), seg_len, np.arange(K, dtype=np.int64) * u,
            np.tile(cols, K), np.repeat(np.arange(K), u), "dense")


def _union_plan(mask: np.ndarray) -> tuple:
    """The union layout of a 0/1 mask: (cols, idx, seg_off, seg_len, rows, cols_of_W), as in ``_plan``."""
    d, K = mask.shape
    kept = mask != 0
    cols = np.flatnonzero(kept.any(1))
    r = kept.sum(0).astype(np.int64)
    pos = np.full(d, -1, dtype=np.int64)
    pos[cols] = np.arange(len(cols))
    rows = np.concatenate([np.flatnonzero(kept[:, j]) for j in range(K)])
    seg_off = np.concatenate([[0], np.cumsum(r)[:-1]]).astype(np.int64)
    return cols, pos[rows], seg_off, r, rows, np.repeat(np.arange(K), r)


def _columns(X: np.ndarray, cols: np.ndarray, T: int, nb: int) -> np.ndarray:
    """P[b, c, s] = X[b * nb + s, cols[c]]: each batch's samples of the stored columns, feature-major."""
    # gathering rows of X^T copies once, already feature-major; with T > 1 the batches are re-laid once more
    Xt = X[:T * nb].T[cols].reshape(len(cols), T, nb)
    return np.ascontiguousarray(Xt.transpose(1, 0, 2))


def solve(X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, W0: torch.Tensor, solver: SolverSpec,
          *, W_target: torch.Tensor | None = None, record_every: int = 0,
          threads: int | None = None, layout: str = "auto") -> SolveResult:
    """Algorithm 1 for a batch of trials on the CPU; the interface and result of ``reference.solve``.

    threads: trials solved at once (default ``torch.get_num_threads()``, which follows
    OMP_NUM_THREADS and ``torch.set_num_threads``).
    layout: 'auto' (the cost model's choice per trial, see the module notes), 'union', or 'dense'
    (sample-major rows over the union of kept columns with masked weights; over all d columns for
    a mask with values other than 0/1 or a start with weight off the mask). 'union' needs a 0/1
    mask and a start on it.
    """
    if X.device.type != "cpu":
        raise bad_value("solve X", "must be on the CPU for the fast engine", str(X.device),
                        hint="use backend='reference'")
    if X.dtype not in (torch.float64, torch.float32):
        raise bad_value("solve X", "must be float64 or float32 for the fast engine", X.dtype,
                        hint="use backend='reference'")
    if layout not in LAYOUTS:
        raise bad_value("solve layout", f"must be one of {', '.join(LAYOUTS)}", layout)
    B, N, d = X.shape
    K = W0.shape[-1]
    dt = X.dtype
    npdt = np.float64 if dt == torch.float64 else np.float32
    itemsize = np.dtype(npdt).itemsize
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
        cols, idx, seg_off, seg_len, w_off, rows, cj, name = _plan(Mn[b], W0n[b], N, itemsize, layout)
        if name == "union":
            P, D = _columns(Xn[b], cols, T, nb), np.empty((0, 0), dtype=npdt)
        else:
            D = Xn[b] if len(cols) == d else np.ascontiguousarray(Xn[b][:, cols])
            P = np.empty((0, 0, 1), dtype=npdt)
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
        iters[b], status[b] = _agd(P, idx, D, yn[b], seg_off, seg_len, w_off, gm, W, Wt_s, err2_rest, tn, T, nb,
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

    return SolveResult(
        W=torch.from_numpy(W_out),
        iterations=torch.from_numpy(iters),
        converged=torch.from_numpy(status == CONVERGED),
        failed=torch.from_numpy(status == FAILED),
        rate=fit_rate(torch.from_numpy(acc.T.copy())),
        curve=torch.from_numpy(curve) if record else None,
        curve_iters=curve_iters,
    )


def layout(mask: torch.Tensor, W0: torch.Tensor, N: int) -> list[str]:
    """The layout ('union' or 'dense') each trial of a batch with N samples gets (for benchmarks and docs)."""
    Mn, Wn = mask.detach().cpu().numpy(), W0.detach().cpu().numpy()
    return [_plan(Mn[b], Wn[b], N, Wn.dtype.itemsize)[-1] for b in range(Mn.shape[0])]
