"""Whole-frame searches look only where the picture changed, when the camera is fixed
(frs_cli/changes.py): the same faces at the same frames, far fewer pixels searched."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import SAMPLE, jsonl, run_cli

from frs_cli import analyse, changes, synthetic
from frs_cli.records import AnalysisConfig, Box, Segment


def test_grow_is_a_square_dilation():
    mask = np.zeros((7, 9), bool)
    mask[3, 4] = True
    grown = changes.grow(mask, 2)
    assert grown.sum() == 25 and grown[1:6, 2:7].all()
    edge = np.zeros((4, 4), bool)
    edge[0, 0] = True
    assert changes.grow(edge, 1).sum() == 4  # clipped at the border
    assert not changes.grow(np.zeros((3, 3), bool), 5).any()


def test_rectangles_keep_each_group_whole():
    mask = np.zeros((10, 12), bool)
    mask[1:3, 1:4] = True  # one group
    mask[6:9, 2:3] = True  # below it, sharing columns
    mask[6:7, 8:11] = True  # beside that one
    mask[2, 3:9] = True  # joins the first group to the right
    assert changes.rectangles(mask) == [(1, 3, 1, 9), (6, 7, 8, 11), (6, 9, 2, 3)]
    assert changes.rectangles(np.zeros((4, 4), bool)) == []


def frame_of(image: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def test_change_map_regions():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:360, 0:640]
    squares = 60 * ((yy // 32 + xx // 32) % 2) + xx // 5  # a chequered wall, some shade
    scene = squares.astype(np.uint8)[..., None].repeat(3, axis=2)
    scene += rng.integers(0, 6, scene.shape, dtype=np.uint8)  # and a little noise
    noisy = scene + rng.integers(0, 6, scene.shape, dtype=np.uint8)  # the same, new noise
    moved = scene.copy()
    moved[100:160, 300:340] = 230  # something 40x60 px came
    changed = changes.ChangeMap(640, 360, 0, margin_px=80)
    assert changed.regions(frame_of(scene), complete=False) is None  # nothing to compare yet
    assert changed.regions(frame_of(noisy), complete=False) == []  # nothing changed
    (box,) = changed.regions(frame_of(moved), complete=False)
    # The change grown by the largest face to see whole (80 px) and one cell more.
    assert box == Box(208, 8, 224, 240)
    assert changed.regions(frame_of(moved), complete=True) is None  # every COMPLETE_EVERYth
    panned = np.roll(moved, 24, axis=1)  # the camera moved: everything changed
    assert changed.regions(frame_of(panned), complete=False) is None


@pytest.fixture(scope="module")
def fixed_clip(tmp_path_factory) -> str:
    """8 s at 25 fps, 1280x720, a fixed camera: Grace Hopper there throughout, Eileen
    Collins there from frame 60 to frame 170."""
    path = tmp_path_factory.mktemp("fixed") / "fixed.mp4"
    shots = [
        synthetic.Shot(str(SAMPLE / "Grace_Hopper.jpg"), 0, 199, 0.08, 0.2, 0.5),
        synthetic.Shot(str(SAMPLE / "Eileen_Collins.png"), 60, 170, 0.6, 0.25, 0.25),
    ]
    synthetic.write_clip(path, shots, 200, width=1280, height=720)
    return str(path)


def scan_segment(path: str, monkeypatch, gate: bool):
    sizes: list[tuple[int, int]] = []
    regions: list[list[Box]] = []
    search_frame = analyse.SegmentScanner._search_frame
    search_regions = analyse.SegmentScanner._search_regions

    def whole(self, fr, size):
        sizes.append(size)
        return search_frame(self, fr, size)

    def parts(self, fr, size, boxes):
        regions.append(boxes)
        return search_regions(self, fr, size, boxes)

    with monkeypatch.context() as m:
        m.setattr(analyse.SegmentScanner, "_search_frame", whole)
        m.setattr(analyse.SegmentScanner, "_search_regions", parts)
        config = AnalysisConfig(search_unchanged=not gate)
        result = analyse.analyse_segment(Segment(path, 0, 0, 1, None, None, config))
    frame = 512  # pts per frame (25 fps in 1/12800)
    tracks = [(t.start_pts // frame, t.end_pts // frame, len(t.sightings)) for t in result.tracks]
    return tracks, sizes, regions


def test_a_fixed_camera_is_searched_where_it_changed(fixed_clip, monkeypatch):
    gated, sizes, regions = scan_segment(fixed_clip, monkeypatch, gate=True)
    whole, whole_sizes, _ = scan_segment(fixed_clip, monkeypatch, gate=False)
    assert gated == whole and [(s, e) for s, e, _ in gated] == [(0, 199), (60, 170)]
    full = (2560, 1440)  # --min-face 40: the frame at twice its size
    # Whole-frame searches at 0, 1, ..., 7 s without; with: at 0 and 5 s (every 5th) only,
    # at 1-4 s and 6-7 s only what changed: where Eileen Collins came (2.4 s), by 3 s, and
    # where she went (6.8 s), by 7 s; grown by 88 px, the quick searches' smallest face
    # (80 px at 720p) and a cell. 14% of the frame instead of all of it, twice.
    assert whole_sizes.count(full) == 8 and sizes.count(full) == 2
    came = [Box(680, 88, 360, 360)]
    assert regions == [[], [], came, [], [], came]


def test_search_unchanged_searches_every_pixel(demo_watchlist):
    """The demo clip is a fixed camera: by default its faces are found in the changed
    regions, with boxes a pixel apart from the whole-frame search's (distances move in
    the fourth digit); --search-unchanged gives the whole-frame search's rows."""
    args = ("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", SAMPLE / "demo.mp4")
    gated = jsonl(run_cli(*args).stdout)
    whole = jsonl(run_cli(*args, "--search-unchanged").stdout)
    assert [r["distance"] for r in gated] == [0.1236, 0.1715, 0.117]
    assert [r["distance"] for r in whole] == [0.1236, 0.1713, 0.1124]
    times = [(r["identity"], r["start_s"], r["end_s"], r["detections"]) for r in gated]
    assert times == [(r["identity"], r["start_s"], r["end_s"], r["detections"]) for r in whole]
