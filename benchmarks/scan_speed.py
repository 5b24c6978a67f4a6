"""Speed and recall of `frs scan` against the per-frame reference loop, in one run.

For each clip: runs benchmarks/reference.py (every frame, HOG upsample 1, every
face encoded) and `frs scan` at its defaults (the median of --repeat runs, as one
second of work is at the mercy of a shared machine's noise), each as a whole process
(start-up included), and prints wall and CPU time, the speed-up, the real-time factor,
peak RSS, frs's time per stage, and recall:
- matched-seconds recall per identity: the share of the reference's matched
  frames (per identity) that fall inside an frs appearance of that identity;
- extra identities: identities frs reports that the reference never does;
- face coverage: the share of every face the reference detects (matched or not)
  that lies in some frs track at that moment (frs run with --unmatched --detections,
  which changes only what is written, not what is computed).

    python benchmarks/scan_speed.py [--clips hamilton,street] [--long 10] [--out results.json]
        [--frs-python PYTHON ...]   (frs in other environments, against the same reference)

Needs ../shared/data beside the checkout. Builds its watchlist from
faces/lin-manuel-miranda.png, faces/alex-lacamoire.png and faces/obama.jpg.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CLIPS = {
    "hamilton": DATA / "footage" / "short_hamilton_clip.mp4",
    "street": DATA / "footage" / "street_1080p.mp4",
}
PHOTOS = ["lin-manuel-miranda.png", "alex-lacamoire.png", "obama.jpg"]


def run(cmd: list[str], stdout_path: Path | None = None) -> dict[str, float]:
    """Run a whole process; wall, CPU (with its children) and peak RSS of the largest process."""
    out = open(stdout_path, "w") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else ""
    if stdout_path:
        out.close()  # type: ignore[union-attr]
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}):\n{err}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def reference_frames(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def matched_recall(ref: list[dict], appearances: list[dict]) -> tuple[dict[str, float], list[str]]:
    by_identity: dict[str, list[float]] = {}
    for frame in ref:
        for face in frame["faces"]:
            if face[4]:
                by_identity.setdefault(face[4], []).append(frame["t"])
    recall = {}
    eps = 0.0015  # output rounds to the millisecond
    for ident, times in by_identity.items():
        spans = [(a["start_s"], a["end_s"]) for a in appearances if a["identity"] == ident]
        hit = sum(1 for t in set(times) if any(s - eps <= t <= e + eps for s, e in spans))
        recall[ident] = hit / len(set(times))
    extra = sorted({a["identity"] for a in appearances if a["identity"]} - set(by_identity))
    return recall, extra


def face_coverage(ref: list[dict], detections: list[dict]) -> float:
    """Share of reference faces inside some frs track (its box at that time, `box_at`,
    overlapping the reference's by IoU >= 0.3)."""
    tracks: dict[int, list[dict]] = {}
    for row in detections:
        tracks.setdefault(row["track_id"], []).append(row)
    spans = {
        k: (min(r["time_s"] for r in v), max(r["time_s"] for r in v)) for k, v in tracks.items()
    }
    total = hit = 0
    for frame in ref:
        t = frame["t"]
        for face in frame["faces"]:
            total += 1
            box = face[:4]
            for k, rows in tracks.items():
                s, e = spans[k]
                if not (s - 0.0015 <= t <= e + 0.0015):
                    continue
                if iou(box, box_at(rows, t)) >= 0.3:
                    hit += 1
                    break
    return hit / total if total else 1.0


def box_at(rows: list[dict], t: float) -> list[float]:
    """A track's box at time `t`: between two sightings, moved in proportion (a face
    crossing the frame moves 40 px between two sightings at 1080p); else the nearest."""
    before = [r for r in rows if r["time_s"] <= t]
    after = [r for r in rows if r["time_s"] > t]
    keys = ("left", "top", "width", "height")
    if not before or not after:
        near = min(rows, key=lambda r: abs(r["time_s"] - t))
        return [near[k] for k in keys]
    a = max(before, key=lambda r: r["time_s"])
    b = min(after, key=lambda r: r["time_s"])
    w = (t - a["time_s"]) / (b["time_s"] - a["time_s"])
    return [a[k] + w * (b[k] - a[k]) for k in keys]


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def concat_clip(src: Path, times: int, dst: Path) -> None:
    """Remux `src` `times` times end to end (video only, no re-encoding)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        istream = inp.streams.video[0]
        ostream = out.add_stream_from_template(istream)
        packets = [p for p in inp.demux(istream) if p.dts is not None]
        span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
        for k in range(times):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts = p.pts + k * span, p.dts + k * span
                q.duration = p.duration
                q.is_keyframe = p.is_keyframe
                q.time_base = p.time_base
                q.stream = ostream
                out.mux(q)


FRS_PYTHON = sys.executable  # --frs-python: run frs with another environment's dlib


def frs_cmd(*args: str) -> list[str]:
    return [FRS_PYTHON, "-m", "frs_cli", *args]


def scan_cmd(watchlist: Path, clip: Path, *extra: str) -> list[str]:
    return frs_cmd("scan", "-q", "-w", str(watchlist), "--format", "jsonl", *extra, str(clip))


def repeated_scans(
    builds: list[str], clip: Path, wl: Path, tmp: Path, repeat: int
) -> dict[str, list[dict[str, float]]]:
    """`repeat` timed scans per build, interleaved so that the machine's drift hits all alike
    (frs takes ~1 s, where the noise is large: the median run is reported)."""
    global FRS_PYTHON
    runs: dict[str, list[dict[str, float]]] = {python: [] for python in builds}
    for _ in range(repeat):
        for i, python in enumerate(builds):
            FRS_PYTHON = python
            cmd = scan_cmd(wl, clip, "--summary", str(tmp / f"{i}.summary.json"))
            runs[python].append(run(cmd, tmp / f"{i}.jsonl"))
    FRS_PYTHON = builds[0]
    return runs


def measure(
    i: int,
    clip: Path,
    wl: Path,
    tmp: Path,
    ref: dict[str, float],
    ref_frames: list[dict],
    runs: list[dict[str, float]],
) -> dict:
    """frs (the `i`th build, now FRS_PYTHON) on one clip, against the reference run."""
    summary, rows_out = tmp / f"{i}.summary.json", tmp / f"{i}.jsonl"
    frs = dict(sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2])
    frs["walls_s"] = [round(r["wall_s"], 3) for r in runs]
    det_out = tmp / f"{i}.det.jsonl"
    run(scan_cmd(wl, clip, "--unmatched", "--detections"), det_out)
    appearances = [json.loads(x) for x in rows_out.read_text().splitlines()]
    recall, extra = matched_recall(ref_frames, appearances)
    coverage = face_coverage(ref_frames, [json.loads(x) for x in det_out.read_text().splitlines()])
    stats = json.loads(summary.read_text())
    footage = stats["footage_s"]
    dlib_build = subprocess.run(
        [FRS_PYTHON, "-c", "import dlib; print(dlib.__version__, 'BLAS', dlib.DLIB_USE_BLAS)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "python": FRS_PYTHON,
        "dlib": dlib_build,
        "footage_s": footage,
        "reference": ref,
        "frs": frs,
        "speedup": ref["wall_s"] / frs["wall_s"],
        "frs_realtime_x": footage / frs["wall_s"],
        "reference_realtime_x": footage / ref["wall_s"],
        "stage_seconds": stats["stage_seconds"],
        # start-up (imports, model loading), the parent's work and process overheads
        "other_cpu_s": frs["cpu_s"] - sum(stats["stage_seconds"].values()),
        "recall_matched_seconds": recall,
        "extra_identities": extra,
        "face_coverage": coverage,
        "reference_faces": sum(len(f["faces"]) for f in ref_frames),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", default="hamilton,street")
    parser.add_argument(
        "--long", type=int, default=10, help="also scan the first clip N times over (0: skip)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--repeat", type=int, default=5, help="run frs this many times; report the median run"
    )
    parser.add_argument(
        "--frs-python",
        action="append",
        help="interpreter for frs (e.g. a venv with dlib built by scripts/build_fast_dlib.sh);"
        " repeat it to measure several against the same reference run; the reference loop"
        " keeps this one. Default: this one",
    )
    args = parser.parse_args()
    global FRS_PYTHON
    builds = args.frs_python or [sys.executable]
    FRS_PYTHON = builds[0]
    if not DATA.is_dir():
        raise SystemExit(f"needs {DATA}")
    results: dict = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "clips": {},
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wl = tmp / "wl.db"
        run(frs_cmd("enroll", "-q", "-w", str(wl), *[str(DATA / "faces" / p) for p in PHOTOS]))
        for name in args.clips.split(","):
            clip = CLIPS[name]
            ref_out = tmp / f"{name}.ref.jsonl"
            ref = run(
                [sys.executable, str(ROOT / "benchmarks" / "reference.py"), str(wl), str(clip)],
                ref_out,
            )
            ref_frames = reference_frames(ref_out)
            runs = repeated_scans(builds, clip, wl, tmp, args.repeat)
            for i, python in enumerate(builds):
                FRS_PYTHON = python
                label = name if len(builds) == 1 else f"{name} [{python}]"
                found = measure(i, clip, wl, tmp, ref, ref_frames, runs[python])
                results["clips"][label] = found
                _print_clip(label, found)
            FRS_PYTHON = builds[0]
        if args.long:
            first = CLIPS[args.clips.split(",")[0]]
            long_clip = tmp / f"long{args.long}.mp4"
            concat_clip(first, args.long, long_clip)
            one = run(frs_cmd("scan", "-q", "-w", str(wl), str(first)))
            many = run(frs_cmd("scan", "-q", "-w", str(wl), str(long_clip)))
            results["long"] = {"times": args.long, "x1": one, f"x{args.long}": many}
            print(
                f"peak RSS: {one['peak_rss_mb']:.0f} MB on the clip, {many['peak_rss_mb']:.0f} MB on it "
                f"{args.long} times over ({many['wall_s']:.1f} s wall)"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def _print_clip(name: str, r: dict) -> None:
    ref, frs = r["reference"], r["frs"]
    print(f"== {name} ({r['footage_s']:.1f} s of footage; frs on dlib {r['dlib']})")
    print(
        f"  reference: {ref['wall_s']:.2f} s wall, {ref['cpu_s']:.2f} s CPU, {ref['peak_rss_mb']:.0f} MB"
    )
    print(
        f"  frs:       {frs['wall_s']:.2f} s wall (median of {frs['walls_s']}), "
        f"{frs['cpu_s']:.2f} s CPU, {frs['peak_rss_mb']:.0f} MB"
    )
    print(
        f"  speed-up {r['speedup']:.1f}x; frs {r['frs_realtime_x']:.1f}x real time "
        f"(reference {r['reference_realtime_x']:.2f}x)"
    )
    stages = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["stage_seconds"].items()))
    print(f"  frs stages (s, summed over workers): {stages}; other CPU {r['other_cpu_s']:.2f}")
    print(
        f"  recall of matched seconds: {r['recall_matched_seconds']}; extra identities: {r['extra_identities']}"
    )
    print(
        f"  reference faces inside an frs track: {r['face_coverage']:.3f} of {r['reference_faces']}"
    )


if __name__ == "__main__":
    main()
