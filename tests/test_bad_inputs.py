"""A corpus of bad and odd footage, generated here, each with its expected outcome."""

import os
import shutil

import av
import numpy as np
import pytest
from conftest import SAMPLE, jsonl, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frs_cli.errors import InputError
from frs_cli.faces import images
from frs_cli.records import AnalysisConfig
from frs_cli.scanner.analyse import analyse_segment
from frs_cli.scanner.scanning import plan_segments
from frs_cli.video import decode
from frs_cli.video.synthetic import Shot, write_clip

HOPPER = str(SAMPLE / "Grace_Hopper.jpg")


def scan(watchlist, *paths, fmt="jsonl"):
    return run_cli("scan", "-q", "-w", watchlist, "--format", fmt, "--workers", "1", *paths)


@pytest.fixture(scope="module")
def mkv(tmp_path_factory):
    """4 s, Grace Hopper from frame 10 to the end; Matroska keeps its index up front."""
    path = tmp_path_factory.mktemp("clips") / "long.mkv"
    write_clip(path, [Shot(HOPPER, 10, 99, x=0.1, y=0.05, height=0.9)], 100, fps=25)
    return path


def test_file_cut_mid_stream_keeps_rows_and_says_how_much_was_analysed(
    demo_watchlist, mkv, tmp_path
):
    cut = tmp_path / "cut.mkv"
    data = mkv.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    result = scan(demo_watchlist, cut)
    assert result.exit_code == 3
    rows = jsonl(result.stdout)
    assert [r["identity"] for r in rows] == ["Grace_Hopper"]
    assert rows[0]["start_s"] == 0.4 and rows[0]["end_s"] < 3.5
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: {cut}: ") and "analysed" in line


def test_corrupt_packets_in_the_middle_are_skipped_and_reported(demo_watchlist, mkv, tmp_path):
    bad = tmp_path / "corrupt.mkv"
    data = bytearray(mkv.read_bytes())
    rng = np.random.default_rng(1)
    middle = len(data) // 2
    data[middle : middle + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    result = scan(demo_watchlist, bad)
    assert result.exit_code in (0, 3)  # FFmpeg may or may not notice, but never a crash
    rows = jsonl(result.stdout)
    assert rows and rows[0]["identity"] == "Grace_Hopper" and rows[0]["start_s"] == 0.4
    assert max(r["end_s"] for r in rows) > 3.0  # decoding recovered after the damage
    assert "Traceback" not in result.stderr


def test_audio_only_file(demo_watchlist, tmp_path):
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    result = scan(demo_watchlist, path)
    assert result.exit_code == 1
    assert f"error: {path}: has no video stream (audio streams only)" in result.stderr


@pytest.mark.parametrize("frames", [1, 5])
def test_one_and_five_frame_videos(demo_watchlist, tmp_path, frames):
    path = tmp_path / f"{frames}.mp4"
    write_clip(path, [Shot(HOPPER, 0, frames - 1, x=0.1, y=0.05, height=0.9)], frames, fps=25)
    result = scan(demo_watchlist, path)
    assert result.exit_code == 0, result.stderr
    rows = jsonl(result.stdout)
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == [
        ("Grace_Hopper", 0.0, (frames - 1) / 25)
    ]


def test_yuv444_video(demo_watchlist, tmp_path):
    path = tmp_path / "444.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv444p"
        from frs_cli.video.synthetic import render

        shots = [Shot(HOPPER, 5, 24, x=0.1, y=0.05, height=0.9)]
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(render(shots, i, 640, 360), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv444p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    rows = jsonl(scan(demo_watchlist, path).stdout)
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == [
        ("Grace_Hopper", 0.2, 0.96)
    ]


def test_symlink_loop_long_and_odd_names(demo_watchlist, tmp_path):
    folder = tmp_path / "evidence ünïcødé"
    folder.mkdir()
    long_name = "x" * 200 + ".mp4"
    shutil.copy(SAMPLE / "demo.mp4", folder / long_name)
    os.symlink(folder, folder / "loop")  # a folder link to itself
    result = scan(demo_watchlist, folder)
    assert result.exit_code == 0, result.stderr
    assert {r["source"] for r in jsonl(result.stdout)} == {str(folder / long_name)}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(demo_watchlist, tmp_path):
    path = tmp_path / "locked.mp4"
    shutil.copy(SAMPLE / "demo.mp4", path)
    path.chmod(0)
    result = scan(demo_watchlist, path)
    assert result.exit_code == 1 and "permission denied" in result.stderr


# -- fuzzing: mutated bytes in, only frs's own clean errors out -------------------
CLIP_BYTES = (SAMPLE / "demo.mp4").read_bytes()[:60000]
PHOTO_BYTES = (SAMPLE / "Grace_Hopper.jpg").read_bytes()


def write_mutated(path, data: bytes, edits: list[tuple[float, int]], cut: float) -> str:
    """`data` with bytes overwritten at the `edits` positions, cut to a `cut` share, at `path`."""
    buf = bytearray(data)
    for where, value in edits:
        buf[int(where * (len(buf) - 1))] = value
    path.write_bytes(bytes(buf[: max(1, int(len(buf) * cut))]))
    return str(path)


edits = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=40)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=edits, cut=st.floats(0.05, 1.0))
def test_fuzzed_video_bytes_give_clean_errors(tmp_path, edits, cut):
    path = write_mutated(tmp_path / "fuzz.mkv", CLIP_BYTES, edits, cut)
    try:
        info = decode.probe(path)
    except InputError:
        return
    for segment in plan_segments(info, 1, AnalysisConfig(sample_fps=2, detect_fps=1)):
        result = analyse_segment(segment)  # never raises: errors are in the result
        assert result.error is None or isinstance(result.error, str)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=edits, cut=st.floats(0.05, 1.0))
def test_fuzzed_photo_bytes_give_clean_errors(tmp_path, edits, cut):
    path = write_mutated(tmp_path / "fuzz.jpg", PHOTO_BYTES, edits, cut)
    try:
        photo = images.load_photo(path)
    except InputError:
        return
    assert photo.rgb.dtype == np.uint8 and photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3


def test_phone_video_with_rotation_metadata(demo_watchlist, tmp_path):
    """Stored landscape, displayed portrait: the MP4's track matrix says turn 90 degrees
    clockwise (as phones write it). Faces are found upright; boxes are in displayed pixels."""
    import struct

    from frs_cli.video.synthetic import render

    shots = [Shot(HOPPER, 0, 29, x=0.05, y=0.2, height=0.5)]
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i in range(30):
            stored = np.ascontiguousarray(np.rot90(render(shots, i, 360, 640), k=1))
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd") + 44  # the 3x3 display matrix of the (only) track header
    data[at : at + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    info = decode.probe(str(path))
    assert (info.width, info.height, info.rotation) == (360, 640, 90)
    rows = jsonl(scan(demo_watchlist, path).stdout)
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == [
        ("Grace_Hopper", 0.0, 1.16)
    ]
    assert rows[0]["left"] + rows[0]["width"] <= 360 and rows[0]["top"] + rows[0]["height"] <= 640


def test_10_bit_video(demo_watchlist, tmp_path):
    from frs_cli.video.synthetic import render

    path = tmp_path / "10bit.mkv"
    shots = [Shot(HOPPER, 5, 24, x=0.1, y=0.05, height=0.9)]
    try:
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx265", rate=25)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p10le"
            stream.options = {"x265-params": "log-level=none"}
            for i in range(30):
                frame = av.VideoFrame.from_ndarray(render(shots, i, 640, 360), format="rgb24")
                for packet in stream.encode(frame.reformat(format="yuv420p10le")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    except (av.FFmpegError, ValueError) as err:
        pytest.skip(f"this PyAV build cannot write 10-bit HEVC: {err}")
    rows = jsonl(scan(demo_watchlist, path).stdout)
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == [
        ("Grace_Hopper", 0.2, 0.96)
    ]
