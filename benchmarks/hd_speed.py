"""1080p speed and face coverage of `frs scan` at its defaults (issue 24), in one run.

For each code tree given (`--tree NAME=PATH`, e.g. a `git worktree` of an older commit;
default: this checkout) and the same files:
- the street clip repeated `--times` times (remuxed, no re-encoding): `frs scan` at its
  defaults, `--repeat` runs interleaved across trees, wall time (best and all), the
  real-time factor, stage core-seconds from `--summary`;
- a decode-only pass of that file in the same minutes: two processes, each decoding
  half of it (seeking to the keyframe before its half, as frs's segments do), every frame
  decoded and nothing else: the floor frs's time is reported against;
- face coverage on the clip itself: the share of the faces dlib's HOG finds with
  upsample 1 (the whole detector, RGB) on every `--every`th frame that lie, at that
  moment, in some frs track (`--unmatched --detections`; the track's box at that time,
  moved in proportion between two sightings, IoU >= 0.3), and the faces per track (a
  face split at a segment cut counts twice). `--encoders dlib,arcface`: each tree with a
  watchlist of each model family, in the same run.

With `--fixed-camera SECONDS` the same is measured on a made fixed-camera clip instead
(no public 1080p fixed-camera clip with people's faces was at hand): the first frame of
the street clip held still as the scene (its people then stand still, like people
waiting), with lfw-dev photos (`--lfw`) crossing it at walking speed, several at a time,
faces of 45-140 px; H.264 (x264 veryfast), made at run time and never kept.

    python benchmarks/hd_speed.py [--tree NAME=PATH ...] [--times 8] [--repeat 2]
        [--clip PATH] [--out results.json] [-- EXTRA SCAN OPTIONS]

Needs ../shared/data beside the checkout (or --clip). The watchlist is built from
faces/lin-manuel-miranda.png, alex-lacamoire.png and obama.jpg.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_speed import DATA, PHOTOS, ROOT, concat_clip, face_coverage, run  # noqa: E402

STREET = DATA / "footage" / "street_1080p.mp4"
LFW = DATA / "lfw-dev"


def make_fixed_clip(dst: Path, seconds: int, fps: int = 25, seed: int = 7) -> None:
    """A fixed-camera 1080p clip: the street clip's first frame as a still scene, and
    lfw-dev photos crossing it (each 3-8 s on screen, 1-4 px a frame)."""
    import av
    import numpy as np
    from PIL import Image

    with av.open(str(STREET)) as container:
        scene = next(iter(container.decode(video=0))).to_image()
    rng = np.random.default_rng(seed)
    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    walkers = []
    for k in range(seconds * 2 // 5):  # about two on screen at a time
        photo = Image.open(sorted(people[(k * 37) % len(people)].glob("*.jpg"))[0]).convert("RGB")
        side = int(rng.uniform(100, 310))  # LFW faces are ~0.45 of the photo: 45-140 px
        start = rng.uniform(0, seconds - 3) * fps
        frames = rng.uniform(3, 8) * fps
        speed = rng.uniform(1, 4) * rng.choice([-1, 1])
        x0 = rng.uniform(0.1, 0.9) * 1920
        y = int(rng.uniform(420, 820) - side / 2)
        walkers.append((photo.resize((side, side)), start, start + frames, x0, speed, y))
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(seconds * fps):
            image = scene.copy()
            for photo, first, last, x0, speed, y in walkers:
                if first <= i <= last:
                    image.paste(photo, (int(x0 + speed * (i - first)), y))
            frame = av.VideoFrame.from_image(image)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def decode_half(path: str, k: int, parts: int) -> int:
    """Decode the `k`th of `parts` equal time spans of `path` (one thread): the frame count."""
    import av

    count = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        duration = container.duration / 1e6
        start, end = k * duration / parts, (k + 1) * duration / parts
        if k:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            if t >= end:
                break
            count += t >= start
    return count


def decode_only(path: Path, parts: int = 2) -> dict[str, float]:
    start = time.perf_counter()
    with ProcessPoolExecutor(parts) as pool:
        frames = sum(pool.map(decode_half, [str(path)] * parts, range(parts), [parts] * parts))
    return {"wall_s": time.perf_counter() - start, "frames": frames}


def hog_reference(path: Path, every: int) -> list[dict]:
    """dlib's HOG with upsample 1 on every `every`th frame: [{"t": s, "faces": [[l,t,w,h]]}]."""
    import av
    import dlib
    import numpy as np

    detector = dlib.get_frontal_face_detector()
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = (container.start_time or 0) / 1_000_000
        for i, frame in enumerate(container.decode(stream)):
            if i % every:
                continue
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            faces = [[r.left(), r.top(), r.width(), r.height()] for r in detector(rgb, 1)]
            frames.append(
                {"t": round(float(frame.pts * stream.time_base) - origin, 4), "faces": faces}
            )
    return frames


def scan(tree: Path, args: list[str], stdout: Path) -> dict[str, float]:
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(tree)
    try:
        # -P: not the current folder first on sys.path, so PYTHONPATH chooses the tree
        return run([sys.executable, "-P", "-m", "frs_cli", "scan", "-q", *args], stdout)
    finally:
        os.environ["PYTHONPATH"] = env_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", help="NAME=PATH of a code tree (default: .)")
    parser.add_argument("--clip", type=Path, default=STREET)
    parser.add_argument("--times", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--fixed-camera",
        type=int,
        default=0,
        metavar="SECONDS",
        help="measure a made fixed-camera clip this long instead (see above)",
    )
    parser.add_argument(
        "--encoders",
        default="dlib",
        help="model families to compare, comma-separated (a watchlist of each: dlib,arcface)",
    )
    parser.add_argument("extra", nargs="*", help="more `frs scan` options (after --)")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) if args.tree else {"this": str(ROOT)}
    encoders = args.encoders.split(",")
    if len(encoders) > 1:  # each tree with each family's watchlist: "NAME/FAMILY"
        trees = {f"{n}/{e}": t for n, t in trees.items() for e in encoders}
    if not args.clip.is_file():
        raise SystemExit(f"needs {args.clip}")
    results: dict = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "clip": str(args.clip),
        "times": args.times,
        "extra": args.extra,
        "trees": {},
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photos = [str(DATA / "faces" / p) for p in PHOTOS]
        lists = {}
        for enc in encoders:
            lists[enc] = tmp / f"wl-{enc}.db"
            run([sys.executable, "-m", "frs_cli", "enroll", "-q", "-w", str(lists[enc]),
                 "--encoder", enc, *photos])  # fmt: skip

        def watchlist(name: str) -> str:
            return str(lists[name.rsplit("/", 1)[1] if len(encoders) > 1 else encoders[0]])

        long_clip = tmp / f"x{args.times}.mp4"
        if args.fixed_camera:
            make_fixed_clip(long_clip, args.fixed_camera)
            args.clip = long_clip
        else:
            concat_clip(args.clip, args.times, long_clip)
        walls: dict[str, list[dict]] = {name: [] for name in trees}
        decodes = []
        for _ in range(args.repeat):
            decodes.append(decode_only(long_clip))
            for name, tree in trees.items():
                summary = tmp / f"{name.replace('/', '-')}.summary.json"
                r = scan(
                    Path(tree),
                    [
                        "-w",
                        watchlist(name),
                        "--summary",
                        str(summary),
                        *args.extra,
                        str(long_clip),
                    ],
                    tmp / "rows.csv",
                )
                r["stages"] = json.loads(summary.read_text())["stage_seconds"]
                r["footage_s"] = json.loads(summary.read_text())["footage_s"]
                walls[name].append(r)
        floor = min(d["wall_s"] for d in decodes)
        ref = hog_reference(args.clip, args.every)
        total = sum(len(f["faces"]) for f in ref)
        for name, tree in trees.items():
            det = tmp / f"{name.replace('/', '-')}.det.jsonl"
            scan(
                Path(tree),
                [
                    "-w",
                    watchlist(name),
                    "--unmatched",
                    "--detections",
                    "--format",
                    "jsonl",
                    *args.extra,
                    str(args.clip),
                ],
                det,
            )
            rows = [json.loads(x) for x in det.read_text().splitlines()]
            best = min(walls[name], key=lambda r: r["wall_s"])
            footage = best["footage_s"]
            found = {
                "walls_s": [round(r["wall_s"], 2) for r in walls[name]],
                "best_s": round(best["wall_s"], 2),
                "realtime_x": round(footage / best["wall_s"], 2),
                "x_decode_only": round(best["wall_s"] / floor, 2),
                "stages": {k: round(v, 2) for k, v in sorted(best["stages"].items())},
                "coverage": round(face_coverage(ref, rows), 3),
                "reference_faces": total,
                "tracks": len({r["track_id"] for r in rows}),
            }
            results["trees"][name] = found
            stages = ", ".join(f"{k} {v}" for k, v in found["stages"].items())
            print(
                f"{name}: {found['best_s']} s (runs {found['walls_s']}) for {footage:.1f} s: "
                f"{found['realtime_x']}x real time, {found['x_decode_only']}x the decode-only "
                f"pass; stages {stages}; coverage {found['coverage']} of {total}, "
                f"{found['tracks']} tracks"
            )
        results["decode_only_s"] = [round(d["wall_s"], 2) for d in decodes]
        print(f"decode-only pass (2 processes): {results['decode_only_s']} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
