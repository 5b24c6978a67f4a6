"""Faces as CCTV films them (issue 36): the rates a scan measures and states when the
faces are small, through frs's own decode-detect-encode path.

    python benchmarks/cctv_faces.py [--family dlib,arcface] [--sizes 63,48,32,24]
        [--listed 200] [--unlisted 200] [--min-face 8] [--enrol 1] [--min-photos 2]
        [--out results.json]

From ../shared/data/lfw-dev (after `benchmarks/lfw_encodings.py`'s caches, `load` and
`load_arcface`): `--unlisted` identities drawn at random are left off the watchlist; every
other identity is enrolled with its first photo (its cached encoding: the face nearest
the middle, as `frs evaluate` takes it). Probes: the second photo of `--listed` listed
people with two or more photos (mated) and the first photo of each unlisted person
(non-mated), each shown for one second at one of three places across a 640x360 canvas
in turn, x264 (CRF 23), scaled so that the face is `--sizes` px tall. A face's height is
dlib's box on the photo (63 px, the median: the photos are 150x150, so 63 is photo size);
the rows of a scan report taller boxes (`row_height_px`). Each clip is scanned by this
checkout's frs at its defaults with `--min-face` and `--unmatched`.

`--enrol 2 --min-photos 3`: the listed people enrolled with two photos each and probed
with their third (a lever of issue 36; compare with `--enrol 1 --min-photos 3`, the same
people).

Per family and size: FNIR (mated probes whose second holds no row naming them), FPIR
(non-mated probes whose second holds a row naming anyone), both counting only rows of
the probe's own face (its box in the middle of the photo: an LFW photo may show a listed
person beside an unlisted one; alerts on such faces are counted apart), the FNIR and FPIR the scan
states for its rule (its `--summary`: photo size, and `expected_fnir` over every face it
followed by size band), the FNIR over the mated probes seen beside the rate of each one's
own band (`fnir_seen`, `expected_fnir_seen`), the faces found and their heights. Clips
are made in a temporary folder and never kept: they show real people's faces.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lfw_encodings  # noqa: E402

from frs_cli.video import synthetic  # noqa: E402

LFW = lfw_encodings.LFW
PHOTO_PX = 150  # lfw-dev's photos are 150x150
# The face's height in an lfw-dev photo: dlib's box, median of 100 photos (10th-90th
# percentile 53-75 px); SCRFD's box is taller (86 px in one photo where dlib's was 76).
PHOTO_FACE_PX = 63
PLACES = 3  # across the canvas, in turn
WIDTH, HEIGHT, FPS = 640, 360, 25


def people(
    seed: int, listed: int, unlisted: int, enrol: int = 1, min_photos: int = 2
) -> tuple[dict, list, list]:
    """(gallery {identity: [photos]}, mated probes, non-mated probes) as (identity, photo):
    the listed people (with `min_photos` or more) enrolled with their first `enrol`
    photos and probed with the next; everyone else with their first."""
    photos = {
        d.name: sorted(p.name for p in d.glob("*.jpg"))
        for d in sorted(x for x in LFW.iterdir() if x.is_dir())
    }
    names = sorted(photos)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    off = order[:unlisted]
    need = max(min_photos, enrol + 1)
    several = [n for n in order[unlisted:] if len(photos[n]) >= need][:listed]
    gallery = {
        n: photos[n][: enrol if n in set(several) else 1] for n in names if n not in set(off)
    }
    probes = [(n, photos[n][enrol]) for n in several]
    return gallery, probes, [(n, photos[n][0]) for n in off]


def enrol(path: Path, family: str, gallery: dict) -> int:
    """The gallery's cached encodings as a watchlist of `family`; how many faces."""
    import frs_cli as frs

    if family == "dlib":
        names, photos, vectors = lfw_encodings.load()
        found = np.ones(len(names), bool)
    else:
        names, photos, vectors, found = lfw_encodings.load_arcface()
    at = {(n, p): k for k, (n, p) in enumerate(zip(names.tolist(), photos.tolist(), strict=True))}
    rows = [(n, at.get((n, p))) for n, ps in gallery.items() for p in ps]
    rows = [(n, k) for n, k in rows if k is not None and found[k]]
    with frs.Watchlist.create(path, encoder=family) as wl:
        wl.add_vectors([n for n, _ in rows], vectors[[k for _, k in rows]])
        return wl.face_count()


def clip(path: Path, probes: list, face_px: int) -> None:
    """Each probe's photo for one second, scaled so that its face is `face_px` tall, at
    one of PLACES across the canvas in turn (at one place, a probe's face was followed
    into the next one's there, even a second later)."""
    side = PHOTO_PX * face_px / PHOTO_FACE_PX  # the photo's height on the canvas
    shots = []
    for k, (name, photo) in enumerate(probes):
        centre = (k % PLACES + 0.5) * WIDTH / PLACES
        shots.append(
            synthetic.Shot(
                str(LFW / name / photo),
                k * FPS,
                k * FPS + FPS - 1,
                x=(centre - side / 2) / WIDTH,
                y=(HEIGHT - side) / 2 / HEIGHT,
                height=side / HEIGHT,
            )
        )
    synthetic.write_clip(path, shots, frames=len(probes) * FPS, fps=FPS, width=WIDTH, height=HEIGHT)


def central(row: dict, k: int, face_px: int) -> bool:
    """Whether a row's face is probe `k`'s own: its box centre within the middle half of
    the photo shown (LFW centres the named person; another person in the photo, perhaps
    a listed one, is not the probe)."""
    side = PHOTO_PX * face_px / PHOTO_FACE_PX
    x = row["left"] + row["width"] / 2 - (k % PLACES + 0.5) * WIDTH / PLACES
    y = row["top"] + row["height"] / 2 - HEIGHT / 2
    return abs(x) <= side / 4 and abs(y) <= side / 4


def measure(wl: Path, video: Path, probes: list, mated: int, min_face: int, face_px: int) -> dict:
    summary = video.with_suffix(".json")
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "frs_cli", "scan", "-q", "-w", str(wl), "--min-face",
         str(min_face), "--unmatched", "--format", "jsonl", "--summary", str(summary), str(video)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    seconds: dict[int, list[dict]] = {}
    elsewhere = 0  # alerts on another face in a non-mated probe's photo
    for r in rows:
        for k in range(int(r["start_s"]), int(float(r["end_s"]) - 1e-9) + 1):
            if central(r, k, face_px):
                seconds.setdefault(k, []).append(r)
            elif r["identity"] is not None and mated <= k < len(probes):
                elsewhere += 1
    misses = sum(
        not any(r["identity"] == name for r in seconds.get(k, []))
        for k, (name, _) in enumerate(probes[:mated])
    )
    alerts = sum(
        any(r["identity"] is not None for r in seconds.get(k, []))
        for k in range(mated, len(probes))
    )
    seen = sum(bool(seconds.get(k)) for k in range(len(probes)))
    said = json.loads(summary.read_text())
    # The rates the scan states for the probes' own faces (its band's, for the largest
    # row of each mated probe seen), beside those measured over the same faces.
    rates = said.get("faces_by_band", {})
    own = [max(seconds[k], key=lambda r: r["face_px"] or 0) for k in range(mated) if seconds.get(k)]
    stated_own = [rates.get(r["face_band"], {}).get("fnir") for r in own]
    missed_seen = sum(
        not any(r["identity"] == name for r in seconds[k])
        for k, (name, _) in enumerate(probes[:mated])
        if seconds.get(k)
    )
    heights = [r["height"] for r in rows]
    rule = said["rule"]
    return {
        "fnir": round(misses / mated, 3),
        "fpir": round(alerts / (len(probes) - mated), 3),
        "alerts_on_other_faces": elsewhere,
        "stated_fnir": rule.get("fnir"),
        "stated_fpir": rule.get("fpir"),
        # over the faces this scan saw, each size's rates (issue 36)
        "expected_fnir": said.get("expected_fnir"),
        "expected_fpir": said.get("expected_fpir"),
        "faces_too_small": said.get("faces_too_small"),
        # over the mated probes' own faces that the scan saw
        "fnir_seen": round(missed_seen / len(own), 3) if own else None,
        "expected_fnir_seen": round(float(np.mean([x for x in stated_own if x is not None])), 4)
        if any(x is not None for x in stated_own)
        else None,
        "probes_with_a_face": f"{seen}/{len(probes)}",
        "tracks": said["tracks"],
        "row_height_px": float(np.median(heights)) if heights else None,  # as rows report it
        "faces_by_band": {b: v["faces"] for b, v in said.get("faces_by_band", {}).items()},
        "scan_s": round(time.time() - started, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="dlib,arcface")
    ap.add_argument("--sizes", default="63,48,32,24")
    ap.add_argument("--listed", type=int, default=200)
    ap.add_argument("--unlisted", type=int, default=200)
    ap.add_argument("--min-face", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--enrol", type=int, default=1, help="photos enrolled per listed person")
    ap.add_argument("--min-photos", type=int, default=2, help="... listed people have")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    gallery, mated, non_mated = people(
        args.seed, args.listed, args.unlisted, args.enrol, args.min_photos
    )
    probes = mated + non_mated
    results = []
    with tempfile.TemporaryDirectory(prefix="frs-cctv-") as tmp:
        folder = Path(tmp)
        clips = {}
        for size in map(int, args.sizes.split(",")):
            clips[size] = folder / f"faces-{size}px.mp4"
            clip(clips[size], probes, size)
        for family in args.family.split(","):
            wl = folder / f"{family}.db"
            faces = enrol(wl, family, gallery)
            for size, video in clips.items():
                got = measure(wl, video, probes, len(mated), args.min_face, size)
                got |= {"family": family, "face_px": size, "watchlist_faces": faces}
                results.append(got)
                print(json.dumps(got), flush=True)
    print(
        "| family | face height | rows' height | FPIR measured | FNIR measured | "
        "expected FNIR | expected FPIR | too small | FNIR of probes seen | stated for them |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['family']} | {r['face_px']} px | {r['row_height_px']} px | {r['fpir']:.3f} | "
            f"{r['fnir']:.3f} | {r['expected_fnir']} | {r['expected_fpir']} | "
            f"{r['faces_too_small']} | {r['fnir_seen']} | {r['expected_fnir_seen']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
