"""The Dask executor: the same segment jobs as the process pool, run by Dask workers.

`frs scan --scheduler tcp://HOST:8786` connects to a running cluster (started with
`dask scheduler` and `dask worker` on any machines); `--scheduler local` starts a
LocalCluster of worker processes here. Workers import frs and load the models on
their first job, then keep them (the functools caches live as long as the worker
process). The client keeps the watchlist, matches tracks and writes the output in
input order, exactly as a local run does. A segment whose worker dies is recomputed
on another worker by Dask; a segment's result is a pure function of its inputs, so
rows are neither lost nor duplicated.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from frs_cli.errors import UsageError
from frs_cli.faces import families
from frs_cli.workers import progress_report
from frs_cli.workers.execution import Executor
from frs_cli.workers.threads import one_blas_thread

TOPIC = "frs-progress"  # the event topic that carries progress reports to the client

INSTALL = 'pip install "frs[distributed]" (or: pip install "dask[distributed]")'


def _client(address: str, workers: int) -> Any:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(f"--scheduler needs Dask; install it with: {INSTALL}") from None
    if address == "local":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        return Client(cluster)
    _check_reachable(address)
    try:
        return Client(address, timeout="20s")
    except OSError as err:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {err}") from None


def _check_reachable(address: str) -> None:
    """A refused or unresolvable tcp:// address fails at once: Dask's client retries a
    refused connection until its 20 s timeout."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "") or parts.port is None:
        return  # tls://, inproc:// and the like: Dask's own client says what is wrong
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port), timeout=5).close()
    except OSError as err:
        why = err.strerror or str(err)
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {why}") from None


def _on_worker(fn: Callable[[Any], Any], arg: Any) -> Any:
    """Run a job on a Dask worker; say so when the worker cannot read the footage."""
    import dataclasses
    import socket

    progress_report.set_sink(_log_event)
    try:
        result = fn(arg)
    finally:
        progress_report.set_sink(None)
    error = getattr(result, "error", None)
    if error and ("no such file" in error or "permission denied" in error):
        where = socket.gethostname()
        hint = (
            f"{error} on Dask worker {where}: footage must be on storage that every "
            "worker reads at the same path"
        )
        result = dataclasses.replace(result, error=hint)
    return result


def _log_event(report: progress_report.Report) -> None:
    from dask.distributed import get_worker

    get_worker().log_event(TOPIC, [report.path, report.segment, report.pts])


class DaskExecutor(Executor):
    name = "dask"

    def __init__(self, address: str, workers: int, model: str = "hog", encoder: str = "dlib"):
        # Here, before any work: a local cluster's workers read this machine's files (a
        # remote one's are checked by its workers, which say what they lack).
        families.check(model, encoder)
        self.client = _client(address, workers)
        self.local = address == "local"
        info = self.client.scheduler_info()
        # Count worker threads: each runs one segment at a time.
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))
        one_blas_thread()

    def listen(self, callback: Callable[[progress_report.Report], None]) -> None:
        def handler(event: Any) -> None:
            _, (path, segment, pts) = event
            callback(progress_report.Report(path, segment, pts))

        self.client.subscribe_topic(TOPIC, handler)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        # pure=False: a segment re-submitted in another scan is computed again.
        dask_future = self.client.submit(_on_worker, fn, arg, pure=False, retries=2)
        future: Future[Any] = Future()

        def done(f: Any) -> None:
            try:
                future.set_result(f.result())
            except BaseException as err:  # noqa: BLE001 - passed on through the future
                future.set_exception(err)

        dask_future.add_done_callback(done)
        future.dask_future = dask_future  # type: ignore[attr-defined]  # keeps it alive
        return future

    def shutdown(self, cancel: bool = False) -> None:
        cluster = self.client.cluster if self.local else None
        self.client.close()
        if cluster is not None:
            cluster.close()
