"""Where chunks of trials run: in this process, or on a Dask cluster, behind one interface.

An executor takes picklable tasks and a top-level function and yields (task, result) as each
finishes, in any order; the sweep writes each result to the store as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dask_executor import DaskExecutor

__all__ = ["LocalExecutor", "make_executor"]


class LocalExecutor:
    """Runs tasks one after another in this process (each task is already a batch of trials)."""

    name = "local"

    def run(self, fn: Callable, tasks: Iterable) -> Iterator[tuple[object, object]]:
        for task in tasks:
            yield task, fn(task)

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
