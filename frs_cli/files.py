"""What frs writes, and how: one place for every file it creates (docs/design.md,
"What frs writes and how").

- Nothing is written onto a file frs reads: outputs are compared with inputs (and with
  each other) by device and inode, or by resolved name when one does not exist yet,
  before any work starts (`check_outputs`).
- A file is written through a temporary file created exclusively (`O_EXCL|O_NOFOLLOW`,
  a random name) in the target's folder, then renamed over the target: a symlink at the
  temporary name or at the target is never followed, and a reader sees the old file or
  the new one (`replacing`, `write_atomic`). Appends (`open_append`) follow no symlink.
- Everything frs creates is owner-only (0600), since most of it holds faces or who was
  seen where.
- Inputs are opened only when they are regular files (`regular`): a FIFO or a device
  would block a worker or be read twice.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from frs_cli.errors import FrsError, UsageError

PRIVATE = 0o600
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def file_key(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of what `path` names (links followed), None if nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether `a` and `b` are one file: by device and inode when both exist (hard links,
    symlinks, `./x` and `x` alike), else by resolved name (one not created yet)."""
    ka, kb = file_key(a), file_key(b)
    if ka is not None and kb is not None:
        return ka == kb
    return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: Mapping[str, Path | None], inputs: Iterable[tuple[str, Path]]) -> None:
    """Refuse, before any work, an output that is one of the inputs or another output, or
    whose folder does not exist. `outputs`: what -> path (None: not asked for);
    `inputs`: (what, path) pairs."""
    named = [(what, path) for what, path in outputs.items() if path is not None]
    read = list(inputs)
    for k, (what, path) in enumerate(named):
        for other_what, other in [*read, *named[:k]]:
            if same_file(path, other):
                raise UsageError(
                    f"{what} {printable(str(path))} is {other_what}"
                    f"{'' if str(other) == str(path) else f' ({printable(str(other))})'}; "
                    "frs never writes over a file it reads, nor two outputs into one file: choose another name"
                )
        folder = path.parent
        if not folder.is_dir():
            raise UsageError(f"cannot write {printable(str(path))}: no folder {folder}")


def within(path: str | Path, folder: str | Path) -> bool:
    """Whether `path` is `folder` or lies below it (resolved: links and `..` followed)."""
    inner, outer = os.path.realpath(path), os.path.realpath(folder)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def writable_folder(folder: Path, what: str) -> None:
    """Create `folder` (owner-only) if needed and prove a file can be created in it, so
    that a read-only place is one line before any work, not an error half-way."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.unlink(reserve(folder / "probe"))
    except OSError as err:
        raise FrsError(
            f"cannot write into {what} {printable(str(folder))}: {err.strerror or err}"
        ) from None


def regular(path: str | Path) -> str | None:
    """None if `path` is a regular file (links followed); else why it cannot be read as one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as err:
        return err.strerror or str(err)
    if stat.S_ISREG(mode):
        return None
    kind = (
        "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
        else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "a folder" if stat.S_ISDIR(mode)
        else "not a regular file"
    )  # fmt: skip
    return f"is {kind}, not a regular file; copy it to a file first"


def _temporary(target: Path, mode: int) -> tuple[int, Path]:
    """A new, empty file beside `target`, created exclusively (never through a link)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _CREATE, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))


@contextlib.contextmanager
def replacing(target: Path, mode: int = PRIVATE, binary: bool = False) -> Iterator[IO[Any]]:
    """Write `target` whole: yields a file opened on a new temporary file beside it, which
    is flushed, fsynced and renamed over `target` when the block ends without an error
    (removed otherwise). OSError from creating, writing or renaming is raised as is."""
    fd, tmp = _temporary(target, mode)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else _TEXT)) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_TEXT: dict[str, Any] = {"encoding": "utf-8", "newline": ""}


def write_atomic(target: Path, data: str | bytes, mode: int = PRIVATE) -> None:
    with replacing(target, mode, binary=isinstance(data, bytes)) as f:
        f.write(data)


def write_output(target: Path, data: str | bytes) -> None:
    """`write_atomic` for a file the user named: an OSError becomes one line."""
    try:
        write_atomic(target, data)
    except OSError as err:
        raise FrsError(f"cannot write {printable(str(target))}: {err.strerror or err}") from None


def reserve(target: Path, mode: int = PRIVATE) -> Path:
    """A new empty temporary file beside `target`, created exclusively, for a library that
    writes by name (hnswlib, ONNX Runtime): the name is ours, so no link is followed."""
    fd, tmp = _temporary(target, mode)
    os.close(fd)
    return tmp


def open_append(path: Path, mode: int = PRIVATE) -> int:
    """A descriptor for appending to `path` (created owner-only); a symlink there is refused."""
    return os.open(
        path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode
    )


class Output:
    """The output of a streaming writer (`frs scan --out`, or stdout): text is handed over
    in whole pieces (one input file's rows) by `commit`, so the output always ends at the
    end of a piece. A piece that cannot be written whole (a full disk) is cut off again,
    then the OSError is raised; a closed pipe raises BrokenPipeError.

    `Output.open(path)`: a FIFO or a device (`/dev/null`) is opened as it is, since the
    analyst asked for it. A regular file (or none yet) is replaced: a new owner-only file
    is created exclusively beside it and renamed over it before anything is written, so
    the old file's inode (a hard link, a symlink's target) is never truncated. With
    `keep` > 0 (resuming) the existing file is opened without following a link, refused if
    it is shorter than `keep`, and cut back to `keep` bytes."""

    def __init__(
        self, name: str, fd: int | None, regular: bool, offset: int = 0, text: IO[str] | None = None
    ):
        self.name = name
        self.fd = fd
        self.regular = regular  # a regular file: can be cut back, fsynced, resumed
        self.offset = offset  # bytes written and kept
        self._text = text

    @classmethod
    def stdout(cls, stream: IO[str]) -> Output:
        return cls("stdout", None, False, text=stream)

    @classmethod
    def open(cls, target: Path, keep: int = 0) -> Output:
        if keep:
            fd = os.open(target, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            size = os.fstat(fd).st_size
            if size < keep:
                os.close(fd)
                raise UsageError(
                    f"{printable(str(target))} is shorter ({size} bytes) than its journal says "
                    f"({keep} bytes): it was changed after the scan stopped; scan again "
                    "without --resume"
                )
            os.ftruncate(fd, keep)
            os.lseek(fd, keep, os.SEEK_SET)
            return cls(str(target), fd, True, keep)
        try:
            st: os.stat_result | None = os.lstat(target)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            return cls(str(target), os.open(target, os.O_WRONLY | os.O_CLOEXEC), False)
        fd, tmp = _temporary(target, PRIVATE)
        try:
            os.replace(tmp, target)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return cls(str(target), fd, True)

    def commit(self, text: str) -> None:
        if not text:
            return
        if self._text is not None:
            self._text.write(text)
            self._text.flush()
            return
        assert self.fd is not None
        encoded = text.encode("utf-8")
        data = memoryview(encoded)
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            if self.regular:
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, self.offset)
                    os.lseek(self.fd, self.offset, os.SEEK_SET)
            raise
        self.offset += len(encoded)

    def sync(self) -> None:
        """Make what was committed durable (regular files)."""
        if self.fd is not None and self.regular:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    """`text` with control characters (terminal escape sequences among them) shown as
    `\\xNN`, for names read from files or folders that are printed to a terminal."""
    return text.translate(_CONTROL)
