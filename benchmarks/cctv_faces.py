"""Faces as CCTV films them (issue 36): the rates a scan measures and states when the
faces are small, through frs's own decode-detect-encode path.

    python benchmarks/cctv_faces.py [--family dlib,arcface] [--sizes 110,48,32,24]
        [--listed 200] [--unlisted 200] [--min-face 8] [--out results.json]

From ../shared/data/lfw-dev (after `benchmarks/lfw_encodings.py`'s caches, `load` and
`load_arcface`): `--unlisted` identities drawn at random are left off the watchlist; every
other identity is enrolled with its first photo (its cached encoding: the face nearest
the middle, as `frs evaluate` takes it). Probes: the second photo of `--listed` listed
people with two or more photos (mated) and the first photo of each unlisted person
(non-mated), each shown for one second, the photo's middle 160 px at one of three places across a 640x360 canvas in turn, x264, shrunk so
that the face (about 110 px tall in an LFW photo) is `--sizes` px tall. Each clip is
scanned by the `frs` on the path at its defaults with `--min-face`, `--unmatched`.

Per family and size: FNIR (mated probes whose second holds no row naming them), FPIR
(non-mated probes whose second holds a row naming anyone), the FNIR and FPIR the scan
states for its rule (its `--summary`), and the faces found. Clips are made in a temporary
folder and never kept: they show real people's faces.
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
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lfw_encodings  # noqa: E402

from frs_cli.video import synthetic  # noqa: E402

LFW = lfw_encodings.LFW
PHOTO_FACE_PX = 110  # the face's height in a 250x250 LFW photo, about
CROP = 160  # px of the photo's middle shown: the face and some context
PLACES = 3  # across the canvas, in turn
WIDTH, HEIGHT, FPS = 640, 360, 25


def people(seed: int, listed: int, unlisted: int) -> tuple[dict, list, list]:
    """(gallery {identity: photo}, mated probes, non-mated probes) as (identity, photo)."""
    photos = {
        d.name: sorted(p.name for p in d.glob("*.jpg"))
        for d in sorted(x for x in LFW.iterdir() if x.is_dir())
    }
    names = sorted(photos)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    off = order[:unlisted]
    several = [n for n in order[unlisted:] if len(photos[n]) >= 2][:listed]
    gallery = {n: photos[n][0] for n in names if n not in set(off)}
    return gallery, [(n, photos[n][1]) for n in several], [(n, photos[n][0]) for n in off]


def enrol(path: Path, family: str, gallery: dict) -> int:
    """The gallery's cached encodings as a watchlist of `family`; how many faces."""
    import frs_cli as frs

    if family == "dlib":
        names, photos, vectors = lfw_encodings.load()
        found = np.ones(len(names), bool)
    else:
        names, photos, vectors, found = lfw_encodings.load_arcface()
    at = {(n, p): k for k, (n, p) in enumerate(zip(names.tolist(), photos.tolist(), strict=True))}
    rows = [(n, at.get((n, p))) for n, p in gallery.items()]
    rows = [(n, k) for n, k in rows if k is not None and found[k]]
    with frs.Watchlist.create(path, encoder=family) as wl:
        wl.add_vectors([n for n, _ in rows], vectors[[k for _, k in rows]])
        return wl.face_count()


def clip(path: Path, probes: list, face_px: int) -> None:
    """Each probe for one second, its face `face_px` tall: the photo's middle CROP px
    (the face and a margin) at one of PLACES across the canvas in turn (at one place, a
    probe's face was followed into the next one's there, even a second later)."""
    side = CROP * face_px / PHOTO_FACE_PX  # the crop's height on the canvas
    crops = path.parent / "crops"
    crops.mkdir(exist_ok=True)
    shots = []
    for k, (name, photo) in enumerate(probes):
        cropped = crops / photo
        if not cropped.exists():
            margin = (250 - CROP) // 2
            Image.open(LFW / name / photo).crop(
                (margin, margin, margin + CROP, margin + CROP)
            ).save(cropped, quality=95)
        centre = (k % PLACES + 0.5) * WIDTH / PLACES
        shots.append(
            synthetic.Shot(
                str(cropped),
                k * FPS,
                k * FPS + FPS - 1,
                x=(centre - side / 2) / WIDTH,
                y=(HEIGHT - side) / 2 / HEIGHT,
                height=side / HEIGHT,
            )
        )
    synthetic.write_clip(path, shots, frames=len(probes) * FPS, fps=FPS, width=WIDTH, height=HEIGHT)


def measure(wl: Path, video: Path, probes: list, mated: int, min_face: int) -> dict:
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
    for r in rows:
        for k in range(int(r["start_s"]), int(float(r["end_s"]) - 1e-9) + 1):
            seconds.setdefault(k, []).append(r)
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
    rule = said["rule"]
    return {
        "fnir": round(misses / mated, 3),
        "fpir": round(alerts / (len(probes) - mated), 3),
        "stated_fnir": rule.get("fnir"),
        "stated_fpir": rule.get("fpir"),
        "probes_with_a_face": f"{seen}/{len(probes)}",
        "tracks": said["tracks"],
        "scan_s": round(time.time() - started, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="dlib,arcface")
    ap.add_argument("--sizes", default="110,48,32,24")
    ap.add_argument("--listed", type=int, default=200)
    ap.add_argument("--unlisted", type=int, default=200)
    ap.add_argument("--min-face", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    gallery, mated, non_mated = people(args.seed, args.listed, args.unlisted)
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
                got = measure(wl, video, probes, len(mated), args.min_face)
                got |= {"family": family, "face_px": size, "watchlist_faces": faces}
                results.append(got)
                print(json.dumps(got), flush=True)
    print("| family | face height | FPIR measured | FNIR measured | FNIR stated | FPIR stated |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['family']} | {r['face_px']} px | {r['fpir']:.3f} | {r['fnir']:.3f} | "
            f"{r['stated_fnir']} | {r['stated_fpir']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
