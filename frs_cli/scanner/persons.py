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

from frs_cli.faces.distances import distances

SAME_PERSON = 0.45  # dlib's (each family's: families.py): mean distance of a track's views to a person's nearest views
MARGIN = 0.05  # ... and this much nearer than to the next person
MAX_VIEWS = 64  # views kept per person (the first ones, then every other one)


@dataclass
class _Person:
    label: str
    views: np.ndarray  # (n, 128)
    seen: list[tuple[str, int, int]] = field(default_factory=list)  # (file, start, end) pts


class People:
    """The people of one scan, labelled in the order they are first seen."""

    def __init__(self, same_person: float = SAME_PERSON, margin: float = MARGIN) -> None:
        """`same_person` and `margin` on the encoder's distance scale: dlib's by default,
        a family's own otherwise (families.py)."""
        self.same_person, self.margin = same_person, margin
        self.people: list[_Person] = []
        # Per person: the mean of their views and the farthest view from it, which bound
        # from below how near a track can be to them (see `_nearest`).
        self._centres: np.ndarray | None = None
        self._radii = np.empty(0)

    def label(self, source: str, tracks: list[tuple[int, int, np.ndarray]]) -> list[str]:
        """Labels for one file's tracks, given as (start pts, end pts, views), in order."""
        labels: list[str] = []
        for start, end, views in tracks:
            k = self._nearest(source, start, end, views)
            if k is None:
                k = len(self.people)
                self.people.append(
                    _Person(f"P{k + 1:04d}", np.empty((0, views.shape[1]), views.dtype))
                )
            person = self.people[k]
            person.views = _keep(np.concatenate([person.views, views]))
            person.seen.append((source, start, end))
            self._remember(k, person.views)
            labels.append(person.label)
        return labels

    def _remember(self, k: int, views: np.ndarray) -> None:
        centre = views.mean(axis=0)
        radius = float(np.sqrt(((views - centre) ** 2).sum(axis=1)).max())
        if self._centres is None:
            self._centres = np.empty((0, views.shape[1]))
        if k == len(self._centres):
            self._centres = np.vstack([self._centres, centre])
            self._radii = np.append(self._radii, radius)
        else:
            self._centres[k], self._radii[k] = centre, radius

    def _nearest(self, source: str, start: int, end: int, views: np.ndarray) -> int | None:
        if not self.people or self._centres is None:
            return None
        # Each person's mean distance to the track's views, each view to its nearest; for
        # the people who can matter only. By the triangle inequality a view t is at least
        # |t - centre| - radius from every view of a person, so a person whose bound is over
        # SAME_PERSON + MARGIN can neither be the nearest (over SAME_PERSON) nor stop the
        # nearest by the margin: the same decision as over everyone, without comparing
        # each track with every view of the scan (2,000 tracks: 29 s before).
        bound = np.maximum(distances(views, self._centres) - self._radii, 0).mean(axis=0)
        near = np.flatnonzero(bound <= self.same_person + self.margin + 1e-6)  # 1e-6: rounding
        if not len(near):
            return None
        spread = np.array(
            [float(distances(views, self.people[k].views).min(axis=1).mean()) for k in near]
        )
        order = np.argsort(spread, kind="stable")
        best = int(near[order[0]])
        # The nearest person must be free (not in these frames) and clearly nearer than
        # anyone else, even someone in these frames: a face that looks like two people is
        # not given either's label.
        second = float(spread[order[1]]) if len(order) > 1 else float("inf")
        if (
            spread[order[0]] <= self.same_person
            and second - spread[order[0]] >= self.margin
            and not _overlaps(self.people[best], source, start, end)
        ):
            return best
        return None


def _overlaps(person: _Person, source: str, start: int, end: int) -> bool:
    return any(s == source and a <= end and start <= b for s, a, b in person.seen)


def _keep(views: np.ndarray) -> np.ndarray:
    if len(views) <= MAX_VIEWS:
        return views
    return np.concatenate([views[: MAX_VIEWS // 2], views[MAX_VIEWS // 2 :: 2]])[:MAX_VIEWS]
