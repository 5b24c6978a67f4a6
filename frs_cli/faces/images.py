"""Loading photos for enrolment: any format Pillow reads, EXIF orientation applied,
alpha dropped, 16-bit and CMYK converted, huge photos reduced, bombs refused."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from frs_cli import files
from frs_cli.errors import InputError
from frs_cli.hashing import sha256_file

MAX_PIXELS = 400_000_000  # 20,000 x 20,000; more is refused as a decompression bomb
MAX_SIDE = 4000  # larger photos are reduced to this longest side before anything else
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic"}


@dataclass(frozen=True, eq=False)
class Photo:
    path: str
    sha256: str
    rgb: np.ndarray  # uint8, H x W x 3, C-contiguous
    scale: float  # rgb pixels per original pixel (< 1 when reduced)


def load_photo(path: str) -> Photo:
    """Read a photo as RGB. Raises InputError with a reason the user can act on."""
    p = Path(path)
    why = files.regular(p)
    if why is not None:  # a FIFO would block the worker; a device never ends
        raise InputError(path, why)
    try:
        if p.stat().st_size == 0:
            raise InputError(path, "empty file (0 bytes)")
        digest = sha256_file(p)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            with Image.open(p) as opened:
                original = opened.size
                img: Image.Image = opened
                img.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at reduced size
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except PermissionError:
        raise InputError(path, "permission denied; check the file's read permission") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            path,
            f"image too large (over {MAX_PIXELS:,} pixels); refusing it as a decompression bomb",
        ) from None
    except UnidentifiedImageError:
        raise InputError(path, "not an image Pillow can read (corrupt, or not a photo)") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise InputError(path, f"unreadable image ({err})") from None
    if max(rgb.size) > MAX_SIDE:
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    array = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    # Both orientation and draft() may change the size; the scale is along the long side.
    scale = max(array.shape[:2]) / max(original)
    return Photo(path, digest, array, min(1.0, scale))


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits instead of clipping at 255.
        data = np.asarray(img, dtype=np.uint32)
        peak = 65535 if img.mode.startswith("I;16") or data.max() > 255 else 255
        gray = (data * 255 // max(1, peak)).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
