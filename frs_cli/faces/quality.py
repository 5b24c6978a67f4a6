"""A quality record for each view of a face (issue 36): what may make it easier or harder
to identify than the enrolment photos, kept with the view (records.FaceEncoding) for the
rows and the review page. A face's size is what frs's rule and stated rates go by (its
band: faces/bands.py); the rest is recorded, not yet used to decide.

- `face_px`: the detector's box height (the size bands' measure).
- `score`: the detector's confidence (0 is its own cut; followed faces may score lower).
- `sharpness`: the variance of the Laplacian of the face's luma, resampled to
  SHARP_PX square (so that faces of every size compare): high for crisp edges, low for
  blurred or heavily compressed faces.
- `length` (once encoded): the encoding's length before normalisation; ArcFace's
  predicts how far a face lies from its own photo, and classes its size bands
  (faces/bands.py).
- `eye_px`, `yaw`, `pitch`: from the detector's five landmarks where it gives them (SCRFD,
  faces of 48 px and more): the distance between the eyes; the nose's offset from the
  eyes' midpoint in half eye distances (0 frontal, +-1 the nose over an eye); the nose's
  height between eyes and mouth, less the frontal template's (0 level, + looking down).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

from frs_cli.faces.arcface import TEMPLATE
from frs_cli.records import Box, Quality

SHARP_PX = 32
# The frontal template's nose height between eyes and mouth (ArcFace's: 0.495).
_EYES_Y, _NOSE_Y, _MOUTH_Y = TEMPLATE[:2, 1].mean(), TEMPLATE[2, 1], TEMPLATE[3:, 1].mean()
FRONTAL_NOSE = float((_NOSE_Y - _EYES_Y) / (_MOUTH_Y - _EYES_Y))


def sharpness(rgb: np.ndarray, box: Box) -> float:
    """The variance of the Laplacian of the face's luma at SHARP_PX square."""
    face = rgb[max(0, box.top) : box.bottom, max(0, box.left) : box.right]
    if face.size == 0:
        return 0.0
    grey = Image.fromarray(np.ascontiguousarray(face)).convert("L")
    y = np.asarray(grey.resize((SHARP_PX, SHARP_PX), Image.Resampling.BILINEAR), np.float32)
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return round(float(lap.var()), 1)


def of(rgb: np.ndarray, box: Box, score: float, landmarks: tuple[float, ...] = ()) -> Quality:
    """The quality of the view of a face at `box` in `rgb`, with the detector's `score`
    and five `landmarks` (x, y pairs in `rgb`'s pixels; empty where it gave none)."""
    eye_px = yaw = pitch = None
    if len(landmarks) == 10:
        p = np.reshape(np.asarray(landmarks, np.float64), (5, 2))
        eyes = (p[0] + p[1]) / 2
        span = float(np.hypot(*(p[1] - p[0])))
        mouth_y = (p[3][1] + p[4][1]) / 2
        if span > 0:
            eye_px = round(span, 1)
            yaw = round(float(np.clip((p[2][0] - eyes[0]) / (span / 2), -9, 9)), 2)
        if mouth_y - eyes[1] > 0:
            pitch = round(float((p[2][1] - eyes[1]) / (mouth_y - eyes[1]) - FRONTAL_NOSE), 2)
    return Quality(box.height, round(score, 3), sharpness(rgb, box), eye_px, yaw, pitch)


def encoded(seen: Quality, length: float | None) -> Quality:
    """`seen` with the encoding's length before normalisation (None or NaN: not encoded)."""
    if length is None or not math.isfinite(length):
        return seen
    return dataclasses.replace(seen, length=round(float(length), 3))
