"""Enrolment: photos in, one face encoding per photo out (faces/photos.py), into the
watchlist, with a record in its audit trail.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from frs_cli.errors import FrsError, UsageError
from frs_cli.faces import families, images
from frs_cli.faces.photos import Mapper, PhotoJob, PhotoResult, encode_photos
from frs_cli.files import printable
from frs_cli.watchlist import Watchlist, dumps_box

_NUMBERING = re.compile(r"[\s_\-.]*\(?\d+\)?$")


def identity_from_filename(path: Path) -> str:
    """`Ada_Lovelace.jpg`, `Ada_Lovelace_0002.jpg`, `ada (2).png` -> the person's name."""
    stem = path.stem
    name = _NUMBERING.sub("", stem)
    return name or stem


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in images.IMAGE_SUFFIXES


def collect_jobs(paths: Iterable[str], name: str | None) -> list[PhotoJob]:
    """Expand the command's PATH arguments into (identity, photo) jobs."""
    jobs: list[PhotoJob] = []
    for raw in paths:
        path = Path(raw)
        if name is not None:
            if path.is_dir():
                jobs += [PhotoJob(name, str(p)) for p in sorted(path.rglob("*")) if _is_image(p)]
            else:
                jobs.append(PhotoJob(name, raw))
        elif path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_dir():
                    for photo in sorted(child.rglob("*")):
                        if _is_image(photo):
                            jobs.append(PhotoJob(child.name, str(photo)))
                elif _is_image(child):
                    jobs.append(PhotoJob(identity_from_filename(child), str(child)))
        else:
            # An explicit file is tried whatever its extension says.
            jobs.append(PhotoJob(identity_from_filename(path), raw))
    for job in jobs:
        if not job.identity.strip():
            raise UsageError(f"{job.path}: empty identity name; use --name NAME")
    return jobs


@dataclass
class EnrolStats:
    enrolled: int = 0
    duplicates: int = 0
    several: int = 0
    no_face: int = 0
    unreadable: int = 0
    photos: list[dict[str, str]] = field(default_factory=list)  # for the audit trail

    @property
    def failed(self) -> int:
        return self.no_face + self.unreadable


def _encoded(
    jobs: list[PhotoJob],
    mapper: Mapper | None,
    stats: EnrolStats,
    warn: Callable[[str], None],
    with_identity: bool = True,
    family: str = "dlib",
) -> Iterator[PhotoResult]:
    """The photos that gave an encoding; the others are counted and reported to `warn`."""
    for result in encode_photos(jobs, mapper, family=family):
        job = result.job
        if result.status != "enrolled":  # those are listed as they are added
            stats.photos.append(_entry(result, result.status, with_identity))
        if result.status == "unreadable":
            stats.unreadable += 1
            warn(f"unreadable: {printable(job.path)}: {result.reason}")
        elif result.status == "no-face":
            stats.no_face += 1
            warn(f"no face: {printable(job.path)}: no face found; use a clearer, frontal photo")
        else:
            yield result


def _entry(result: PhotoResult, status: str, with_identity: bool = True) -> dict[str, str]:
    """A photo as the audit trail lists it."""
    entry = {"path": result.job.path, "sha256": result.sha256, "status": status}
    return {**entry, "identity": result.job.identity} if with_identity else entry


def enrol_into(
    watchlist: Watchlist,
    paths: Iterable[str | Path],
    name: str | None,
    workers: int,
    scheduler: str | None = None,
    say: Callable[[str], None] | None = None,
    cohort: bool = False,
    warn: Callable[[str], None] | None = None,
) -> EnrolStats:
    """Encode the photos in `paths` (as `frs enroll` lays them out) in `workers`
    processes (or on Dask), add them to `watchlist` (or, with `cohort`, to its cohort),
    and record it in the audit trail: `say` gets a line per photo added, `warn` one per
    photo that could not be (default: `say`). Interrupted (Ctrl-C), the photos added so
    far are recorded as such and KeyboardInterrupt is raised again."""
    from frs_cli.watchlist import audit
    from frs_cli.workers.executors import make_executor, ordered_map

    jobs = collect_jobs([str(p) for p in paths], "cohort" if cohort else name)
    if not jobs:
        raise FrsError("no photos found in the given paths")
    run = run_cohort if cohort else run_enroll
    say = say or print_nothing
    stats = EnrolStats()
    interrupted = False
    try:
        family = watchlist.family
        executor = make_executor(
            max(1, min(workers, len(jobs))), family.detector, scheduler, family.name
        )
        try:
            run(
                watchlist,
                jobs,
                lambda fn, items: ordered_map(executor, fn, items),
                say,
                warn or say,
                stats,
            )
        except BaseException:
            executor.shutdown(cancel=True)
            raise
        executor.shutdown()
    except KeyboardInterrupt:
        interrupted = True
    added, again = ("added", "already_there") if cohort else ("enrolled", "already_enrolled")
    counts = {added: stats.enrolled, again: stats.duplicates}
    counts |= {"no_face": stats.no_face, "unreadable": stats.unreadable}
    audit.append(
        watchlist.path,
        audit.record(
            "cohort-add" if cohort else "enroll",
            watchlist=watchlist.fingerprint(),
            inputs=stats.photos,
            counts=counts,
            interrupted=interrupted,
        ),
    )
    if interrupted:
        raise KeyboardInterrupt
    return stats


def print_nothing(line: str) -> None:
    """A `say` for callers that want no messages."""


@contextlib.contextmanager
def counted_together() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, so that a photo added to the watchlist is
    also counted for the audit trail (a SIGINT between the two made the record say 4
    where the watchlist held 5). Only where Python's own handler is in place, in the
    main thread: elsewhere the block runs as it is."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt


def run_cohort(
    watchlist: Watchlist,
    jobs: list[PhotoJob],
    mapper: Mapper | None,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    stats: EnrolStats,
) -> EnrolStats:
    """Encode every job's photo (largest face) into `watchlist`'s cohort."""
    family = families.of(watchlist.model_id).name
    for result in _encoded(jobs, mapper, stats, warn, with_identity=False, family=family):
        job = result.job
        assert result.vector is not None
        with counted_together():
            added = watchlist.add_cohort(
                [(result.vector, result.sha256, os.path.abspath(job.path))]
            )
            stats.photos.append(_entry(result, result.status if added else "already there", False))
            if added:
                stats.enrolled += 1
            else:
                stats.duplicates += 1
        if added:
            say(f"added to the cohort: {printable(job.path)}")
        else:
            say(f"already in the cohort: {printable(job.path)}")
    return stats


def run_enroll(
    watchlist: Watchlist,
    jobs: list[PhotoJob],
    mapper: Mapper | None,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    stats: EnrolStats,
) -> EnrolStats:
    """Encode every job's photo and add it to `watchlist`; `say(line)` once per photo."""
    family = families.of(watchlist.model_id).name
    for result in _encoded(jobs, mapper, stats, warn, family=family):
        job = result.job
        assert result.vector is not None and result.box is not None
        b = result.box
        row = (
            job.identity,
            result.vector,
            result.sha256,
            os.path.abspath(job.path),  # the review page finds the photo from anywhere
            dumps_box(b.left, b.top, b.width, b.height),
        )
        with counted_together():
            added = watchlist.add_faces([row])
            stats.photos.append(_entry(result, result.status if added else "already enrolled"))
            if added:
                stats.enrolled += 1
                stats.several += result.faces > 1
            else:
                stats.duplicates += 1
        if not added:
            say(f"already enrolled: {printable(job.path)} ({printable(job.identity)})")
            continue
        if result.faces > 1:
            say(
                f"enrolled: {printable(job.path)} as {printable(job.identity)} (largest of {result.faces} faces, "
                f"at {b.left},{b.top} {b.width}x{b.height})"
            )
        else:
            say(f"enrolled: {printable(job.path)} as {printable(job.identity)}")
    return stats
