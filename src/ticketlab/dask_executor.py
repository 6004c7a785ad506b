"""The Dask executor: batches of trials on a dask.distributed cluster, results streamed back as they finish.

Either connects to an existing scheduler (``address``) or starts a loopback LocalCluster of ``workers``
processes with one thread each. The client stays the only writer: ``run`` yields ``(task, result)`` to
the sweep, which stores each batch as it arrives.

Losing a worker loses nothing: the scheduler reruns the batches that were on it elsewhere (up to
dask's ``distributed.scheduler.allowed-failures`` worker deaths per batch); a batch that still fails
(an exception ``retries`` times, or lost futures after a scheduler reconnect) is resubmitted by us up
to ``resubmit`` times. Each task is yielded at most once, and the store ignores trial ids it already
has, so a retried batch is never stored twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator

from . import __version__
from .config import ConfigError

DEFAULT_CONNECT_TIMEOUT = 5.0  # seconds to reach a scheduler before giving up with a ConfigError


def _on_worker(fn: Callable, task, torch_threads: int | None, client_version: str):
    """Runs on the worker: pin torch's thread pool, refuse a mismatched code version, then run fn."""
    if __version__ != client_version:
        # the trial id includes the code version: a worker with other code would store wrong numbers under it
        raise RuntimeError(f"this Dask worker runs ticketlab {__version__} but the client runs {client_version}: "
                           "install the same ticketlab version on every worker")
    if torch_threads is not None:
        import torch

        # torch's pool is per process: one thread per worker thread keeps N workers on N cores
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
    return fn(task)


def _positive(name: str, value, kind=int, allow_zero=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok or (kind is int and int(value) != value):
        rng = ">= 0" if allow_zero else "> 0"
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"invalid {name} {value!r}: must be {what} {rng}")
    return kind(value)


class DaskExecutor:
    """Runs tasks on a Dask cluster and yields (task, result) in completion order.

    address: ``tcp://host:port`` of an existing scheduler; None starts a LocalCluster of ``workers``
        processes (one thread each, loopback only, no dashboard) that ``close()`` shuts down.
    torch_threads: torch threads per worker process (None: leave the worker's setting alone).
    retries: dask reruns of a batch that raised; resubmit: our resubmissions of a batch whose future
        was lost or failed after that (each with a fresh key).
    connect_timeout: seconds to reach the scheduler; an unreachable one raises ConfigError.
    resources: dask worker resources each batch needs, e.g. {"GPU": 1} for workers started with
        ``--resources GPU=1``.
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int = 2, *, torch_threads: int | None = 1,
                 retries: int = 1, resubmit: int = 2, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 resources: dict | None = None, memory_limit: str | int | None = "auto"):
        self.torch_threads = None if torch_threads is None else _positive("torch_threads", torch_threads)
        self.retries = _positive("retries", retries, allow_zero=True)
        self.resubmit = _positive("resubmit", resubmit, allow_zero=True)
        self.resources = dict(resources) if resources else None
        timeout = _positive("connect_timeout", connect_timeout, kind=float)
        self._cluster = None
        from distributed import Client

        if address is not None:
            if not isinstance(address, str) or not address.strip():
                raise ConfigError(f"invalid --scheduler {address!r}: give a scheduler address like tcp://host:8786")
            self.address = address.strip()
            try:
                self.client = Client(self.address, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as err:
                raise ConfigError(f"invalid --scheduler {self.address!r}: no Dask scheduler reachable there within "
                                  f"{timeout:g} s ({type(err).__name__}); start one with `dask scheduler` or "
                                  "check the address and port") from None
        else:
            n = _positive("--workers", workers)
            from distributed import LocalCluster

            # processes (the GIL), one thread each; torch threads pinned per task too (see _on_worker)
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                         dashboard_address=None, memory_limit=memory_limit,
                                         silence_logs=logging.ERROR)
            self.address = self._cluster.scheduler_address
            self.client = Client(self._cluster, timeout=timeout, set_as_default=False)

    def _submit(self, fn: Callable, task, attempt: int):
        key = f"ticketlab-{getattr(task, 'experiment', 'task')}-{uuid.uuid4().hex}"
        return self.client.submit(_on_worker, fn, task, self.torch_threads, __version__, key=key, pure=False,
                                  retries=self.retries, resources=self.resources)

    def run(self, fn: Callable, tasks: Iterable) -> Iterator[tuple[object, object]]:
        from distributed import as_completed

        pending = {}  # future -> (task, attempt)
        tasks = list(tasks)
        for task in tasks:
            pending[self._submit(fn, task, 0)] = (task, 0)
        queue = as_completed(list(pending), loop=self.client.loop)
        try:
            for fut in queue:
                task, attempt = pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as err:  # a lost future (KilledWorker, CancelledError) or the task's own error
                    if attempt >= self.resubmit:
                        raise RuntimeError(f"a batch failed on the Dask cluster {self.address} after "
                                           f"{attempt + 1} submissions ({self._describe(task)}): "
                                           f"{type(err).__name__}: {err}") from err
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

