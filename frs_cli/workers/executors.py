"""The executors, looked up by name: in-process (`execution.py`), a process pool
(`pool.py`), or Dask workers (`distributed.py`, imported only when a scheduler is
given). The executors do not import this registry; it imports them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from frs_cli.workers.execution import Executor, SerialExecutor
from frs_cli.workers.pool import ProcessExecutor, die_with_parent

__all__ = ["EXECUTORS", "Executor", "ProcessExecutor", "SerialExecutor", "die_with_parent",
           "make_executor", "ordered_map"]  # fmt: skip


EXECUTORS: dict[str, type[Executor]] = {"serial": SerialExecutor, "process": ProcessExecutor}


def make_executor(
    workers: int, model: str, scheduler: str | None = None, encoder: str = "dlib"
) -> Executor:
    """One worker runs in-process (no start-up cost); more run in a process pool; with
    `scheduler` ("local" or a Dask address), on Dask workers. Each finds faces with the
    detector `model` and encodes them with the family `encoder`: their files are checked
    before any work, and only their networks are loaded."""
    if scheduler is not None:
        from frs_cli.workers.distributed import DaskExecutor

        return DaskExecutor(scheduler, workers, model, encoder)
    return EXECUTORS["serial" if workers <= 1 else "process"](workers, model, encoder)


def ordered_map(executor: Executor, fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
    """Results of fn over items, in order, keeping at most 2 jobs per worker in flight."""
    pending: deque[Future[Any]] = deque()
    for item in items:
        pending.append(executor.submit(fn, item))
        if len(pending) > 2 * executor.workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
