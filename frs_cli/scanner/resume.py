"""Resuming an interrupted scan: a journal beside the output.

After each file's rows are written, the output is flushed and fsynced, then one line
is appended to `OUT.frs-journal` (and fsynced): the file's path, size, mtime and fast
fingerprint, and the output's length at that point. `frs scan --resume --out OUT`
keeps the longest run of journalled files that are unchanged, cuts the output back to
where the last of them ended (dropping any half-written rows after it), and scans the
rest. Files are written in input order, so the result equals an uninterrupted scan.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frs_cli import files
from frs_cli.errors import UsageError
from frs_cli.watchlist.audit import fast_fingerprint

VERSION = 1


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".frs-journal")


def settings_key(settings: dict[str, Any]) -> str:
    """A digest of every option that changes the rows, so a resume cannot mix settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Journal:
    path: Path
    key: str
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> entry kept
    offset: int = 0  # where the kept rows end in the output

    @classmethod
    def start(cls, out: Path, key: str, resume: bool) -> Journal:
        """A fresh journal, or (with `resume`) the kept part of an old one."""
        journal = cls(journal_path(out), key)
        if not resume or not journal.path.exists():
            journal.path.unlink(missing_ok=True)
            journal._write({"version": VERSION, "settings": key})
            return journal
        lines = journal.path.read_text(encoding="utf-8").splitlines()
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except ValueError:
                break  # a line cut by a kill: everything before it stands
        if not entries or entries[0].get("settings") != key:
            raise UsageError(
                f"{out} was written with other scan options than these; "
                "run without --resume to start again, or repeat the original options"
            )
        for entry in entries[1:]:
            now = fast_fingerprint(entry["path"])
            same = all(now.get(k) == entry.get(k) for k in ("size", "mtime", "fingerprint"))
            if not same:
                break  # changed since: rescan it and everything after it
            journal.done[entry["path"]] = entry
            journal.offset = entry["offset"]
        # Rewrite the journal to what is kept, so a later resume sees the same.
        kept = [entries[0], *journal.done.values()]
        files.write_atomic(journal.path, "".join(json.dumps(e) + "\n" for e in kept))
        return journal

    def record(self, source: str, rows: int, out: files.Output) -> None:
        """Call after `source`'s rows are committed to `out`: makes them durable, then
        journals them with the output's length."""
        out.sync()
        entry = {**fast_fingerprint(source), "rows": rows, "offset": out.offset}
        self._write(entry)
        self.done[source] = entry

    def _write(self, entry: dict[str, Any]) -> None:
        fd = files.open_append(self.path)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
