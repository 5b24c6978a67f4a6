"""People, listed or not, across the tracks and files of one scan (`frs scan
--unmatched`): each face followed gets a label (`P0001`, `P0002`, ...), the same label
for the same person wherever they appear in the scan, so that an analyst can ask "where
else is this person we cannot name?" and see a listed person's unmatched appearances.

Conservative: when in doubt, two labels. A track joins a person only when its views are
on average within `SAME_PERSON` of that person's views seen so far (each view to its
nearest), `MARGIN` nearer than to anyone else, and the person was not in another face of
the same frames (two faces in one frame are never one person). Measured on lfw-dev photos
shown one by one (300 people, up to 4 photos each; docs/accuracy.md): 539 labels, one
holding two people (2 in 100,000 pairs of different people merged), 45% of pairs of one
person's photos split; news photos of one person taken years apart vary far more than a
person's views across cameras in one export.

The encodings stay in this process's memory for the scan and are never written: only
the label reaches a row (docs/privacy.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frs_cli.encode import distances

SAME_PERSON = 0.45  # mean distance of a track's views to a person's nearest views
MARGIN = 0.05  # ... and this much nearer than to the next person
MAX_VIEWS = 64  # views kept per person (the first ones, then every other one)


@dataclass
class _Person:
    label: str
    views: np.ndarray  # (n, 128)
    seen: list[tuple[str, int, int]] = field(default_factory=list)  # (file, start, end) pts


class People:
    """The people of one scan, labelled in the order they are first seen."""

    def __init__(self) -> None:
        self.people: list[_Person] = []

    def label(self, source: str, tracks: list[tuple[int, int, np.ndarray]]) -> list[str]:
        """Labels for one file's tracks, given as (start pts, end pts, views), in order."""
        labels: list[str] = []
        for start, end, views in tracks:
            person = self._nearest(source, start, end, views)
            if person is None:
                person = _Person(f"P{len(self.people) + 1:04d}", np.empty((0, views.shape[1])))
                self.people.append(person)
            person.views = _keep(np.concatenate([person.views, views]))
            person.seen.append((source, start, end))
            labels.append(person.label)
        return labels

    def _nearest(self, source: str, start: int, end: int, views: np.ndarray) -> _Person | None:
        if not self.people:
            return None
        # Each person's mean distance to the track's views, each view to its nearest.
        spread = [float(distances(views, p.views).min(axis=1).mean()) for p in self.people]
        order = np.argsort(spread)
        best = int(order[0])
        # The nearest person must be free (not in these frames) and clearly nearer than
        # anyone else, even someone in these frames: a face that looks like two people is
        # not given either's label.
        second = float(spread[order[1]]) if len(order) > 1 else float("inf")
        person = self.people[best]
        if (
            spread[best] <= SAME_PERSON
            and second - spread[best] >= MARGIN
            and not _overlaps(person, source, start, end)
        ):
            return person
        return None


def _overlaps(person: _Person, source: str, start: int, end: int) -> bool:
    return any(s == source and a <= end and start <= b for s, a, b in person.seen)


def _keep(views: np.ndarray) -> np.ndarray:
    if len(views) <= MAX_VIEWS:
        return views
    return np.concatenate([views[: MAX_VIEWS // 2], views[MAX_VIEWS // 2 :: 2]])[:MAX_VIEWS]
