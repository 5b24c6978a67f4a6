"""Photos made to look as CCTV films faces (issue 36), for measuring what a face's size
does to the rule: shrunk so that the face is a given height (area-averaged, as a sensor
does), blurred (Gaussian, sigma drawn from BLUR_SIGMA px), the picture's edges repeated
around it, and passed through H.264 as still video frames (x264, CRF drawn from CRF); then
found and encoded the way a scan does (`find_and_encode`): luma scaled so that a
`min_face` px face fills the detector's window, the family's whole-frame detector, the
detection nearest the middle, encoded from the RGB picture with the detector's landmarks
(ArcFace: found again around the face, as the search enlarged it; detect.LANDMARK_ENLARGED).

Used by `frs evaluate --face-px` and benchmarks/band_tables.py (which made the size
bands' tables, faces/band_tables.py). Pictures are made in memory and never kept.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from PIL import Image, ImageFilter

from frs_cli.faces import detect
from frs_cli.faces.families import Family

BLUR_SIGMA = (0.0, 0.4)
# x264's constant rate factor, drawn: its default (23) and a little either side. Wider (20-36)
# made the same-person distances of faces at 23 look 2x worse than they were: the encoding's
# length (LENGTH_CUTS) tells such faces apart only in part.
CRF = (18, 28)
# Still frames of H.264 a picture is passed through: one second of 25 fps footage, as a face
# held still is filmed and as issue 36's composition shows each photo. x264 spends more bits
# on a picture the later frames repeat; at 8 frames, ArcFace's same-person distances of 32 px
# faces were farther (FNIR at its 1.13 threshold 0.125, at 25 frames 0.080, in footage 0.065).
FRAMES = 25
PAD = 0.5  # edges repeated around the picture, this share of its side on each side
MIN_FACE = 8  # the scan's --min-face the faces are looked for at


def degrade(rgb: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """`rgb` shrunk by `scale`, blurred, padded and passed through H.264 (drawn with
    `seed`)."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rgb)
    size = (max(8, round(img.width * scale)), max(8, round(img.height * scale)))
    small = img.resize(size, Image.Resampling.BOX)
    sigma = float(rng.uniform(*BLUR_SIGMA))
    if sigma > 0.1:
        small = small.filter(ImageFilter.GaussianBlur(sigma))
    pad = round(min(size) * PAD)
    out = np.pad(np.asarray(small), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return h264(out, int(rng.integers(CRF[0], CRF[1] + 1)))


def h264(rgb: np.ndarray, crf: int, frames: int = FRAMES) -> np.ndarray:
    """`rgb` as the middle of `frames` still frames of H.264 (x264 at `crf`, 4:2:0),
    decoded again: a picture from a video, its blocks and smeared colour included
    (cropped back from even sides). One frame alone measured far worse than footage of
    the same still picture: x264 spends more bits on a picture that later frames repeat."""
    import av

    h, w = rgb.shape[:2]
    even = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height = even.shape[1], even.shape[0]
    enc.pix_fmt = "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"crf": str(crf), "threads": "1"}  # x264's default preset, as footage
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format="rgb24")
    frame = frame.reformat(format="yuv420p", threads=1)  # one: see decode.SWS_THREADS
    packets = []
    for i in range(frames):
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    dec = av.CodecContext.create("h264", "r")
    got = [f for p in packets for f in dec.decode(p)]
    got += dec.decode(None)
    return np.ascontiguousarray(got[len(got) // 2].to_ndarray(format="rgb24", threads=1)[:h, :w])


def find_and_encode(
    rgb: np.ndarray, family: Family, min_face: int = MIN_FACE
) -> tuple[int, np.ndarray | None, float]:
    """(box height, encoding, its length before normalisation) of the face nearest the
    middle of `rgb` as a scan finds and encodes it: (0, None, nan) where none is found
    near the middle, (height, None, nan) where the face found cannot be aligned."""
    h, w = rgb.shape[:2]
    luma = Image.fromarray(rgb).convert("L")
    scale = detect.scale_for(min_face, detect.window(family.detector))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    scaled = np.ascontiguousarray(np.asarray(luma.resize(size, Image.Resampling.BILINEAR)))
    found = [
        detect.to_source(d, size[0] / w, size[1] / h)
        for d in detect.get(family.detector, whole_frame=True)(scaled, 0.0)
    ]
    if not found:
        return 0, None, float("nan")
    det = min(
        found,
        key=lambda d: (
            (d.box.left + d.box.width / 2 - w / 2) ** 2
            + (d.box.top + d.box.height / 2 - h / 2) ** 2
        ),
    )
    b = det.box
    if abs(b.left + b.width / 2 - w / 2) > w / 6 or abs(b.top + b.height / 2 - h / 2) > h / 6:
        return 0, None, float("nan")  # not the picture's own face
    vectors, lengths = family.encode_lengths([(rgb, detect.clip_box(b, w, h), det.landmarks)])
    if np.isnan(vectors[0]).any():
        return b.height, None, float("nan")
    return b.height, vectors[0], float(lengths[0])
