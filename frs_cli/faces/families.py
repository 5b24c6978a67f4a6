"""Model families (issue 30): which networks find, align and encode faces, and every
number that depends on the scale of their distances. A watchlist is made with one family
(its model id says which) and everything that uses it follows: scan, evaluate, report
--clips, cohort, the API.

- `dlib` (the default): dlib's HOG (or MMOD CNN) detector, its 5-point landmarks, a
  150 px chip, the 128-d ResNet encoder of face_recognition (2017); Boost and MIT
  licences. Euclidean distances around 0.3-0.7.
- `arcface`: SCRFD-500M finds faces and five landmarks, the face is aligned to the
  112x112 template and encoded by ArcFace MobileFaceNet (WebFace600K), 512-d of length 1;
  InsightFace's weights are for non-commercial research use only. Euclidean distances
  between unit vectors, around 0.8-1.4 (docs/accuracy.md).

Each family's numbers were measured on ../shared/data/lfw-dev (docs/accuracy.md says how).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frs_cli.errors import UsageError, WatchlistError
from frs_cli.faces import arcface_tables, arcface_weights, dlib_tables
from frs_cli.files import printable
from frs_cli.records import Box

Landmarks = tuple[float, ...]  # five (x, y), flat; empty: none


@dataclass(frozen=True)
class Family:
    name: str
    prefix: str  # of a watchlist's model id ("<prefix><digest of the weights>")
    dim: int  # numbers per encoding
    # The lengths an encoding of this family can have: anything else (a zero vector is 1.0
    # from every unit vector, nearer than ArcFace's threshold) is damage or another
    # model's numbers, refused wherever vectors come in (store.usable).
    norms: tuple[float, float]
    unit: bool  # encodings are normalised to length 1: a mean of several is normalised too
    detector: str  # the detector a scan uses by default (--model)
    licence: str
    # The alert rule's grids (calibration.py): thresholds and margins tried.
    t_grid: tuple[float, ...]
    m_grid: tuple[float, ...]
    # Distance distributions measured on lfw-dev (dlib_tables.py, arcface_tables.py).
    table_step: float
    impostor_cdf: tuple[float, ...]
    genuine_cdf: tuple[float, ...]
    # Person labels of --unmatched (persons.py): a track joins a person within
    # `same_person` (mean of nearest views), `person_margin` nearer than anyone else.
    same_person: float
    person_margin: float
    # An enrolment photo this far (median) from its identity's others is flagged.
    unlike_distance: float
    fixed_tolerance: float  # `watchlist info`'s fixed-threshold line (face_recognition's 0.6)

    def check_tolerance(self, tolerance: float | None) -> None:
        """Refuse a fixed threshold off this family's scale (UsageError): dlib's 0.6 on an
        ArcFace watchlist misses nearly everyone, ArcFace's 1.15 on a dlib one alerts on
        strangers. The scale is the alert rule's grid, where its rates were measured."""
        lo, hi = self.t_grid[0], self.t_grid[-1]
        if tolerance is not None and not lo <= tolerance <= hi:
            others = ", ".join(
                f"{f.name} {f.t_grid[0]:g}-{f.t_grid[-1]:g}"
                for f in FAMILIES.values()
                if f.name != self.name
            )
            raise UsageError(
                f"--tolerance {tolerance:g} is off the {self.name} family's scale: its "
                f"thresholds run from {lo:g} to {hi:g} (where its error rates were measured; "
                f"{others}); or give --fpir for a rule chosen for this watchlist"
            )

    def describe(self) -> str:
        """What an encoding of this family is, for messages about vectors that are not."""
        lo, hi = self.norms
        return f"{self.dim} finite numbers of length {lo:g} to {hi:g}, as {self.name} encodings are"

    def model_id(self) -> str:
        """This family's model id on this machine (names the exact weights)."""
        if self.name == "dlib":
            from frs_cli.faces import dlib_models

            return dlib_models.encoder_model_id()
        return f"{self.prefix}{arcface_weights.find('arcface').sha256[:16]}"

    def check(self) -> None:
        """Raise (ModelsMissing / ModelMissing, which say how to install) unless the
        files of the family's networks, with its own detector, are on this machine."""
        check(self.detector, self.name)

    def encode(
        self, faces: Sequence[tuple[np.ndarray, Box] | tuple[np.ndarray, Box, Landmarks]]
    ) -> np.ndarray:
        """The encodings of faces given as (RGB uint8 image, box), or (image, box, the
        detector's landmarks: used where the family aligns on them), float32[n, dim]. A
        face that cannot be encoded (ArcFace: no landmarks that do not lie at one point)
        gets a row of NaN, which the caller skips."""
        return self.encode_lengths(faces)[0]

    def encode_lengths(
        self, faces: Sequence[tuple[np.ndarray, Box] | tuple[np.ndarray, Box, Landmarks]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """`encode`, and each encoding's length before it was normalised (ArcFace's: a
        quality signal, faces/bands.py; dlib's are not normalised: their own length)."""
        if self.name == "dlib":
            from frs_cli.faces.dlib_encoder import face_encodings

            vectors = face_encodings([(face[0], face[1]) for face in faces])
            return vectors, np.linalg.norm(vectors, axis=1).astype(np.float32)
        from frs_cli.faces import arcface

        return arcface.encode_boxes_lengths(faces)


def _grid(first: float, last: float, step: float) -> tuple[float, ...]:
    return tuple(round(first + step * i, 2) for i in range(round((last - first) / step) + 1))


DLIB = Family(
    name="dlib",
    prefix="dlib_resnet_v1:",
    dim=128,
    # dlib's encodings are 1.163-1.695 long over 6,416 lfw-dev photos, 1.24-1.66 over 150
    # of them shrunk to 30-60 px and blurred: a margin on both sides.
    norms=(0.9, 2.0),
    unit=False,
    detector="hog",
    licence="dlib (Boost Software License), its models from face_recognition_models (MIT)",
    t_grid=_grid(0.30, 0.65, 0.01),
    m_grid=_grid(0.00, 0.20, 0.01),
    table_step=dlib_tables.TABLE_STEP,
    impostor_cdf=dlib_tables.IMPOSTOR_CDF,
    genuine_cdf=dlib_tables.GENUINE_CDF,
    same_person=0.45,
    person_margin=0.05,
    unlike_distance=0.6,
    fixed_tolerance=0.6,
)
ARCFACE = Family(
    name="arcface",
    prefix="arcface_w600k_mbf:",
    dim=512,
    norms=(0.99, 1.01),  # normalised by frs (arcface.Encoder): 1 within float32's error
    unit=True,
    detector="scrfd",
    licence=arcface_weights.LICENCE,
    t_grid=_grid(0.80, 1.35, 0.01),
    m_grid=_grid(0.00, 0.30, 0.02),
    table_step=arcface_tables.TABLE_STEP,
    impostor_cdf=arcface_tables.IMPOSTOR_CDF,
    genuine_cdf=arcface_tables.GENUINE_CDF,
    same_person=arcface_tables.SAME_PERSON,
    person_margin=arcface_tables.PERSON_MARGIN,
    unlike_distance=arcface_tables.UNLIKE_DISTANCE,
    fixed_tolerance=arcface_tables.FIXED_TOLERANCE,
)
FAMILIES = {f.name: f for f in (DLIB, ARCFACE)}
NAMES = tuple(FAMILIES)


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UsageError(f"no model family {name!r}; choose one of {', '.join(NAMES)}") from None


def of(model_id: str) -> Family:
    """The family of a watchlist made with `model_id`. An id of no family this frs knows
    is refused (WatchlistError): read as another family's, its vectors would look damaged
    and the advice would be to remove them."""
    for family in FAMILIES.values():
        if model_id.startswith(family.prefix):
            return family
    name = model_id.split(":", 1)[0] if ":" in model_id else model_id
    raise WatchlistError(
        f"unknown model family {printable(name)!r} (made by a newer frs?): this frs knows "
        f"{', '.join(NAMES)}; nothing was changed. Use the frs that made it"
    )


def check(detector: str, encoder: str) -> None:
    """Raise (saying how to install, or why a file was refused) unless every file that a
    scan or enrolment finding faces with `detector` and encoding them with the family
    `encoder` loads is here and readable, checked before any work: a bad file found by a
    worker mid-scan would fail each file in turn."""
    from frs_cli.faces import dlib_models

    dlib_models.check(detector, encodes=encoder == DLIB.name)
    if detector == "scrfd" or encoder == ARCFACE.name:  # ArcFace aligns on SCRFD's landmarks
        arcface_weights.find("scrfd")
    if encoder == ARCFACE.name:
        arcface_weights.find("arcface")


def preload(detector: str, encoder: str) -> None:
    """Load what a worker finding faces with `detector` and encoding them with the family
    `encoder` needs, and nothing else, e.g. before forking workers so that each inherits
    it (the ArcFace encoder is 13 MB a worker, where a dlib watchlist has no use for it)."""
    from frs_cli.faces import dlib_models

    dlib_models.preload(detector, encodes=encoder == DLIB.name)
    if detector == "scrfd" or encoder == ARCFACE.name:
        from frs_cli.faces import arcface

        arcface.detector()
        if encoder == ARCFACE.name:
            arcface.encoder()
