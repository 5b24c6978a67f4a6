"""A photo's face and its encoding: the face a photo is of (the largest, or the one
nearest the middle) found and encoded with a model family's networks, for enrolment,
the cohort and `frs evaluate`.

With dlib's family, detection on photos follows face_recognition's defaults (HOG,
upsample once), on the photo reduced to `DETECT_SIDE` when it is larger, and the
encoding is made on the photo itself, so that a watchlist built here matches one built
with face_recognition.face_encodings. With ArcFace's, SCRFD finds the faces and their
landmarks, on which the chosen face is aligned.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from frs_cli.errors import InputError
from frs_cli.faces import detect, dlib_models, images
from frs_cli.faces.dlib_encoder import face_encoding
from frs_cli.records import Box, Detection

DETECT_SIDE = 1600


@dataclass(frozen=True)
class PhotoJob:
    identity: str
    path: str


@dataclass(frozen=True, eq=False)
class PhotoResult:
    job: PhotoJob
    status: str  # enrolled | no-face | unreadable (several faces: enrolled, faces > 1)
    faces: int = 0
    vector: np.ndarray | None = None
    box: Box | None = None
    sha256: str = ""
    reason: str = ""


Mapper = Callable[[Callable[[PhotoJob], PhotoResult], list[PhotoJob]], Iterable[PhotoResult]]


def find_faces(rgb: np.ndarray, choose: str = "largest") -> list[Box]:
    """Faces in a photo (HOG, upsample 1, like face_recognition), the chosen one first:
    `largest`, or `central` (nearest the middle: news and ID photos frame their subject)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    small = rgb
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    if min(small.shape[:2]) < 2:
        return []
    rects = dlib_models.hog_detector()(small, 1)
    boxes = [
        detect.clip_box(
            detect.to_source(Detection(detect.rect_to_box(r), 0.0), scale, scale).box, w, h
        )
        for r in rects
    ]
    return _chosen_first(boxes, w, h, choose)


def _chosen_first(boxes: list[Box], w: int, h: int, choose: str) -> list[Box]:
    if choose == "central":
        return sorted(
            boxes,
            key=lambda b: (b.left + b.width / 2 - w / 2) ** 2 + (b.top + b.height / 2 - h / 2) ** 2,
        )
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def _arcface_photo(rgb: np.ndarray, choose: str) -> tuple[list[Box], np.ndarray | None]:
    """SCRFD's faces in a photo (the chosen one first) and the chosen one's ArcFace
    encoding, aligned on the landmarks SCRFD found with it."""
    from frs_cli.faces import arcface

    h, w = rgb.shape[:2]
    faces = arcface.photo_faces(rgb)
    if not faces:
        return [], None
    boxes = [arcface.to_box(f, w, h) for f in faces]
    chosen = _chosen_first(boxes, w, h, choose)
    return chosen, arcface.encode_faces(rgb, [faces[boxes.index(chosen[0])]])[0]


def encode_photo(job: PhotoJob, choose: str = "largest", family: str = "dlib") -> PhotoResult:
    """Load, detect, encode one photo with the `family`'s networks (families.py): dlib's
    HOG and encoder, or SCRFD and ArcFace. Never raises for bad input."""
    try:
        photo = images.load_photo(job.path)
    except InputError as err:
        return PhotoResult(job, "unreadable", reason=err.reason)
    if family == "arcface":
        from frs_cli.faces.arcface import Unalignable

        try:
            boxes, vector = _arcface_photo(photo.rgb, choose)
        except Unalignable as err:
            return PhotoResult(job, "no-face", sha256=photo.sha256, reason=str(err))
    else:
        boxes = find_faces(photo.rgb, choose)
        vector = face_encoding(photo.rgb, boxes[0]) if boxes else None
    if not boxes or vector is None:
        return PhotoResult(job, "no-face", sha256=photo.sha256, reason="no face found")
    box = boxes[0]
    if photo.scale < 1.0:  # report the box in the original photo's pixels
        s = photo.scale
        box = Box(
            round(box.left / s), round(box.top / s), round(box.width / s), round(box.height / s)
        )
    return PhotoResult(job, "enrolled", len(boxes), vector, box, photo.sha256)


def encode_photos(
    jobs: list[PhotoJob],
    mapper: Mapper | None = None,
    choose: str = "largest",
    family: str = "dlib",
) -> Iterator[PhotoResult]:
    """Encode photos in order, with `mapper(fn, items)` (an executor's map) when given."""
    fn = (
        encode_photo
        if (choose, family) == ("largest", "dlib")
        else functools.partial(encode_photo, choose=choose, family=family)
    )
    yield from (mapper or map)(fn, jobs)
