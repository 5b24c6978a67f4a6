"""The per-segment worker: decode, detect, follow and encode faces in one time range.

What it does per frame, and why it is fast:
- Every frame is decoded (cheap) but only a few per second are *analysed*
  (`sample_fps`), and only some of those get a full-frame search for new faces
  (`detect_fps`), at the one scale that `min_face` needs.
- Faces already being followed are looked for in a small region around their
  last box, scaled so the face is just above the detector's window: a few
  milliseconds instead of a full-frame search.
- Exact edges: when a face appears, the frames decoded since the last full
  search are searched backwards (regions only) for where it really began; when
  it vanishes, the frames since it was last seen are searched forwards. So a
  track's first and last frames do not depend on the sampling grid.
- Each track is encoded at once, then once more at the end of each window of track time
  (its best view of that window, unless it is much worse than its best so far): windows
  of `refresh_s`, twice that, then four times that, so a long track is judged on many views
  (`Watchlist.match_views` averages them) without encoding a long one every second.

Returns plain records; the parent matches them against the watchlist.
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction
from typing import Any

import numpy as np
from PIL import Image

from frs_cli.errors import InputError
from frs_cli.faces import detect, families, views
from frs_cli.records import (
    Box,
    Detection,
    Segment,
    SegmentResult,
    Sighting,
    Track,
)
from frs_cli.scanner import changes, wholeframe
from frs_cli.scanner.followed import NO_CROP, Candidate, Live, View
from frs_cli.video import decode
from frs_cli.video.stages import STAGES, timed_iter
from frs_cli.workers import progress_report

REGION_FACE_PX = 100  # a followed face is scaled to this width for its region search
SCRFD_REGION_FACE_PX = 64  # ... by SCRFD, which finds faces far below its input's size
REGION_MARGIN = 0.5  # region = the last box grown by half its size on each side
MATCH_IOU = 0.3  # a detection continues a track when boxes overlap this much
REGION_IOU = MATCH_IOU * 0.66  # or more than this, found in a search of the track's region
SIZE_STEP = (0.7, 1.43)  # how much a followed face may shrink or grow between two looks
SAME_FACE_IOU = 0.5  # two boxes overlapping this much are one face (a small face beside a
# large one can overlap it by a third: the street clip has such pairs)
RING_BYTES = 192 << 20  # decoded frames kept since the last whole-frame search, for edge
# refinement: one second of 1080p60 (8-bit 4:2:0), 2 s of 1080p30, a quarter second of 4K60
RING_FRAMES = (8, 120)  # at least, at most
CHIP_MARGIN = 1.0  # a crop this much larger than the box on each side holds the whole
# 150 px chip (0.25 padding around the landmarks), so encoding the crop equals encoding the frame
EDGE_MISSES = 2  # frames in a row without the face that end an edge search
EDGE_STRIDE = 3  # a new face's start is looked for this many frames at a time while it is
# there, then frame by frame
FOLLOW_THRESHOLD = -0.3  # HOG score a followed face needs (whole-frame searches need 0, dlib's
# default): a face known to be there scores below 0 in some frames as it turns or blurs. With 0,
# tracks broke there (street clip: 93% of the reference's faces inside tracks; with -0.3: 96%).
QUICK_MAX_PIXELS = 1280 * 720  # a quick search looks at no more pixels than this
ENCODE_BATCH = 8  # views waiting for the encoder are encoded together, at most this many
LONGEST_WINDOW = 4  # a track's view windows double in length up to this many `refresh_s`
PROFILE_QUALITY = 0.6  # a profile view is worth this much of a frontal one
# Pyramid levels a region search needs. Level l finds faces of WINDOW_PX * (6/5)**l pixels, and
# a followed face scaled to REGION_FACE_PX may have grown to SIZE_STEP[1] times that: what the
# levels above find is rejected as another face. (Levels 0-3 of the usual 7: 20% faster.)
FOLLOW_LEVELS = 1 + math.floor(
    math.log(SIZE_STEP[1] * REGION_FACE_PX / detect.WINDOW_PX) / math.log(6 / 5)
)


class SegmentScanner:
    def __init__(
        self, segment: Segment, time_base: Fraction, width: int, height: int, rotation: int
    ):
        cfg = segment.config
        self.cfg = cfg
        self.segment = segment
        self.tb = time_base
        self.width, self.height, self.rotation = width, height, rotation
        self.family = families.get(cfg.encoder)
        model = cfg.model or self.family.detector
        self.whole = wholeframe.WholeFrame(model, width, height, rotation)
        self.detector = detect.get(model, max_levels=FOLLOW_LEVELS)
        self.window = detect.window(model)
        self.region_face = SCRFD_REGION_FACE_PX if model == "scrfd" else REGION_FACE_PX
        # Whole-frame search sizes: a face of min_face source pixels fills the window; for
        # the quick searches, a face twice that size (a quarter of the pixels).
        self.det_size = detect.search_size(width, height, cfg.min_face, None, self.window)
        self.quick_size = detect.search_size(
            width, height, 2 * cfg.min_face, QUICK_MAX_PIXELS, self.window
        )
        # With a fixed camera, full searches look where the picture changed; faces larger
        # than the quick searches' smallest are left to those (changes.py).
        quick_face = self.window * width / self.quick_size[0]
        self.changes = changes.ChangeMap(width, height, quick_face)
        self.exhaustive = cfg.exhaustive
        self.rois = [
            Box(x, y, min(w, width - x), min(h, height - y))
            for x, y, w, h in cfg.rois
            if x < width and y < height
        ]
        # Rates and spans as exact fractions, converted once rather than on every frame.
        self.sample_rate = Fraction(cfg.sample_fps)
        self.full_rate = Fraction(cfg.detect_fps)
        self.quick_rate = Fraction(cfg.quick_fps)
        self.max_gap = Fraction(cfg.max_gap_s)
        self.refresh = Fraction(cfg.refresh_s)
        self.last_cell = -1
        self.last_full_cell = -1
        self.last_quick_cell = -1
        frame_bytes = max(1, width * height * 3 // 2)
        ring = min(RING_FRAMES[1], max(RING_FRAMES[0], RING_BYTES // frame_bytes))
        self.ring: deque[decode.Frame] = deque(maxlen=ring)
        self.first_pts: int | None = None
        self.live: list[Live] = []
        self.done: list[tuple[Live, bool]] = []  # closed tracks, open at their end or not
        self.waiting: list[View] = []  # views to encode (ENCODE_BATCH at a time)
        self.analysed = 0
        self.unaligned = 0  # views the family could not encode (Family.encode: NaN)

    # -- feeding frames -------------------------------------------------
    def feed(self, frame: Any) -> None:
        pts = frame.pts
        t = pts * self.tb
        cell = math.floor(t * self.sample_rate)
        is_sample = cell > self.last_cell
        self.last_cell = max(self.last_cell, cell)
        start = self.segment.start_pts
        if start is not None and pts < start:
            return  # pre-roll after a seek: it belongs to the previous segment
        # Whole-frame searches on a fixed grid of absolute time, so that which frames are
        # searched does not depend on where segments were cut: for every face at
        # `detect_fps`, and in between for faces twice as large at `quick_fps`. (Searching
        # less often while no faces came or went saved 25% on the Hamilton clip but lost 4%
        # of the street clip's faces: people walk in between searches.)
        full_cell = math.floor(t * self.full_rate)
        quick_cell = math.floor(t * self.quick_rate)
        is_full = is_sample and full_cell > self.last_full_cell
        is_quick = is_sample and not is_full and quick_cell > self.last_quick_cell
        if is_sample:
            self.last_full_cell = max(self.last_full_cell, full_cell)
            self.last_quick_cell = max(self.last_quick_cell, quick_cell)
        if self.first_pts is None:
            self.first_pts = pts
        current = decode.Frame(frame, self.rotation)
        if self.ring:
            self.ring[-1].release()
        self.ring.append(current)
        if not (is_sample or is_full):
            return
        self.analysed += 1
        if is_full:
            # Every 5th full search looks at the whole frame (changes.py).
            complete = full_cell % changes.COMPLETE_EVERY == 0 or self.exhaustive
            changed = self.changes.regions(current, complete)
            self._full_frame(current, self.det_size, changed, self._split())
        elif is_quick:
            self._full_frame(current, self.quick_size, None, self._split())
        else:
            self._follow(current, list(self.live))
        self._drop_duplicates(pts)
        self._close_lost(pts)
        if is_full:
            # Every face that was there has been found: older frames are no longer needed.
            # (After a quick search, a small face may still be found at the next full one,
            # and its start is searched for back to here.)
            self.ring.clear()
            self.ring.append(current)

    def finish(self) -> tuple[Track, ...]:
        for live in self.live:
            if not live.missed:
                # The frames after the last analysed one: is the face still there?
                self._refine_forward(live, self.ring[-1].pts if self.ring else live.last_pts)
            self._close(live, open_end=True)
        self.live = []
        self._encode_waiting()
        tracks = [live.freeze(open_end) for live, open_end in self.done]
        return tuple(sorted(tracks, key=lambda tr: (tr.start_pts, tr.sightings[0].box.left)))

    # -- one analysed frame ----------------------------------------------
    def _full_frame(
        self,
        fr: decode.Frame,
        size: tuple[int, int],
        changed: list[Box] | None,
        split: bool = False,
    ) -> None:
        """Search the frame (only `changed` regions, unless None; in two passes if `split`)
        and match the faces found to the ones followed; the others start tracks."""
        # On luma, like the region searches: a third cheaper than RGB. (Before followed faces
        # were held at a lower score, luma lost 5% of the street clip's faces; now it loses
        # none: 0.978 of them in tracks either way at one whole-frame search a second.)
        regions = self.rois or None
        if changed is not None:  # ROIs restrict it further
            regions = [c.intersection(r) for c in changed for r in self.rois or [c]]
        found = [
            d.moved(detect.clip_box(d.box, self.width, self.height))
            for d in (
                (self.whole.two_passes(fr, size) if split else self.whole.frame(fr, size))
                if regions is None
                else self.whole.regions(fr, size, [r for r in regions if r.area])
            )
            if self._wanted(d.box)
        ]
        fresh: list[Detection] = []
        # Greedy assignment, best overlaps first.
        guesses = [live.predicted(fr.pts) for live in self.live]
        pairs = sorted(
            ((g.iou(d.box), i, j) for i, g in enumerate(guesses) for j, d in enumerate(found)),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        for iou, i, j in pairs:
            if iou < MATCH_IOU:
                break
            if i in used_tracks or j in used_dets:
                continue
            used_tracks.add(i)
            used_dets.add(j)
            self._seen(self.live[i], fr, found[j])
        unmatched_tracks = [live for i, live in enumerate(self.live) if i not in used_tracks]
        for j, d in enumerate(found):
            if j in used_dets:
                continue
            if any(g.iou(d.box) >= SAME_FACE_IOU for g in guesses):
                continue  # a second box on a followed face
            fresh.append(d)
        self._follow(fr, unmatched_tracks)
        for d in fresh:
            self._start(fr, d)

    def _split(self) -> bool:
        """Whether whole-frame searches run in two passes (wholeframe.py): at 1080p and up,
        where the camera moved at the last full search, full and quick searches alike. (On
        the street clip x8, keeping dlib's full search every 5th time and for the quick ones
        cost 2.2 of 12.2 detection core-seconds and added no face to the tracks.)"""
        return not self.exhaustive and self.changes.moved and self.whole.splits(self.det_size)

    def _wanted(self, box: Box) -> bool:
        """Whether a face is in a region of interest (its box centre is), or there are none."""
        if not self.rois:
            return True
        cx, cy = box.left + box.width / 2, box.top + box.height / 2
        return any(r.left <= cx < r.right and r.top <= cy < r.bottom for r in self.rois)

    def _follow(self, fr: decode.Frame, tracks: list[Live]) -> None:
        for live in tracks:
            if live.missed:
                live.looks += 1
                if not looks_again(live.looks):
                    continue
            det = self._region_search(fr, live.predicted(fr.pts))
            if det is not None:
                self._seen(live, fr, det)
            elif not live.missed:
                # Step through the frames since the last sighting: the face may have
                # moved or changed size more than one jump of the sampling allowed.
                self._refine_forward(live, fr.pts)
                live.missed = live.last_pts != fr.pts

    def _drop_duplicates(self, pts: int) -> None:
        """Two tracks that found the same face: fold the younger into the older."""
        seen = [t for t in self.live if t.last_pts == pts]
        for young in sorted(seen, key=lambda t: -t.sightings[0].pts):
            for old in seen:
                if old is young or old not in self.live or young not in self.live:
                    continue
                if (
                    old.sightings[0].pts <= young.sightings[0].pts
                    and old.box.iou(young.box) >= SAME_FACE_IOU
                ):
                    have = {s.pts for s in old.sightings}
                    old.sightings += [s for s in young.sightings if s.pts not in have]
                    old.encodings += young.encodings
                    old.best_quality = max(old.best_quality, young.best_quality)
                    if young.candidate and (
                        not old.candidate or young.candidate.quality > old.candidate.quality
                    ):
                        old.candidate = young.candidate
                    self.live.remove(young)
                    break

    def _close_lost(self, pts: int) -> None:
        gap = self.max_gap
        keep = []
        for live in self.live:
            if live.missed and (pts - live.last_pts) * self.tb > gap:
                self._close(live, open_end=False)
            else:
                keep.append(live)
        self.live = keep

    # -- tracks ----------------------------------------------------------
    def _start(self, fr: decode.Frame, det: Detection) -> None:
        live = Live(Sighting(fr.pts, det.box), open_start=False)
        reached_start = self._refine_backward(live, fr.pts, det.box)
        lost = self._lost_before(live)
        if lost is not None:
            # Found again: the face lost there, now found by a whole-frame search (its
            # region was not searched at every analysed frame since: looks_again).
            lost.sightings += [s for s in live.sightings if s.pts != fr.pts]
            self._seen(lost, fr, det)
            return
        # A face already there when the segment began may continue one from the previous segment.
        live.open_start = reached_start and self.segment.start_pts is not None
        self._maybe_encode(live, fr, det)
        self.live.append(live)

    def _lost_before(self, live: Live) -> Live | None:
        """The lost track that a new one continues: lost less than `max_gap` before the new
        one's first sighting, which a search of its region then would have taken for it
        (as `_region_search` does: overlap and size)."""
        first = min(live.sightings, key=lambda s: s.pts)
        near = [
            (lost.predicted(first.pts).iou(first.box), n)
            for n, lost in enumerate(self.live)
            if lost.missed
            and 0 < (first.pts - lost.last_pts) * self.tb <= self.max_gap
            and SIZE_STEP[0] <= first.box.width / lost.box.width <= SIZE_STEP[1]
        ]
        best = max(near, default=(0.0, -1))
        return self.live[best[1]] if best[0] > REGION_IOU else None

    def _seen(self, live: Live, fr: decode.Frame, det: Detection) -> None:
        sighting = Sighting(fr.pts, det.box)
        live.sightings.append(sighting)
        live.moved_to(sighting)
        live.missed = False
        live.looks = 0
        self._maybe_encode(live, fr, det)

    def _close(self, live: Live, open_end: bool) -> None:
        self._encode_candidate(live)
        self.done.append((live, open_end))

    def _maybe_encode(self, live: Live, fr: decode.Frame, det: Detection) -> None:
        """Encode a track's first view at once; after that keep the best view of each
        window (`refresh_s` of track time, then 2x and 4x that) that is at least
        `view_floor` as good as the best so far, and encode it when the window or the
        track ends. Views are averaged when the track is matched, so more of them cut
        misses without adding false alerts (docs/accuracy.md). (With windows of one
        `refresh_s` throughout, a 15 s talking head had 10 views instead of 7, and ArcFace
        spent 5.8 core-seconds encoding on the street clip x8 instead of 4.6. Encoding
        only the largest view measured worse: on the Hamilton clip the largest view of
        one appearance matched at 0.61 where its first view matched at 0.50.)"""
        if (fr.pts - live.window_start) * self.tb >= self.refresh * live.window:
            self._encode_candidate(live)
            live.window_start = fr.pts
            live.window = min(LONGEST_WINDOW, 2 * live.window)
        quality = det.box.width * (1.0 if det.frontal else PROFILE_QUALITY)
        if live.candidate is not None and quality <= live.candidate.quality:
            return
        if live.encodings and quality < self.cfg.view_floor * live.best_quality:
            return
        area = det.box.expanded(CHIP_MARGIN, self.width, self.height)
        crop = fr.rgb[area.top : area.bottom, area.left : area.right].copy()
        live.candidate = Candidate(fr.pts, det, quality, crop, area.left, area.top)
        if self.cfg.views:
            others = [t.predicted(fr.pts) for t in self.live if t is not live]
            live.candidate.face_jpeg, live.candidate.frame_jpeg = views.render(
                fr.rgb, det.box, others if self.cfg.redact else []
            )
        if not live.encodings and not live.open_start:
            # A face there when the segment began was most likely encoded by the previous
            # segment already: only its best view of the window is (at the window's end).
            self._encode_candidate(live)

    def _encode_candidate(self, live: Live) -> None:
        cand = live.candidate
        if cand is None:
            return
        live.candidate = None
        view = View(cand)
        live.encodings.append(view)
        live.best_quality = max(live.best_quality, cand.quality)
        self.waiting.append(view)
        if len(self.waiting) >= ENCODE_BATCH:
            self._encode_waiting()

    def _encode_waiting(self) -> None:
        """Encode the views waiting, in one call to the network (ONNX Runtime: 8.5 ms per
        face in batches of 8, 11 ms one at a time, landmarks and chip included); tracks
        are only handed on when the segment ends, so nothing waits for a vector before
        then. Each waiting view holds its full-resolution crop (up to ~1 MB at 1080p),
        hence the small batch."""
        if not self.waiting:
            return
        faces = []
        for view in self.waiting:
            c = view.candidate
            b = c.box
            faces.append((c.crop, Box(b.left - c.dx, b.top - c.dy, b.width, b.height), c.landmarks))
        with STAGES.timed("encode"):
            vectors, lengths = self.family.encode_lengths(faces)
        self.unaligned += int(np.isnan(vectors).any(axis=1).sum())
        for view, vector, length in zip(self.waiting, vectors, lengths, strict=True):
            view.vector, view.length = vector, float(length)
            view.candidate.crop = NO_CROP  # not needed any more
        self.waiting = []

    def _refine_backward(self, live: Live, pts: int, box: Box) -> bool:
        """Search the frames before `pts` until the face is gone: every EDGE_STRIDE-th frame
        while it is there, then frame by frame from the oldest frame it was found in, until
        two frames in a row lack it.

        Returns True when the face was present back to the segment's first frame.
        """
        earlier = [f for f in self.ring if f.pts < pts]
        step = (0.0, 0.0)  # movement per frame, going back
        at = len(earlier)  # the oldest frame the face was found in (len: the one at `pts`)
        while at >= EDGE_STRIDE:
            fr = earlier[at - EDGE_STRIDE]
            guess = box.shifted(round(step[0] * EDGE_STRIDE), round(step[1] * EDGE_STRIDE))
            det = self._region_search(fr, guess)
            fr.release()
            if det is None:
                break
            live.sightings.append(Sighting(fr.pts, det.box))
            step = (
                (det.box.left - box.left) / EDGE_STRIDE,
                (det.box.top - box.top) / EDGE_STRIDE,
            )
            box, at = det.box, at - EDGE_STRIDE
        misses = 0
        for fr in reversed(earlier[:at]):
            det = self._region_search(fr, box.shifted(round(step[0]), round(step[1])))
            fr.release()
            if det is None:
                misses += 1
                if misses == EDGE_MISSES:
                    return False
                continue
            misses = 0
            live.sightings.append(Sighting(fr.pts, det.box))
            step = (det.box.left - box.left, det.box.top - box.top)
            box = det.box
        oldest = earlier[0].pts if earlier else pts
        return oldest == self.first_pts

    def _refine_forward(self, live: Live, until_pts: int) -> None:
        """Search the frames after the last sighting up to `until_pts`, oldest first, until
        the face is gone (two frames in a row without it: one miss is often the detector's)."""
        misses = 0
        for fr in [f for f in self.ring if live.last_pts < f.pts <= until_pts]:
            det = self._region_search(fr, live.predicted(fr.pts))
            fr.release()
            if det is None:
                misses += 1
                if misses == EDGE_MISSES:
                    return
                continue
            misses = 0
            sighting = Sighting(fr.pts, det.box)
            live.sightings.append(sighting)
            live.moved_to(sighting)

    def _region_search(self, fr: decode.Frame, box: Box) -> Detection | None:
        region = box.expanded(REGION_MARGIN, self.width, self.height)
        if region.width < 8 or region.height < 8:
            return None
        scale = self.region_face / max(1, box.width)
        w = max(self.window + 8, int(round(region.width * scale)))
        h = max(self.window + 8, int(round(region.height * scale)))
        with STAGES.timed("convert"):
            crop = fr.luma_crop(region)
            image = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR))
        sx, sy = w / region.width, h / region.height
        best: Detection | None = None
        best_iou = REGION_IOU
        with STAGES.timed("follow"):
            raw = self.detector(image, FOLLOW_THRESHOLD)
        for d in raw:
            d = detect.to_source(d, sx, sy, region.left, region.top)
            iou = d.box.iou(box)
            # A face keeps its size from one frame to the next; a box twice as large is
            # a neighbour's face, not this one.
            if iou > best_iou and SIZE_STEP[0] <= d.box.width / box.width <= SIZE_STEP[1]:
                best, best_iou = d, iou
        if best is None or not self._wanted(best.box):
            return None  # lost, or left the regions of interest: the track ends there
        return best.moved(detect.clip_box(best.box, self.width, self.height))


def looks_again(looks: int) -> bool:
    """Whether a lost face's region is searched at the `looks`-th analysed frame since it
    was lost: the 1st, 2nd, 4th, 8th... (the whole-frame searches look for it too)."""
    return looks & (looks - 1) == 0


def analyse_segment(segment: Segment) -> SegmentResult:
    """Analyse one segment. Never raises for bad input: the result says what went wrong."""
    import av

    STAGES.take()
    counters = decode.DecodeCounters()
    scanner: SegmentScanner | None = None
    size: tuple[int, int] | None = None  # the coded size the scanner was made for
    earlier: list[Track] = []  # tracks of the frames before a change of frame size
    analysed = unaligned = 0
    last_pts: int | None = None
    error: str | None = None
    try:
        container = decode.open_container(segment.path)
        with container:
            stream = container.streams[segment.stream_index]  # the container's own index
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = 1  # the pool's processes already use the cores
            time_base = segment.time_base or stream.time_base
            frames = decode.iter_frames(
                container,
                stream,
                segment.seek,
                segment.start_pts,
                counters,
                segment.config.max_decode_errors,
                segment.numbered,
            )
            reporter = progress_report.Reporter(segment.path, segment.index)
            for frame in timed_iter(frames, "decode"):
                if segment.end_pts is not None and frame.pts >= segment.end_pts:
                    break
                reporter.frame(frame.pts)
                if scanner is None or (frame.width, frame.height) != size:
                    # A stream's frame size can change (two recordings joined, a camera
                    # switching resolution): each size is analysed as a picture of its own,
                    # the faces followed until then ending at the change.
                    if scanner is not None:
                        earlier += scanner.finish()
                        analysed += scanner.analysed
                        unaligned += scanner.unaligned
                    size = (frame.width, frame.height)
                    rotation = decode.normal_rotation(getattr(frame, "rotation", 0) or 0)
                    w, h = (frame.height, frame.width) if rotation in (90, 270) else size
                    scanner = SegmentScanner(segment, time_base, w, h, rotation)
                scanner.feed(frame)
                if segment.start_pts is None or frame.pts >= segment.start_pts:
                    last_pts = frame.pts
    except InputError as err:
        error = err.reason
    except (av.FFmpegError, OSError) as err:
        error = str(err)
    if counters.last_error and error is None and counters.errors:
        error = f"{counters.errors} corrupt packet(s) skipped ({counters.last_error})"
    tracks = [*earlier, *(scanner.finish() if scanner else ())]
    unaligned += scanner.unaligned if scanner else 0  # counted once finish() encoded the rest
    return SegmentResult(
        segment=segment,
        tracks=tuple(sorted(tracks, key=lambda tr: (tr.start_pts, tr.sightings[0].box.left))),
        frames_decoded=counters.decoded,
        frames_analysed=analysed + (scanner.analysed if scanner else 0),
        decode_errors=counters.errors,
        last_pts=last_pts,
        error=error,
        stage_seconds=STAGES.take(),
        unaligned=unaligned,
    )
