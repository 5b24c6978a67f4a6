"""Layouts met in real exports (issue 13), generated here with PyAV: each is scanned at
1 and 2 workers and on a Dask LocalCluster, with the face found at the same frames as
in the plain MP4 and the whole duration analysed. Plus the defects that once lost data:
a damaged watchlist, --out to a device or pipe, one file's crash, orphaned workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLE, jsonl, run_cli

from frs_cli.records import AnalysisConfig
from frs_cli.scanner.scanning import plan_segments
from frs_cli.video import decode
from frs_cli.video.synthetic import Shot, write_clip
from frs_cli.workers import progress_report

HOPPER = str(SAMPLE / "Grace_Hopper.jpg")
FPS = 25
FRAMES = 175  # 7 s; Grace Hopper on screen from frame 30 to 149 (1.2 s to 5.96 s)
SHOTS = [Shot(HOPPER, 30, 149, x=0.3, y=0.05, height=0.9)]
FRAME_S = 1 / FPS

# name -> write_clip options. A keyframe every second (gop) as cameras write them, so
# that segments start at keyframes in the middle of the file.
LAYOUTS: dict[str, dict] = {
    "plain.mp4": {},
    "audio_first.mp4": {"layout": ("audio", "video")},
    "audio_first.mov": {"layout": ("audio", "video")},
    "broadcast.ts": {"layout": ("video", "audio")},  # MPEG-TS: starts at 0.067 s, no index
    "dvr.h264": {},  # raw Annex B: no timestamps at all
    "mjpeg.avi": {"codec": "mjpeg"},
    "vp9.mkv": {"codec": "libvpx-vp9"},
    "vp9.webm": {"codec": "libvpx-vp9"},
    "thumbnail_first.mp4": {"layout": ("preview", "video")},  # a 160x90 stream first
    "subtitles.mkv": {"layout": ("video", "subtitle")},
    "klv.ts": {"layout": ("video", "data")},
    # Timestamps that wrap at 2**33 (26.5 h of 90 kHz) 3 s into the file.
    "wrap.ts": {
        "pts": [i * 3600 for i in range(FRAMES)],
        "time_base": Fraction(1, 90000),
        "pts_offset": 2**33 - 3 * 90000,
    },
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("layouts")
    for name, options in LAYOUTS.items():
        write_clip(folder / name, SHOTS, FRAMES, fps=FPS, gop=FPS, **options)
    return folder


def scan(watchlist, paths, *extra) -> tuple[list[dict], dict, str]:
    """Rows (JSON lines), the --summary and stderr of one scan of every path."""
    summary = Path(os.environ.get("TMPDIR", "/tmp")) / f"frs-summary-{os.getpid()}.json"
    result = run_cli(
        "scan", "-q", "-w", watchlist, "--format", "jsonl", "--summary", summary, *extra, *paths
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(summary.read_text())
    summary.unlink()
    return jsonl(result.stdout), data, result.stderr


def appearances(rows: list[dict]) -> dict[str, tuple[str, float, float]]:
    by_file = {}
    for r in rows:
        assert Path(r["source"]).name not in by_file, f"two appearances in {r['source']}"
        by_file[Path(r["source"]).name] = (r["identity"], r["start_s"], r["end_s"])
    return by_file


# One of the slowest (~20 s, and ~9 s to make the corpus): twelve layouts scanned at one
# and two workers and on a Dask cluster, each against the plain MP4's frames.
@pytest.mark.slow
def test_every_layout_is_scanned_whole_with_the_face_at_the_same_frames(demo_watchlist, corpus):
    paths = [corpus / name for name in LAYOUTS]
    rows, summary, stderr = scan(demo_watchlist, paths, "--workers", "2")
    found = appearances(rows)
    assert sorted(found) == sorted(LAYOUTS)
    reference = found["plain.mp4"]
    assert reference == ("Grace_Hopper", 1.2, 5.96)
    for name, (identity, start, end) in found.items():
        assert identity == "Grace_Hopper", name
        # Within one frame of the MP4 (a TS with audio starts its clock 21 ms earlier).
        assert abs(start - reference[1]) <= FRAME_S and abs(end - reference[2]) <= FRAME_S, name
    # The invariant: every file's analysed duration is its probed duration (no error said
    # otherwise, since the scan exited 0).
    assert {Path(i["path"]).name for i in summary["inputs"]} == set(LAYOUTS)
    for entry in summary["inputs"]:
        assert entry["status"] == "ok", entry
        assert entry["analysed_s"] == entry["duration_s"] == pytest.approx(7.0, abs=0.05), entry
    # Times of the raw stream are derived, and both the summary and a warning say so.
    derived = [i for i in summary["inputs"] if "times" in i]
    assert [Path(i["path"]).name for i in derived] == ["dvr.h264"]
    assert derived[0]["times"] == "times derived from the stream's frame rate (25 fps)"
    assert f"warning: {corpus / 'dvr.h264'}: times derived" in stderr

    # One worker (no segments) finds the same frames; Dask the same rows as the pool.
    one, _, _ = scan(demo_watchlist, paths, "--workers", "1")
    assert appearances(one) == found
    dask, _, _ = scan(demo_watchlist, paths, "--scheduler", "local", "--workers", "2")
    assert dask == rows


def test_the_stream_a_player_shows_is_scanned_and_verbose_says_which(demo_watchlist, corpus):
    path = corpus / "thumbnail_first.mp4"
    info = decode.probe(str(path))
    assert (info.stream_index, info.width, info.height) == (1, 640, 360)
    result = run_cli("scan", "-v", "-w", demo_watchlist, "--workers", "1", path)
    assert (
        f"{path}: 2 video streams; scanning stream #1 (640x360 h264), the largest; "
        "not #0 160x90" in result.stderr
    )


def test_ts_and_raw_streams_seek_by_byte_to_keyframes(corpus):
    """MPEG-TS has no index: FFmpeg's timestamp seek there lands a GOP late. The probe
    keeps each keyframe's byte position, and each segment starts at one it saw."""
    for name in ("broadcast.ts", "dvr.h264"):
        info = decode.probe(str(corpus / name))
        assert info.keyframe_pos is not None and len(info.keyframe_pos) == 7, name
        (first, second) = plan_segments(info, 2, AnalysisConfig())
        assert first.seek is None and second.seek is not None
        key_pts, pos = second.seek
        assert key_pts <= second.start_pts and pos == info.keyframe_pos[3]
    raw = decode.probe(str(corpus / "dvr.h264"))
    assert (raw.clock.time_base, raw.frames, raw.end_pts) == (Fraction(1, 25), FRAMES, FRAMES)
    assert list(raw.keyframe_pts) == list(range(0, FRAMES, FPS))


def test_a_stream_without_a_frame_rate_is_timed_at_25_fps_with_a_warning():
    assert decode.derived_rate(Fraction(30000, 1001))[0] == Fraction(30000, 1001)
    rate, note = decode.derived_rate(None)
    assert rate == 25 and "assumed 25 fps" in note


# -- a damaged watchlist -------------------------------------------------------------
@pytest.fixture
def damaged(tmp_path) -> Path:
    """A watchlist of 3,000 faces with 4 KiB overwritten in the middle."""
    import numpy as np

    from frs_cli.faces import dlib_models
    from frs_cli.watchlist import Watchlist

    path = tmp_path / "damaged.db"
    with Watchlist.create(path, dlib_models.encoder_model_id()) as wl:
        rng = np.random.default_rng(0)
        wl.add_vectors([f"P{i}" for i in range(3000)], rng.normal(0, 0.1, (3000, 128)))
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xab" * 4096)
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["enroll", str(SAMPLE / "Grace_Hopper.jpg")],
        ["scan", "--workers", "1", str(SAMPLE / "demo.mp4")],
        ["watchlist", "info"],
        ["watchlist", "list"],
        ["watchlist", "remove", "P1"],
        ["watchlist", "rename", "P1", "P2"],
        ["watchlist", "rebuild"],
    ],
    ids=lambda c: "-".join(c[:2]).replace("/", ""),
)
def test_a_damaged_watchlist_is_refused_in_one_line_and_never_written(damaged, command):
    before = damaged.read_bytes()
    if command[0] == "watchlist":
        args = [*command[:2], "-w", damaged, *command[2:]]
    else:
        args = [command[0], "-w", damaged, *command[1:]]
    result = run_cli(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {damaged} is damaged (database disk image is malformed); nothing was "
        f"written to it. `frs watchlist verify -w {damaged}` shows what is wrong; restore it "
        "from a copy or enrol the photos again into a new watchlist\n"
    )
    assert damaged.read_bytes() == before


def test_verify_reports_a_damaged_watchlist(damaged):
    result = run_cli("watchlist", "verify", "-w", damaged)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "problem: SQLite integrity check failed: database disk image is malformed (the file "
        "is damaged: restore it from a copy, or enrol the photos again into a new watchlist)",
        f"Error: {damaged}: 1 problem(s) found",
    ]


# -- output to devices and pipes -------------------------------------------------------
def test_out_to_dev_null_and_to_a_fifo(demo_watchlist, tmp_path):
    clip = SAMPLE / "demo.mp4"
    result = run_cli("scan", "-q", "-w", demo_watchlist, "--workers", "1", "-o", os.devnull, clip)
    assert result.exit_code == 0, result.stderr
    assert not Path(os.devnull + ".frs-journal").exists()
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    result = run_cli("scan", "-q", "-w", demo_watchlist, "--workers", "1", "-o", fifo, clip)
    out, _ = reader.communicate(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert out.count("\n") == 4 and out.startswith("source,identity,")  # header + 3 rows
    result = run_cli("scan", "-q", "-w", demo_watchlist, "-o", os.devnull, "--resume", clip)
    assert result.exit_code == 2 and "needs --out to be a regular file" in result.stderr


# -- one file's crash fails that file only --------------------------------------------
def crashing_segment(segment):
    """analyse_segment, except that a file named crash*.mp4 breaks it."""
    from frs_cli.scanner.analyse import analyse_segment

    if Path(segment.path).name.startswith("crash"):
        if os.environ.get("FRS_TEST_HARD_CRASH"):
            os._exit(9)  # a worker dying in native code: the whole pool breaks
        raise ZeroDivisionError("division by zero")
    return analyse_segment(segment)


@pytest.mark.parametrize("workers,hard", [(1, False), (2, False), (2, True)])
def test_an_unexpected_error_fails_only_that_file(
    demo_watchlist, tmp_path, monkeypatch, workers, hard
):
    import shutil

    crash = tmp_path / "crash.mp4"
    good = tmp_path / "good.mp4"
    shutil.copy(SAMPLE / "demo.mp4", crash)
    shutil.copy(SAMPLE / "demo.mp4", good)
    monkeypatch.setattr("frs_cli.scanner.scanning.analyse_segment", crashing_segment)
    if hard:
        monkeypatch.setenv("FRS_TEST_HARD_CRASH", "1")
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--workers", workers, crash, good
    )
    assert result.exit_code == 3, result.stderr
    assert [r["source"] for r in jsonl(result.stdout)] == [str(good)] * 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    what = "BrokenProcessPool: " if hard else "ZeroDivisionError: division by zero"
    assert len(errors) == 1 and errors[0].startswith(f"error: {crash}: internal error ({what}")
    assert errors[0].endswith("; FRS_DEBUG=1 shows the traceback")


def test_no_traceback_at_the_top_level_without_frs_debug(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr("frs_cli.watchlist.default_path", broken)
    result = run_cli("watchlist", "info")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: internal error (KeyError: 'boom'); FRS_DEBUG=1 shows the traceback\n"
    )
    monkeypatch.setenv("FRS_DEBUG", "1")
    with pytest.raises(KeyError):
        run_cli("watchlist", "info")


# -- progress while a segment runs ---------------------------------------------------
def test_pool_workers_report_progress_while_a_segment_runs(corpus, monkeypatch):
    from frs_cli.scanner.analyse import analyse_segment
    from frs_cli.workers.executors import ProcessExecutor

    monkeypatch.setattr(progress_report, "INTERVAL_S", 0.05)  # inherited by the fork
    info = decode.probe(str(corpus / "plain.mp4"))
    (segment,) = plan_segments(info, 1, AnalysisConfig())
    reports: list[progress_report.Report] = []
    executor = ProcessExecutor(2)
    try:
        executor.listen(reports.append)
        result = executor.submit(analyse_segment, segment).result()
        time.sleep(0.2)  # the relay thread hands over what is queued
    finally:
        executor.shutdown()
    assert result.error is None
    assert len(reports) >= 3
    assert {(r.path, r.segment) for r in reports} == {(str(corpus / "plain.mp4"), 0)}
    assert [r.pts for r in reports] == sorted(r.pts for r in reports)
    assert reports[-1].pts <= info.frame_pts[-1]


# -- workers die with their parent -----------------------------------------------------
def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("command", ["scan", "enroll"])
def test_no_worker_survives_a_sigkill_of_its_parent(demo_watchlist, tmp_path, command):
    if command == "scan":
        args = ["scan", "-q", "-w", demo_watchlist, "--workers", "2", *[SAMPLE / "demo.mp4"] * 4]
    else:
        photos = tmp_path / "people"
        photos.mkdir()
        for k in range(48):  # ~1 s of work since encodings run on ONNX Runtime
            os.symlink(SAMPLE / "Grace_Hopper.jpg", photos / f"Person_{k}.jpg")
        args = ["enroll", "-q", "-w", tmp_path / "new.db", "--workers", "2", photos]
    proc = subprocess.Popen(
        [sys.executable, "-m", "frs_cli", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    workers: set[int] = set()
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        workers = _children(proc.pid)
    assert len(workers) >= 2, "the pool never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [w for w in workers if _alive(w)]
    for w in survivors:
        os.kill(w, signal.SIGKILL)
    assert survivors == []
