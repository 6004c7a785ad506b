"""Where chunks of trials run: in this process, or on a Dask cluster, behind one interface.

An executor takes picklable tasks and a top-level function and yields (task, result) as each
finishes, in any order; the sweep writes each result to the store as it arrives.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dask_executor import DaskExecutor

__all__ = ["LocalExecutor", "PooledExecutor", "make_executor"]


class LocalExecutor:
    """Runs tasks one after another in this process (each task is already a batch of trials); tasks
    of the 'slots' engine run side by side instead, sharing one set of slots (``PooledExecutor``)."""

    name = "local"

    def run(self, fn: Callable, tasks: Iterable) -> Iterator[tuple[object, object]]:
        tasks = iter(tasks)
        first = next(tasks, None)
        if first is None:
            return
        rest = itertools.chain([first], tasks)
        if getattr(first, "engine", None) == "slots":
            yield from PooledExecutor().run(fn, rest)
            return
        for task in rest:
            yield task, fn(task)

    def close(self) -> None:
        pass


class PooledExecutor:
    """Runs tasks in threads of this process whose Algorithm 1 solves share one ``SlotServer``: the
    trials of many cells fill the device's slots together, so no batch waits for its slowest trial
    and a GPU runs whole blocks of iterations per launch (``engine.slots``). Tasks are handed out
    lazily, so that about ``2 * slots`` trials are drawn or running at a time; results are yielded as
    tasks finish, in any order. Each trial's numbers are its own (they do not depend on its slot)."""

    name = "pooled"

    def __init__(self, slots: int | None = None, block: int | None = None, threads: int | None = None):
        from .engine import slots as slot_engine

        self.slots, self.threads = slots, threads
        self.block = block or slot_engine.DEFAULT_BLOCK

    def run(self, fn: Callable, tasks: Iterable) -> Iterator[tuple[object, object]]:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        from .engine import slots as slot_engine

        tasks = iter(tasks)
        first = next(tasks, None)
        if first is None:
            return
        device = getattr(first, "device", "cpu")
        most = self.slots or slot_engine.DEFAULT_SLOTS.get(str(device).split(":")[0], 1024)
        per = max(1, len(getattr(first, "trials", ())) * len(first.cells()) if hasattr(first, "cells") else 1)
        threads = self.threads or max(2, min(64, math.ceil(2 * most / per)))
        server = slot_engine.SlotServer(self.slots, self.block)

        def call(task):
            with slot_engine.serving(server):
                return fn(task)

        pending: dict = {}
        pool = ThreadPoolExecutor(threads, thread_name_prefix="ticketlab-task")
        ok = False
        try:
            for task in itertools.chain([first], tasks):
                while len(pending) >= threads:
                    yield from self._collect(pending, wait(pending, return_when=FIRST_COMPLETED).done)
                pending[pool.submit(call, task)] = task
            while pending:
                yield from self._collect(pending, wait(pending, return_when=FIRST_COMPLETED).done)
            ok = True
        finally:
            if not ok:  # an error or an interrupt: the tasks in flight stop at the next block, unwritten
                server.abort()
            pool.shutdown(wait=True, cancel_futures=True)
            server.close()

    @staticmethod
    def _collect(pending: dict, done) -> Iterator[tuple[object, object]]:
        for f in done:
            task = pending.pop(f)
            yield task, f.result()

    def close(self) -> None:
        pass


def make_executor(kind: str = "local", **kwargs) -> LocalExecutor | DaskExecutor:
    """The executor that runs a sweep's chunks: 'local' (this process) or 'dask' (``kwargs`` go to
    ``DaskExecutor``); ConfigError for any other kind."""
    if kind == "local":
        return LocalExecutor()
    if kind == "dask":
        from .dask_executor import DaskExecutor

        return DaskExecutor(**kwargs)
    from .config import bad_value

    raise bad_value("--executor", "must be 'local' or 'dask'", kind)
