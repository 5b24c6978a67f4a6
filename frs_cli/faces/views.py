"""Pictures for human review: a face crop and a reduced frame with the face boxed,
as JPEG bytes (made in the worker that has the pixels, written by the parent only
for matched appearances). Also file names that are safe on any file system."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from frs_cli import files
from frs_cli.records import Appearance, Box
from frs_cli.timecode import format_tc

FRAME_WIDTH = 640  # frame views are reduced to this width
FACE_MARGIN = 0.4  # a face crop is the box grown by this much on each side
QUALITY = 85


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=QUALITY)
    return buf.getvalue()


def render(rgb: np.ndarray, box: Box, blur: list[Box]) -> tuple[bytes, bytes]:
    """(face crop, reduced frame with the box drawn and the `blur` boxes blurred)."""
    h, w = rgb.shape[:2]
    frame = Image.fromarray(rgb)
    face = frame.crop(_grown(box, FACE_MARGIN, w, h))
    for other in blur:
        region = _grown(other, 0.2, w, h)
        if region[2] > region[0] and region[3] > region[1]:
            patch = frame.crop(region).filter(ImageFilter.GaussianBlur(max(4, other.width // 6)))
            frame.paste(patch, region[:2])
    scale = min(1.0, FRAME_WIDTH / w)
    small = frame.resize((max(1, round(w * scale)), max(1, round(h * scale))))
    draw = ImageDraw.Draw(small)
    x0, y0 = box.left * scale, box.top * scale
    draw.rectangle(
        [x0, y0, x0 + box.width * scale, y0 + box.height * scale], outline=(255, 40, 40), width=2
    )
    return _jpeg(face), _jpeg(small)


def _grown(box: Box, margin: float, w: int, h: int) -> tuple[int, int, int, int]:
    g = box.expanded(margin, w, h)
    return (g.left, g.top, g.right, g.bottom)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 60) -> str:
    """A file-name part from user-supplied text (identities, file names): ASCII letters,
    digits, '.', '_' and '-' only, no leading dot, at most `limit` characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("_", ascii_text).strip("._-")[:limit].rstrip("._-")
    return name or "x"


def save_views(folder: Path, a: Appearance) -> tuple[str | None, str | None]:
    """Write a matched appearance's face crop and frame view (owner-only); unmatched
    ones get none. Returns their paths."""
    if a.identity is None or not a.face_jpeg:
        return None, None
    source = Path(a.source)
    tag = hashlib.sha1(str(source).encode()).hexdigest()[:6]
    when = format_tc(a.best_s).replace(":", "h", 1).replace(":", "m", 1) + "s"
    stem = f"{safe_name(source.stem, 40)}-{tag}_{safe_name(a.identity)}_{when}_t{a.track_id}"
    paths = []
    for suffix, data in (("face", a.face_jpeg), ("frame", a.frame_jpeg)):
        path = folder / f"{stem}_{suffix}.jpg"
        files.write_atomic(path, data)
        paths.append(str(path))
    return paths[0], paths[1]
