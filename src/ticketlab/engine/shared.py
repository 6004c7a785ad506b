"""Algorithm 1 for trials that share a problem: one X, one mask, many weight matrices (numba, CPU).

Why: a trial's iteration is two matrix-vector products over its N x u data (u = the union of the
kept columns); at Figure 2's shapes (N = 5000, d = 500) those data are 20 MB, so each trial streams
them from memory twice an iteration. Trials that share X and the mask (the start distances of one
Figure 2 column, Figure 6's noise levels, AGD and GD of Figure 3, under ``design='common'``) are
solved here together: per block of samples, each stored column is read once and multiplied into
every member's weights, so X is read once an iteration for all M members (matrix-matrix work).

Same semantics as ``reference.solve`` member by member: the update, the relative-change stopping
rule, the divergence rule, freezing a finished member at its last iterate, the rate fit and the
curve (the update is the fast engine's own step, ``fast._agd_step``, as are its union layout and
column blocks). Members may differ in their targets y (noise), their starts and their momentum beta; they
share eta, tol, max_iter, the step convention and the sampling. A finished member drops out of the
products, so the others run on alone. Needs a 0/1 mask and starts on it (the union layout);
``trial.run_common`` falls back to solving alone otherwise.

Results agree with solving each member alone to rounding (sums are taken in another order): the
tests check 1e-10 relative against the reference and identical iteration counts and verdicts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

from ..config import SolverSpec, bad_value
from . import cost
from .fast import _FLAGS, CONVERGED, FAILED, RUNNING, _agd_step, _columns, _start_norm, _union_plan
from .rate import RATE_BURN_IN, fit_rate
from .reference import SolveResult, step_scale

__all__ = ["BLOCK", "supports", "solve"]

#: samples per block: a block's Z and C for all members stay in L2 between the passes
BLOCK = 128


@njit(cache=True, nogil=True, fastmath=_FLAGS, inline="always")
def _four_blocks(Pp, idx, p, s0, L):
    """Samples s0 .. s0+L-1 of the columns that stored coordinates p .. p+3 read (views into Pp)."""
    return (Pp[idx[p], s0:s0 + L], Pp[idx[p + 1], s0:s0 + L], Pp[idx[p + 2], s0:s0 + L],
            Pp[idx[p + 3], s0:s0 + L])


@njit(cache=True, nogil=True, fastmath=_FLAGS, inline="always")
def _add4(g, p, a0, a1, a2, a3):
    """g[p .. p+3] += (a0, a1, a2, a3)."""
    g[p] += a0
    g[p + 1] += a1
    g[p + 2] += a2
    g[p + 3] += a3


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _gradient_members(P, Y, b, idx, seg_off, seg_len, W, G, active, na, K, Z, C):
    """G[m] = sum over batch b's samples of d(loss_m)/d(stored weights of member m), up to 1/(nb K),
    for the na members active[0:na]. P[b] (column, sample) is shared; W, G are (M, NP), Y (M, T nb).

    Per block of samples, each neuron's columns are taken four at a time; every column's block is
    loaded once and used for every member (the matrix-matrix step)."""
    S = P.shape[2]
    dt = W.dtype
    zero = dt.type(0)
    Pp = P[b]
    for q in range(na):
        G[active[q], :] = 0
    base = b * S
    for s0 in range(0, S, BLOCK):
        L = min(BLOCK, S - s0)
        for j in range(K):  # forward: Z[q, j, s] = <x_s on neuron j's support, w_{m, j}>
            o, m = seg_off[j], seg_len[j]
            for q in range(na):
                Z[q, j, :L] = 0
            t = 0
            while t + 4 <= m:
                r0, r1, r2, r3 = _four_blocks(Pp, idx, o + t, s0, L)
                q = 0
                while q + 2 <= na:  # two members a pass: each column block load serves 8 multiply-adds
                    w, v = W[active[q]], W[active[q + 1]]
                    w0, w1, w2, w3 = w[o + t], w[o + t + 1], w[o + t + 2], w[o + t + 3]
                    v0, v1, v2, v3 = v[o + t], v[o + t + 1], v[o + t + 2], v[o + t + 3]
                    z, y = Z[q, j], Z[q + 1, j]
                    for s in range(L):
                        a0, a1, a2, a3 = r0[s], r1[s], r2[s], r3[s]
                        z[s] += (w0 * a0 + w1 * a1) + (w2 * a2 + w3 * a3)
                        y[s] += (v0 * a0 + v1 * a1) + (v2 * a2 + v3 * a3)
                    q += 2
                if q < na:
                    w = W[active[q]]
                    w0, w1, w2, w3 = w[o + t], w[o + t + 1], w[o + t + 2], w[o + t + 3]
                    z = Z[q, j]
                    for s in range(L):
                        z[s] += (w0 * r0[s] + w1 * r1[s]) + (w2 * r2[s] + w3 * r3[s])
                t += 4
            while t < m:
                r0 = Pp[idx[o + t], s0:s0 + L]
                for q in range(na):
                    w0 = W[active[q], o + t]
                    z = Z[q, j]
                    for s in range(L):
                        z[s] += w0 * r0[s]
                t += 1
        for q in range(na):  # residual of the mean of the ReLUs, where each neuron fires
            y = Y[active[q]]
            for s in range(L):
                out = zero
                for j in range(K):
                    if Z[q, j, s] > 0:
                        out += Z[q, j, s]
                res = dt.type(out / K - y[base + s0 + s])
                for j in range(K):
                    C[q, j, s] = res if Z[q, j, s] > 0 else zero
        for j in range(K):  # backward: G[m, t] += <column block idx[t], C[m, j]>
            o, m = seg_off[j], seg_len[j]
            t = 0
            while t + 4 <= m:
                r0, r1, r2, r3 = _four_blocks(Pp, idx, o + t, s0, L)
                q = 0
                while q + 2 <= na:
                    c, e = C[q, j], C[q + 1, j]
                    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = zero
                    for s in range(L):
                        cs, es = c[s], e[s]
                        x0, x1, x2, x3 = r0[s], r1[s], r2[s], r3[s]
                        a0 += x0 * cs
                        a1 += x1 * cs
                        a2 += x2 * cs
                        a3 += x3 * cs
                        b0 += x0 * es
                        b1 += x1 * es
                        b2 += x2 * es
                        b3 += x3 * es
                    _add4(G[active[q]], o + t, a0, a1, a2, a3)
                    _add4(G[active[q + 1]], o + t, b0, b1, b2, b3)
                    q += 2
                if q < na:
                    c = C[q, j]
                    a0 = a1 = a2 = a3 = zero
                    for s in range(L):
                        cs = c[s]
                        a0 += r0[s] * cs
                        a1 += r1[s] * cs
                        a2 += r2[s] * cs
                        a3 += r3[s] * cs
                    _add4(G[active[q]], o + t, a0, a1, a2, a3)
                t += 4
            while t < m:
                r0 = Pp[idx[o + t], s0:s0 + L]
                for q in range(na):
                    c = C[q, j]
                    a0 = zero
                    for s in range(L):
                        a0 += r0[s] * c[s]
                    G[active[q], o + t] += a0
                t += 1


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _gradient_members_dense(D, Y, b, nb, W, G, active, na, K, Wcat, Zc, Gc):
    """The same gradients from sample-major rows D (N, u) with every member's weights dense over
    the union (stored coordinate p = column p // K, neuron p % K): two BLAS products per iteration,
    D[batch] @ [W_1 .. W_na] and D[batch]^T @ [C_1 .. C_na]. Worth it where the supports overlap so
    much that u K is close to sum_j r_j (BLAS runs several times faster per flop than the union loops)."""
    u = D.shape[1]
    dt = W.dtype
    zero = dt.type(0)
    Db = D[b * nb:(b + 1) * nb]
    Wv = Wcat[:u * na * K].reshape(u, na * K)  # contiguous views of the buffers for na members
    for q in range(na):
        w = W[active[q]]
        for i in range(u):
            for j in range(K):
                Wv[i, q * K + j] = w[i * K + j]
    Z = Zc[:nb * na * K].reshape(nb, na * K)
    np.dot(Db, Wv, Z)
    base = b * nb
    for s in range(nb):
        z = Z[s]
        for q in range(na):
            out = zero
            for j in range(K):
                if z[q * K + j] > 0:
                    out += z[q * K + j]
            res = dt.type(out / K - Y[active[q], base + s])
            for j in range(K):
                z[q * K + j] = res if z[q * K + j] > 0 else zero
    Gv = Gc[:u * na * K].reshape(u, na * K)
    np.dot(Db.T, Z, Gv)
    for q in range(na):
        g = G[active[q]]
        for i in range(u):
            for j in range(K):
                g[i * K + j] = Gv[i, q * K + j]


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _agd_members(P, idx, D, gm, Y, seg_off, seg_len, W, W_t, err2_rest, tnorm, T, nb, step, beta, tol, divf,
                 tiny, max_iter, burn_in, record_every, curve, rate_acc, iters, status):
    """Run Algorithm 1 for every member in place on W (M, NP); iters, status, rate_acc (M, 5) and
    curve (M, R) are filled per member. A member that finishes is frozen and leaves the products.
    Union layout when D is empty (gradient from P), dense otherwise (gradient from the rows of D,
    gm the mask value of each stored coordinate)."""
    K = seg_off.shape[0]
    M, NP = W.shape
    dt = W.dtype
    S = P.shape[2]
    G = np.empty((M, NP), dtype=dt)
    dense = D.shape[0] > 0
    Z = np.empty((M if not dense else 0, K, BLOCK), dtype=dt)
    C = np.empty((M if not dense else 0, K, BLOCK), dtype=dt)
    u = D.shape[1]
    Wcat = np.empty(u * M * K, dtype=dt)
    Zc = np.empty(nb * M * K if dense else 0, dtype=dt)
    Gc = np.empty(u * M * K, dtype=dt)
    W_prev = W.copy()
    W_new = np.empty(NP, dtype=dt)
    norm0 = np.empty(M)
    for q in range(M):
        norm0[q] = _start_norm(W[q], tiny)
    inv = 1.0 / (nb * K)
    active = np.arange(M)
    na = M
    for t in range(max_iter):
        if na == 0:
            break
        if dense:
            _gradient_members_dense(D, Y, t % T, nb, W, G, active, na, K, Wcat, Zc, Gc)
        else:
            _gradient_members(P, Y, t % T, idx, seg_off, seg_len, W, G, active, na, K, Z, C)
        keep = 0
        for q in range(na):  # the fast engine's update, member by member
            mm = active[q]
            status[mm] = _agd_step(t, W[mm], W_prev[mm], W_new, G[mm], gm, inv, step, beta[mm], norm0[mm], tol,
                                   divf, tiny, burn_in, rate_acc[mm], record_every, curve[mm], err2_rest[mm],
                                   W_t[mm], tnorm[mm])
            iters[mm] += 1
            if status[mm] == RUNNING:
                active[keep] = mm
                keep += 1
        na = keep
    return 0


def _dense_plan(mask: np.ndarray):
    """Stored coordinates of the dense layout: every (column of the union, neuron), row-major."""
    d, K = mask.shape
    cols = np.flatnonzero((mask != 0).any(1))
    return cols, np.repeat(cols, K), np.tile(np.arange(K), len(cols))


def supports(mask: torch.Tensor, W0: torch.Tensor) -> bool:
    """Whether this path can solve the group: a 0/1 mask and every start on it."""
    off = W0[..., mask == 0]  # W0 (M, d, K): every member's weight off the mask
    return bool(torch.all((mask == 0) | (mask == 1))) and not bool(torch.any(off != 0))


def solve(X: torch.Tensor, Y: torch.Tensor, mask: torch.Tensor, W0: torch.Tensor, solver: SolverSpec,
          betas=None, *, W_target: torch.Tensor | None = None, record_every: int = 0,
          threads: int | None = None, layout: str = "auto") -> list[SolveResult]:
    """Solve G groups of M members; group g shares X[g] (N, d) and mask[g] (d, K).

    Y (G, M, N): each member's targets; W0 (G, M, d, K): each member's start (on the mask);
    betas: M momentum values (default solver.beta for all); W_target (G, d, K): the target of the
    error curve, shared by a group's members. Returns one ``SolveResult`` per group, over its members.
    Groups run one per thread (``threads``, default ``torch.get_num_threads()``). layout: 'union'
    (feature-major columns, 4 N sum_j r_j flops a member), 'dense' (BLAS over the union, 4 N u K
    flops a member) or 'auto' (``cost.prefer_union_shared``)."""
    if layout not in ("auto", "union", "dense"):
        raise bad_value("solve layout", "must be 'auto', 'union' or 'dense'", layout)
    if X.device.type != "cpu" or X.dtype not in (torch.float64, torch.float32):
        raise bad_value("solve X", "must be float64 or float32 on the CPU for the shared-problem engine",
                        f"{X.dtype} on {X.device}")
    Gn, N, d = X.shape
    M, K = W0.shape[1], W0.shape[-1]
    dt = X.dtype
    npdt = np.float64 if dt == torch.float64 else np.float32
    step = solver.eta * step_scale(solver.step_convention, K)
    T = solver.num_batches if solver.sampling == "fresh" else 1
    nb = N // T
    tiny = float(torch.finfo(dt).tiny)
    beta = np.asarray([solver.beta] * M if betas is None else list(betas), dtype=np.float64)
    if beta.shape != (M,):
        raise bad_value("solve betas", f"must give one momentum per member ({M})", list(beta))
    record = record_every > 0 and W_target is not None
    curve_iters = list(range(0, solver.max_iter + 1, record_every)) if record else []
    Xn = X.detach().contiguous().numpy()
    Yn = Y.detach().to(dt).contiguous().numpy()
    Mn = mask.detach().to(dt).contiguous().numpy()
    W0n = W0.detach().to(dt).contiguous().numpy()
    Wtn = W_target.detach().to(dt).contiguous().numpy() if record else None
    out: list = [None] * Gn

    def one(g: int) -> None:
        if not supports(mask[g], W0[g]):
            raise ValueError("the shared-problem engine needs a 0/1 mask and starts on it")
        cols, idx, seg_off, seg_len, rows, cj = _union_plan(Mn[g])
        name = layout
        if name == "auto":
            name = "union" if cost.prefer_union_shared(N, K, len(rows), len(cols), Xn.itemsize, M) else "dense"
        if name == "union":
            P, D = _columns(Xn[g], cols, T, nb), np.empty((0, 0), dtype=npdt)
        else:
            cols, rows, cj = _dense_plan(Mn[g])
            D, P = np.ascontiguousarray(Xn[g][:T * nb][:, cols]), np.empty((0, 0, 1), dtype=npdt)
        gm = np.ascontiguousarray(Mn[g][rows, cj])
        W = np.ascontiguousarray(W0n[g][:, rows, cj])  # (M, NP)
        curve = np.full((M, len(curve_iters)), np.nan)
        if record:
            Wt = Wtn[g]
            tn = float(np.linalg.norm(Wt.astype(np.float64)))
            rest = (W0n[g] - Wt[None]).astype(np.float64)
            curve[:, 0] = np.sqrt((rest * rest).sum((1, 2))) / tn
            rest[:, rows, cj] = 0.0
            err2_rest = (rest * rest).sum((1, 2))
            Wt_s = np.ascontiguousarray(np.broadcast_to(Wt[rows, cj], W.shape))
            tnorm = np.full(M, tn)
        else:
            Wt_s, err2_rest, tnorm = W, np.zeros(M), np.ones(M)
        iters = np.zeros(M, dtype=np.int64)
        status = np.zeros(M, dtype=np.int64)
        acc = np.zeros((M, 5))
        _agd_members(P, idx, D, gm, np.ascontiguousarray(Yn[g]), seg_off, seg_len, W, Wt_s, err2_rest, tnorm, T, nb,
                     step, beta, solver.tol, solver.diverge_factor, tiny, solver.max_iter, RATE_BURN_IN,
                     record_every if record else 0, curve, acc, iters, status)
        W_out = W0n[g].copy()
        W_out[:, rows, cj] = W
        out[g] = SolveResult(W=torch.from_numpy(W_out), iterations=torch.from_numpy(iters),
                             converged=torch.from_numpy(status == CONVERGED),
                             failed=torch.from_numpy(status == FAILED),
                             rate=fit_rate(torch.from_numpy(acc.T.copy())),
                             curve=torch.from_numpy(curve) if record else None, curve_iters=curve_iters)

    n_threads = max(1, min(Gn, threads or torch.get_num_threads()))
    if n_threads == 1:
        for g in range(Gn):
            one(g)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(one, range(Gn)))
    return out
