"""Synthetic footage with known faces at known times, for the demo and the tests.

A clip is a list of `Shot`s: which photo is pasted where on a plain textured
background, from which frame to which. Frames are encoded with PyAV (H.264 by
default), so the clip exercises the same decoding path as real footage; any
frame rate, size, and variable frame rate (explicit pts) can be made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Shot:
    photo: str  # path of the image to paste
    first: int  # first frame (inclusive)
    last: int  # last frame (inclusive)
    x: float  # left edge, as a share of the frame width
    y: float  # top edge, as a share of the frame height
    height: float  # pasted height, as a share of the frame height
    drift_px: float = 0.0  # horizontal movement per frame


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a little fixed noise: no faces, some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [60 + 80 * xx / width, 90 + 60 * yy / height, 120 + 40 * (xx + yy) / (width + height)],
        axis=-1,
    )
    noise = rng.normal(0, 4, size=(height, width, 1))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def render(shots: Sequence[Shot], index: int, width: int, height: int) -> np.ndarray:
    frame = Image.fromarray(background(width, height))
    for shot in shots:
        if not shot.first <= index <= shot.last:
            continue
        photo = _photo(shot.photo)
        h = int(round(shot.height * height))
        w = int(round(photo.width * h / photo.height))
        pasted = photo.resize((w, h), Image.Resampling.LANCZOS)
        x = int(round(shot.x * width + shot.drift_px * (index - shot.first)))
        frame.paste(pasted, (x, int(round(shot.y * height))))
    return np.asarray(frame)


_PHOTOS: dict[str, Image.Image] = {}


def _photo(path: str) -> Image.Image:
    if path not in _PHOTOS:
        with Image.open(path) as img:
            _PHOTOS[path] = img.convert("RGB")
    return _PHOTOS[path]


def write_clip(
    path: str | Path,
    shots: Sequence[Shot],
    frames: int,
    fps: int = 25,
    width: int = 640,
    height: int = 360,
    codec: str = "libx264",
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
) -> None:
    """Encode `frames` frames. With `pts` (in `time_base`), frames get those times (VFR)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "23", "g": str(fps), "preset": "fast"}
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(render(shots, i, width, height), format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
