"""Faces by size (issue 36): the bands a scan counts faces in, and per family what a face
of each band does to the alert rule.

A face's size is the height of its box as the detector gave it (a track's largest encoded
view; rows' `face_px`). The rates frs states were measured on photos (lfw-dev's faces:
dlib's box ~60 px, SCRFD's ~77 px); a smaller face, blurred and compressed as CCTV films
it, lies farther from its own enrolment photo, and farther or nearer from strangers'.
benchmarks/band_tables.py measures both per band, through the scan's detect-and-encode
path (band_tables.py holds the numbers): the *shift* (how much farther a small face lies
from strangers at the rare distances the alert rule works at) and the CDF of same-person
distances. The rule's threshold for a band is its threshold plus the band's shift, which
keeps the false-alert rate of photos (the strangers' distances move by the shift), and
the band's miss rate is estimated with its own same-person distances
(calibration.calibrate). Faces under `identify_from` px are counted and never alerted
on: too small to identify. Bands from `photo_from` up are photo size: the rule as
calibrated, unchanged. For ArcFace a measured band is split by the encoding's length before
normalisation (`length_class`), which predicts how far a face lies from its own photo; a
cell (`key`, e.g. "24-32 high") then has its own tables.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from dataclasses import dataclass
from types import ModuleType

EDGES = (12, 16, 20, 24, 32, 48, 64)  # lower edges, px, of the bands; "<12" below them


def name(height: float) -> str:
    """The band a face `height` px tall falls in, e.g. "24-32", "<12", ">=64"."""
    if height < EDGES[0]:
        return f"<{EDGES[0]}"
    for low, high in zip(EDGES, EDGES[1:], strict=False):
        if height < high:
            return f"{low}-{high}"
    return f">={EDGES[-1]}"


def names() -> list[str]:
    """Every band `name` gives, smallest first."""
    return [name(0), *(name(h) for h in EDGES)]


def low(band: str) -> int:
    """A band's (or a `key`'s) lower edge, px (0 for the smallest)."""
    return 0 if band.startswith("<") else int(band.split(" ")[0].lstrip(">=").split("-")[0])


CLASSES = ("low", "mid", "high")  # of an encoding's length, where the family classes them


def length_class(family: str, length: float | None) -> str | None:
    """The class of an encoding's length before normalisation (None: the family's faces
    are not classed by it). An unknown length counts as low."""
    cuts = _numbers().LENGTH_CUTS.get(family)
    if not cuts:
        return None
    if length is None or not math.isfinite(length):
        return CLASSES[0]
    return CLASSES[sum(length >= c for c in cuts)]


def key(family: str, height: float, length: float | None = None) -> str:
    """The cell a face falls in: its size band, and for a measured band of a family that
    classes faces by their encoding's length, that class ("24-32 high")."""
    band = name(height)
    cls = length_class(family, length) if role(family, band) == "measured" else None
    return band if cls is None else f"{band} {cls}"


def describe(key: str) -> str:
    """A cell for people: "24-32 px", "24-32 px, high encoding length"."""
    band, _, cls = key.partition(" ")
    return f"{band} px" + (f", {cls} encoding length" if cls else "")


def keys(family: str) -> list[str]:
    """Every cell `key` gives for the family, smallest first."""
    out = []
    for band in names():
        split = role(family, band) == "measured" and _numbers().LENGTH_CUTS.get(family)
        out += [f"{band} {c}" for c in CLASSES] if split else [band]
    return out


@dataclass(frozen=True)
class Table:
    """What faces of one band measured, for one family (band_tables.py)."""

    band: str  # a `key`: the size band, and the length class where the family has them
    shift: float  # added to the rule's threshold for faces of this band
    genuine_cdf: tuple[float, ...]  # same-person distances, on the family's table step
    probes: int  # lfw-dev probes the numbers come from


def _numbers() -> ModuleType:
    # Imported when first used: benchmarks/band_tables.py writes that module, with this
    # one's band names.
    return importlib.import_module("frs_cli.faces.band_tables")


def identify_from(family: str) -> int:
    """Faces smaller than this (px) are too small to identify: never alerted on. (A family
    without tables, e.g. one made up by a test: every size is photo size.)"""
    return int(_numbers().IDENTIFY_FROM.get(family, 0))


def photo_from(family: str) -> int:
    """Faces from this height (px) up are photo size: the calibrated rule, unchanged."""
    return int(_numbers().PHOTO_FROM.get(family, 0))


def tables(family: str) -> tuple[Table, ...]:
    """The measured cells (`key`) between `identify_from` and `photo_from`, smallest first."""
    return tuple(
        Table(band, float(shift), tuple(cdf), int(probes))
        for band, (shift, probes, cdf) in _numbers().BANDS.get(family, {}).items()
    )


def fingerprint(family: str) -> str:
    """A digest of the family's tables: a watchlist's calibration, whose per-band miss
    rates are computed from them, is computed again when they change."""
    numbers = _numbers()
    of_family = (
        identify_from(family),
        photo_from(family),
        numbers.LENGTH_CUTS.get(family),
        numbers.BANDS.get(family, {}),
    )
    return hashlib.sha256(repr(of_family).encode()).hexdigest()[:16]


def role(family: str, band: str) -> str:
    """A band's (or key's): "too small", "measured" (tables of its own) or "photo" (the
    rule as calibrated)."""
    if low(band) < identify_from(family):
        return "too small"
    return "photo" if low(band) >= photo_from(family) else "measured"
