"""Algorithm 1 engines. ``solve`` runs the chosen implementation; all share one interface and one result.

The engine is an explicit choice, never a silent fallback: ``choose('auto' | 'fast' | 'reference' |
'slots')`` sets it (the CLI's ``--engine``; a sweep passes it to its workers). 'auto' is the fast
engine on the CPU when numba is installed, else the reference (with a warning). 'slots' is the
device-side scheduler of ``engine.slots`` (any device; CUDA graphs on a GPU), which pays off when a
sweep's tasks share its slots (``executors.PooledExecutor``). If numba is installed but fails to
load (a broken install, or a Ctrl-C landing in its import), that is an error, not a quiet switch to
other numbers. ``used()`` tells which engines actually ran, for the provenance of each stored row.

The choice and the record of what ran are per thread (a pooled sweep and a threaded Dask worker run
several tasks at once, each setting its own): a thread that never chose follows the main thread's
choice.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from typing import TYPE_CHECKING

from ..config import Choice, ConfigError, Instance, NonNegInt, SolverSpec, Tensor, validated
from .reference import SolveResult, gradient, risk, step_scale
from .reference import solve as solve_reference

if TYPE_CHECKING:
    import torch

    from ..config import SolverSpec

__all__ = [
    "ENGINES", "SolveResult", "choose", "chosen", "gradient", "mark_used", "resolve", "risk", "solve",
    "solve_reference", "step_scale", "used", "check_engine",
]

#: the engine choices of ``choose`` and ``--engine``
ENGINES = ("auto", "fast", "reference", "slots")
_main_choice = "auto"  # what the main thread chose: the choice of every thread that did not choose
_warned = False


class _PerThread(threading.local):
    choice: str | None = None

    def __init__(self):
        self.used: set[str] = set()


_thread = _PerThread()


def check_engine(name: object) -> str:
    """``name`` if it is one of ``ENGINES``, else ConfigError naming --engine."""
    if name not in ENGINES:
        raise ConfigError(f"--engine: must be one of {', '.join(ENGINES)} (got {name!r})")
    return name


def choose(name: str) -> str:
    """Set this thread's engine (one of ENGINES; on the main thread, also every thread's that did
    not choose); returns the previous choice."""
    global _main_choice
    previous = chosen()
    _thread.choice = check_engine(name)
    if threading.current_thread() is threading.main_thread():
        _main_choice = name
    return previous


def chosen() -> str:
    """This thread's engine choice (one of ENGINES), as set by ``choose``."""
    return _thread.choice if _thread.choice is not None else _main_choice


def used(reset: bool = False) -> set[str]:
    """The engines ``solve`` ran in this thread since the last reset (``reset=True`` returns them and
    starts afresh)."""
    out = set(_thread.used)
    if reset:
        _thread.used.clear()
    return out


def mark_used(name: str) -> None:
    """Record an engine that ran outside ``solve`` (the shared-problem engine of design='common')."""
    _thread.used.add(name)


def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def resolve(device_type: str = "cpu", backend: str = "auto", load: bool = True) -> str:
    """The engine a solve on ``device_type`` runs: 'fast', 'reference' or 'slots' (ConfigError if
    impossible). ``load=False``: only say which (a cost estimate), without loading numba or warning."""
    global _warned
    name = check_engine(chosen() if backend == "auto" else backend)
    if name == "auto":
        if device_type != "cpu":
            return "reference"
        if not _numba_installed():
            if not _warned and load:
                warnings.warn("numba is not installed: running the reference engine (slower; results agree to "
                              "~1e-12); install numba or pass --engine reference to silence this", stacklevel=3)
                _warned = True
            return "reference"
        name = "fast"
    if name == "fast":
        if device_type != "cpu":
            raise ConfigError(f"--engine fast: must run on the CPU (got device {device_type!r}); use --engine "
                              "reference or auto on a GPU")
        if load:
            _load_fast()
    return name


def _load_fast():
    try:
        from . import fast
    except ImportError as err:  # installed but broken, or an import cut short: never fall back silently
        raise ConfigError(f"--engine: the fast engine could not be loaded ({err}); fix the numba install or "
                          "pass --engine reference") from None
    return fast


@validated(X=Tensor, y=Tensor, mask=Tensor, W0=Tensor, solver=Instance(SolverSpec), W_target=Tensor | None,
           record_every=NonNegInt, backend=Choice(ENGINES))
def solve(X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, W0: torch.Tensor, solver: SolverSpec, *,
          W_target: torch.Tensor | None = None, record_every: int = 0, backend: str = "auto") -> SolveResult:
    """Run Algorithm 1 on a batch of B trials.

    X (B, N, d) inputs, y (B, N) targets, mask (B, d, K) 0/1 (the learner's kept weights), W0 (B, d, K)
    the start; ``solver`` sets eta, beta, the stopping rule and the cap. ``record_every > 0`` records
    the relative error to ``W_target`` (B, d, K) every that many iterations (``curve``).
    backend: 'reference' (batched torch, any device), 'fast' (compiled per-trial loops on the CPU),
    'slots' (device-side stopping in a shared set of slots, any device; ``engine.slots``) or 'auto'
    (this thread's ``choose``-n engine). The result's ``engine`` says which ran.

    Two trials with an accurate mask, started at 10 % relative distance from W*, recover it:

    >>> from ticketlab.config import OracleSpec, SolverSpec
    >>> from ticketlab.init import local_start
    >>> from ticketlab.metrics import aligned_relative_error
    >>> from ticketlab.oracle import make_problem
    >>> p = make_problem(OracleSpec(d=20, K=2, r=4, extra=2), 200, seeds=[0, 1])
    >>> W0 = local_start(p.W_star, p.mask, 0.1, p.seeds)
    >>> res = solve(p.X, p.y, p.mask, W0, SolverSpec(max_iter=3000, tol=1e-6), backend="reference")
    >>> res.engine, res.W.shape, res.converged.tolist()
    ('reference', torch.Size([2, 20, 2]), [True, True])
    >>> err, _ = aligned_relative_error(res.W, p.W_star)
    >>> bool((err < 1e-4).all())
    True
    """
    name = resolve(X.device.type, backend)
    if name == "fast":
        res = _load_fast().solve(X, y, mask, W0, solver, W_target=W_target, record_every=record_every)
    elif name == "slots":
        from . import slots

        res = slots.solve(X, y, mask, W0, solver, W_target=W_target, record_every=record_every)
    else:
        res = solve_reference(X, y, mask, W0, solver, W_target=W_target, record_every=record_every)
    res.engine = name
    _thread.used.add(name)
    return res


def _fast_available() -> bool:
    """Whether the fast engine loads here (benchmarks and tests; ``solve`` never falls back on this)."""
    try:
        _load_fast()
    except ConfigError:
        return False
    return True
