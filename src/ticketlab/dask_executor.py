"""The Dask executor: batches of trials on a dask.distributed cluster, results streamed back as they finish.

Either connects to an existing scheduler (``address``) or starts a loopback LocalCluster of ``workers``
processes with one thread each. The client stays the only writer: ``run`` yields ``(task, result)`` to
the sweep, which stores each batch as it arrives.

Losing a worker loses nothing: the scheduler reruns the batches that were on it elsewhere (up to
dask's ``distributed.scheduler.allowed-failures`` worker deaths per batch); a batch lost beyond that,
or cancelled by a scheduler restart, is resubmitted by us up to ``resubmit`` times. A batch that
raises is rerun ``retries`` times by dask, then its error ends the sweep (what was stored stays).
Each task is yielded at most once, and the store ignores trial ids it already has, so a retried
batch is never stored twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator

from . import __version__
from .config import bad_value

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DaskExecutor"]

DEFAULT_CONNECT_TIMEOUT = 5.0  #: seconds to reach a scheduler before giving up with a ConfigError


def _on_worker(fn: Callable, task, torch_threads: int | None, client_version: str):
    """Runs on the worker: refuse mismatched code or a missing GPU, pin torch's thread pool, then run fn."""
    if __version__ != client_version:
        # the trial id includes the code version: a worker with other code would store wrong numbers under it
        raise RuntimeError(f"this Dask worker runs ticketlab {__version__} but the client runs {client_version}: "
                           "install the same ticketlab version on every worker")
    import torch

    device = getattr(task, "device", "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"this Dask worker has no CUDA device but the sweep asks for --device {device}: run "
                           "GPU sweeps on GPU workers only (start them with --resources GPU=1)")
    # torch's pool is per process: one thread per worker thread keeps N workers on N cores
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return fn(task)


def _lost(err: BaseException) -> bool:
    """A future lost to the cluster (its workers kept dying, or it was cancelled by a scheduler restart or
    reconnect), as opposed to an exception raised by the batch itself."""
    from concurrent.futures import CancelledError

    from distributed.scheduler import KilledWorker

    return isinstance(err, (KilledWorker, CancelledError)) or type(err).__name__ in ("FutureCancelledError",
                                                                                       "CommClosedError")


def _defuse_half_built_client(err: BaseException) -> None:
    """A Client whose constructor failed still runs ``close()`` from ``__del__`` at exit, which waits for
    the unreachable scheduler and prints a timeout traceback after our one-line error. Find it in the
    traceback and close it quietly now."""
    from distributed import Client

    tb = err.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, Client):
            try:
                obj.close(timeout=1)
            except Exception:
                pass
            obj._Client__loop = None  # what __del__ checks: nothing left to close
            return
        tb = tb.tb_next


def _worker_version() -> str:
    return __version__


def _positive(name: str, value, kind=int, allow_zero=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok or (kind is int and int(value) != value):
        rng = ">= 0" if allow_zero else "> 0"
        what = "an integer" if kind is int else "a number"
        raise bad_value(name, f"must be {what} {rng}", value)
    return kind(value)


class DaskExecutor:
    """Runs tasks on a Dask cluster and yields (task, result) in completion order.

    address: ``tcp://host:port`` of an existing scheduler; None starts a LocalCluster of ``workers``
        processes (one thread each, loopback only, no dashboard) that ``close()`` shuts down.
    torch_threads: torch threads per worker process (None: leave the worker's setting alone).
    retries: dask reruns of a batch that raised; resubmit: our resubmissions of a batch whose future
        was lost (each with a fresh key).
    connect_timeout: seconds to reach the scheduler; an unreachable one raises ConfigError.
    resources: dask worker resources each batch holds while it runs, e.g. {"GPU": 1} for workers started
        with ``--resources GPU=1``; "auto": {"GPU": 1} for CUDA batches when some worker offers a GPU
        resource (one batch per GPU at a time), else none (a resource no worker offers would wait forever).
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int = 2, *, torch_threads: int | None = 1,
                 retries: int = 1, resubmit: int = 2, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 resources: dict | str | None = "auto", memory_limit: str | int | None = "auto"):
        self.torch_threads = None if torch_threads is None else _positive("torch_threads", torch_threads)
        self.retries = _positive("retries", retries, allow_zero=True)
        self.resubmit = _positive("resubmit", resubmit, allow_zero=True)
        if not (resources is None or resources == "auto" or isinstance(resources, dict)):
            raise bad_value("resources", "must be a dict like {'GPU': 1}, 'auto' or None", resources)
        self.resources = resources
        timeout = _positive("connect_timeout", connect_timeout, kind=float)
        self._cluster = None
        self.resubmitted = 0  # batches we resubmitted after their futures were lost
        self._gpu_workers = None  # whether some worker offers a GPU resource (asked once, on first CUDA batch)
        from distributed import Client

        if address is not None:
            if not isinstance(address, str) or not address.strip():
                raise bad_value("--scheduler", "must be a scheduler address like tcp://host:8786", address)
            self.address = address.strip()
            try:
                self.client = Client(self.address, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as err:
                _defuse_half_built_client(err)
                raise bad_value("--scheduler", "must be a reachable Dask scheduler", self.address,
                                hint=f"none answered within {timeout:g} s ({type(err).__name__}); start one with "
                                "`dask scheduler` or check the address and port") from None
            self._check_workers()
        else:
            n = _positive("--workers", workers)
            from distributed import LocalCluster

            # processes (the GIL), one thread each; torch threads pinned per task too (see _on_worker)
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                         dashboard_address=None, memory_limit=memory_limit,
                                         silence_logs=logging.ERROR)
            self.address = self._cluster.scheduler_address
            self.client = Client(self._cluster, timeout=timeout, set_as_default=False)

    def _check_workers(self) -> None:
        """Fail early if a worker already connected cannot import ticketlab or runs another version (workers
        that join later are checked by every batch, in _on_worker)."""
        found = self.client.run(_worker_version, on_error="return")
        bad = {w: v for w, v in found.items() if v != __version__}
        if bad:
            self.client.close()
            shown = "; ".join(f"{w}: {v if isinstance(v, str) else type(v).__name__ + ': ' + str(v)}"
                              for w, v in list(bad.items())[:3])
            raise bad_value("--scheduler", f"must have workers that run ticketlab {__version__} like this client",
                            self.address, hint=f"{len(bad)} of its {len(found)} workers do not ({shown}); install "
                            "the same ticketlab version in the workers' environment")

    def _resources(self, task) -> dict | None:
        if self.resources != "auto":
            return self.resources
        if not getattr(task, "device", "cpu").startswith("cuda"):
            return None
        if self._gpu_workers is None:
            workers = self.client.scheduler_info().get("workers", {}).values()
            self._gpu_workers = any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers)
        return {"GPU": 1} if self._gpu_workers else None

    def _submit(self, fn: Callable, task, attempt: int):
        key = f"ticketlab-{getattr(task, 'experiment', 'task')}-{uuid.uuid4().hex}"
        return self.client.submit(_on_worker, fn, task, self.torch_threads, __version__, key=key, pure=False,
                                  retries=self.retries, resources=self._resources(task))

    def run(self, fn: Callable, tasks: Iterable) -> Iterator[tuple[object, object]]:
        from distributed import as_completed

        pending = {}  # future -> (task, resubmissions so far)
        for task in tasks:
            pending[self._submit(fn, task, 0)] = (task, 0)
        queue = as_completed(list(pending), loop=self.client.loop)
        try:
            for fut in queue:
                task, attempt = pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as err:
                    if not _lost(err):  # the batch's own error, already rerun `retries` times by dask
                        raise RuntimeError(f"a batch raised on the Dask cluster {self.address} "
                                           f"({self._describe(task)}): {type(err).__name__}: {err}") from err
                    if attempt >= self.resubmit:
                        raise RuntimeError(f"a batch was lost on the Dask cluster {self.address} "
                                           f"{attempt + 1} time(s) ({self._describe(task)}): {type(err).__name__}: "
                                           f"{err}; if its workers ran out of memory, lower --chunk-size or "
                                           "--memory-budget") from err
                    self.resubmitted += 1
                    new = self._submit(fn, task, attempt + 1)
                    pending[new] = (task, attempt + 1)
                    queue.add(new)
                    continue
                finally:
                    fut.release()
                yield task, result
        finally:
            if pending:  # interrupted or failed: finished batches are stored, the rest is not left running
                self.client.cancel(list(pending))

    @staticmethod
    def _describe(task) -> str:
        trials = getattr(task, "trials", None)
        if trials is None:
            return repr(task)[:200]
        return f"{getattr(task, 'experiment', '?')} cell {getattr(task, 'cell_index', '?')} trials {list(trials)}"

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None

