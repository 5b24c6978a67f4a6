"""Whole-frame searches for new faces: with a fixed camera only where the picture changed
(frs_cli/scanner/changes.py), at 1080p and up with a moving one in two passes (wholeframe.py):
the same faces at the same frames, far less work; `--exhaustive` for dlib's full search."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import SAMPLE, jsonl, run_cli
from PIL import Image

from frs_cli.faces import detect, dlib_models
from frs_cli.records import AnalysisConfig, Box, Segment
from frs_cli.scanner import analyse, changes, wholeframe
from frs_cli.video import decode, synthetic


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


def frame_of(image: np.ndarray) -> decode.Frame:
    """A decoded frame as the scanner holds it (its luma from swscale's YUV 4:2:0)."""
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    return decode.Frame(frame, 0)


def test_change_map_regions():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:360, 0:640]
    squares = 60 * ((yy // 32 + xx // 32) % 2) + xx // 5  # a chequered wall, some shade
    scene = squares.astype(np.uint8)[..., None].repeat(3, axis=2)
    scene += rng.integers(0, 6, scene.shape, dtype=np.uint8)  # and a little noise
    noisy = scene + rng.integers(0, 6, scene.shape, dtype=np.uint8)  # the same, new noise
    moved = scene.copy()
    moved[100:160, 300:340] = 230  # something 40x60 px came
    changed = changes.ChangeMap(640, 360, margin_px=80)
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


def scan_segment(path: str, monkeypatch, exhaustive: bool = False):
    """Tracks (first frame, last frame, sightings), and the sizes of the whole-frame
    searches, the regions of the region searches and the sizes of the two-pass searches."""
    sizes: list[tuple[int, int]] = []
    regions: list[list[Box]] = []
    split: list[tuple[int, int]] = []
    frame, parts, two = (
        wholeframe.WholeFrame.frame,
        wholeframe.WholeFrame.regions,
        wholeframe.WholeFrame.two_passes,
    )

    def whole(self, fr, size):
        sizes.append(size)
        return frame(self, fr, size)

    def cut(self, fr, size, boxes):
        regions.append(boxes)
        return parts(self, fr, size, boxes)

    def passes(self, fr, size):
        split.append(size)
        return two(self, fr, size)

    with monkeypatch.context() as m:
        m.setattr(wholeframe.WholeFrame, "frame", whole)
        m.setattr(wholeframe.WholeFrame, "regions", cut)
        m.setattr(wholeframe.WholeFrame, "two_passes", passes)
        config = AnalysisConfig(exhaustive=exhaustive)
        result = analyse.analyse_segment(Segment(path, 0, 0, 1, None, None, config))
    pts = 512  # pts per frame (25 fps in 1/12800)
    tracks = [(t.start_pts // pts, t.end_pts // pts, len(t.sightings)) for t in result.tracks]
    return tracks, sizes, regions, split


def test_a_fixed_camera_is_searched_where_it_changed(fixed_clip, monkeypatch):
    gated, sizes, regions, split = scan_segment(fixed_clip, monkeypatch)
    whole, whole_sizes, _, _ = scan_segment(fixed_clip, monkeypatch, exhaustive=True)
    assert gated == whole and [(s, e) for s, e, _ in gated] == [(0, 199), (60, 170)]
    full = (2560, 1440)  # --min-face 40: the frame at twice its size
    # Whole-frame searches at 0, 1, ..., 7 s without; with: at 0 and 5 s (every 5th) only,
    # at 1-4 s and 6-7 s only what changed: where Eileen Collins came (2.4 s), by 3 s, and
    # where she went (6.8 s), by 7 s; grown by 88 px, the quick searches' smallest face
    # (80 px at 720p) and a cell. 14% of the frame instead of all of it, twice.
    assert whole_sizes.count(full) == 8 and sizes.count(full) == 2
    came = [Box(680, 88, 360, 360)]
    assert regions == [[], [], came, [], [], came] and split == []


def test_exhaustive_searches_every_pixel(demo_watchlist):
    """The demo clip is a fixed camera: by default its faces are found in the changed
    regions, with boxes a pixel apart from the whole-frame search's (one distance moves by
    0.005); --exhaustive gives the whole-frame search's rows."""
    args = ("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", SAMPLE / "demo.mp4")
    gated = jsonl(run_cli(*args).stdout)
    whole = jsonl(run_cli(*args, "--exhaustive").stdout)
    assert [r["distance"] for r in gated] == [0.1275, 0.1694, 0.117]
    assert [r["distance"] for r in whole] == [0.1275, 0.1694, 0.1124]
    times = [(r["identity"], r["start_s"], r["end_s"], r["detections"]) for r in gated]
    assert times == [(r["identity"], r["start_s"], r["end_s"], r["detections"]) for r in whole]


# -- two passes at 1080p with a moving camera ---------------------------------------------
def hd_scene() -> np.ndarray:
    """1920x1080: a textured wall, Grace Hopper's face and Eileen Collins's ~50-60 px
    wide: faces that need the frame at twice its size."""
    yy, xx = np.mgrid[0:1080, 0:1920]
    wall = 90 + 50 * ((yy // 48 + xx // 48) % 2) + (xx % 300) // 10
    image = Image.fromarray(wall.astype(np.uint8)).convert("RGB")
    for name, x, height in (("Grace_Hopper.jpg", 500, 170), ("Eileen_Collins.png", 1300, 280)):
        with Image.open(SAMPLE / name) as photo:
            photo = photo.convert("RGB")
            image.paste(photo.resize((photo.width * height // photo.height, height)), (x, 480))
    return np.asarray(image)


def test_the_fine_detector_finds_at_half_the_scale_what_the_whole_search_finds():
    data = dlib_models.hog_filters(
        dlib_models._hog_bytes(dlib_models.hog_detector()), dlib_models.HOG_UPRIGHT
    )
    fine = dlib_models.hog_filters(
        dlib_models._hog_bytes(dlib_models.hog_detector()), dlib_models.HOG_UPRIGHT, fine=True
    )
    # Only the geometry differs: cells of 4 px instead of 8, a 40 px window instead of 80
    # (dlib's integers: a length byte, then the value).
    eight, four = bytes([1, 8, 1, 0, 1, 80, 1, 80]), bytes([1, 4, 1, 0, 1, 40, 1, 40])
    assert fine == data.replace(eight, four, 1) and eight in data
    frame = frame_of(hd_scene())
    whole = wholeframe.WholeFrame("hog", 1920, 1080, 0)
    size = detect.search_size(1920, 1080, 40)
    assert size == (3840, 2160) and whole.splits(size)
    exact = sorted((d.box for d in whole.frame(frame, size)), key=str)
    two = sorted((d.box for d in whole.two_passes(frame, size)), key=str)
    assert len(exact) == len(two) == 2, (exact, two)
    assert all(a.iou(b) > 0.6 for a, b in zip(exact, two, strict=True)), (exact, two)
    assert not wholeframe.WholeFrame("hog", 640, 360, 0).splits((1280, 720))
    assert not wholeframe.WholeFrame("cnn", 1920, 1080, 0).splits(size)


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> str:
    """3 s at 25 fps, 1920x1080, the camera panning 4 px a frame past the two faces."""
    path = tmp_path_factory.mktemp("moving") / "moving.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        scene = hd_scene()
        for i in range(75):
            image = np.roll(scene, -4 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def test_a_moving_camera_at_1080p_is_searched_in_two_passes(moving_clip, monkeypatch):
    tracks, sizes, regions, split = scan_segment(moving_clip, monkeypatch)
    exact, exact_sizes, _, exact_split = scan_segment(moving_clip, monkeypatch, exhaustive=True)
    full = (3840, 2160)
    quick = (1280, 720)
    # Full searches at 0, 1 and 2 s, quick ones at 0.5, 1.5 and 2.5 s. The first two are
    # dlib's own (nothing to compare with yet); from 1 s on the camera has moved, and every
    # whole-frame search runs in two passes, full and quick ones alike.
    assert exact_sizes == [full, quick, full, quick, full, quick] and exact_split == []
    assert sizes == [full, quick] and split == [full, quick, full, quick] and regions == []
    assert [(s, e) for s, e, _ in tracks] == [(s, e) for s, e, _ in exact] == [(0, 74), (0, 74)]
