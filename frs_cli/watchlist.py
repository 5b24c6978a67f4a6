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
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli.errors import WatchlistError
from frs_cli.records import Match

SCHEMA_VERSION = 1
DIM = 128
EXACT_LIMIT = 20_000  # below this many faces, exact search beats the index
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF = 64
NEIGHBOURS = 32  # asked of the index per query, then grouped by identity

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


@dataclass(frozen=True)
class Identity:
    name: str
    faces: int


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

    # -- opening ---------------------------------------------------------
    @classmethod
    def create(cls, path: Path, model_id: str) -> Watchlist:
        """Open for writing, creating it if needed. Refuses another encoder's watchlist."""
        _touch_private(path)
        wl = cls._connect(path)
        with wl.conn:
            wl.conn.executescript(SCHEMA)
            wl.conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('model_id', ?),"
                " ('created_at', ?), ('generation', '0')",
                (str(SCHEMA_VERSION), model_id, _now()),
            )
        wl._check(model_id)
        return wl

    @classmethod
    def open(cls, path: Path, model_id: str | None = None) -> Watchlist:
        if not path.exists():
            raise WatchlistError(
                f"no watchlist at {path}; create one with `frs enroll -w {path} PHOTOS...`"
            )
        wl = cls._connect(path)
        wl._check(model_id)
        return wl

    @classmethod
    def _connect(cls, path: Path) -> Watchlist:
        try:
            conn = sqlite3.connect(path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as err:
            raise WatchlistError(f"{path} is not a watchlist ({err})") from None
        return cls(path, conn)

    def _check(self, model_id: str | None) -> None:
        try:
            meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:
            raise WatchlistError(f"{self.path} is not a watchlist ({err})") from None
        version = int(meta.get("schema_version", "0"))
        if version != SCHEMA_VERSION:
            raise WatchlistError(
                f"{self.path} has schema version {version}; this frs reads {SCHEMA_VERSION}"
            )
        if model_id is not None and meta.get("model_id") != model_id:
            raise WatchlistError(
                f"{self.path} was made with encoder {meta.get('model_id')}, not {model_id};"
                " encodings of different models cannot be compared. Enrol into a new watchlist."
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

    def has_photo(self, name: str, sha256: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM faces f JOIN identities i ON i.id = f.identity_id"
            " WHERE i.name = ? AND f.photo_sha256 = ?",
            (name, sha256),
        ).fetchone()
        return row is not None

    def photos(self, name: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT f.photo FROM faces f JOIN identities i ON i.id = f.identity_id"
            " WHERE i.name = ? ORDER BY f.id",
            (name,),
        ).fetchall()
        return [r[0] for r in rows]

    # -- writing ---------------------------------------------------------
    def add_faces(self, rows: Sequence[tuple[str, np.ndarray, str, str, str]]) -> int:
        """Add (identity, vector, photo_sha256, photo, box) rows in one transaction.

        Rows whose photo is already enrolled for that identity are skipped.
        Returns how many faces were added.
        """
        added = 0
        with self.conn:
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
                added += cur.rowcount
            if added:
                self._bump()
        self._vectors = None
        self._index = None
        return added

    def _bump(self) -> None:
        self.conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )

    # -- searching -------------------------------------------------------
    exact_limit = EXACT_LIMIT  # below this many faces, search is exact and no index is used

    def _load(self) -> None:
        if self._vectors is not None:
            return
        rows = self.conn.execute(
            "SELECT f.id, f.identity_id, f.vector, i.name FROM faces f"
            " JOIN identities i ON i.id = f.identity_id ORDER BY f.id"
        ).fetchall()
        names: dict[int, int] = {}
        self._names = []
        labels = np.empty(len(rows), dtype=np.int64)
        ids = np.empty(len(rows), dtype=np.int64)
        vectors = np.empty((len(rows), DIM), dtype=np.float32)
        for k, (fid, ident, blob, name) in enumerate(rows):
            if ident not in names:
                names[ident] = len(self._names)
                self._names.append(name)
            labels[k] = names[ident]
            ids[k] = fid
            vectors[k] = np.frombuffer(blob, dtype=np.float32)
        self._vectors, self._labels, self._face_ids = vectors, labels, ids

    @property
    def size(self) -> int:
        self._load()
        assert self._vectors is not None
        return len(self._vectors)

    def search(self, queries: np.ndarray) -> list[Match | None]:
        """Per query vector: the nearest identity, its distance, and the margin to the
        nearest *other* identity. None when the watchlist is empty."""
        self._load()
        assert self._vectors is not None and self._labels is not None
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(self._vectors) == 0:
            return [None] * len(queries)
        if len(self._vectors) < self.exact_limit:
            out: list[Match | None] = []
            for q in queries:
                dist = np.linalg.norm(self._vectors - q, axis=1)
                out.append(self._best_two(dist, self._labels))
            return out
        index = self.index()
        k = min(NEIGHBOURS, len(self._vectors))
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
        second = next((float(dist[i]) for i in order if labels[i] != first), float(dist[order[-1]]))
        if len(order) == 1:
            second = float("inf")
        return Match(self._names[first], best, second - best)

    # -- the derived index -------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.path.with_name(self.path.name + ".hnsw")

    @property
    def index_meta_path(self) -> Path:
        return self.path.with_name(self.path.name + ".hnsw.json")

    def index(self) -> Any:
        """The HNSW index over the store's faces: loaded if it matches the store, else
        rebuilt and saved (atomically) beside it."""
        if self._index is not None:
            return self._index
        self._load()
        index = self._load_index()
        if index is None:
            index = self._build_index()
        index.set_ef(max(HNSW_EF, NEIGHBOURS))
        self._index = index
        return index

    def index_state(self) -> str:
        """'fresh', 'missing', 'stale' or 'unreadable' (what `_load_index` would find)."""
        try:
            meta = json.loads(self.index_meta_path.read_text())
        except FileNotFoundError:
            return "missing"
        except (OSError, ValueError):
            return "unreadable"
        if meta.get("generation") != self.generation or meta.get("count") != self.face_count():
            return "stale"
        try:
            digest = _sha256(self.index_path)
        except OSError:
            return "missing"
        return "fresh" if digest == meta.get("sha256") else "unreadable"

    def _load_index(self) -> Any:
        import hnswlib

        if self.index_state() != "fresh":
            return None
        index = hnswlib.Index(space="l2", dim=DIM)
        try:
            index.load_index(str(self.index_path), max_elements=max(1, self.size))
        except (RuntimeError, ValueError, OSError):
            return None
        if index.get_current_count() != self.size:
            return None
        return index

    def _build_index(self) -> Any:
        import hnswlib

        assert self._vectors is not None
        index = hnswlib.Index(space="l2", dim=DIM)
        index.init_index(
            max_elements=max(1, len(self._vectors)), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M
        )
        if len(self._vectors):
            index.add_items(self._vectors, self._face_ids)
        tmp = self.index_path.with_name(f"{self.index_path.name}.{os.getpid()}.tmp")
        index.save_index(str(tmp))
        os.chmod(tmp, 0o600)
        digest = _sha256(tmp)
        os.replace(tmp, self.index_path)
        meta = {
            "generation": self.generation,
            "count": len(self._vectors),
            "sha256": digest,
            "space": "l2",
            "M": HNSW_M,
            "ef_construction": HNSW_EF_CONSTRUCTION,
            "built_at": _now(),
        }
        _write_private(self.index_meta_path, json.dumps(meta, indent=2) + "\n")
        return index


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, owner-only."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def opened(path: Path, model_id: str | None = None) -> Iterator[Watchlist]:
    wl = Watchlist.open(path, model_id)
    try:
        yield wl
    finally:
        wl.close()


def fingerprint(vector: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(vector, dtype=np.float32).tobytes()).hexdigest()


def dumps_box(left: int, top: int, width: int, height: int) -> str:
    return json.dumps([left, top, width, height])
