"""How tracks are judged on the shared footage: views encoded per face followed, and the
distance and margin each alert was decided on (issue 21; docs/accuracy.md).

    python benchmarks/track_views.py [--frs-root DIR]

The watchlist: every lfw-dev identity, one photo each (benchmarks/lfw_encodings.py,
2,840 identities, none of whom is in the footage), plus Lin-Manuel Miranda, Alex
Lacamoire (from their photos in ../shared/data/faces) and Joe Biden. Every clip is scanned
with --unmatched at the default rule; per clip it prints the faces followed, their
encodings, and each alert (identity, time, distance, margin). On the talking-head and
street clips every alert is false; on the Hamilton clip Lin-Manuel Miranda is right.
`--frs-root` runs another checkout's frs_cli (to compare with an earlier commit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"
CLIPS = ("short_hamilton_clip.mp4", "talking_head_aoc.mp4", "talking_head_hill.mp4",
         "street_1080p.mp4")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frs-root", type=Path, default=ROOT)
    args = parser.parse_args()
    import lfw_encodings

    names, _, vectors = lfw_encodings.load()
    first: dict[str, int] = {}
    for i, n in enumerate(names.tolist()):
        first.setdefault(n, i)
    env = {**os.environ, "PYTHONPATH": str(args.frs_root)}
    with tempfile.TemporaryDirectory() as tmp:
        wl = Path(tmp) / "w.db"
        faces = SHARED / "faces"
        setup = (
            "import sys, numpy as np; import frs_cli as frs\n"
            "d = np.load(sys.argv[2]); w = frs.Watchlist.create(sys.argv[1])\n"
            "w.add_vectors(list(d['names']), d['vectors']); w.enroll(sys.argv[3:])\n"
        )
        np.savez(Path(tmp) / "lfw.npz", names=names[list(first.values())],
                 vectors=vectors[list(first.values())])  # fmt: skip
        subprocess.run(
            [sys.executable, "-c", setup, wl, Path(tmp) / "lfw.npz",
             faces / "lin-manuel-miranda.png", faces / "alex-lacamoire.png", faces / "biden.jpg"],
            check=True, env=env, cwd=tmp,
        )  # fmt: skip
        for clip in CLIPS:
            summary = Path(tmp) / "s.json"
            out = subprocess.run(
                [sys.executable, "-m", "frs_cli", "scan", "-q", "-w", wl, "--unmatched",
                 "--format", "jsonl", "--summary", summary, SHARED / "footage" / clip],
                check=True, env=env, capture_output=True, text=True, cwd=tmp,
            ).stdout  # fmt: skip
            rows = [json.loads(line) for line in out.splitlines()]
            s = json.loads(summary.read_text())
            alerts = [r for r in rows if r["identity"]]
            print(
                f"{clip}: {s['tracks']} faces followed, encodings per face "
                f"{s['encodings_per_face']}, rule {s['rule_text']}, {len(alerts)} alerts"
            )
            for r in alerts:
                print(
                    f"  {r['identity']} {r['start_s']:.3f}-{r['end_s']:.3f} s: distance "
                    f"{r['distance']}, margin {r['margin']} ({r['second_identity']})"
                )
            near = sorted(r["distance"] for r in rows if not r["identity"] and r["distance"])
            print(f"  unmatched faces' nearest distances: {near[:6]}")


if __name__ == "__main__":
    main()
