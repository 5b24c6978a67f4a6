"""Progress and messages on stderr (rich). Data never goes here: it goes to stdout or --out.

rich is imported only when a progress bar is shown (a terminal, no --quiet): importing it
takes 35-75 ms of CPU, a tenth of a short scan's start-up."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from frs_cli.files import printable
from frs_cli.records import Segment, SegmentResult
from frs_cli.scanner.scanning import Events, FileOutcome
from frs_cli.video import decode

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def _speed_column() -> Any:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        """Footage seconds done per wall second since the task began: the speed as a
        multiple of real time, the same measure as the summary's (rich's own speed is
        over the last few updates, and said 12.1x at the end of a 1.2x scan)."""

        def render(self, task: Task) -> Text:
            elapsed = task.finished_time if task.finished else task.elapsed
            speed = task.completed / elapsed if elapsed else 0.0
            return Text(f"{speed:.1f}x real time" if speed else "", style="cyan")

    return SpeedColumn()


class ScanProgress(Events):
    def __init__(self, quiet: bool, verbose: bool = False, console: Console | None = None):
        self.console = console
        self.quiet = quiet
        self.verbose = verbose
        self.enabled = not quiet and sys.stderr.isatty()
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}
        self.overall: Any = None
        self.total_s = 0.0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.done: dict[tuple[str, int], float] = {}  # seconds shown per (file, segment)

    def __enter__(self) -> ScanProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                # File names are data, never markup: a name holding "[/]" once ended the scan.
                TextColumn("{task.description}", justify="left", markup=False),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                _speed_column(),
                console=self.console or Console(stderr=True, highlight=False, markup=False),
                transient=False,
            )
            self.progress.start()
            self.overall = self.progress.add_task("all footage", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def message(self, text: str) -> None:
        text = printable(text)  # file names may hold terminal escape sequences
        if self.progress:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    # -- scan events ------------------------------------------------------
    def file_started(self, info: decode.VideoInfo, segments: list[Segment]) -> None:
        if not self.progress:
            return
        self.total_s += float(info.duration_s)
        self.progress.update(self.overall, total=self.total_s)
        path = printable(info.path)
        name = path if len(path) <= 40 else "…" + path[-39:]
        self.tasks[info.path] = self.progress.add_task(name, total=float(info.duration_s))

    def segment_progress(self, info: decode.VideoInfo, segment: Segment, pts: int) -> None:
        """Advance the bars to where a running segment has got (from the relay thread)."""
        if not self.progress:
            return
        start = segment.start_pts if segment.start_pts is not None else info.frame_pts[0]
        self._advance_to(info, segment, float(max(0, pts - start) * info.clock.time_base))

    def segment_done(self, info: decode.VideoInfo, result: SegmentResult) -> None:
        if not self.progress:
            return
        seg = result.segment
        start = seg.start_pts if seg.start_pts is not None else info.frame_pts[0]
        end = seg.end_pts if seg.end_pts is not None else info.end_pts
        self._advance_to(info, seg, float((end - start) * info.clock.time_base))

    def _advance_to(self, info: decode.VideoInfo, segment: Segment, seconds: float) -> None:
        assert self.progress is not None
        with self.lock:
            key = (info.path, segment.index)
            step = seconds - self.done.get(key, 0.0)
            if step <= 0 or info.path not in self.tasks:
                return
            self.done[key] = seconds
            self.progress.advance(self.tasks[info.path], step)
            self.progress.advance(self.overall, step)

    def file_done(self, outcome: FileOutcome) -> None:
        if self.progress and outcome.path in self.tasks:
            with self.lock:
                self.progress.remove_task(self.tasks.pop(outcome.path))

    def failed(self, path: str, reason: str) -> None:
        self.message(f"error: {path}: {reason}")
        if self.progress and path in self.tasks:
            with self.lock:
                self.progress.remove_task(self.tasks.pop(path))

    def warning(self, path: str, text: str) -> None:
        self.message(f"warning: {path}: {text}")

    def note(self, path: str, text: str) -> None:
        if self.verbose:
            self.message(f"{path}: {text}")

    def resumed(self, path: str) -> None:
        if self.verbose:
            self.message(f"already scanned: {path}")

    def skipped(self, path: str, reason: str) -> None:
        if self.verbose:
            self.message(f"skipped: {path}: {reason}")
