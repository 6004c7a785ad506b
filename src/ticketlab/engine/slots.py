"""Algorithm 1 on a fixed set of slots that trials flow through (any device; CUDA graphs on a GPU).

Why: the reference engine asks the host after every iteration whether a trial finished (a device
sync), launches some thirty kernels from Python per iteration, and runs each batch until its slowest
trial. On a GPU that is launch-bound: 0.75 ms a batched iteration at Figure 4's shapes whatever the
batch size (docs/performance.md). Here a set of slots holds trials of any number of solves (cells,
chunks, rounds of a bisection): a block of ``block`` iterations runs with no host involvement (every
stopping rule is a device-side mask), captured once as a CUDA graph and replayed on a GPU; between
blocks the host harvests the finished slots and refills them from the waiting trials. The slots
stay full until the queue runs dry, and the set grows and shrinks (by powers of two) with the work.

Same semantics as ``reference.solve`` trial by trial: the update, the relative-change stopping rule,
the divergence rule, freezing a finished trial at its last iterate, the rate fit, the curve and the
fresh-sampling batches (a trial's batch is its own iteration count mod T: blocks are whole
multiples of T, and a trial enters at a block's start). Trials pool when they share N, d, K, dtype,
device, the solver and the curve setting (``pool_key``); pools run side by side. A trial finished
mid-block waits, frozen, for the block's end: at most ``block - 1`` idle iterations of its slot.

``solve`` runs one call's trials through the slots; ``SlotServer`` lets many threads (the tasks of a
sweep, ``executors.PooledExecutor``) share them, which is where the gain is.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

import torch

from ..config import SolverSpec, bad_value
from .rate import RATE_BURN_IN, fit_rate
from .reference import SolveResult, step_scale

__all__ = ["DEFAULT_BLOCK", "DEFAULT_SLOTS", "SlotServer", "pool_key", "serving", "solve", "server"]

DEFAULT_BLOCK = 64  #: iterations between host checks (rounded up to a multiple of num_batches)
DEFAULT_SLOTS = {"cpu": 64, "cuda": 1024}  #: most trials in flight per pool, by device type
MIN_SLOTS = 8  #: the smallest slot set (the set is a power of two between this and the maximum)


def pool_key(X: torch.Tensor, W0: torch.Tensor, solver: SolverSpec, record: bool) -> tuple:
    """What trials must share to run in one slot set."""
    N, d = X.shape[-2:]
    return (X.device, X.dtype, N, d, W0.shape[-1], tuple(sorted(solver.model_dump().items())), record)


@dataclass(eq=False)
class _Request:
    """One solve call: B trials, their results filled in as they finish."""

    X: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    W0: torch.Tensor
    W_target: torch.Tensor | None
    solver: SolverSpec
    record_every: int
    left: int = 0
    W: list = field(default_factory=list)
    iterations: list = field(default_factory=list)
    converged: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    acc: list = field(default_factory=list)
    curve: list = field(default_factory=list)
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        B = self.X.shape[0]
        self.left = B
        for name in ("W", "iterations", "converged", "failed", "acc", "curve"):
            setattr(self, name, [None] * B)

    @property
    def record(self) -> bool:
        return self.record_every > 0 and self.W_target is not None

    def result(self) -> SolveResult:
        if self.error is not None:
            raise self.error
        curve_iters = list(range(0, self.solver.max_iter + 1, self.record_every)) if self.record else []
        return SolveResult(torch.stack(self.W), torch.stack(self.iterations), torch.stack(self.converged),
                           torch.stack(self.failed), fit_rate(torch.stack(self.acc, 1)),
                           torch.stack(self.curve) if self.record else None, curve_iters)


class _Slots:
    """B slots of one pool: the state of every trial in them, advanced a block at a time."""

    def __init__(self, B: int, like: _Request, block: int, graphs: bool):
        X, W0, s = like.X, like.W0, like.solver
        _, N, d = X.shape
        K = W0.shape[-1]
        dev, dt = X.device, X.dtype
        self.B, self.block, self.solver = B, block, s
        self.record, self.every = like.record, like.record_every
        self.T = s.num_batches if s.sampling == "fresh" else 1
        self.nb = N // self.T
        self.step = s.eta * step_scale(s.step_convention, K)
        self.tiny = torch.finfo(dt).tiny
        zeros = lambda *shape, dtype=dt: torch.zeros(*shape, dtype=dtype, device=dev)  # noqa: E731
        self.X, self.y, self.M = zeros(B, N, d), zeros(B, N), zeros(B, d, K)
        self.W, self.W_prev = zeros(B, d, K), zeros(B, d, K)
        self.norm0 = torch.ones(B, dtype=dt, device=dev)
        self.it = zeros(B, dtype=torch.long)
        self.live = zeros(B, dtype=torch.bool)
        self.conv, self.fail = zeros(B, dtype=torch.bool), zeros(B, dtype=torch.bool)
        self.acc = zeros(5, B, dtype=torch.float64)
        R = s.max_iter // self.every + 1 if self.record else 1
        self.curve = torch.full((B, R), float("nan"), dtype=torch.float64, device=dev)
        self.Wt = zeros(B, d, K) if self.record else None
        self.tnorm = torch.ones(B, dtype=torch.float64, device=dev)
        self.owner: list[tuple[_Request, int] | None] = [None] * B  # host side: which trial is where
        self.graphs = graphs
        self._graph = None

    STATE = ("X", "y", "M", "W", "W_prev", "norm0", "it", "live", "conv", "fail", "curve", "Wt", "tnorm")

    def occupied(self) -> int:
        return sum(o is not None for o in self.owner)

    def free(self) -> list[int]:
        return [i for i, o in enumerate(self.owner) if o is None]

    def load(self, slots: list[int], items: list[tuple[_Request, int]]) -> None:
        """Put waiting trials into free slots (one gather and one copy per state tensor)."""
        if not items:
            return
        dev = self.X.device
        idx = torch.tensor(slots, device=dev)
        reqs: dict[_Request, list[int]] = {}
        for r, i in items:
            reqs.setdefault(r, []).append(i)

        def gather(get):
            return torch.cat([get(r)[torch.tensor(ii, device=dev)] for r, ii in reqs.items()])

        order = [(r, i) for r, ii in reqs.items() for i in ii]
        W0 = gather(lambda r: r.W0)
        self.X.index_copy_(0, idx, gather(lambda r: r.X))
        self.y.index_copy_(0, idx, gather(lambda r: r.y))
        self.M.index_copy_(0, idx, gather(lambda r: r.mask).to(self.M.dtype))
        self.W.index_copy_(0, idx, W0)
        self.W_prev.index_copy_(0, idx, W0)
        self.norm0.index_copy_(0, idx, W0.flatten(1).norm(dim=1).clamp_min(self.tiny))
        self.it.index_fill_(0, idx, 0)
        self.live.index_fill_(0, idx, True)
        self.conv.index_fill_(0, idx, False)
        self.fail.index_fill_(0, idx, False)
        self.acc.index_fill_(1, idx, 0.0)
        self.curve.index_fill_(0, idx, float("nan"))
        if self.record:
            Wt = gather(lambda r: r.W_target)
            tn = Wt.flatten(1).norm(dim=1).to(torch.float64)
            self.Wt.index_copy_(0, idx, Wt)
            self.tnorm.index_copy_(0, idx, tn)
            self.curve[idx, 0] = (W0 - Wt).flatten(1).norm(dim=1).to(torch.float64) / tn
        for s, o in zip(slots, order):
            self.owner[s] = o

    def _iteration(self, j: int) -> None:
        """One iteration for every slot, in place, with no host sync (the reference's update and rules)."""
        s = self.solver
        if self.T > 1:
            a = (j % self.T) * self.nb
            Xb, yb = self.X[:, a:a + self.nb], self.y[:, a:a + self.nb]
        else:
            Xb, yb = self.X, self.y
        W, live = self.W, self.live
        Z = Xb @ W
        res = torch.relu(Z).mean(-1) - yb
        G = Xb.transpose(-1, -2) @ ((Z > 0).to(Xb.dtype) * res[..., None]) / (Xb.shape[-2] * W.shape[-1])
        G = G * self.M
        W_new = W - self.step * G + s.beta * (W - self.W_prev)
        diff = (W_new - W).flatten(1).norm(dim=1)
        rel = diff / W.flatten(1).norm(dim=1).clamp_min(self.tiny)
        bad = ~torch.isfinite(rel) | (W_new.flatten(1).norm(dim=1) > s.diverge_factor * self.norm0)
        done = live & (bad | (rel < s.tol))
        t1 = self.it + 1  # this iteration's number, per trial
        ok = live & (t1 > RATE_BURN_IN) & torch.isfinite(rel) & (diff > 0)
        ly = torch.log(torch.where(ok, diff, torch.ones_like(diff))).to(torch.float64)
        w = ok.to(torch.float64)
        tt = t1.to(torch.float64)
        self.acc += torch.stack([w, w * tt, w * tt * tt, w * ly, w * tt * ly])
        self.it += live.to(torch.long)
        keep = live[:, None, None]
        W_prev_next = torch.where(keep, W, self.W_prev)
        self.W.copy_(torch.where(keep, W_new, W))
        self.W_prev.copy_(W_prev_next)
        if self.record:
            rec = live & (self.it % self.every == 0)
            c = (self.it // self.every).clamp_max(self.curve.shape[1] - 1)[:, None]
            err = ((self.W - self.Wt).flatten(1).norm(dim=1).to(torch.float64) / self.tnorm)[:, None]
            self.curve.scatter_(1, c, torch.where(rec[:, None], err, self.curve.gather(1, c)))
        self.fail |= done & bad
        self.conv |= done & ~bad
        self.live &= ~done & (self.it < s.max_iter)

    def _block(self) -> None:
        for j in range(self.block):
            self._iteration(j)

    def run_block(self) -> None:
        if not self.graphs:
            self._block()
            return
        if self._graph is None:
            self._capture()
        self._graph.replay()

    def _capture(self) -> None:
        """Record the block as a CUDA graph over the static state (warm up on a copy of it first)."""
        saved = {n: getattr(self, n).clone() for n in self.STATE + ("acc",) if getattr(self, n) is not None}
        stream = torch.cuda.Stream(device=self.X.device)
        stream.wait_stream(torch.cuda.current_stream(self.X.device))
        with torch.cuda.stream(stream):
            self._block()  # warm-up: cuBLAS handles and workspaces exist before the capture
        torch.cuda.current_stream(self.X.device).wait_stream(stream)
        for n, t in saved.items():
            getattr(self, n).copy_(t)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._block()
        self._graph = graph

    def harvest(self) -> list[_Request]:
        """Hand the finished trials to their requests and free their slots (one host sync); returns
        the requests that are now complete."""
        live = self.live.tolist()
        done = [i for i, o in enumerate(self.owner) if o is not None and not live[i]]
        if not done:
            return []
        idx = torch.tensor(done, device=self.X.device)
        W, it, conv, fail = self.W[idx], self.it[idx], self.conv[idx], self.fail[idx]
        acc, curve = self.acc[:, idx], self.curve[idx]
        complete = []
        for k, i in enumerate(done):
            r, b = self.owner[i]
            self.owner[i] = None
            r.W[b], r.iterations[b], r.converged[b], r.failed[b] = W[k], it[k], conv[k], fail[k]
            r.acc[b], r.curve[b] = acc[:, k], curve[k]
            r.left -= 1
            if r.left == 0:
                complete.append(r)
        return complete

    def resized(self, B: int) -> _Slots:
        """A set of B slots holding this set's trials (in its first slots)."""
        new = _Slots.__new__(_Slots)
        new.__dict__.update({k: v for k, v in self.__dict__.items() if k not in self.STATE + ("acc",)})
        rows = [i for i, o in enumerate(self.owner) if o is not None]
        assert len(rows) <= B
        idx = torch.tensor(rows, dtype=torch.long, device=self.X.device)
        for n in self.STATE:
            t = getattr(self, n)
            if t is None:
                setattr(new, n, None)
                continue
            fresh = t.new_zeros((B, *t.shape[1:])) if n not in ("norm0", "tnorm", "curve") else \
                t.new_full((B, *t.shape[1:]), float("nan") if n == "curve" else 1.0)
            fresh[:len(rows)] = t[idx]
            setattr(new, n, fresh)
        new.acc = self.acc.new_zeros((5, B))
        new.acc[:, :len(rows)] = self.acc[:, idx]
        new.owner = [self.owner[i] for i in rows] + [None] * (B - len(rows))
        new.B, new._graph = B, None
        return new


def _size(want: int, most: int) -> int:
    return max(MIN_SLOTS, min(most, 1 << max(0, math.ceil(math.log2(max(1, want))))))


class _Scheduler:
    """The pools of waiting and running trials; ``step`` runs one block of every pool."""

    def __init__(self, slots: int | None, block: int, graphs: bool | None):
        self.slots, self.block, self.graphs = slots, block, graphs
        self.waiting: dict[tuple, deque] = {}
        self.running: dict[tuple, _Slots] = {}

    def add(self, req: _Request) -> None:
        key = pool_key(req.X, req.W0, req.solver, req.record)
        self.waiting.setdefault(key, deque()).extend((req, i) for i in range(req.X.shape[0]))

    def busy(self) -> bool:
        return any(self.waiting.values()) or bool(self.running)

    def step(self) -> list[_Request]:
        complete = []
        for key in list(self.waiting.keys() | self.running.keys()):
            queue = self.waiting.get(key, deque())
            slots = self.running.get(key)
            held = slots.occupied() if slots is not None else 0
            if slots is None and not queue:
                continue
            req = queue[0][0] if queue else slots.owner[next(i for i, o in enumerate(slots.owner) if o)][0]
            dev = req.X.device
            most = self.slots or DEFAULT_SLOTS.get(dev.type, DEFAULT_SLOTS["cuda"])
            B = _size(held + len(queue), most)
            if slots is None:
                T = req.solver.num_batches if req.solver.sampling == "fresh" else 1
                graphs = dev.type == "cuda" if self.graphs is None else self.graphs
                slots = _Slots(B, req, math.ceil(self.block / T) * T, graphs)
            elif B > slots.B or B <= slots.B // 4:
                slots = slots.resized(max(B, held))
            self.running[key] = slots
            free = slots.free()
            n = min(len(free), len(queue))
            slots.load(free[:n], [queue.popleft() for _ in range(n)])
            slots.run_block()
            complete += slots.harvest()
            if slots.occupied() == 0 and not queue:
                del self.running[key]
                self.waiting.pop(key, None)
        return complete


def _check_sizes(where: str, block, slots) -> None:
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise bad_value(f"{where} block", "must be a positive integer of iterations", block)
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        raise bad_value(f"{where} slots", "must be a positive integer (or None for the device's default)", slots)


def _check(X, y, mask, W0, W_target) -> None:
    if X.ndim != 3 or X.shape[0] == 0:
        raise bad_value("solve X", "must be (B, N, d) with at least one trial", tuple(X.shape))
    B, N, d = X.shape
    K = W0.shape[-1]
    want = {"y": (B, N), "mask": (B, d, K), "W0": (B, d, K), "W_target": (B, d, K)}
    for name, t in (("y", y), ("mask", mask), ("W0", W0), ("W_target", W_target)):
        if t is not None and tuple(t.shape) != want[name]:
            raise bad_value(f"solve {name}", f"must have shape {want[name]} to match X {tuple(X.shape)}", tuple(t.shape))


def solve(X: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, W0: torch.Tensor, solver: SolverSpec, *,
          W_target: torch.Tensor | None = None, record_every: int = 0, block: int = DEFAULT_BLOCK,
          slots: int | None = None, graphs: bool | None = None) -> SolveResult:
    """Algorithm 1 for a batch of B trials through the slots (``reference.solve``'s interface and result).

    Inside ``serving(server)`` the trials join that server's slots with every other thread's;
    otherwise this call runs its own. ``slots``: most trials in flight (default: DEFAULT_SLOTS for
    the device); ``block``: iterations between host checks; ``graphs``: replay each block as a CUDA
    graph (default: on CUDA devices)."""
    _check_sizes("solve", block, slots)
    _check(X, y, mask, W0, W_target)
    req = _Request(X, y, mask, W0, W_target, solver, record_every)
    active = _active.server
    if active is not None:
        return active.submit(req)
    sched = _Scheduler(slots, block, graphs)
    sched.add(req)
    while sched.busy():
        sched.step()
    return req.result()


class SlotServer:
    """Slots shared by many threads: each ``solve`` inside ``serving(self)`` submits its trials and
    waits; one thread runs the blocks. Errors reach every waiting caller."""

    def __init__(self, slots: int | None = None, block: int = DEFAULT_BLOCK, graphs: bool | None = None):
        _check_sizes("SlotServer", block, slots)
        self._sched = _Scheduler(slots, block, graphs)
        self._new: list[_Request] = []
        self._cv = threading.Condition()
        self._closed = False
        self._aborted = False
        self._error: BaseException | None = None
        self._held: set[_Request] = set()
        self._thread = threading.Thread(target=self._loop, name="ticketlab-slots", daemon=True)
        self._thread.start()

    def submit(self, req: _Request) -> SolveResult:
        with self._cv:
            if self._closed or self._error is not None:
                raise RuntimeError("the slot server is closed") from self._error
            self._new.append(req)
            self._cv.notify_all()
        req.finished.wait()
        return req.result()

    def _loop(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._new and not self._sched.busy() and not self._closed:
                        self._cv.wait()
                    if self._aborted:
                        raise RuntimeError("the slot server was stopped before these trials finished")
                    if self._closed and not self._new and not self._sched.busy():
                        return
                    for r in self._new:
                        self._sched.add(r)
                        self._held.add(r)
                    self._new.clear()
                for r in self._sched.step():
                    self._held.discard(r)
                    r.finished.set()
        except BaseException as err:  # never leave a caller waiting forever
            with self._cv:
                self._error = None if self._aborted else err
                pending = list(self._held) + self._new
            for r in pending:
                r.error = err
                r.finished.set()

    def abort(self) -> None:
        """Stop at the next block: every waiting caller gets an error (their trials are not finished)."""
        with self._cv:
            self._aborted = self._closed = True
            self._cv.notify_all()

    def close(self) -> None:
        """Finish what was submitted, then stop the thread."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Active(threading.local):
    server: SlotServer | None = None


_active = _Active()


def server() -> SlotServer | None:
    """The server ``solve`` submits to from this thread, if any."""
    return _active.server


class serving:
    """``with serving(server):`` in a thread makes that thread's slot solves join ``server``."""

    def __init__(self, srv: SlotServer | None):
        self.srv = srv

    def __enter__(self):
        self.prev, _active.server = _active.server, self.srv
        return self.srv

    def __exit__(self, *exc):
        _active.server = self.prev
