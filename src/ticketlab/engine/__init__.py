"""Algorithm 1 engines. ``solve`` picks the implementation; all share one interface and one result."""

from .reference import SolveResult, gradient, risk, step_scale
from .reference import solve as solve_reference

__all__ = ["SolveResult", "gradient", "risk", "solve", "solve_reference", "step_scale"]


def solve(X, y, mask, W0, solver, *, W_target=None, record_every=0, backend="auto"):
    """Run Algorithm 1 on a batch of trials.

    backend: 'reference' (batched torch, any device), 'fast' (compiled per-trial loops on the CPU,
    when available) or 'auto' (fast on the CPU where it is installed, reference otherwise).
    """
    if backend == "auto":
        backend = "fast" if X.device.type == "cpu" and _fast_available() else "reference"
    if backend == "fast":
        from .fast import solve as solve_fast

        return solve_fast(X, y, mask, W0, solver, W_target=W_target, record_every=record_every)
    if backend != "reference":
        raise ValueError(f"backend must be 'auto', 'reference' or 'fast' (got {backend!r})")
    return solve_reference(X, y, mask, W0, solver, W_target=W_target, record_every=record_every)


def _fast_available() -> bool:
    try:
        from . import fast  # noqa: F401
    except ImportError:
        return False
    return True
