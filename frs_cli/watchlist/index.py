"""The derived index: hnswlib over every face's vector, for watchlists of
`Store.exact_limit` faces and more. A cache: rebuilt when missing, stale or unreadable,
caught up from the store's `changes` table where it can be, written to a temporary name
and renamed, so a reader never sees half an index. Nothing is pickled."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli import files
from frs_cli.hashing import fast_sha256, sha256_file
from frs_cli.watchlist.faces import Faces
from frs_cli.watchlist.store import _now, writer_lock

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF = 192  # recall@1 0.992 at 1M faces, p50 0.74 ms (benchmarks/watchlist_scale.py)

NEIGHBOURS = 32  # asked of the index per query, then grouped by identity


class Indexed(Faces):
    """The store with its index."""

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

    def preload(self) -> None:
        """Start reading a large store's index file in a thread, so that it loads while
        the workers analyse the first file (at 1M faces: 2.8 s from disk, 0.6 s cached)
        instead of after it; `index()` waits for it. Small stores are searched exactly."""
        if self._index is not None or self._preloading is not None:
            return
        self._load()
        if self.size < self.exact_limit:
            return
        state = self.index_state()
        if state not in ("fresh", "stale"):
            return
        found: dict[str, Any] = {}
        # Only files are read in the thread (the SQLite connection stays in this one).
        thread = threading.Thread(
            target=lambda: found.setdefault("index", self._load_index()),
            name="frs-index-load",
            daemon=True,
        )
        thread.start()
        self._preloading = (thread, found, state)

    def index(self) -> Any:
        """The HNSW index over the store's faces: loaded if it matches the store, brought
        up to date from the change log if it is older, else rebuilt; saved atomically."""
        if self._index is not None:
            return self._index
        self._load()
        if self._preloading is not None:
            thread, found, state = self._preloading
            self._preloading = None
            thread.join()
            index = found.get("index")
        else:
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
        index = hnswlib.Index(space="l2", dim=self.dim)
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
        index = hnswlib.Index(space="l2", dim=self.dim)
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
