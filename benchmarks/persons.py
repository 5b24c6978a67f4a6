"""How often `frs scan --unmatched`'s person labels merge two people or split one
(issue 23; docs/accuracy.md, "Unknown people across files").

    python benchmarks/persons.py [--speed]

1. lfw-dev photos shown one by one (benchmarks/lfw_encodings.py): 300 people with two or
   more photos, up to 4 photos each, in a random order, each photo a one-view track
   through frs_cli.scanner.persons.People: labels per person, labels holding two people, and the
   share of pairs of different people merged and of one person's photos split.
2. The shared footage scanned with --unmatched against a 3-identity watchlist: the labels
   each clip's tracks got (the talking heads each twice, as two files).
3. Speed (issue 31): 2,000 one-photo tracks of lfw-dev through People, against the same
   rule computed over every person (`Everyone`, the code before): seconds, and whether
   every label is the same.
"""

from __future__ import annotations

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

from frs_cli.faces.distances import distances  # noqa: E402
from frs_cli.scanner.persons import MARGIN, SAME_PERSON, People, _overlaps  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def slideshow(family: str = "dlib", same: float | None = None, margin: float | None = None) -> None:
    from frs_cli.faces import families

    fam = families.get(family)
    if family == "arcface":
        names, _, vectors, found = lfw_encodings.load_arcface()
        names, vectors = names[found], vectors[found]
    else:
        names, _, vectors = lfw_encodings.load()
    same = fam.same_person if same is None else same
    margin = fam.person_margin if margin is None else margin
    rng = np.random.default_rng(0)
    by: dict[str, list[int]] = {}
    for i, n in enumerate(names.tolist()):
        by.setdefault(n, []).append(i)
    chosen = rng.choice(sorted(n for n, ix in by.items() if len(ix) >= 2), 300, replace=False)
    seq = [i for n in chosen for i in by[n][:4]]
    rng.shuffle(seq)
    people = People(same, margin)
    labels = np.array([people.label(f"photo{k}", [(0, 0, vectors[[i]])])[0]
                       for k, i in enumerate(seq)])  # fmt: skip
    ids = names[seq]
    upper = np.triu_indices(len(seq), 1)
    same_id = (ids[:, None] == ids[None, :])[upper]
    same_label = (labels[:, None] == labels[None, :])[upper]
    mixed = sum(len(set(ids[labels == lab])) > 1 for lab in set(labels))
    print(
        f"{family} ({same:g}, margin {margin:g}): "
        f"lfw-dev slideshow: {len(seq)} photos of {len(set(ids))} people -> "
        f"{len(set(labels))} labels, {mixed} holding two or more people; pairs of different "
        f"people merged {(same_label & ~same_id).sum() / (~same_id).sum():.5f}, pairs of one "
        f"person split {(~same_label & same_id).sum() / same_id.sum():.3f}"
    )


class Everyone(People):
    """The rule over every person seen so far (the code before issue 31's bound)."""

    def _nearest(self, source: str, start: int, end: int, views: np.ndarray) -> int | None:
        if not self.people:
            return None
        spread = [float(distances(views, p.views).min(axis=1).mean()) for p in self.people]
        order = np.argsort(spread, kind="stable")
        best = int(order[0])
        second = float(spread[order[1]]) if len(order) > 1 else float("inf")
        if (
            spread[best] <= SAME_PERSON
            and second - spread[best] >= MARGIN
            and not _overlaps(self.people[best], source, start, end)
        ):
            return best
        return None


def speed(tracks: int = 2000) -> None:
    names, _, vectors = lfw_encodings.load()
    rng = np.random.default_rng(1)
    seq = rng.choice(len(vectors), tracks, replace=False)
    times, labels = {}, {}
    for kind in (People, Everyone):
        people = kind()
        t0 = time.perf_counter()
        labels[kind.__name__] = [
            people.label(f"file{k}", [(0, 0, vectors[[i]])])[0] for k, i in enumerate(seq)
        ]
        times[kind.__name__] = time.perf_counter() - t0
    print(
        f"{tracks} tracks of {len(set(names[seq]))} lfw-dev people: {times['People']:.2f} s "
        f"(over every person: {times['Everyone']:.2f} s, "
        f"{times['Everyone'] / times['People']:.1f}x); "
        f"{len(set(labels['People']))} labels; the same labels: "
        f"{labels['People'] == labels['Everyone']}"
    )


def footage() -> None:
    faces, clips = SHARED / "faces", SHARED / "footage"
    with tempfile.TemporaryDirectory() as tmp:
        wl = Path(tmp) / "w.db"
        subprocess.run([sys.executable, "-m", "frs_cli", "enroll", "-q", "-w", wl,
                        faces / "lin-manuel-miranda.png", faces / "alex-lacamoire.png",
                        faces / "obama.jpg"], check=True)  # fmt: skip
        inputs = [clips / "talking_head_aoc.mp4", clips / "talking_head_hill.mp4"]
        for clip in inputs[:2]:
            copy = Path(tmp) / f"again_{clip.name}"
            copy.write_bytes(clip.read_bytes())
            inputs.append(copy)
        inputs += [clips / "short_hamilton_clip.mp4", clips / "street_1080p.mp4"]
        out = subprocess.run(
            [sys.executable, "-m", "frs_cli", "scan", "-q", "-w", wl, "--unmatched",
             "--format", "jsonl", *inputs],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    for row in map(json.loads, out.splitlines()):
        print(
            f"{Path(row['source']).name}: {row['person']} {row['start_s']:.3f}-{row['end_s']:.3f} "
            f"s at x {row['left']}, {row['width']} px ({row['identity'] or 'unmatched'})"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--speed"]:
        speed()
    elif sys.argv[1:2] == ["--arcface"]:  # [SAME MARGIN]: try other numbers
        numbers = [float(x) for x in sys.argv[2:4]]
        slideshow("arcface", *numbers)
    else:
        slideshow()
        footage()
        speed()
