"""A face being followed by a segment's worker (analyse.py): its sightings, the views of it
chosen for encoding, and its best view not yet encoded."""

from __future__ import annotations

import numpy as np

from frs_cli.faces import quality as seeing
from frs_cli.records import Box, Detection, FaceEncoding, Sighting, Track

NO_CROP = np.empty((0, 0, 3), np.uint8)


class Candidate:
    """The best view of a track not yet encoded: a full-resolution RGB crop around it."""

    def __init__(
        self, pts: int, det: Detection, quality: float, crop: np.ndarray, dx: int, dy: int
    ):
        self.pts, self.box, self.quality = pts, det.box, quality
        self.crop, self.dx, self.dy = crop, dx, dy
        # The detector's landmarks, in the crop's pixels (arcface.encode_boxes aligns on
        # them instead of looking for them again); empty where it gave none.
        self.landmarks = det.moved(det.box, dx=-dx, dy=-dy).landmarks
        self.score = det.score
        self.face_jpeg = b""
        self.frame_jpeg = b""


class View:
    """A view chosen for encoding; its vector comes when its batch is encoded."""

    def __init__(self, candidate: Candidate):
        self.candidate = c = candidate
        self.vector: np.ndarray | None = None
        self.length: float | None = None  # the encoding's, before normalisation
        inside = Box(c.box.left - c.dx, c.box.top - c.dy, c.box.width, c.box.height)
        self.seen = seeing.of(c.crop, inside, c.score, c.landmarks)  # chosen views only

    def encoding(self) -> FaceEncoding:
        c = self.candidate
        assert self.vector is not None, "encoded when the segment ends at the latest"
        seen = seeing.encoded(self.seen, self.length)
        return FaceEncoding(c.pts, c.box, self.vector, c.quality, c.face_jpeg, c.frame_jpeg, seen)


class Live:
    """A track being followed."""

    def __init__(self, sighting: Sighting, open_start: bool):
        self.sightings: list[Sighting] = [sighting]
        self.encodings: list[View] = []
        self.best_quality = 0.0  # of the views encoded so far
        self.candidate: Candidate | None = None  # the best view not yet encoded
        self.window_start = sighting.pts
        self.window = 1  # the current window's length, in `refresh_s` (1, 2, 4, at most 4)
        self.box = sighting.box
        self.last_pts = sighting.pts
        self.missed = False
        self.looks = 0  # analysed frames since the face was lost (analyse.looks_again)
        self.open_start = open_start
        self.velocity = (0.0, 0.0)  # box movement in pixels per pts

    def moved_to(self, sighting: Sighting) -> None:
        """Follow to a newer sighting. Velocity from the last step alone measured better
        than over ~0.25 s on the street clip: people there turn and change pace."""
        dt = sighting.pts - self.last_pts
        if dt > 0:
            self.velocity = (
                (sighting.box.left - self.box.left) / dt,
                (sighting.box.top - self.box.top) / dt,
            )
        self.box = sighting.box
        self.last_pts = sighting.pts

    def predicted(self, pts: int) -> Box:
        """Where the face should be at `pts` if it keeps moving as it did."""
        dt = pts - self.last_pts
        return self.box.shifted(round(self.velocity[0] * dt), round(self.velocity[1] * dt))

    def freeze(self, open_end: bool) -> Track:
        # A view the family could not encode (NaN: Family.encode) is left out; a track
        # with none is not matched (scanning.assemble).
        return Track(
            sightings=tuple(sorted(self.sightings, key=lambda s: s.pts)),
            encodings=tuple(
                v.encoding()
                for v in self.encodings
                if v.vector is None or np.isfinite(v.vector).all()
            ),
            open_start=self.open_start,
            open_end=open_end,
        )
