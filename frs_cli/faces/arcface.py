"""The second model family's networks (issue 30): SCRFD-500M finds faces and their five
landmarks (eyes, nose tip, mouth corners), each face is aligned on them to ArcFace's
112x112 template by a similarity transform, and ArcFace MobileFaceNet (WebFace600K)
encodes it as 512 numbers of length 1. Both run on ONNX Runtime, one thread, from the
files `arcface_weights.find` checks; loaded once per process.

SCRFD's input: RGB, (x - 127.5) / 128, the picture scaled to fit and padded to a
multiple of 32. Its outputs, per stride 8, 16 and 32 and two anchors per place: a score,
the distances from the anchor's place to the box's four sides, and the five landmarks'
offsets, all in strides. ArcFace's input: RGB, (x - 127.5) / 127.5.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from frs_cli.faces import arcface_weights
from frs_cli.records import Box

DIM = 512
STRIDES = (8, 16, 32)
ANCHORS = 2  # per place and stride
SCORE = 0.5  # a face: SCRFD's own default
NMS_IOU = 0.4
DETECT_SIDE = 640  # the longest side SCRFD sees by default (InsightFace's 640x640)
CHIP = 112
# Where the five landmarks lie in ArcFace's 112x112 input (InsightFace's template).
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]]
)  # fmt: skip


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # left, top, right, bottom, in source pixels
    score: float
    landmarks: np.ndarray  # (5, 2): eyes, nose tip, mouth corners, in source pixels


def _session(path: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@functools.cache
def detector() -> Detector:
    return Detector(_session(arcface_weights.find("scrfd").path))


@functools.cache
def encoder() -> Encoder:
    return Encoder(_session(arcface_weights.find("arcface").path))


class Detector:
    def __init__(self, session: Any):
        self.session = session
        self.input = session.get_inputs()[0].name
        self._places: dict[tuple[int, int, int], np.ndarray] = {}

    def places(self, height: int, width: int, stride: int) -> np.ndarray:
        """Each anchor's place (x, y) in the input, ANCHORS times each, row by row."""
        key = (height, width, stride)
        if key not in self._places:
            ys, xs = np.mgrid[: height // stride, : width // stride]
            grid = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            self._places[key] = np.repeat(grid, ANCHORS, axis=0)
        return self._places[key]

    def __call__(
        self, rgb: np.ndarray, side: int = DETECT_SIDE, score: float = SCORE
    ) -> list[Face]:
        """Faces in an RGB picture, best first. The picture is scaled so that its longest
        side is at most `side` (never enlarged) and padded to a multiple of 32."""
        height, width = rgb.shape[:2]
        scale = min(1.0, side / max(height, width))
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        padded = np.zeros((-(-h // 32) * 32, -(-w // 32) * 32, 3), np.float32)
        small = (
            rgb
            if scale == 1.0
            else np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
        )
        padded[:h, :w] = small
        blob = ((padded - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outputs = [o[0] if o.ndim == 3 else o for o in self.session.run(None, {self.input: blob})]
        boxes, scores, marks = [], [], []
        for k, stride in enumerate(STRIDES):
            found = np.flatnonzero(outputs[k][:, 0] >= score)
            if not len(found):
                continue
            at = self.places(padded.shape[0], padded.shape[1], stride)[found]
            sides = outputs[k + 3][found] * stride
            boxes.append(np.concatenate([at - sides[:, :2], at + sides[:, 2:]], axis=1))
            scores.append(outputs[k][found, 0])
            marks.append(outputs[k + 6][found].reshape(-1, 5, 2) * stride + at[:, None, :])
        if not boxes:
            return []
        box, sc, mk = np.concatenate(boxes), np.concatenate(scores), np.concatenate(marks)
        keep = suppress(box, sc, NMS_IOU)
        return [
            Face(tuple(float(v) for v in box[i] / scale), float(sc[i]), mk[i] / scale)  # type: ignore[arg-type]
            for i in keep
        ]


def suppress(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression: the best box, then each next one that overlaps
    none kept by more than `iou`."""
    order = list(np.argsort(-scores, kind="stable"))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order:
        i, rest = order[0], np.array(order[1:], int)
        keep.append(int(i))
        if not len(rest):
            break
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= iou].tolist()
    return keep


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 rotation, uniform scale and shift that best maps points `src` onto `dst`
    (least squares; Umeyama 1991, without reflection)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mean_s, mean_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mean_s, dst - mean_d
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(sigma) @ flip)) / float((s**2).sum() / len(src))
    shift = mean_d - scale * rotation @ mean_s
    return np.hstack([scale * rotation, shift[:, None]])


def align(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face whose five landmarks are given, as ArcFace's 112x112 RGB input."""
    return _warp(rgb, similarity(landmarks, TEMPLATE))


def _warp(rgb: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """The 112x112 chip that the 2x3 `transform` maps the picture onto."""
    forward = np.vstack([transform, [0.0, 0.0, 1.0]])
    back = np.linalg.inv(forward)[:2].ravel()  # PIL maps output pixels to input ones
    chip = Image.fromarray(rgb).transform(
        (CHIP, CHIP), Image.Transform.AFFINE, tuple(back), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(chip)


class Encoder:
    def __init__(self, session: Any):
        self.session = session
        self.input = session.get_inputs()[0].name

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        """(n, 112, 112, 3) aligned RGB chips -> (n, 512) encodings of length 1."""
        if not len(chips):
            return np.zeros((0, DIM), np.float32)
        x = ((np.asarray(chips, np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
        out = self.session.run(None, {self.input: np.ascontiguousarray(x)})[0]
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def encode_faces(rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Encodings of `faces` in `rgb`, in one batch."""
    return encoder()(
        np.stack([align(rgb, f.landmarks) for f in faces])
        if faces
        else np.zeros((0, CHIP, CHIP, 3), np.uint8)
    )


# -- faces given as boxes (from any detector) ------------------------------------
LANDMARK_MARGIN = 1.0  # SCRFD looks for a box's landmarks in the box grown by this much (the
# context matters: at 0.5 the encodings of LFW faces moved 0.17 from those of the landmarks
# found on the whole photo, at 1.0 by 0 in the median, 0.13 at the 95th percentile)
LANDMARK_FACE_PX = 112  # ... scaled (down only) so the box is about this wide
LANDMARK_SCORE = 0.3  # a face known to be there may score lower than a new one
LANDMARK_IOU = 0.3  # SCRFD's face must overlap the box this much to be the same face


def landmarks(rgb: np.ndarray, box: Box) -> np.ndarray | None:
    """The five landmarks of the face at `box`, found by SCRFD in a crop around it (the
    face that overlaps the box most); None where SCRFD sees no face there."""
    height, width = rgb.shape[:2]
    area = box.expanded(LANDMARK_MARGIN, width, height)
    crop = np.ascontiguousarray(rgb[area.top : area.bottom, area.left : area.right])
    if min(crop.shape[:2]) < 8:
        return None
    side = max(crop.shape[:2])
    side = max(32, round(side * min(1.0, LANDMARK_FACE_PX / max(1, box.width))))
    inside = np.array([box.left - area.left, box.top - area.top, box.right - area.left,
                       box.bottom - area.top], np.float64)  # fmt: skip
    best, best_iou = None, LANDMARK_IOU
    for face in detector()(crop, side, LANDMARK_SCORE):
        iou = _iou(np.array(face.box), inside)
        if iou >= best_iou:
            best, best_iou = face, iou
    if best is None:
        return None
    return best.landmarks + np.array([area.left, area.top], np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def eyes_chip(rgb: np.ndarray, box: Box) -> np.ndarray:
    """The chip of a face SCRFD does not see, aligned on its two eyes only (their centres
    from dlib's 5-point landmarks, exact for two points) to the template's eyes."""
    import dlib

    from frs_cli.faces import dlib_models

    shape = dlib_models.shape_predictor()(
        rgb, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
    )
    p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(4)], np.float64)
    eyes = sorted([p[:2].mean(axis=0), p[2:4].mean(axis=0)], key=lambda e: float(e[0]))
    return _warp(rgb, similarity(np.array(eyes), TEMPLATE[:2]))


def encode_boxes(
    faces: Sequence[tuple[np.ndarray, Box] | tuple[np.ndarray, Box, tuple[float, ...]]],
) -> np.ndarray:
    """Encodings of faces given as (RGB image, box) or (image, box, landmarks), in one
    batch: each aligned on the landmarks given (SCRFD found the face) or those SCRFD finds
    around its box, or on its eyes where it finds none."""
    chips = []
    for face in faces:
        rgb, box = face[0], face[1]
        given = face[2] if len(face) > 2 else ()
        marks = np.reshape(given, (5, 2)) if len(given) == 10 else landmarks(rgb, box)
        chips.append(align(rgb, marks) if marks is not None else eyes_chip(rgb, box))
    return encoder()(np.stack(chips) if chips else np.zeros((0, CHIP, CHIP, 3), np.uint8))


def photo_faces(rgb: np.ndarray) -> list[Face]:
    """The faces of an enrolment photo (SCRFD on the photo scaled to DETECT_SIDE)."""
    return detector()(rgb)


def to_box(face: Face, width: int, height: int) -> Box:
    """A face's box in whole pixels, inside the picture."""
    left, top, right, bottom = face.box
    x0, y0 = max(0, int(round(left))), max(0, int(round(top)))
    x1, y1 = min(width, int(round(right))), min(height, int(round(bottom)))
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))
