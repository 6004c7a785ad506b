"""Algorithm 1 the way a researcher would first write it: numpy, one trial at a time.

Same math and stopping rule as ``ticketlab.engine.reference`` (full-batch sampling): the honest
baseline the compiled engine must beat by a clear margin to be worth its complexity.
"""

from __future__ import annotations

import numpy as np


def agd_numpy(X, y, mask, W0, step, beta, tol, max_iter, diverge_factor=1e6):
    """One trial: X (N, d), y (N,), mask and W0 (d, K). Returns (W, iterations, converged, failed)."""
    N, K = X.shape[0], W0.shape[1]
    W, W_prev = W0.copy(), W0.copy()
    norm0 = max(np.linalg.norm(W0), np.finfo(W0.dtype).tiny)
    for t in range(max_iter):
        Z = X @ W
        res = np.maximum(Z, 0).mean(axis=1) - y
        G = X.T @ ((Z > 0) * res[:, None]) / (N * K) * mask
        W_new = W - step * G + beta * (W - W_prev)
        rel = np.linalg.norm(W_new - W) / max(np.linalg.norm(W), np.finfo(W.dtype).tiny)
        W_prev, W = W, W_new
        if not np.isfinite(rel) or np.linalg.norm(W) > diverge_factor * norm0:
            return W, t + 1, False, True
        if rel < tol:
            return W, t + 1, True, False
    return W, max_iter, False, False


def solve_numpy(X, y, mask, W0, step, beta, tol, max_iter, diverge_factor=1e6):
    """A batch, as the loop ``for trial in trials`` (numpy arrays (B, N, d), (B, N), (B, d, K))."""
    out = [agd_numpy(X[b], y[b], mask[b], W0[b], step, beta, tol, max_iter, diverge_factor)
           for b in range(X.shape[0])]
    W = np.stack([o[0] for o in out])
    its = np.array([o[1] for o in out])
    return W, its, np.array([o[2] for o in out]), np.array([o[3] for o in out])
