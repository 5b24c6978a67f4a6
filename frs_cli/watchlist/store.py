"""The store: one SQLite file as the source of truth. The schema, the connection that
turns every SQLite error into one line naming the file, opening and creating (a file is
recognised as a watchlist by reading before anything is written into it), integrity
checks, the writers' lock, and the names of the files kept beside the store.

Files, for a watchlist at `W` (e.g. `watchlist.db`):
- `W`: SQLite (WAL mode). Tables `meta`, `identities`, `faces` (128 float32 as a BLOB for dlib, 512 for
  ArcFace),
  `changes`, `cohort`.
- `W.hnsw-*` and `W.hnsw.json`: the index (`index.py`), `W.calibration.json`
  (`calibrating.py`), `W.audit.jsonl` (`frs_cli.watchlist.audit`), `W.lock`.
Every file is created owner-only (0600): these are biometric data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from frs_cli import files
from frs_cli.errors import WatchlistError

if TYPE_CHECKING:
    from frs_cli.faces.families import Family

SCHEMA_VERSION = 1
DIM = 128  # dlib's; a store's own is `Store.dim`, from its model id (families.py)


def usable(vectors: np.ndarray, norms: tuple[float, float]) -> np.ndarray:
    """Per row of `vectors` (n, dim), or of one vector: finite, and of a length an
    encoding of the family can have (`Family.norms`). Anything else is damage or another
    model's numbers: a vector of 1e30s made every distance infinite and the scan silently
    reported nobody; a zero vector is 1.0 from every ArcFace encoding, and alerted on
    strangers."""
    vectors = np.asarray(vectors, np.float64)
    vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
    with np.errstate(over="ignore", invalid="ignore"):
        lengths = np.linalg.norm(vectors, axis=1)
    return np.isfinite(vectors).all(axis=1) & (lengths >= norms[0]) & (lengths <= norms[1])


def unusable_rows(vectors: np.ndarray, norms: tuple[float, float], names: Sequence[str]) -> str:
    """The rows of `vectors` that are not `usable`, named for an error message ("" when
    there are none)."""
    bad = np.flatnonzero(~usable(vectors, norms))
    if not len(bad):
        return ""
    with np.errstate(over="ignore", invalid="ignore"):
        lengths = np.linalg.norm(np.asarray(vectors, np.float64)[bad[:5]], axis=1)
    shown = ", ".join(
        f"row {i} ({files.printable(str(names[i]))}, length {length:.4g})"
        for i, length in zip(bad[:5], lengths, strict=True)
    )
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return f"{shown}{more}"


CHECK_ON_OPEN_BYTES = 128 << 20  # stores up to this size are checked at every open (SQLite's
# quick_check reads ~600 MB/s warm: 87 MB in 0.14 s); larger ones before every change

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    photo_sha256 TEXT NOT NULL,
    photo TEXT NOT NULL,
    box TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    UNIQUE (identity_id, photo_sha256)
);
CREATE INDEX IF NOT EXISTS faces_identity ON faces(identity_id);
-- Which faces each generation added or removed: lets the index catch up without a rebuild.
CREATE TABLE IF NOT EXISTS changes (
    generation INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    face_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_generation ON changes(generation);
-- The cohort: faces of people who are NOT on the watchlist, never matched or counted;
-- only used as "other identities" for the alert rule's margin (calibration.py).
CREATE TABLE IF NOT EXISTS cohort (
    id INTEGER PRIMARY KEY,
    vector BLOB NOT NULL,
    photo_sha256 TEXT NOT NULL UNIQUE,
    photo TEXT NOT NULL,
    added_at TEXT NOT NULL
);
"""


def default_path() -> Path:
    """$FRS_WATCHLIST, else $XDG_DATA_HOME/frs/watchlist.db (~/.local/share/frs/watchlist.db)."""
    env = os.environ.get("FRS_WATCHLIST")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "frs" / "watchlist.db"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _touch_private(path: Path) -> None:
    """Create `path` empty and owner-only if it does not exist (SQLite keeps the mode);
    an empty file already there (a watchlist is about to be made in it) becomes
    owner-only too, since it is about to hold faces."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


def damaged(path: Path, detail: str) -> WatchlistError:
    return WatchlistError(
        f"{path} is damaged ({detail}); nothing was written to it. "
        f"`frs watchlist verify -w {path}` shows what is wrong; restore it from a copy "
        "or enrol the photos again into a new watchlist"
    )


class _Cursor(sqlite3.Cursor):
    """A cursor whose SQLite errors name the watchlist and say what to do (reads can
    meet a damaged page at any row, not only when the file is opened)."""

    connection: _Connection

    def _fail(self, err: sqlite3.Error) -> WatchlistError:
        return self.connection.fail(err)

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as err:
            raise self._fail(err) from None

    def executemany(self, sql: str, seq: Any, /) -> _Cursor:
        try:
            return super().executemany(sql, seq)
        except sqlite3.DatabaseError as err:
            raise self._fail(err) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as err:
            raise self._fail(err) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as err:
            raise self._fail(err) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.DatabaseError as err:
            raise self._fail(err) from None


class _Connection(sqlite3.Connection):
    path: Path

    def fail(self, err: sqlite3.Error) -> WatchlistError:
        text = str(err)
        if isinstance(err, sqlite3.OperationalError) and "locked" in text:
            return WatchlistError(f"{self.path} is locked by another program ({text}); try again")
        if isinstance(err, sqlite3.OperationalError) and "malformed" not in text:
            return WatchlistError(f"{self.path}: {text}")
        return damaged(self.path, text)

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self.cursor(_Cursor).execute(sql, parameters)

    def executemany(self, sql: str, seq: Any, /) -> _Cursor:
        return self.cursor(_Cursor).executemany(sql, seq)

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(script)
        except sqlite3.DatabaseError as err:
            raise self.fail(err) from None

    def __exit__(self, *exc: Any) -> Any:
        try:
            return super().__exit__(*exc)
        except sqlite3.DatabaseError as err:
            raise self.fail(err) from None


class Store:
    """An open store: the connection, opening and creating, and the meta table."""

    exact_limit = 20_000  # below this many faces, exact search beats the index (EXACT_LIMIT)

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self._vectors: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._names: list[str] = []
        self._face_ids: np.ndarray | None = None
        self._index: Any = None
        self._cohort: np.ndarray | None = None
        self._empty = False
        self._preloading: Any = None  # (thread, result, state) of Indexed.preload
        self._family: Family | None = None
        self.created = False  # by this process, this time (`discard_if_unused`)

    # -- opening ---------------------------------------------------------
    @classmethod
    def create(
        cls, path: str | Path, model_id: str | None = None, encoder: str | None = None
    ) -> Self:
        """Open for writing, creating it if needed. Refuses another encoder's watchlist,
        any file that is not a watchlist, and a damaged one (before writing anything into
        it). `model_id`: the encoder's; else the installed weights of the `encoder` family
        (families.py), which is the existing watchlist's own family or, for a new one, dlib."""
        from frs_cli.faces import families

        path = Path(path)
        if model_id is None and encoder is not None:
            model_id = families.get(encoder).model_id()
        if not os.path.lexists(path):
            return cls._new(path, model_id or families.DLIB.model_id())
        wl = cls._connect(path, model_id, empty_ok=True)
        if wl._empty:
            wl.close()
            return cls._new(path, model_id or families.DLIB.model_id())
        if model_id is None:
            wl._check_installed()
        wl.check_intact()
        if path.stat().st_size <= CHECK_ON_OPEN_BYTES:
            wl.check_vectors()
        with wl.conn:
            wl.conn.executescript(SCHEMA)  # tables added since (IF NOT EXISTS)
        return wl

    @classmethod
    def _new(cls, path: Path, model_id: str) -> Self:
        """A new store: file, tables and meta in one transaction, or nothing at all."""
        from frs_cli.faces import families

        family = families.of(model_id)  # an unknown family: refused before any file exists
        created = not os.path.lexists(path)
        try:
            _touch_private(path)
        except OSError as err:
            raise WatchlistError(
                f"cannot create a watchlist at {files.printable(str(path))}: {err.strerror or err}"
            ) from None
        try:
            conn = cls._sqlite(path)
            meta = ", ".join(
                f"('{k}', '{v.replace(chr(39), chr(39) * 2)}')"
                for k, v in (
                    ("schema_version", str(SCHEMA_VERSION)), ("model_id", model_id),
                    ("created_at", _now()), ("generation", "0"),
                )
            )  # fmt: skip
            conn.executescript(f"BEGIN; {SCHEMA}\nINSERT INTO meta VALUES {meta}; COMMIT;")
            wl = cls(path, conn)
            wl._family = family
            wl.created = created
            wl._pragmas()
        except BaseException:
            if created:  # a store cut short (a full disk, Ctrl-C) is not left behind
                for leftover in (path, *_sidecars(path)):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
            raise
        return wl

    @classmethod
    def open(cls, path: str | Path, model_id: str | None = None, check: bool = True) -> Self:
        """Open to read (and to change: every change checks the file first). `check=False`
        skips the checks at opening, for `verify`, which reports damage itself."""
        path = Path(path)
        if not os.path.lexists(path):
            raise WatchlistError(
                f"no watchlist at {path}; create one with `frs enroll -w {path} PHOTOS...`"
            )
        wl = cls._connect(path, model_id)
        if check and path.stat().st_size <= CHECK_ON_OPEN_BYTES:
            wl.check_intact()
            wl.check_vectors()
        return wl

    @classmethod
    def open_installed(cls, path: str | Path) -> Self:
        """`open`, for use: refused unless this machine has the exact weights of the
        family that made it (an encoder's numbers compare only with its own)."""
        wl = cls.open(path)
        try:
            wl._check_installed()
        except BaseException:
            wl.close()
            raise
        return wl

    def _check_installed(self) -> None:
        from frs_cli.faces import families

        installed = families.of(self.model_id).model_id()
        if self.model_id != installed:
            raise WatchlistError(
                f"{self.path} was made with encoder {self.model_id}, not {installed} (this "
                "machine's); encodings of different models cannot be compared. Enrol into a "
                "new watchlist."
            )

    @staticmethod
    def _sqlite(path: Path) -> _Connection:
        why = files.regular(path)
        if why is not None:
            raise WatchlistError(f"{files.printable(str(path))} {why}; it is not a watchlist")
        try:
            conn = sqlite3.connect(path, timeout=30, factory=_Connection)
        except sqlite3.Error as err:
            raise WatchlistError(f"cannot open {path} ({err}){_read_only(path)}") from None
        conn.path = path
        return conn

    @classmethod
    def _connect(cls, path: Path, model_id: str | None, empty_ok: bool = False) -> Self:
        """Open an existing store: check it is a watchlist (by reading only), then set the
        connection up (WAL, which writes to the file) only if it is one."""
        wl = cls(path, cls._sqlite(path))
        try:
            wl._empty = empty_ok and path.stat().st_size == 0
            if not wl._empty:
                wl._check(model_id)
                wl._pragmas()
        except BaseException:
            wl.close()
            raise
        return wl

    def _pragmas(self) -> None:
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA synchronous=FULL")
        except WatchlistError as err:
            raise WatchlistError(f"{err}{_read_only(self.path)}") from None

    def check_intact(self) -> None:
        """Raise if SQLite finds the file damaged (quick_check: every page read once)."""
        try:
            rows = self.conn.execute("PRAGMA quick_check").fetchall()
        except WatchlistError:
            raise damaged(self.path, "database disk image is malformed") from None
        if rows != [("ok",)]:
            raise damaged(self.path, str(rows[0][0]))

    def _check(self, model_id: str | None) -> None:
        try:
            meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except WatchlistError as err:
            if _read_only(self.path):  # SQLite cannot read a WAL store it cannot write beside
                raise WatchlistError(
                    f"cannot open {self.path} ({_detail(err)}){_read_only(self.path)}"
                ) from None
            raise WatchlistError(
                f"{self.path} is not a watchlist ({_detail(err)}); nothing was written to it"
            ) from None
        if "schema_version" not in meta or "model_id" not in meta:
            raise WatchlistError(
                f"{self.path} is not a watchlist (no frs schema in it: another program's "
                "database, or a watchlist whose creation was cut short); nothing was written to it"
            )
        version = int(meta["schema_version"])
        if version != SCHEMA_VERSION:
            raise WatchlistError(
                f"{self.path} has schema version {version}; this frs reads {SCHEMA_VERSION}"
            )
        from frs_cli.faces import families

        # Known from here on, without SQLite: the index may be loaded in another thread.
        self._family = families.of(meta["model_id"])
        if model_id is not None and meta.get("model_id") != model_id:
            raise WatchlistError(
                f"{self.path} was made with encoder {meta.get('model_id')}, not {model_id};"
                " encodings of different models cannot be compared. Enrol into a new watchlist."
            )

    def bad_vector_names(self) -> list[str]:
        """The identity of each face whose vector is not `dim` numbers of an encoding of
        this watchlist's family (`usable`), once per such face."""
        bad: list[str] = []
        for name, blob in self.conn.execute(
            "SELECT i.name, f.vector FROM faces f JOIN identities i ON i.id = f.identity_id"
        ):
            vec = np.frombuffer(blob, np.float32) if len(blob) == self.dim * 4 else None
            if vec is None or not usable(vec, self.norms)[0]:
                bad.append(name)
        return bad

    def check_vectors(self) -> None:
        """Raise unless every face's vector is `dim` finite numbers: a scan would silently
        miss a person whose vector is not, and nothing should be added beside it."""
        bad = self.bad_vector_names()
        if bad:
            names = ", ".join(files.printable(n) for n in sorted(set(bad))[:5])
            raise WatchlistError(
                f"{self.path}: {len(bad)} face(s) ({names}) have no valid encoding (not "
                f"{self.family.describe()}); a scan would miss them or match strangers to "
                f"them. `frs watchlist verify -w {self.path}` lists the problems; remove "
                "those identities and enrol them again"
            )

    def close(self) -> None:
        self.conn.close()

    def discard_if_unused(self) -> bool:
        """Close the store and, if this process created it and it holds no face (its first
        enrolment failed, or found no face), delete it with the files beside it: no empty
        watchlist is left behind to be mistaken for one. Whether it was deleted."""
        empty = self.created and self.conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 0
        self.close()
        if empty:
            for leftover in (self.path, *_sidecars(self.path)):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        return bool(empty)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    @property
    def model_id(self) -> str:
        return self.meta()["model_id"]

    @property
    def family(self) -> Family:
        """The model family that made this watchlist (known from opening on)."""
        if self._family is None:
            from frs_cli.faces import families

            self._family = families.of(self.model_id)
        return self._family

    @property
    def dim(self) -> int:
        """Numbers per encoding: the family's that made this watchlist."""
        return self.family.dim

    @property
    def norms(self) -> tuple[float, float]:
        """The lengths an encoding of this watchlist's family can have."""
        return self.family.norms

    @property
    def generation(self) -> int:
        return int(self.meta()["generation"])


def peek_model_id(path: str | Path) -> str | None:
    """The model id a watchlist file says it was made with, read without opening it for
    use (None: no such file, or not readable as a watchlist; opening it says why)."""
    path = Path(path)
    if files.regular(path) is not None:
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'model_id'").fetchone()
        finally:
            conn.close()
    except (sqlite3.Error, OSError, ValueError):
        return None
    return str(row[0]) if row else None


def _sidecars(path: Path) -> list[Path]:
    """The files SQLite and frs keep beside a store at `path`."""
    names = (
        "-wal", "-shm", "-journal", ".lock", ".audit.jsonl", ".calibration.json", ".hnsw.json",
        ".labels.npz",
    )  # fmt: skip
    return [path.with_name(path.name + n) for n in names]


def watchlist_files(path: Path) -> list[tuple[str, Path]]:
    """(what, path) for every file of the watchlist at `path`: what frs reads and keeps,
    never to be written over by an output (files.check_outputs)."""
    found = [("the watchlist", path)]
    found += [(f"a file of the watchlist {path}", p) for p in _sidecars(path)]
    found += [
        (f"the index of the watchlist {path}", Path(p))
        for p in glob.glob(f"{glob.escape(str(path))}.hnsw*")
    ]
    return found


def _read_only(path: Path) -> str:
    """Why a store could not be opened for writing, when the medium or file is read-only."""
    folder = path.parent if str(path.parent) else Path(".")
    if os.access(path, os.W_OK) and os.access(folder, os.W_OK):
        return ""
    return (
        f"; {path} or its folder is read-only: frs keeps a watchlist in WAL mode and its "
        "audit trail beside it, so copy it to a writable folder"
    )


def _detail(err: BaseException) -> str:
    """The SQLite message inside an error (ours wrap it in parentheses or follow the path)."""
    text = str(err)
    if "(" in text:
        return text[text.find("(") + 1 : text.find(")")]
    return text.split(": ", 1)[-1]


@contextlib.contextmanager
def writer_lock(path: Path, timeout_s: float = 60.0) -> Iterator[None]:
    """One writer at a time per watchlist (readers never wait: SQLite WAL snapshots)."""
    import fcntl
    import time

    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WatchlistError(
                        f"{path} is being changed by another frs process; try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def dumps_box(left: int, top: int, width: int, height: int) -> str:
    return json.dumps([left, top, width, height])
