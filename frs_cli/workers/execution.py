"""The executor interface: where segment and photo work runs. Every executor hands out
`concurrent.futures.Future`s, so the scan loop is the same for each: this one runs jobs
in-process, `pool.py` in a process pool, `distributed.py` on Dask; `executors.py` is the
registry that picks one. Workers return results; only the parent writes output. While a
job runs, it reports how far it got (`progress_report`); each executor carries those
reports to the parent's `listen` callback, so a progress bar moves during long segments.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from frs_cli.faces import families
from frs_cli.workers import progress_report


class Executor:
    name = "base"
    workers = 1

    def __init__(self, workers: int = 1, model: str = "hog", encoder: str = "dlib"):
        """`model`: the detector the jobs find faces with; `encoder`: the family whose
        networks encode them (families.check and families.preload)."""
        self.workers = workers

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        raise NotImplementedError

    def shutdown(self, cancel: bool = False) -> None:
        pass

    def recover(self) -> None:
        """Make the executor usable again after a worker died (see ProcessExecutor)."""

    def listen(self, callback: Callable[[progress_report.Report], None]) -> None:
        """Call `callback` with each progress report of the jobs (in some thread)."""
        progress_report.set_sink(callback)


class SerialExecutor(Executor):
    """Runs each job at once in this process: one worker, no start-up cost."""

    name = "serial"

    def __init__(self, workers: int = 1, model: str = "hog", encoder: str = "dlib"):
        super().__init__(1, model, encoder)
        families.check(model, encoder)
        families.preload(model, encoder)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(arg))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(err, KeyboardInterrupt):
                raise
            future.set_exception(err)
        return future
