"""Footage of other sizes, frame rates and timings: clips generated here (frs_cli.video.synthetic)
with Grace Hopper on screen for a known span of frames."""

from fractions import Fraction

import pytest
from conftest import SAMPLE, jsonl, run_cli

from frs_cli.video.synthetic import Shot, write_clip

HOPPER = str(SAMPLE / "Grace_Hopper.jpg")


def scan_rows(watchlist, clip, *extra):
    result = run_cli(
        "scan", "-q", "-w", watchlist, "--format", "jsonl", "--workers", "1", *extra, clip
    )
    assert result.exit_code == 0, result.stderr
    return jsonl(result.stdout)


@pytest.mark.parametrize(
    "width,height",
    [(854, 480), (820, 460), (360, 640)],  # odd widths give padded rows; portrait
    ids=["854x480", "820x460", "portrait"],
)
def test_sizes(demo_watchlist, tmp_path, width, height):
    clip = tmp_path / f"{width}x{height}.mp4"
    write_clip(
        clip,
        [Shot(HOPPER, 10, 39, x=0.1, y=0.1, height=0.6)],
        50,
        fps=25,
        width=width,
        height=height,
    )
    rows = scan_rows(demo_watchlist, clip)
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == [
        ("Grace_Hopper", 0.4, 1.56)
    ]


def test_15_fps(demo_watchlist, tmp_path):
    clip = tmp_path / "15fps.mp4"
    write_clip(clip, [Shot(HOPPER, 15, 44, x=0.2, y=0.05, height=0.9)], 60, fps=15)
    rows = scan_rows(demo_watchlist, clip)
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == [
        ("Grace_Hopper", 1.0, 2.933)
    ]


def test_variable_frame_rate_times_come_from_pts(demo_watchlist, tmp_path):
    # 60 frames whose gaps alternate 20 ms and 60 ms: frame counting would be wrong.
    tb = Fraction(1, 1000)
    pts, t = [], 0
    for i in range(60):
        pts.append(t)
        t += 20 if i % 2 == 0 else 60
    clip = tmp_path / "vfr.mkv"
    write_clip(
        clip, [Shot(HOPPER, 20, 49, x=0.2, y=0.05, height=0.9)], 60, fps=25, pts=pts, time_base=tb
    )
    rows = scan_rows(demo_watchlist, clip)
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == [
        ("Grace_Hopper", pts[20] / 1000, pts[49] / 1000)
    ]
    detections = scan_rows(demo_watchlist, clip, "--detections")
    for row in detections:
        assert row["time_s"] == pts[row["frame"]] / 1000


def test_brief_faces_are_found_by_size(demo_watchlist, tmp_path):
    """Whole-frame searches for every face run once a second (0, 1, 2 s...), quick ones
    for faces of twice --min-face or more in between (0.5, 1.5 s...). A face on screen
    from 1.2 s to 1.76 s is between two full searches: found if large (~108 px, by the
    quick search at 1.5 s), missed if small (~44 px) unless --detect-fps 2 searches at 1.5 s
    too. Either way a face that is found gets its exact first and last frames."""
    large, small = tmp_path / "large.mp4", tmp_path / "small.mp4"
    write_clip(large, [Shot(HOPPER, 30, 44, x=0.3, y=0.05, height=0.9)], 75, fps=25)
    write_clip(small, [Shot(HOPPER, 30, 44, x=0.3, y=0.2, height=0.4)], 75, fps=25)
    found = [("Grace_Hopper", 1.2, 1.76)]
    rows = scan_rows(demo_watchlist, large)
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == found
    assert scan_rows(demo_watchlist, small) == []
    rows = scan_rows(demo_watchlist, small, "--detect-fps", "2")
    assert [(r["identity"], r["start_s"], r["end_s"]) for r in rows] == found
