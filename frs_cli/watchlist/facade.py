"""The watchlist as the rest of frs uses it: `Watchlist`, built up in layers, each in
its own file: the store (`store.py`: SQLite, opening, integrity), identities, faces and
the cohort (`faces.py`), the hnswlib index (`index.py`), searching (`search.py`) and the
calibration cache (`calibrating.py`); here, `verify`, which checks all of them."""

from __future__ import annotations

import numpy as np

from frs_cli.errors import WatchlistError
from frs_cli.files import printable
from frs_cli.watchlist.calibrating import Calibrated
from frs_cli.watchlist.store import usable


class Watchlist(Calibrated):
    """An open watchlist. Use `Watchlist.create` to enrol, `Watchlist.open` to scan."""

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
        bad = self.bad_vector_names()
        if bad:
            names = ", ".join(printable(n) for n in sorted(set(bad))[:5])
            more = f" and {len(set(bad)) - 5} more" if len(set(bad)) > 5 else ""
            problems.append(
                f"{len(bad)} face(s) of {names}{more} have a vector that is not "
                f"{self.family.describe()} (missing, short, non-finite, or of another length)"
            )
        if self._has_cohort_table():
            cohort_bad = sum(
                1
                for (blob,) in self.conn.execute("SELECT vector FROM cohort")
                if len(blob) != self.dim * 4
                or not usable(np.frombuffer(blob, np.float32), self.norms)[0]
            )
            if cohort_bad:
                problems.append(
                    f"{cohort_bad} cohort face(s) have a vector that is not "
                    f"{self.family.describe()}; `frs watchlist cohort clear` removes them"
                )
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
