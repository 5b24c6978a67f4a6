"""The process pool executor. Its workers load the models once each and die with their
parent: on Linux the kernel sends them SIGKILL when the parent process ends (prctl
PR_SET_PDEATHSIG), however it ends, kill -9 too; elsewhere a thread in each worker checks
every second that the parent is there.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from typing import Any

from frs_cli.errors import FrsError
from frs_cli.faces import families
from frs_cli.video import decode
from frs_cli.workers import progress_report
from frs_cli.workers.execution import Executor
from frs_cli.workers.threads import one_blas_thread

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _init_worker(model: str, encoder: str, parent: int, reports: Any) -> None:
    # The parent handles Ctrl-C and stops the pool; workers just stop with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    decode.forget_inherited_converter()
    progress_report.set_sink(reports.put)
    families.preload(model, encoder)


def die_with_parent(parent: int) -> None:
    """End this process when process `parent` ends, even by SIGKILL (it cannot clean up)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # it died before the signal was asked for
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="frs-parent-watch", daemon=True).start()


class ProcessExecutor(Executor):
    """A pool of processes, started at once: each loads the models (~0.11 s) while the
    parent opens the watchlist and probes the inputs, so start-up uses every core.
    (Loading them in the parent before forking left the other core idle for that time.)"""

    name = "process"

    def __init__(self, workers: int, model: str = "hog", encoder: str = "dlib"):
        self.workers = workers
        self.model, self.encoder = model, encoder
        one_blas_thread()  # one BLAS thread per worker: the pool already fills the cores
        # A missing or refused file is one clear error here, not a broken pool.
        families.check(model, encoder)
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        if "fork" in methods:
            _import_for_workers()
        self.reports = self.context.SimpleQueue()
        self.sink: Callable[[progress_report.Report], None] | None = None
        self.pool = self._start()
        threading.Thread(target=self._relay, name="frs-progress", daemon=True).start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=self.context,
            initializer=_init_worker,
            initargs=(self.model, self.encoder, os.getpid(), self.reports),
        )
        # The first job starts every worker (with fork, all at once).
        try:
            pool.submit(os.getpid)
        except OSError as err:  # a process limit (ulimit -u, a container's pids.max)
            pool.shutdown(wait=False, cancel_futures=True)
            raise FrsError(
                f"cannot start {self.workers} worker processes ({err.strerror or err}); "
                "try fewer with --workers"
            ) from None
        return pool

    def _relay(self) -> None:
        """Hand the workers' progress reports to the listener (a daemon thread)."""
        while True:
            try:
                report = self.reports.get()
            except (EOFError, OSError):
                return
            if report is None:
                return
            if self.sink is not None:
                self.sink(report)

    def listen(self, callback: Callable[[progress_report.Report], None]) -> None:
        self.sink = callback

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        try:
            return self.pool.submit(fn, arg)
        except BrokenExecutor:  # a worker died since the last job was handed out
            self.recover()
            return self.pool.submit(fn, arg)

    def recover(self) -> None:
        """A worker that died broke the pool (every pending job fails): start a new one."""
        if getattr(self.pool, "_broken", False):
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._start()

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            # Stop promptly on Ctrl-C: running jobs are abandoned, not awaited.
            for proc in list((getattr(self.pool, "_processes", None) or {}).values()):
                proc.terminate()
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)
        self.sink = None
        self.reports.put(None)


def _import_for_workers() -> None:
    """Modules every worker needs, imported once here rather than once per worker. The
    module of the work itself (the scan's analyse, enrolment's photos) lies above this
    package: its caller has imported it before starting the pool, and forked workers
    inherit it."""
    import av  # noqa: F401
    import dlib  # noqa: F401

    import frs_cli.faces.detect  # noqa: F401
    import frs_cli.video.decode  # noqa: F401
