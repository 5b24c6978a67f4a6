"""Progress and messages on stderr (rich). Data never goes here: it goes to stdout or --out.

rich is imported only when a progress bar is shown (a terminal, no --quiet): importing it
takes 35-75 ms of CPU, a tenth of a short scan's start-up."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from frs_cli import decode
from frs_cli.records import SegmentResult
from frs_cli.scan import Events, FileOutcome

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def _speed_column() -> Any:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        """Footage seconds done per wall second: the speed as a multiple of real time."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
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

    def __enter__(self) -> ScanProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}", justify="left"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                _speed_column(),
                console=self.console or Console(stderr=True, highlight=False),
                transient=False,
            )
            self.progress.start()
            self.overall = self.progress.add_task("all footage", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def message(self, text: str) -> None:
        if self.progress:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    # -- scan events ------------------------------------------------------
    def file_started(self, info: decode.VideoInfo, segments: int) -> None:
        if not self.progress:
            return
        self.total_s += float(info.duration_s)
        self.progress.update(self.overall, total=self.total_s)
        name = info.path if len(info.path) <= 40 else "…" + info.path[-39:]
        self.tasks[info.path] = self.progress.add_task(name, total=float(info.duration_s))

    def segment_done(self, info: decode.VideoInfo, result: SegmentResult) -> None:
        if not self.progress:
            return
        seg = result.segment
        start = seg.start_pts if seg.start_pts is not None else info.frame_pts[0]
        end = seg.end_pts if seg.end_pts is not None else info.end_pts
        seconds = float((end - start) * info.clock.time_base)
        self.progress.advance(self.tasks[info.path], seconds)
        self.progress.advance(self.overall, seconds)

    def file_done(self, outcome: FileOutcome) -> None:
        if self.progress and outcome.path in self.tasks:
            self.progress.remove_task(self.tasks.pop(outcome.path))

    def failed(self, path: str, reason: str) -> None:
        self.message(f"error: {path}: {reason}")

    def resumed(self, path: str) -> None:
        if self.verbose:
            self.message(f"already scanned: {path}")

    def skipped(self, path: str, reason: str) -> None:
        if self.verbose:
            self.message(f"skipped: {path}: {reason}")
