"""The watchlist: SQLite as the source of truth, an hnswlib index as a derived cache.

Files, for a watchlist at `W` (e.g. `watchlist.db`):
- `W`: SQLite (WAL mode). Tables `meta`, `identities`, `faces` (128 float32 as a BLOB).
- `W.hnsw` and `W.hnsw.json`: the index and what it was built from (the store's
  generation, face count, parameters, the index file's sha256). Rebuilt when
  missing, stale or unreadable; written to a temporary name and renamed, so a
  reader never sees half an index. Nothing is pickled.
Every file is created owner-only (0600): these are biometric data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frs_cli import files
from frs_cli.errors import UsageError, WatchlistError
from frs_cli.hashing import fast_sha256, sha256_file
from frs_cli.records import Match

if TYPE_CHECKING:
    from frs_cli.calibration import Calibration, Rule

SCHEMA_VERSION = 1
DIM = 128
EXACT_LIMIT = 20_000  # below this many faces, exact search beats the index
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF = 192  # recall@1 0.992 at 1M faces, p50 0.74 ms (benchmarks/watchlist_scale.py)
NEIGHBOURS = 32  # asked of the index per query, then grouped by identity
CALIBRATION_VERSION = 2  # of W.calibration.json's layout and of the estimates in it
UNLIKE_DISTANCE = 0.6  # a photo whose median distance to its identity's other photos is
# above this is reported: on LFW 98.3% of same-person pairs are closer and 99.4% of
# different-person pairs farther (frs_cli/tables.py)
COHORT_NAME = "(cohort)"  # second_identity when a cohort face was the nearest other: no
# name or photo of a cohort person ever reaches a row
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
    """Create `path` empty and owner-only if it does not exist (SQLite keeps the mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


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


@dataclass(frozen=True)
class Identity:
    name: str
    faces: int


@dataclass(frozen=True)
class EnrolReport:
    """What became of one photo given to `Watchlist.enroll`."""

    photo: str
    identity: str
    status: str  # enrolled | already enrolled | no-face | unreadable
    sha256: str


@dataclass(frozen=True)
class Unlike:
    """A photo enrolled under an identity whose other photos do not look like it."""

    identity: str
    photo: str
    distance: float  # median distance to the identity's other photos
    others: int  # how many other photos the identity has


class Watchlist:
    """An open watchlist. Use `Watchlist.create` to enrol, `Watchlist.open` to scan."""

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

    # -- opening ---------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, model_id: str | None = None) -> Watchlist:
        """Open for writing, creating it if needed. Refuses another encoder's watchlist,
        any file that is not a watchlist, and a damaged one (before writing anything into
        it). `model_id`: the encoder's (default: the installed one)."""
        if model_id is None:
            from frs_cli import models

            model_id = models.encoder_model_id()
        path = Path(path)
        if not os.path.lexists(path):
            return cls._new(path, model_id)
        wl = cls._connect(path, model_id, empty_ok=True)
        if wl._empty:
            wl.close()
            return cls._new(path, model_id)
        wl.check_intact()
        if path.stat().st_size <= CHECK_ON_OPEN_BYTES:
            wl.check_vectors()
        with wl.conn:
            wl.conn.executescript(SCHEMA)  # tables added since (IF NOT EXISTS)
        return wl

    @classmethod
    def _new(cls, path: Path, model_id: str) -> Watchlist:
        """A new store: file, tables and meta in one transaction, or nothing at all."""
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
            wl._pragmas()
        except BaseException:
            if created:  # a store cut short (a full disk, Ctrl-C) is not left behind
                for leftover in (path, *_sidecars(path)):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
            raise
        return wl

    @classmethod
    def open(cls, path: str | Path, model_id: str | None = None, check: bool = True) -> Watchlist:
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
    def _connect(cls, path: Path, model_id: str | None, empty_ok: bool = False) -> Watchlist:
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
        if model_id is not None and meta.get("model_id") != model_id:
            raise WatchlistError(
                f"{self.path} was made with encoder {meta.get('model_id')}, not {model_id};"
                " encodings of different models cannot be compared. Enrol into a new watchlist."
            )

    def check_vectors(self) -> None:
        """Raise unless every face's vector is 128 finite numbers: a scan would silently
        miss a person whose vector is not, and nothing should be added beside it."""
        bad: list[str] = []
        for name, blob in self.conn.execute(
            "SELECT i.name, f.vector FROM faces f JOIN identities i ON i.id = f.identity_id"
        ):
            vec = np.frombuffer(blob, np.float32) if len(blob) == DIM * 4 else None
            if vec is None or not np.isfinite(vec).all():
                bad.append(name)
        if bad:
            names = ", ".join(files.printable(n) for n in sorted(set(bad))[:5])
            raise WatchlistError(
                f"{self.path}: {len(bad)} face(s) ({names}) have no valid encoding (not "
                f"{DIM} finite numbers); a scan would miss them. `frs watchlist verify -w "
                f"{self.path}` lists the problems; remove those identities and enrol them again"
            )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Watchlist:
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
    def generation(self) -> int:
        return int(self.meta()["generation"])

    def identities(self) -> list[Identity]:
        rows = self.conn.execute(
            "SELECT i.name, count(f.id) FROM identities i LEFT JOIN faces f"
            " ON f.identity_id = i.id GROUP BY i.id ORDER BY i.name"
        ).fetchall()
        return [Identity(name, n) for name, n in rows]

    def fingerprint(self) -> dict[str, Any]:
        """What the audit trail records of the watchlist a command used."""
        meta = self.meta()
        return {
            "path": str(self.path),
            "generation": int(meta["generation"]),
            "model_id": meta["model_id"],
            "identities": len(self.identities()),
            "faces": self.face_count(),
        }

    def face_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM faces").fetchone()[0])

    def photos(self, name: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT f.photo FROM faces f JOIN identities i ON i.id = f.identity_id"
            " WHERE i.name = ? ORDER BY f.id",
            (name,),
        ).fetchall()
        return [r[0] for r in rows]

    # -- writing ---------------------------------------------------------
    # Every change is one SQLite transaction under the writers' lock: a kill at any
    # moment leaves the previous state or the new one, never a mix.
    @contextlib.contextmanager
    def _writing(self) -> Iterator[int]:
        """Lock out other writers, check the file is intact, open a transaction, yield the
        new generation. A damaged store is never written into."""
        with writer_lock(self.path):
            self.check_intact()
            with self.conn:
                generation = self.generation + 1
                yield generation
                self.conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),)
                )
        self._vectors = None
        self._face_ids = None
        self._index = None
        self._cohort = None

    def add_faces(self, rows: Sequence[tuple[str, np.ndarray, str, str, str]]) -> int:
        """Add (identity, vector, photo_sha256, photo, box) rows in one transaction.

        Rows whose photo is already enrolled for that identity are skipped.
        Returns how many faces were added.
        """
        added = 0
        with self._writing() as generation:
            for name, vector, sha, photo, box in rows:
                vec = np.asarray(vector, dtype=np.float32)
                if vec.shape != (DIM,) or not np.all(np.isfinite(vec)):
                    raise WatchlistError(f"face of {name!r}: not a finite {DIM}-d vector")
                self.conn.execute(
                    "INSERT OR IGNORE INTO identities (name, created_at) VALUES (?, ?)",
                    (name, _now()),
                )
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO faces (identity_id, vector, photo_sha256, photo, box,"
                    " enrolled_at) SELECT id, ?, ?, ?, ?, ? FROM identities WHERE name = ?",
                    (vec.tobytes(), sha, photo, box, _now(), name),
                )
                if cur.rowcount:
                    added += 1
                    self.conn.execute(
                        "INSERT INTO changes VALUES (?, 'add', ?)", (generation, cur.lastrowid)
                    )
        return added

    def add_vectors(self, names: Sequence[str], vectors: np.ndarray, source: str = "bulk") -> int:
        """Bulk-load precomputed 128-d encodings (e.g. from face_recognition pickles or
        NumPy arrays): one face per (name, vector). A vector already present for that
        name (same bytes) is skipped. Returns how many were added."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != DIM or len(vectors) != len(names):
            raise WatchlistError(f"expected {len(names)} vectors of {DIM} numbers")
        if not np.all(np.isfinite(vectors)):
            raise WatchlistError("some vectors are not finite")
        now = _now()
        with self._writing() as generation:
            self.conn.executemany(
                "INSERT OR IGNORE INTO identities (name, created_at) VALUES (?, ?)",
                [(n, now) for n in sorted(set(names))],
            )
            ids = dict(self.conn.execute("SELECT name, id FROM identities").fetchall())
            before = self.conn.execute("SELECT coalesce(max(id), 0) FROM faces").fetchone()[0]
            self.conn.executemany(
                "INSERT OR IGNORE INTO faces (identity_id, vector, photo_sha256, photo, box,"
                " enrolled_at) VALUES (?, ?, ?, ?, '[]', ?)",
                (
                    (ids[n], v.tobytes(), hashlib.sha256(v.tobytes()).hexdigest(), source, now)
                    for n, v in zip(names, vectors, strict=True)
                ),
            )
            self.conn.execute(
                "INSERT INTO changes SELECT ?, 'add', id FROM faces WHERE id > ?",
                (generation, before),
            )
            added = self.conn.execute("SELECT count(*) FROM faces WHERE id > ?", (before,))
            return int(added.fetchone()[0])

    def remove(self, name: str) -> int:
        """Remove an identity and all its faces. Returns how many faces went."""
        with self._writing() as generation:
            row = self.conn.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise WatchlistError(f"no identity {name!r} in {self.path}")
            self.conn.execute(
                "INSERT INTO changes SELECT ?, 'remove', id FROM faces WHERE identity_id = ?",
                (generation, row[0]),
            )
            n = self.conn.execute("DELETE FROM faces WHERE identity_id = ?", (row[0],)).rowcount
            self.conn.execute("DELETE FROM identities WHERE id = ?", (row[0],))
        return n

    def rename(self, old: str, new: str) -> bool:
        """Rename an identity; if `new` exists, merge `old`'s faces into it (a photo
        enrolled under both is kept once). Returns True when it merged."""
        if not new.strip():
            raise WatchlistError("the new name is empty")
        if new == old:
            raise UsageError(f"{old!r} is already called that: nothing to rename")
        with self._writing() as generation:
            src = self.conn.execute("SELECT id FROM identities WHERE name = ?", (old,)).fetchone()
            if src is None:
                raise WatchlistError(f"no identity {old!r} in {self.path}")
            dst = self.conn.execute("SELECT id FROM identities WHERE name = ?", (new,)).fetchone()
            if dst is None:
                self.conn.execute("UPDATE identities SET name = ? WHERE id = ?", (new, src[0]))
                return False
            self.conn.execute(
                "UPDATE OR IGNORE faces SET identity_id = ? WHERE identity_id = ?", (dst[0], src[0])
            )
            self.conn.execute(
                "INSERT INTO changes SELECT ?, 'remove', id FROM faces WHERE identity_id = ?",
                (generation, src[0]),
            )
            self.conn.execute("DELETE FROM faces WHERE identity_id = ?", (src[0],))
            self.conn.execute("DELETE FROM identities WHERE id = ?", (src[0],))
            return True

    def unlike_photos(self, names: set[str] | None = None) -> list[Unlike]:
        """Photos that look unlike the rest of their identity (of `names`, or all): e.g. a
        folder of several people's photos enrolled as one identity by its file names."""
        from frs_cli.encode import distances

        rows = self.conn.execute(
            "SELECT i.name, f.photo, f.vector FROM faces f JOIN identities i"
            " ON i.id = f.identity_id ORDER BY i.name, f.id"
        ).fetchall()
        by: dict[str, list[tuple[str, np.ndarray]]] = {}
        for name, photo, blob in rows:
            if (names is None or name in names) and len(blob) == DIM * 4:
                by.setdefault(name, []).append((photo, np.frombuffer(blob, np.float32)))
        out = []
        for name, faces in by.items():
            if len(faces) < 2:
                continue
            vectors = np.stack([v for _, v in faces])
            d = distances(vectors, vectors)
            for k, (photo, _) in enumerate(faces):
                median = float(np.median(np.delete(d[k], k)))
                if median > UNLIKE_DISTANCE:
                    out.append(Unlike(name, photo, round(median, 4), len(faces) - 1))
        return out

    def enroll(
        self,
        paths: Sequence[str | Path],
        name: str | None = None,
        workers: int = 1,
        scheduler: str | None = None,
    ) -> list[EnrolReport]:
        """Enrol the largest face of each photo in `paths` (files, or folders laid out as
        for `frs enroll`), as `name` or the identity the layout gives. One report per
        photo, in order; the audit trail records it like `frs enroll`."""
        from frs_cli.enroll import enrol_into

        stats = enrol_into(self, paths, name, workers, scheduler)
        return [
            EnrolReport(p["path"], p["identity"], p["status"], p["sha256"]) for p in stats.photos
        ]

    # -- the cohort ------------------------------------------------------
    def _has_cohort_table(self) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cohort'"
        ).fetchone()
        return row is not None

    @property
    def cohort(self) -> np.ndarray:
        """The cohort's vectors (people not on the watchlist), shape (n, 128)."""
        if self._cohort is None:
            blobs = (
                [r[0] for r in self.conn.execute("SELECT vector FROM cohort ORDER BY id")]
                if self._has_cohort_table()
                else []
            )
            data = b"".join(blobs)
            if len(data) != len(blobs) * DIM * 4:
                raise WatchlistError(f"{self.path}: some cohort vectors are damaged")
            self._cohort = np.frombuffer(data, np.float32).reshape(len(blobs), DIM)
        return self._cohort

    def add_cohort(self, rows: Sequence[tuple[np.ndarray, str, str]]) -> int:
        """Add (vector, photo_sha256, photo) rows to the cohort; a photo already there is
        skipped. Returns how many were added. Changes the generation (recalibrates)."""
        added = 0
        with self._writing():
            self.conn.executescript(SCHEMA)  # a watchlist made before the cohort existed
            for vector, sha, photo in rows:
                vec = np.asarray(vector, dtype=np.float32)
                if vec.shape != (DIM,) or not np.all(np.isfinite(vec)):
                    raise WatchlistError(f"cohort face of {photo}: not a finite {DIM}-d vector")
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO cohort (vector, photo_sha256, photo, added_at)"
                    " VALUES (?, ?, ?, ?)",
                    (vec.tobytes(), sha, photo, _now()),
                )
                added += cur.rowcount
        return added

    def clear_cohort(self) -> int:
        """Remove every cohort face. Returns how many went."""
        if not self._has_cohort_table():
            return 0
        with self._writing():
            return int(self.conn.execute("DELETE FROM cohort").rowcount)

    def cohort_count(self) -> int:
        if not self._has_cohort_table():
            return 0
        return int(self.conn.execute("SELECT count(*) FROM cohort").fetchone()[0])

    # -- searching -------------------------------------------------------
    exact_limit = EXACT_LIMIT  # below this many faces, search is exact and no index is used

    def _load(self, with_vectors: bool = False) -> None:
        """Face ids and their identities (cheap), and the vectors when asked, all from one
        SELECT: one statement reads one consistent snapshot even while another process
        enrols (SQLite WAL)."""
        if self._face_ids is not None and (self._vectors is not None or not with_vectors):
            return
        columns = "f.id, f.identity_id, i.name" + (", f.vector" if with_vectors else "")
        rows = self.conn.execute(
            f"SELECT {columns} FROM faces f JOIN identities i ON i.id = f.identity_id ORDER BY f.id"
        ).fetchall()
        n = len(rows)
        ids = np.fromiter((r[0] for r in rows), np.int64, n)
        idents = np.fromiter((r[1] for r in rows), np.int64, n)
        names = {r[1]: r[2] for r in rows}
        order, labels = np.unique(idents, return_inverse=True)
        self._names = [names[int(i)] for i in order]
        self._labels, self._face_ids = labels.astype(np.int64), ids
        if with_vectors:
            blob = b"".join(r[3] for r in rows)
            if len(blob) != n * DIM * 4:
                raise WatchlistError(
                    f"{self.path}: some stored vectors are not {DIM} float32 values;"
                    " `frs watchlist verify` says which"
                )
            vectors = np.frombuffer(blob, np.float32).reshape(n, DIM)
            if not np.isfinite(vectors).all():
                self.check_vectors()  # names them
            self._vectors = vectors

    @property
    def vectors(self) -> np.ndarray:
        """Every face's vector, in face-id order (read from the store on first use)."""
        self._load(with_vectors=True)
        assert self._vectors is not None
        return self._vectors

    @property
    def size(self) -> int:
        self._load()
        assert self._face_ids is not None
        return len(self._face_ids)

    def search(self, queries: np.ndarray) -> list[Match | None]:
        """Per query vector: the nearest identity, its distance, and the margin to the
        nearest *other* identity or cohort face. None when the watchlist is empty."""
        matches = self._search_watchlist(queries)
        cohort = self.cohort
        if not len(cohort):
            return matches
        from frs_cli.encode import distances

        nearest = distances(np.atleast_2d(queries), cohort).min(axis=1)
        out: list[Match | None] = []
        for m, c in zip(matches, nearest, strict=True):
            if m is not None and float(c) < m.distance + m.margin:
                # A face of someone not on the list is the nearest other: the margin is
                # to it (negative when it is nearer than the best identity).
                m = Match(m.identity, m.distance, float(c) - m.distance, COHORT_NAME)
            out.append(m)
        return out

    def match_views(self, views: np.ndarray) -> Match | None:
        """One decision for several views of one face (a track's encodings): the identity
        whose faces are nearest on average over the views, that mean distance, and the
        margin to the mean over the views of the nearest *other* identity or cohort face
        in each view (a lower bound of any other identity's mean: the margin is never
        overstated). One view gives what `search` gives. Averaging the views' distances
        keeps a face of someone not on the list from alerting more often than one view
        does (on lfw-dev: FPIR 0.085 -> 0.053 -> 0.046 for 1, 2, 3 photos of each
        unlisted person at t 0.52, m 0.04, where the nearest of the views gave 0.085 ->
        0.112 -> 0.092), while a listed face is missed less often (0.229 -> 0.146 -> 0.126);
        docs/accuracy.md."""
        views = np.atleast_2d(np.asarray(views, dtype=np.float32))
        matches = self.search(views)
        if any(m is None for m in matches):
            return None
        found = [m for m in matches if m is not None]
        if len(found) == 1:
            return found[0]
        candidates = sorted({m.identity for m in found})
        means = {name: float(self.identity_distances(views, name).mean()) for name in candidates}
        first = min(candidates, key=lambda name: (means[name], name))
        others = [m.distance if m.identity != first else m.distance + m.margin for m in found]
        second = float(np.mean(others))
        runner = min((n for n in candidates if n != first), key=lambda n: means[n], default=None)
        if runner is None:
            named = [m.second for m in found if m.identity == first and m.second]
            runner = max(set(named), key=named.count) if named else None
        return Match(first, means[first], second - means[first], runner)

    def identity_distances(self, views: np.ndarray, name: str) -> np.ndarray:
        """Per view: the distance to the nearest enrolled face of identity `name`."""
        from frs_cli.encode import distances

        self._load()
        assert self._labels is not None and self._face_ids is not None
        mine = self._labels == self._names.index(name)
        if self.size < self.exact_limit:
            faces = self.vectors[mine]
        else:
            faces = np.asarray(self.index().get_items(self._face_ids[mine]), np.float32)
        return distances(views, faces).min(axis=1)

    def _search_watchlist(self, queries: np.ndarray) -> list[Match | None]:
        self._load()
        assert self._labels is not None
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if self.size == 0:
            return [None] * len(queries)
        if self.size < self.exact_limit:
            vectors = self.vectors
            out: list[Match | None] = []
            for q in queries:
                dist = np.linalg.norm(vectors - q, axis=1)
                out.append(self._best_two(dist, self._labels))
            return out
        index = self.index()
        k = min(NEIGHBOURS, self.size)
        found, squared = index.knn_query(queries, k=k)
        assert self._face_ids is not None
        positions: np.ndarray = np.searchsorted(self._face_ids, found.astype(np.int64))
        return [
            self._best_two(np.sqrt(np.maximum(squared[i], 0)), self._labels[positions[i]])
            for i in range(len(queries))
        ]

    def _best_two(self, dist: np.ndarray, labels: np.ndarray) -> Match:
        # Best distance per identity, so several photos of one person cannot hide the
        # second-best identity. From the index's k neighbours, when all k are the best
        # identity, the k-th distance stands in for the second: a lower bound.
        order = np.argsort(dist, kind="stable")
        first = labels[order[0]]
        best = float(dist[order[0]])
        runner = next((i for i in order if labels[i] != first), None)
        second = float(dist[runner]) if runner is not None else float(dist[order[-1]])
        if len(order) == 1:
            second = float("inf")
        name = self._names[labels[runner]] if runner is not None else None
        return Match(self._names[first], best, second - best, name)

    # -- the alert rule's calibration ------------------------------------------
    @property
    def calibration_path(self) -> Path:
        return self.path.with_name(self.path.name + ".calibration.json")

    def calibration(self) -> Calibration:
        """What this watchlist says about its error rates (calibration.py): computed once
        per generation and kept beside the store (owner-only; numbers only)."""
        from frs_cli import calibration as cal

        generation, faces = self.generation, self.face_count()
        try:
            data = json.loads(self.calibration_path.read_text())
            if (
                data.get("version") == CALIBRATION_VERSION
                and data.get("generation") == generation
                and data.get("faces") == faces
            ):
                return cal.Calibration.from_dict(data["calibration"])
        except (OSError, ValueError, KeyError, TypeError, AssertionError):
            pass  # missing, stale or unreadable: computed again
        self._load()
        assert self._labels is not None
        cohort = len(self.cohort)
        labels = np.concatenate([self._labels, -1 - np.arange(cohort)])
        result = cal.calibrate(labels, self._knn())
        payload = {
            "version": CALIBRATION_VERSION,
            "generation": generation,
            "faces": faces,
            "computed_at": _now(),
            "calibration": result.to_dict(),
        }
        with contextlib.suppress(OSError):  # a read-only folder: computed per use instead
            files.write_atomic(self.calibration_path, json.dumps(payload) + "\n")
        return result

    def rule(self, target_fpir: float) -> Rule:
        """The alert rule that holds `target_fpir` on this watchlist with the fewest misses."""
        from frs_cli import calibration as cal

        return cal.choose(self.calibration(), target_fpir)

    def _knn(self) -> Any:
        """Each face's nearest faces among the watchlist's and then the cohort's (numbered
        after them): exact below EXACT_LIMIT faces, else from the index, and the cohort's
        exactly."""
        from frs_cli import calibration as cal
        from frs_cli.encode import distances

        if self.size < self.exact_limit:
            return cal.exact_knn(np.concatenate([self.vectors, self.cohort]))
        index = self.index()
        assert self._face_ids is not None
        ids, n, cohort = self._face_ids, self.size, self.cohort.astype(np.float64)
        k = min(cal.KNN, n)

        def knn(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mine = probes < n
            q = np.empty((len(probes), DIM), np.float64)
            if mine.any():
                q[mine] = np.asarray(index.get_items(ids[probes[mine]]), np.float64)
            q[~mine] = cohort[probes[~mine] - n]
            found, squared = index.knn_query(q.astype(np.float32), k=k)
            idx = np.searchsorted(ids, found.astype(np.int64))
            dist = np.sqrt(np.maximum(squared, 0.0))
            if len(cohort):
                near = distances(q, cohort)
                idx = np.concatenate([idx, n + np.arange(len(cohort))[None].repeat(len(q), 0)], 1)
                dist = np.concatenate([dist, near], 1)
                order = np.argsort(dist, axis=1, kind="stable")[:, : cal.KNN]
                rows = np.arange(len(q))[:, None]
                idx, dist = idx[rows, order], dist[rows, order]
            return idx, dist

        return knn

    # -- the derived index -------------------------------------------------
    ef = HNSW_EF  # search breadth; recall against exact search is measured in benchmarks/

    @property
    def index_path(self) -> Path:
        """The index file the meta names (`W.hnsw-<sha256 prefix>`): each version of the
        index has its own name and the meta is swapped atomically to point at it, so a
        kill at any moment leaves the old pair or the new pair."""
        meta = self._index_meta()
        name = meta.get("file") if meta else None
        if not isinstance(name, str) or "/" in name:
            return self.path.with_name(self.path.name + ".hnsw")
        return self.path.with_name(name)

    @property
    def index_meta_path(self) -> Path:
        return self.path.with_name(self.path.name + ".hnsw.json")

    def index(self) -> Any:
        """The HNSW index over the store's faces: loaded if it matches the store, brought
        up to date from the change log if it is older, else rebuilt; saved atomically."""
        if self._index is not None:
            return self._index
        self._load()
        state = self.index_state()
        index = self._load_index() if state in ("fresh", "stale") else None
        if index is not None and state == "stale":
            with writer_lock(self.path):
                index = self._catch_up(index)
        if index is None:
            with writer_lock(self.path):
                index = self._build_index()
        index.set_ef(max(self.ef, NEIGHBOURS))
        self._index = index
        return index

    def rebuild(self) -> None:
        """Recreate the index from the store (compacting removed faces)."""
        self._load()
        with writer_lock(self.path):
            self._index = self._build_index()

    def _index_meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads(self.index_meta_path.read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def index_state(self, full: bool = False) -> str:
        """'fresh', 'stale' (older than the store), 'missing' or 'unreadable'.

        Opening checks the index file's size and a fingerprint of its first and last MiB
        (a full sha256 of a 1M-face index takes seconds); `full` (verify) checks the
        sha256 of every byte."""
        if not self.index_meta_path.exists():
            return "missing"
        meta = self._index_meta()
        if meta is None:
            return "unreadable"
        try:
            if full:
                same = sha256_file(self.index_path) == meta.get("sha256")
            else:
                same = fast_sha256(self.index_path) == meta.get("fast")
        except OSError:
            return "missing"
        if not same:
            return "unreadable"
        if meta.get("generation") == self.generation and meta.get("count") == self.face_count():
            return "fresh"
        return "stale"

    def _load_index(self) -> Any:
        import hnswlib

        meta = self._index_meta()
        if meta is None:
            return None
        index = hnswlib.Index(space="l2", dim=DIM)
        try:
            index.load_index(str(self.index_path), max_elements=max(1, int(meta["labels"])))
        except (RuntimeError, ValueError, OSError, KeyError, TypeError):
            return None
        if index.get_current_count() != meta["labels"]:
            return None
        return index

    def _catch_up(self, index: Any) -> Any:
        """Apply the store's changes since the index's generation: add new faces, mark
        removed ones deleted. Falls back to a rebuild when the log cannot bridge the gap."""
        meta = self._index_meta()
        assert meta is not None and self._face_ids is not None
        since = int(meta["generation"])
        changes = self.conn.execute(
            "SELECT op, face_id FROM changes WHERE generation > ? ORDER BY generation, rowid",
            (since,),
        ).fetchall()
        added = [fid for op, fid in changes if op == "add"]
        removed = {fid for op, fid in changes if op == "remove"}
        added = [fid for fid in added if fid not in removed]
        positions = np.searchsorted(self._face_ids, np.array(added, dtype=np.int64))
        if added and not np.array_equal(self._face_ids[positions], np.array(added)):
            return self._build_index()
        labels = int(meta["labels"]) + len(added)
        index.resize_index(max(1, labels))
        if added:
            index.add_items(self.vectors[positions], np.array(added, dtype=np.int64))
        deleted = int(meta.get("deleted", 0))
        for fid in removed:
            with contextlib.suppress(RuntimeError):  # a face added and removed since
                index.mark_deleted(fid)
                deleted += 1
        if labels - deleted != self.size:
            return self._build_index()
        self._save_index(index, labels, deleted)
        return index

    def _build_index(self) -> Any:
        import hnswlib

        vectors = self.vectors
        index = hnswlib.Index(space="l2", dim=DIM)
        index.init_index(
            max_elements=max(1, len(vectors)), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M
        )
        if len(vectors):
            index.add_items(vectors, self._face_ids)
        self._save_index(index, len(vectors), 0)
        return index

    def _save_index(self, index: Any, labels: int, deleted: int) -> None:
        old = self.index_path
        tmp = files.reserve(self.path.with_name(f"{self.path.name}.hnsw"))
        index.save_index(str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        final = self.path.with_name(f"{self.path.name}.hnsw-{digest[:16]}")
        os.replace(tmp, final)
        meta = {
            "file": final.name,
            "generation": self.generation,
            "count": labels - deleted,
            "labels": labels,
            "deleted": deleted,
            "sha256": digest,
            "fast": fast_sha256(final),
            "space": "l2",
            "M": HNSW_M,
            "ef_construction": HNSW_EF_CONSTRUCTION,
            "built_at": _now(),
        }
        files.write_atomic(self.index_meta_path, json.dumps(meta, indent=2) + "\n")
        for stale in self.path.parent.glob(f"{glob.escape(self.path.name)}.hnsw*"):
            if stale not in (final, self.index_meta_path) and (
                stale == old
                or stale.name.endswith(".tmp")
                or "-" in stale.name[len(self.path.name) :]
            ):
                with contextlib.suppress(OSError):
                    stale.unlink()

    # -- checking ----------------------------------------------------------
    def verify(self) -> list[str]:
        """Problems found, as sentences (empty: all is well)."""
        problems = []
        try:
            check = self.conn.execute("PRAGMA integrity_check").fetchall()
        except WatchlistError:
            check = [("database disk image is malformed",)]
        if check != [("ok",)]:
            # Nothing else can be read reliably from a damaged file.
            return [
                f"SQLite integrity check failed: {'; '.join(str(c[0]) for c in check[:3])}"
                " (the file is damaged: restore it from a copy, or enrol the photos again"
                " into a new watchlist)"
            ]
        bad = 0
        for (blob,) in self.conn.execute("SELECT vector FROM faces"):
            vec = np.frombuffer(blob, np.float32) if len(blob) == DIM * 4 else None
            if vec is None or not np.all(np.isfinite(vec)):
                bad += 1
        if bad:
            problems.append(f"{bad} face(s) have a missing, short or non-finite vector")
        empty = self.conn.execute(
            "SELECT count(*) FROM identities i WHERE NOT EXISTS"
            " (SELECT 1 FROM faces f WHERE f.identity_id = i.id)"
        ).fetchone()[0]
        if empty:
            problems.append(f"{empty} identit(y/ies) without any face")
        state = self.index_state(full=True)
        if state == "unreadable":
            problems.append(
                f"{self.index_path} does not match its checksum (damaged or tampered with);"
                " `frs watchlist rebuild` recreates it"
            )
        elif state in ("fresh", "stale"):
            index = self._load_index()
            if index is None:
                problems.append(f"{self.index_path} cannot be loaded; `frs watchlist rebuild`")
            elif state == "fresh":
                self._load()
                assert self._face_ids is not None
                ids = set(index.get_ids_list())
                missing = set(self._face_ids.tolist()) - ids
                if missing:
                    problems.append(f"the index lacks {len(missing)} face(s) of the store")
                sample = self._face_ids[:: max(1, len(self._face_ids) // 500)]
                if len(sample) and not missing:
                    got = np.asarray(index.get_items(sample), np.float32)
                    want = self.vectors[np.searchsorted(self._face_ids, sample)]
                    if not np.allclose(got, want, atol=1e-6):
                        problems.append("the index's vectors differ from the store's")
        return problems


def _sidecars(path: Path) -> list[Path]:
    """The files SQLite and frs keep beside a store at `path`."""
    names = ("-wal", "-shm", "-journal", ".lock", ".audit.jsonl", ".calibration.json", ".hnsw.json")
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
