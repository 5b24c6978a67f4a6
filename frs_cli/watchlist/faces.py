"""Identities, their faces and the cohort: reading and changing them. Every change is
one SQLite transaction under the writers' lock, after an integrity check."""

from __future__ import annotations

import contextlib
import hashlib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli import files
from frs_cli.errors import UsageError, WatchlistError
from frs_cli.watchlist.store import (
    SCHEMA,
    Store,
    _now,
    unusable_rows,
    usable,
    writer_lock,
)

UNLIKE_DISTANCE = 0.6  # dlib's (each family's: families.py); a photo whose median distance to its identity's other photos is
# above this is reported: on LFW 98.3% of same-person pairs are closer and 99.4% of
# different-person pairs farther (frs_cli/faces/dlib_tables.py)


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


class Faces(Store):
    """What the store holds: identities, faces, the cohort; each face's vector on demand."""

    def identities(self) -> list[Identity]:
        rows = self.conn.execute(
            "SELECT i.name, count(f.id) FROM identities i LEFT JOIN faces f"
            " ON f.identity_id = i.id GROUP BY i.id ORDER BY i.name"
        ).fetchall()
        return [Identity(name, n) for name, n in rows]

    def identity_count(self) -> int:
        """How many identities (without reading every face, as `identities` does)."""
        return int(self.conn.execute("SELECT count(*) FROM identities").fetchone()[0])

    def fingerprint(self) -> dict[str, Any]:
        """What the audit trail records of the watchlist a command used."""
        meta = self.meta()
        return {
            "path": str(self.path),
            "generation": int(meta["generation"]),
            "model_id": meta["model_id"],
            "identities": self.identity_count(),
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

    def photos_named(self, filename: str) -> list[str]:
        """Enrolment and cohort photos whose file is called `filename` (in any folder)."""
        like = "%/" + filename.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        found = [r[0] for r in self.conn.execute(
            "SELECT photo FROM faces WHERE photo = ? OR photo LIKE ? ESCAPE '\\'", (filename, like)
        )]  # fmt: skip
        if self._has_cohort_table():
            found += [r[0] for r in self.conn.execute(
                "SELECT photo FROM cohort WHERE photo = ? OR photo LIKE ? ESCAPE '\\'",
                (filename, like),
            )]  # fmt: skip
        return [p for p in found if p]

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
        self._preloading = None  # a thread still reading the old index: its result is dropped
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
                if vec.shape != (self.dim,) or not usable(vec, self.norms)[0]:
                    raise WatchlistError(
                        f"face of {files.printable(name)!r}: not {self.family.describe()}; "
                        "nothing was added"
                    )
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
        """Bulk-load precomputed encodings of the watchlist's family (128-d for dlib, e.g.
        from face_recognition pickles; 512-d of length 1 for ArcFace): one face per (name,
        vector). A vector already present for that name (same bytes) is skipped. Returns
        how many were added; a vector that is not the family's adds nothing at all."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(vectors) != len(names):
            raise WatchlistError(f"expected {len(names)} vectors of {self.dim} numbers")
        bad = unusable_rows(vectors, self.norms, names)
        if bad:
            raise WatchlistError(f"{bad}: not {self.family.describe()}; nothing was added")
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
        from frs_cli.faces import families
        from frs_cli.faces.distances import distances

        limit = families.of(self.model_id).unlike_distance
        rows = self.conn.execute(
            "SELECT i.name, f.photo, f.vector FROM faces f JOIN identities i"
            " ON i.id = f.identity_id ORDER BY i.name, f.id"
        ).fetchall()
        by: dict[str, list[tuple[str, np.ndarray]]] = {}
        for name, photo, blob in rows:
            if (names is None or name in names) and len(blob) == self.dim * 4:
                by.setdefault(name, []).append((photo, np.frombuffer(blob, np.float32)))
        out = []
        for name, faces in by.items():
            if len(faces) < 2:
                continue
            vectors = np.stack([v for _, v in faces])
            d = distances(vectors, vectors)
            for k, (photo, _) in enumerate(faces):
                median = float(np.median(np.delete(d[k], k)))
                if median > limit:
                    out.append(Unlike(name, photo, round(median, 4), len(faces) - 1))
        return out

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
            if len(data) != len(blobs) * self.dim * 4:
                raise WatchlistError(f"{self.path}: some cohort vectors are damaged")
            cohort = np.frombuffer(data, np.float32).reshape(len(blobs), self.dim)
            if not usable(cohort, self.norms).all():
                raise WatchlistError(
                    f"{self.path}: some cohort vectors are damaged; `frs watchlist cohort clear`"
                )
            self._cohort = cohort
        return self._cohort

    def add_cohort(self, rows: Sequence[tuple[np.ndarray, str, str]]) -> int:
        """Add (vector, photo_sha256, photo) rows to the cohort; a photo already there is
        skipped. Returns how many were added. Changes the generation (recalibrates)."""
        added = 0
        with self._writing():
            self.conn.executescript(SCHEMA)  # a watchlist made before the cohort existed
            for vector, sha, photo in rows:
                vec = np.asarray(vector, dtype=np.float32)
                if vec.shape != (self.dim,) or not usable(vec, self.norms)[0]:
                    raise WatchlistError(
                        f"cohort face of {files.printable(photo)}: not "
                        f"{self.family.describe()}; nothing was added"
                    )
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

    # -- the vectors, read once ------------------------------------------
    def _load(self, with_vectors: bool = False) -> None:
        """Face ids and their identities (cheap), and the vectors when asked, all from one
        SELECT: one statement reads one consistent snapshot even while another process
        enrols (SQLite WAL)."""
        if self._face_ids is not None and (self._vectors is not None or not with_vectors):
            return
        if not with_vectors and self._load_labels():
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
        if n >= self.exact_limit:
            self._save_labels()
        if with_vectors:
            blob = b"".join(r[3] for r in rows)
            if len(blob) != n * self.dim * 4:
                raise WatchlistError(
                    f"{self.path}: some stored vectors are not {self.dim} float32 values;"
                    " `frs watchlist verify` says which"
                )
            vectors = np.frombuffer(blob, np.float32).reshape(n, self.dim)
            if not usable(vectors, self.norms).all():
                self.check_vectors()  # names them
            self._vectors = vectors

    # A large store's face ids and identities, in face-id order (the index's), kept beside
    # it so that opening a 1M-face watchlist does not read a million rows (2.5 s) each time:
    # names and numbers only, checked against the store's generation and face count.
    @property
    def labels_path(self) -> Path:
        return self.path.with_name(self.path.name + ".labels.npz")

    def _load_labels(self) -> bool:
        try:
            with np.load(self.labels_path, allow_pickle=False) as data:
                if int(data["generation"]) != self.generation or int(data["faces"]) != len(
                    data["face_ids"]
                ):
                    return False
                face_ids, labels = data["face_ids"].astype(np.int64), data["labels"]
                names = [str(n) for n in data["names"]]
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
            return False  # missing, stale or damaged: read from the store (and saved again)
        if len(face_ids) != self.face_count() or len(labels) != len(face_ids):
            return False
        self._face_ids, self._labels, self._names = face_ids, labels.astype(np.int64), names
        return True

    def _save_labels(self) -> None:
        assert self._face_ids is not None and self._labels is not None
        # A read-only folder: read from the store each time.
        with contextlib.suppress(OSError), files.replacing(self.labels_path, binary=True) as f:
            np.savez(
                f, generation=np.int64(self.generation), faces=np.int64(len(self._face_ids)),
                face_ids=self._face_ids, labels=self._labels.astype(np.int32),
                names=np.array(self._names, dtype=str),
            )  # fmt: skip

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
