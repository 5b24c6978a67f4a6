"""Synthetic footage with known faces at known times, for the demo and the tests.

A clip is a list of `Shot`s: which photo is pasted where on a plain textured
background, from which frame to which. Frames are encoded with PyAV (H.264 by
default), so the clip exercises the same decoding path as real footage; any
frame rate, size, and variable frame rate (explicit pts) can be made.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

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


@functools.lru_cache(maxsize=4)
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
    frame = Image.fromarray(background(width, height).copy())
    for shot in shots:
        if not shot.first <= index <= shot.last:
            continue
        pasted = _pasted(shot.photo, int(round(shot.height * height)))
        x = int(round(shot.x * width + shot.drift_px * (index - shot.first)))
        frame.paste(pasted, (x, int(round(shot.y * height))))
    return np.asarray(frame)


@functools.lru_cache(maxsize=16)
def _pasted(path: str, h: int) -> Image.Image:
    photo = _photo(path)
    return photo.resize((int(round(photo.width * h / photo.height)), h), Image.Resampling.LANCZOS)


_PHOTOS: dict[str, Image.Image] = {}


def _photo(path: str) -> Image.Image:
    if path not in _PHOTOS:
        with Image.open(path) as img:
            _PHOTOS[path] = img.convert("RGB")
    return _PHOTOS[path]


STREAM_KINDS = ("video", "audio", "preview", "subtitle", "data")


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
    layout: Sequence[str] = ("video",),
    pts_offset: int = 0,
    gop: int | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Encode `frames` frames. With `pts` (in `time_base`), frames get those times (VFR).

    `layout` lists the file's streams in container order, as real exports have them:
    "video" is the clip itself; "audio" a quiet AAC track as long as the clip; "preview"
    a 160x90 copy of the video (a thumbnail track); "subtitle" one ASS line (Matroska);
    "data" one opaque packet (MPEG-TS, like KLV metadata). `pts_offset` is added to every
    video frame's pts (in the stream's time base), e.g. to make timestamps wrap. `gop`:
    a keyframe every that many frames (default: the encoder's, one in 250 for x264).
    `metadata`: container tags, e.g. {"creation_time": "2024-03-01T10:00:00Z"}."""
    import av

    unknown = set(layout) - set(STREAM_KINDS)
    assert "video" in layout and not unknown, f"bad layout {layout}"
    with av.open(str(path), "w") as out:
        out.metadata.update(metadata or {})
        streams: dict[str, Any] = {}
        for kind in layout:
            streams[kind] = _add_stream(out, kind, codec, fps, width, height, time_base)
        stream = streams["video"]
        if gop is not None:
            stream.codec_context.gop_size = gop
        audio = _Tone(out, streams["audio"]) if "audio" in streams else None
        for i in range(frames):
            image = render(shots, i, width, height)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts is not None:
                frame.pts = pts[i] + pts_offset
                frame.time_base = time_base
            elif pts_offset:
                frame.pts = i + pts_offset
            for packet in stream.encode(frame):
                out.mux(packet)
            if "preview" in streams:
                small = Image.fromarray(image).resize((160, 90), Image.Resampling.BILINEAR)
                thumb = av.VideoFrame.from_ndarray(np.asarray(small), format="rgb24")
                for packet in streams["preview"].encode(thumb):
                    out.mux(packet)
            if audio is not None:
                audio.until((i + 1) / fps)
        for packet in stream.encode():
            out.mux(packet)
        if "preview" in streams:
            for packet in streams["preview"].encode():
                out.mux(packet)
        if audio is not None:
            audio.close()
        for kind, payload in (("subtitle", b"0,0,Default,,0,0,0,,frs test"), ("data", b"KLV")):
            if kind in streams:
                packet = av.Packet(payload)
                packet.stream = streams[kind]
                packet.pts = packet.dts = 0
                packet.duration = 1
                out.mux(packet)


def _add_stream(
    out: Any, kind: str, codec: str, fps: int, width: int, height: int, tb: Fraction | None
) -> Any:
    if kind == "audio":
        return out.add_stream("aac", rate=48000, layout="mono")
    if kind == "subtitle":
        return out.add_stream("ass")
    if kind == "data":
        return out.add_data_stream()
    stream = out.add_stream(codec if kind == "video" else "libx264", rate=fps)
    stream.width, stream.height = (width, height) if kind == "video" else (160, 90)
    stream.pix_fmt = "yuvj420p" if stream.codec_context.name == "mjpeg" else "yuv420p"
    if stream.codec_context.name == "libx264":
        stream.options = {"crf": "23", "g": str(fps), "preset": "fast"}
    if tb is not None and kind == "video":
        stream.codec_context.time_base = tb
    return stream


class _Tone:
    """A quiet 440 Hz AAC tone (silence can be encoded to almost nothing), written
    alongside the video so that the streams interleave as in real files."""

    RATE, SIZE = 48000, 1024

    def __init__(self, out: Any, stream: Any):
        self.out, self.stream, self.done = out, stream, 0

    def until(self, seconds: float) -> None:
        import av

        while self.done < seconds * self.RATE:
            t = np.arange(self.done, self.done + self.SIZE) / self.RATE
            samples = (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = self.RATE, self.done
            self.done += self.SIZE
            for packet in self.stream.encode(frame):
                self.out.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.out.mux(packet)
