"""The Dask executor: a LocalCluster gives the same rows as the process pool, also
when a worker is killed mid-scan."""

import os
import signal
import threading
import time

import pytest
from conftest import SAMPLE, SHARED, run_cli

from frs_cli.video.synthetic import Shot, write_clip

distributed = pytest.importorskip("dask.distributed", reason="dask[distributed] is not installed")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    for k in range(4):
        shots = [Shot(str(SAMPLE / "Grace_Hopper.jpg"), 5 + 3 * k, 60, x=0.1, y=0.05, height=0.9)]
        write_clip(folder / f"c{k}.mp4", shots, 75, fps=25)
    inputs = [folder]
    if SHARED.is_dir():
        inputs += [SHARED / "footage" / "short_hamilton_clip.mp4"]
    return inputs


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        yield c


def scan(watchlist, inputs, *extra):
    result = run_cli("scan", "-q", "-w", watchlist, "--format", "jsonl", *extra, *inputs)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_local_cluster_gives_the_process_pool_rows(demo_watchlist, footage, cluster):
    pool = scan(demo_watchlist, footage, "--workers", "2")
    dask = scan(demo_watchlist, footage, "--scheduler", cluster.scheduler_address)
    assert dask == pool and pool.count("Grace_Hopper") == 4


def test_scheduler_local_starts_a_cluster(demo_watchlist):
    out = scan(demo_watchlist, [SAMPLE / "demo.mp4"], "--scheduler", "local", "--workers", "2")
    assert out.count("\n") == 3


def test_a_killed_worker_loses_no_rows(demo_watchlist, footage, cluster):
    expected = scan(demo_watchlist, footage, "--workers", "2")

    def kill_one() -> None:
        time.sleep(1.0)
        pids = [w.process.pid for w in cluster.workers.values() if w.process and w.process.pid]
        os.kill(pids[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_one)
    killer.start()
    got = scan(demo_watchlist, footage, "--scheduler", cluster.scheduler_address)
    killer.join()
    assert got == expected


def test_unreachable_scheduler_is_a_clear_error(demo_watchlist):
    result = run_cli(
        "scan", "-w", demo_watchlist, "--scheduler", "tcp://127.0.0.1:1", SAMPLE / "demo.mp4"
    )
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in result.stderr
