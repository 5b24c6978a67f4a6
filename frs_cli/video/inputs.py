"""Expanding the footage arguments: files, folders (recursive) and globs."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Inside folders, files with these endings that fail to open are reported as
# failures; any other file is probed too, and silently passed over if it is
# not a video (a README, a photo, a thumbnail database).
VIDEO_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".ts", ".3gp",
    ".flv", ".wmv", ".mpg", ".mpeg", ".vob", ".dav", ".h264", ".264", ".hevc", ".ogv", ".asf",
}  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    path: str
    explicit: bool  # named on the command line (not found inside a folder)

    @property
    def looks_like_video(self) -> bool:
        return self.explicit or Path(self.path).suffix.lower() in VIDEO_SUFFIXES


def discover(args: tuple[str, ...] | list[str]) -> Iterator[Candidate | tuple[str, str]]:
    """Yield candidates in a stable order, or (argument, reason) for arguments that name nothing."""
    seen: set[str] = set()
    for arg in args:
        if os.path.isdir(arg):
            yield from _walk(arg, seen)
        elif os.path.lexists(arg):
            if arg not in seen:
                seen.add(arg)
                yield Candidate(arg, explicit=True)
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                yield (arg, "no file matches this pattern")
            for match in matches:
                if os.path.isdir(match):
                    yield from _walk(match, seen)
                elif match not in seen:
                    seen.add(match)
                    yield Candidate(match, explicit=True)
        else:
            yield (arg, "no such file or folder")


def _walk(root: str, seen: set[str]) -> Iterator[Candidate]:
    """Files below `root`, sorted, following folder links but never in a loop."""
    visited: set[tuple[int, int]] = set()

    def walk(folder: str) -> Iterator[Candidate]:
        try:
            st = os.stat(folder)
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        if key in visited:
            return
        visited.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if is_dir:
                yield from walk(entry.path)
            elif entry.path not in seen:
                seen.add(entry.path)
                yield Candidate(entry.path, explicit=False)

    yield from walk(root)
