"""Throughput of `frs scan --scheduler` against the number of Dask workers on this
machine: footage seconds scanned per wall second, 1 and 2 workers (one thread each).

    python benchmarks/dask_throughput.py [--copies 4]

Scans `--copies` copies of the Hamilton clip (../shared/data) on a LocalCluster of
worker processes, once per worker count, after one warm-up scan so that every
worker has loaded its models (as on a long-running cluster).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner
from dask.distributed import LocalCluster

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from frs_cli.cli import cli  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=4)
    args = parser.parse_args()
    clip = DATA / "footage" / "short_hamilton_clip.mp4"
    runner = CliRunner()
    results = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wl = tmp / "wl.db"
        runner.invoke(
            cli, ["enroll", "-q", "-w", str(wl), str(DATA / "faces" / "lin-manuel-miranda.png")]
        )
        folder = tmp / "footage"
        folder.mkdir()
        for k in range(args.copies):
            shutil.copy(clip, folder / f"copy{k}.mp4")
        for workers in (1, 2):
            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster:
                base = ["scan", "-q", "-w", str(wl), "--scheduler", cluster.scheduler_address]
                runner.invoke(cli, [*base, str(clip)])  # warm-up: models loaded on every worker
                summary = tmp / f"s{workers}.json"
                start = time.perf_counter()
                result = runner.invoke(cli, [*base, "--summary", str(summary), str(folder)])
                wall = time.perf_counter() - start
                assert result.exit_code == 0, result.output
                footage = json.loads(summary.read_text())["footage_s"]
                results[workers] = {"wall_s": round(wall, 2), "footage_s": footage,
                                    "realtime_x": round(footage / wall, 2)}  # fmt: skip
                print(workers, "worker(s):", results[workers])
    print(f"speed-up 2 vs 1 workers: {results[2]['realtime_x'] / results[1]['realtime_x']:.2f}x")


if __name__ == "__main__":
    main()
