"""Where segment and photo work runs, looked up by name: in-process, or a process pool.

Both hand out `concurrent.futures.Future`s, so the scan loop is the same for
each (and for the Dask executor in `distributed.py`). Workers return results;
only the parent writes output.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from frs_cli import entry, models


class Executor:
    name = "base"
    workers = 1

    def __init__(self, workers: int = 1, model: str = "hog"):
        self.workers = workers

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        raise NotImplementedError

    def shutdown(self, cancel: bool = False) -> None:
        pass


class SerialExecutor(Executor):
    """Runs each job at once in this process: one worker, no start-up cost."""

    name = "serial"

    def __init__(self, workers: int = 1, model: str = "hog"):
        super().__init__(1, model)
        models.preload(model)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(arg))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(err, KeyboardInterrupt):
                raise
            future.set_exception(err)
        return future


def _init_worker(model: str) -> None:
    # The parent handles Ctrl-C and stops the pool; workers just stop with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    models.preload(model)


class ProcessExecutor(Executor):
    """A pool of processes, started at once: each loads the models (~0.11 s) while the
    parent opens the watchlist and probes the inputs, so start-up uses every core.
    (Loading them in the parent before forking left the other core idle for that time.)"""

    name = "process"

    def __init__(self, workers: int, model: str = "hog"):
        self.workers = workers
        entry.one_blas_thread()  # one BLAS thread per worker: the pool already fills the cores
        models.check(model)  # a missing file is one clear error here, not a broken pool
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        if "fork" in methods:
            _import_for_workers()
        self.pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(model,)
        )
        # The first job starts every worker (with fork, all at once).
        self.pool.submit(os.getpid)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        return self.pool.submit(fn, arg)

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            # Stop promptly on Ctrl-C: running jobs are abandoned, not awaited.
            for proc in list(getattr(self.pool, "_processes", {}).values()):
                proc.terminate()
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


def _import_for_workers() -> None:
    """Modules every worker needs, imported once here rather than once per worker."""
    import av  # noqa: F401
    import dlib  # noqa: F401

    import frs_cli.analyse  # noqa: F401


EXECUTORS: dict[str, type[Executor]] = {"serial": SerialExecutor, "process": ProcessExecutor}


def make_executor(workers: int, model: str) -> Executor:
    """One worker runs in-process (no start-up cost); more run in a process pool."""
    return EXECUTORS["serial" if workers <= 1 else "process"](workers, model)


def ordered_map(executor: Executor, fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
    """Results of fn over items, in order, keeping at most 2 jobs per worker in flight."""
    pending: deque[Future[Any]] = deque()
    for item in items:
        pending.append(executor.submit(fn, item))
        if len(pending) > 2 * executor.workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
