"""Interrupted scans: kill -9 at random moments, resume, and get the uninterrupted
output row for row; Ctrl-C stops promptly with the summary so far."""

import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SAMPLE, run_cli

from frs_cli.records import APPEARANCE_COLUMNS
from frs_cli.video.synthetic import Shot, write_clip

HOPPER = str(SAMPLE / "Grace_Hopper.jpg")
COLLINS = str(SAMPLE / "Eileen_Collins.png")


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """Five 2-second clips, each with the two people at different frames."""
    folder = tmp_path_factory.mktemp("footage")
    for k in range(5):
        shots = [
            Shot(HOPPER, 5 + k, 30 + k, x=0.05, y=0.05, height=0.9),
            Shot(COLLINS, 20, 49 - k, x=0.55, y=0.1, height=0.8),
        ]
        write_clip(folder / f"clip{k}.mp4", shots, 50, fps=25)
    return folder


def frs(*args):
    return [sys.executable, "-m", "frs_cli", *map(str, args)]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_kill_9_and_resume_gives_the_uninterrupted_output(demo_watchlist, footage, tmp_path, fmt):
    whole = tmp_path / f"whole.{fmt}"
    started = time.monotonic()
    subprocess.run(
        frs("scan", "-q", "-w", demo_watchlist, "--format", fmt, "--out", whole, footage),
        check=True, cwd=ROOT,
    )  # fmt: skip
    # Kills land within the time a whole scan takes on this machine (~1.5 s here; the
    # fixed 0.6-2.5 s let the second run finish on a fast machine: one kill only).
    whole_s = time.monotonic() - started
    expected = whole.read_text()
    assert expected.count("Grace_Hopper") == 10  # 5 rows of hers, 5 where she is second
    out = tmp_path / f"resumed.{fmt}"
    rng = random.Random(4)
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen(
            frs("scan", "-q", "-w", demo_watchlist, "--format", fmt, "--out", out, "--resume", footage),
            cwd=ROOT, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=rng.uniform(0.35, 0.85) * whole_s if attempt < 6 else 60)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no chance to clean up
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        break
    assert kills >= 2, "the test must really interrupt the scan"
    assert out.read_text() == expected


def test_resume_refuses_other_options_and_stdout(demo_watchlist, footage, tmp_path):
    out = tmp_path / "o.csv"
    assert (
        run_cli("scan", "-q", "-w", demo_watchlist, "--out", out, footage / "clip0.mp4").exit_code
        == 0
    )
    other = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--out", out, "--resume", "--tolerance", "0.5", footage
    )
    assert other.exit_code == 2 and "other scan options" in other.stderr
    nowhere = run_cli("scan", "-q", "-w", demo_watchlist, "--resume", footage)
    assert nowhere.exit_code == 2 and "--resume needs --out FILE" in nowhere.stderr


def test_changed_input_is_rescanned(demo_watchlist, footage, tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("clip0.mp4", "clip1.mp4"):
        (folder / name).write_bytes((footage / name).read_bytes())
    out = tmp_path / "o.jsonl"
    args = ("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--out", out)
    run_cli(*args, folder)
    first = out.read_text()
    (folder / "clip0.mp4").write_bytes((footage / "clip3.mp4").read_bytes())  # replaced
    result = run_cli(*args, "--resume", "-v", folder)
    assert result.exit_code == 0
    assert out.read_text() != first
    fresh = tmp_path / "fresh.jsonl"
    run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--out", fresh, folder)
    assert out.read_text() == fresh.read_text()
    unchanged = run_cli(*args, "--resume", "-v", folder)
    assert "already scanned" in unchanged.stderr and out.read_text() == fresh.read_text()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_stops_promptly_and_prints_the_summary(demo_watchlist, footage, tmp_path):
    out = tmp_path / "o.csv"
    # Twenty files (the same folder three times is five files, ~1.2 s of work since
    # encodings run on ONNX Runtime): the scan is still running when Ctrl-C comes.
    many = tmp_path / "many"
    many.mkdir()
    for k in range(4):
        for clip in sorted(footage.glob("*.mp4")):
            shutil.copy(clip, many / f"{k}-{clip.name}")
    proc = subprocess.Popen(
        frs("scan", "-w", demo_watchlist, "--out", out, many),
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
        # A shell without job control starts background commands with SIGINT ignored, and
        # Python keeps it ignored: a test suite run with `&` would see no Ctrl-C at all.
        preexec_fn=_default_sigint,
    )  # fmt: skip
    # Interrupt once the first file's rows are out (start-up can be slow on a fresh clone).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.1)
    rows_seen, running = out.read_text().count("\n"), proc.poll() is None
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 5
    assert proc.returncode == 130, (rows_seen, running, err[-2000:])
    assert "scanned " in err and "Traceback" not in err
    rows = out.read_text().splitlines()
    assert rows[0].startswith("source,identity")
    assert all(line.count(",") == len(APPEARANCE_COLUMNS) - 1 for line in rows)  # whole rows
