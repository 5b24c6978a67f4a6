"""The audit trail: one JSON line per enrol and scan, appended beside the watchlist
(`WATCHLIST.audit.jsonl`, owner-only), flushed and fsynced per record, never rewritten."""

from __future__ import annotations

import datetime as dt
import errno
import getpass
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from frs_cli import __version__, files
from frs_cli.errors import FrsError
from frs_cli.hashing import fast_sha256


def log_path(watchlist: Path) -> Path:
    return watchlist.with_name(watchlist.name + ".audit.jsonl")


def fast_fingerprint(path: str | Path) -> dict[str, Any]:
    """Size, mtime and a sha256 of the size and the first and last MiB: enough to tell
    whether a file changed, without reading hours of video."""
    p = Path(path)
    why = files.regular(p)
    if why is not None:  # reading a FIFO would block; a device never ends
        return {"path": str(path), "error": why}
    try:
        st = p.stat()
        digest = fast_sha256(p)
    except OSError as err:
        return {"path": str(path), "error": err.strerror or str(err)}
    return {
        "path": str(path),
        "size": st.st_size,
        "mtime": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat(timespec="seconds"),
        "fingerprint": "fast-sha256:" + digest,
    }


def record(command: str, **fields: Any) -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "command": command,
        "user": user,
        "host": socket.gethostname(),
        "frs_version": __version__,
        "argv": sys.argv[1:],
        # Paths in a record are as the command was given them: relative ones are to this.
        "cwd": _cwd(),
        **fields,
    }


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder was removed under us
        return None


def append(watchlist: Path, entry: dict[str, Any]) -> None:
    """Append one record; O_APPEND keeps concurrent writers' lines whole."""
    path = log_path(watchlist)
    line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = files.open_append(path)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, "the record was cut short (disk full?)")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise FrsError(
            f"cannot append to the audit trail {files.printable(str(path))}: "
            f"{err.strerror or err}; this {entry.get('command', '')} is not recorded"
        ) from None


def read(watchlist: Path) -> list[dict[str, Any]]:
    path = log_path(watchlist)
    if not path.exists():
        return []
    why = files.regular(path)
    if why is not None:  # a FIFO put there would block
        raise FrsError(f"cannot read the audit trail {files.printable(str(path))}: {why}")
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"command": "?", "error": "unreadable line", "raw": line[:200]})
    return entries
