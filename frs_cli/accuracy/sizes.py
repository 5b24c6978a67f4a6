"""`frs evaluate --face-px`: a photo set measured at the face sizes of the analyst's
cameras (issue 36). Each probe photo is shrunk so that its face is N px tall, blurred and
compressed as CCTV films it, then found and encoded the way a scan does
(faces/shrink.py); the search against the photo-size gallery is judged by the scan's
rule for the face's size band (calibration.Rule.band), and what was measured is set
beside what a scan would state for those faces (calibration.expected_rates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from frs_cli.accuracy import calibration
from frs_cli.accuracy.calibration import Rule
from frs_cli.errors import InputError
from frs_cli.faces import bands, families, images, shrink

# One shrunk copy per probe and size, each drawn with its own seed (blur, compression).
SEED_STEP = 1000


@dataclass(frozen=True)
class ShrunkJob:
    path: str
    face_h: int  # the face's height in the photo (the family's photo detector), its pixels
    face_px: int  # ... made this many
    seed: int
    family: str


def encode_shrunk(job: ShrunkJob) -> tuple[int, np.ndarray | None, float]:
    """(box height, encoding, its length before normalisation) of the probe's face at
    `face_px` as a scan finds it ((0, None, nan): not found). Never raises for bad input."""
    try:
        photo = images.load_photo(job.path)
    except InputError:  # a probe that cannot be read is one not found
        return 0, None, float("nan")
    scale = job.face_px / max(1.0, job.face_h * photo.scale)
    picture = shrink.degrade(photo.rgb, scale, job.seed)
    return shrink.find_and_encode(picture, families.get(job.family))


@dataclass(frozen=True)
class Probe:
    identity: str
    path: str
    mated: bool
    face_h: int


Search = Callable[[str, str, bool, np.ndarray | None], Any]  # evaluation._search, bound


def measure(
    probes: list[Probe],
    sizes: tuple[int, ...],
    rule: Rule,
    family: str,
    search: Search,
    mapper: Callable[[Callable[[ShrunkJob], Any], list[ShrunkJob]], Iterable[Any]],
    cohort: bool,
) -> dict[str, Any]:
    """Per size: probes found, the band their faces fell in, the FNIR and FPIR measured
    under `rule` (per band) and those a scan would state for the faces found."""
    out: dict[str, Any] = {}
    for size in sizes:
        jobs = [
            ShrunkJob(p.path, p.face_h, size, SEED_STEP * k + size, family)
            for k, p in enumerate(probes)
        ]
        found = list(mapper(encode_shrunk, jobs))
        mated_bands: dict[str, int] = {}
        non_bands: dict[str, int] = {}
        hits = alerts = mated = non = mated_found = non_found = 0
        for probe, (height, vector, length) in zip(probes, found, strict=True):
            mated += probe.mated
            non += not probe.mated
            if vector is None:
                continue
            s = search(probe.identity, probe.path, probe.mated, vector)
            competitor = s.reference_cohort if cohort else s.reference
            alerted = rule.alerts(s.rank1_distance, competitor - s.rank1_distance, height, length)
            band = bands.key(family, height, length)
            if probe.mated:
                mated_found += 1
                mated_bands[band] = mated_bands.get(band, 0) + 1
                hits += alerted and s.rank1 == s.identity
            else:
                non_found += 1
                non_bands[band] = non_bands.get(band, 0) + 1
                alerts += alerted
        stated_fnir, _ = calibration.expected_rates(rule, mated_bands)
        _, stated_fpir = calibration.expected_rates(rule, non_bands)
        out[str(size)] = {
            "mated_found": f"{mated_found}/{mated}",
            "non_mated_found": f"{non_found}/{non}",
            "faces_by_band": {
                b: mated_bands.get(b, 0) + non_bands.get(b, 0)
                for b in bands.keys(family)
                if b in mated_bands or b in non_bands
            },  # fmt: skip
            "fnir": round(1 - hits / mated_found, 4) if mated_found else None,
            "fnir_with_not_found": round(1 - hits / mated, 4) if mated else None,
            "expected_fnir": stated_fnir,
            "fpir": round(alerts / non_found, 4) if non_found else None,
            "expected_fpir": stated_fpir,
        }
    return out
