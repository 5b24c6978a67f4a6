"""Distance tables per face size (issue 36): how far a small, blurred, compressed face of
a person lies from their enrolment photo, and from everyone else's.

    python benchmarks/band_tables.py [--family dlib,arcface] [--sizes 14,16,...,63]
        [--out band-tables.json]

From ../shared/data/lfw-dev (after `benchmarks/lfw_encodings.py`'s caches): the gallery is
each identity's first photo at photo quality (its cached encoding); each identity with two
or more photos gives a probe, its second photo, degraded as CCTV films a face: shrunk so
that the face (dlib's box on the photo, 63 px in lfw-dev's 150x150 photos) is `--sizes`
px tall (area-averaged, as a sensor does), blurred, the edges repeated around it, and
passed through H.264 as one second of still video (frs_cli/faces/shrink.py: sigma 0-0.4
px, x264 at CRF 18-28, drawn per probe, 25 frames; JPEG at quality 35-90, one H.264
frame alone or 8 frames made faces look 1.5-4x worse than footage of the same photos).
Each probe then goes the scan's way: its luma scaled so that an 8 px face fills the detector's window
(`--min-face 8`), the family's whole-frame detector (dlib HOG, SCRFD), the detection
nearest the middle mapped back, encoded by the family from the RGB picture with the
detector's landmarks. The distances are binned by the *box height the detector
reported*, which is what a scan sees (rows' `face_px`, the summary's `faces_by_band`).

Per family and band: the probes found, the CDF of same-person distances (probe to its own
enrolment photo) and of different-person distances (probe to every other identity's), on
the family's table step, and the *shift*: how much farther (or nearer) a small face lies
from strangers than a photo does, at the rarest rates the alert rule works at
(calibration.BAND_SHIFT_RATES). `--write` prints the tables as Python for
frs_cli/faces/bands.py. Degraded pictures are made in memory and never kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lfw_encodings  # noqa: E402

LFW = lfw_encodings.LFW
PHOTO_FACE_PX = 63  # dlib's box in lfw-dev's 150x150 photos, the median


def _init(family: str) -> None:
    from frs_cli.faces import families

    fam = families.get(family)
    families.preload(fam.detector, fam.name)


def main() -> None:
    from multiprocessing import get_context

    from frs_cli.accuracy import sizes as sizes_
    from frs_cli.faces import families
    from frs_cli.faces.distances import distances

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="dlib,arcface")
    ap.add_argument("--sizes", default="14,16,18,20,24,28,32,40,48,63")
    ap.add_argument("--probes", type=int, default=0, help="at most this many (0: all)")
    ap.add_argument("--out", type=Path, default=Path("band-tables.json"))
    ap.add_argument("--write", type=Path, help="from --out's results: write this module")
    args = ap.parse_args()
    if args.write:
        write_module(json.loads(args.out.read_text()), args.write)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for family in args.family.split(","):
        fam = families.get(family)
        names, photos, vectors = lfw_encodings.load_family(family)
        first: dict[str, int] = {}
        second: dict[str, str] = {}
        for k, (n, p) in enumerate(zip(names.tolist(), photos.tolist(), strict=True)):
            if n not in first:
                first[n] = k
            elif n not in second:
                second[n] = p
        gallery_names = sorted(first)
        gallery = vectors[[first[n] for n in gallery_names]]
        gallery_labels = np.array([lfw_encodings.MERGED.get(n, n) for n in gallery_names])
        owners = sorted(second)
        if args.probes:
            owners = owners[: args.probes]
        # frs evaluate --face-px's way, with every face taken as the photos' median height
        jobs = [
            sizes_.ShrunkJob(str(LFW / n / second[n]), PHOTO_FACE_PX, size, 1000 * k + size, family)
            for k, n in enumerate(owners)
            for size in sizes
        ]
        started = time.time()
        with get_context("fork").Pool(os.cpu_count(), _init, (family,)) as pool:
            got = pool.map(sizes_.encode_shrunk, jobs, 8)
        print(f"{family}: {len(jobs)} probes in {time.time() - started:.0f} s", file=sys.stderr)
        rows = []
        for job, (height, vector, length) in zip(jobs, got, strict=True):
            path, size = job.path, job.face_px
            owner = lfw_encodings.MERGED.get(Path(path).parent.name, Path(path).parent.name)
            if vector is None:
                rows.append({"size": size, "height": height, "found": False})
                continue
            d = distances(vector[None, :].astype(np.float32), gallery)[0]
            mine = gallery_labels == owner
            rows.append(
                {
                    "size": size,
                    "height": height,
                    "found": True,
                    "genuine": float(d[mine].min()),
                    "length": length,
                    "impostor": np.sort(d[~mine]).astype(np.float32),
                }
            )
        results[family] = summarise(rows, fam.table_step, sizes, family)
        print(json.dumps({family: {b: _brief(v) for b, v in results[family].items()}}, indent=1))
    args.out.write_text(json.dumps(results) + "\n")


def summarise(rows: list[dict], step: float, sizes: list[int], family: str) -> dict:
    from frs_cli.faces import bands

    out: dict[str, dict] = {}
    by_size = {s: [r for r in rows if r["size"] == s] for s in sizes}
    out["found_by_size"] = {
        str(s): {
            "found": sum(r["found"] for r in rs),
            "of": len(rs),
            "median_height": float(np.median([r["height"] for r in rs if r["found"]] or [0])),
        }
        for s, rs in by_size.items()
    }
    found = [r for r in rows if r["found"]]
    groups = {}
    for r in found:
        groups.setdefault(bands.name(r["height"]), []).append(r)
    if family in CLASSES_BY_LENGTH:
        small = [r["length"] for r in found if r["height"] < bands.EDGES[-1]]
        cuts = [round(float(q), 2) for q in np.quantile(small, (1 / 3, 2 / 3))]
        out["length_cuts"] = cuts
        for r in found:
            cls = bands.CLASSES[int(np.searchsorted(cuts, r["length"], side="right"))]
            groups.setdefault(f"{bands.name(r['height'])} {cls}", []).append(r)
    bins = np.arange(0, 2.0 / step + 2) * step
    for group, rs in sorted(groups.items()):
        genuine = np.array([r["genuine"] for r in rs])
        impostor = np.concatenate([r["impostor"] for r in rs])
        out[group] = {
            "probes": len(rs),
            "genuine": genuine.tolist(),
            "genuine_cdf": [float((genuine <= x + 1e-9).mean()) for x in bins],
            "impostor_quantiles": {str(p): float(np.quantile(impostor, p)) for p in (1e-5, *RATES)},
            # per probe: the nearest stranger (what a 1:N search's false alert needs)
            "nearest_impostor": [float(r["impostor"][0]) for r in rs],
            "median_length": float(np.median([r["length"] for r in rs])),
        }
    return out


# Families whose faces are also classed by their encoding's length before normalisation
# (low, mid, high: the small faces' tertiles): ArcFace's predicted same-person distance
# (correlation -0.56 on 24 px probes), dlib's did not (+0.07).
CLASSES_BY_LENGTH = ("arcface",)
REFERENCE = "63"  # the probes at photo size: the shifts are measured from their band
RATES = (3e-5, 1e-4, 3e-4, 1e-3)  # per-comparison false-match rates the rule works at
MIN_PROBES = 100  # a band with fewer found probes gets no table of its own
MIN_CLASS = 50  # ... a length class with fewer, its next lower class's
MIN_HITS = 0.10  # a band whose faces match their own photo less often than this, at the
# rule's usual threshold (plus the band's shift where it tightens it), is too small to identify
USUAL = {"dlib": 0.50, "arcface": 1.10}  # thresholds frs chooses for 1,000-3,000 identities


def shifts(fam: dict, photo: str) -> dict[str, float]:
    """Per band: how much farther than the `photo` band's faces its faces lie from
    strangers, at the rarest rates measured (RATES; the smallest of them: the threshold
    moves the least)."""
    ref = fam[photo]["impostor_quantiles"]
    return {
        band: min(v["impostor_quantiles"][str(p)] - ref[str(p)] for p in RATES)
        for band, v in fam.items()
        if isinstance(v, dict) and "probes" in v
    }


def write_module(results: dict, path: Path) -> None:
    from frs_cli.faces import bands, families

    lines = [
        '"""Per face size band and family: what faces of that size measured against photos',
        "(faces/bands.py says how they are used). Numbers only, never an encoding.",
        "",
        "Measured by `python benchmarks/band_tables.py` then `--write` on lfw-dev (each",
        "identity's first photo enrolled; the second photo of every identity with two or more,",
        "shrunk to face heights of 14-63 px, blurred, passed through H.264, found and encoded by",
        "the scan's path; binned by the box height the detector reported). Per band:",
        "(shift, probes, same-person CDF on the family's table step). The shift is the",
        f"smallest, over per-comparison false-match rates {', '.join(f'{r:g}' for r in RATES)}, of",
        "how much farther the band's faces lie from strangers than photo-size faces do (a",
        "length class's: the smaller of its own and its band's).",
        f"IDENTIFY_FROM: the smallest band edge with {MIN_PROBES}+ probes found whose faces",
        f"match their own photo {MIN_HITS:.0%}+ of the time at the usual threshold (plus the",
        "shift where it is negative);",
        "PHOTO_FROM: the band edge of the photo-size probes' median box. LENGTH_CUTS: for",
        "families whose encoding's length before normalisation predicts misses, the small",
        "faces' tertiles of it: such a band has a table per class (low, mid, high).",
        '"""',
        "",
    ]
    identify: dict[str, int] = {}
    photo: dict[str, int] = {}
    cuts: dict[str, tuple[float, float]] = {}
    tables: dict[str, dict] = {}
    for family, fam in results.items():
        step = families.get(family).table_step
        photo[family] = bands.low(bands.name(fam["found_by_size"][REFERENCE]["median_height"]))
        moved = shifts(fam, bands.name(photo[family]))

        def hits(group: str, fam: dict = fam, moved: dict = moved, usual: float = USUAL[family],
                 step: float = step, looser: bool = True) -> float:  # fmt: skip
            cdf = fam[group]["genuine_cdf"]
            shift = moved[group] if looser else min(0.0, moved[group])
            return float(np.interp(usual + shift, np.arange(len(cdf)) * step, cdf))

        sized = [b for b in bands.names() if b in fam and bands.low(b) < photo[family]]
        sized = [b for b in sized if fam[b]["probes"] >= MIN_PROBES]
        # Identifiable: matched often enough at a threshold no looser than the photos' (a
        # band whose strangers lie farther away would otherwise pass on that alone).
        edges = [bands.low(b) for b in sized if hits(b, looser=False) >= MIN_HITS]
        identify[family] = min(edges) if edges else photo[family]
        if "length_cuts" in fam:
            cuts[family] = tuple(fam["length_cuts"])
        rows = {}
        for band in sized:
            if bands.low(band) < identify[family]:
                continue
            groups = [f"{band} {c}" for c in bands.CLASSES] if family in cuts else [band]
            for k, group in enumerate(groups):
                # A class's own shift where it is no larger than its band's (a class of a
                # few dozen probes measures the rare rates poorly): never looser than either.
                # A class of fewer than MIN_CLASS probes takes the next lower class's table.
                own = group
                while fam.get(own, {}).get("probes", 0) < MIN_CLASS and k > 0:
                    k -= 1
                    own = groups[k]
                shift = min(moved[group], moved[own], moved[band])
                v = fam[own]
                rows[group] = (round(shift, 3), fam[group]["probes"], hits(own), v["genuine_cdf"])
        tables[family] = rows
    lines.append(f"IDENTIFY_FROM = {identify!r}")
    lines.append(f"PHOTO_FROM = {photo!r}")
    lines.append(f"LENGTH_CUTS: dict[str, tuple[float, float]] = {cuts!r}")
    lines.append("# fmt: off")
    lines.append("BANDS: dict[str, dict[str, tuple[float, int, tuple[float, ...]]]] = {")
    for family, rows in tables.items():
        lines.append(f"    {family!r}: {{")
        for band, (shift, probes, hits, cdf) in rows.items():
            last = next((i for i, x in enumerate(cdf) if x >= 1.0), len(cdf) - 1)
            first = max(0, next((i for i, x in enumerate(cdf) if x > 0), 0) - 1)
            values = [f"{x:.4f}" for x in cdf[: last + 1]]
            lines.append(
                f"        # {probes} probes; {hits:.2f} matched at {USUAL[family]} + shift"
            )
            lines.append(f"        {band!r}: ({shift}, {probes}, (")
            lines.append(f"            *({first} * (0.0,)),")
            for k in range(first, len(values), 10):
                lines.append("            " + ", ".join(values[k : k + 10]) + ",")
            lines.append("        )),")
        lines.append("    },")
    lines.append("}")
    lines.append("# fmt: on")
    path.write_text("\n".join(lines) + "\n")


def _brief(v: dict) -> dict:
    if not isinstance(v, dict) or "probes" not in v:
        return v
    g = np.array(v["genuine"])
    return {
        "probes": v["probes"],
        "genuine_median": round(float(np.median(g)), 3),
        "nearest_impostor_median": round(float(np.median(v["nearest_impostor"])), 3),
        "impostor_quantiles": {k: round(x, 3) for k, x in v["impostor_quantiles"].items()},
    }


if __name__ == "__main__":
    main()
