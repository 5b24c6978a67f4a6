"""The alert rule's calibration for this watchlist (`frs_cli.accuracy.calibration` computes
it), kept beside the store per generation (`W.calibration.json`, numbers only)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli import files
from frs_cli.accuracy.calibration import Calibration, Rule
from frs_cli.watchlist.search import Searchable
from frs_cli.watchlist.store import _now

CALIBRATION_VERSION = (
    4  # of W.calibration.json's layout and of the estimates in it (4: per size band)
)


class Calibrated(Searchable):
    """The store, its index, its searches, and its calibration."""

    # -- the alert rule's calibration ------------------------------------------
    @property
    def calibration_path(self) -> Path:
        return self.path.with_name(self.path.name + ".calibration.json")

    def calibration(self) -> Calibration:
        """What this watchlist says about its error rates (calibration.py): computed once
        per generation and kept beside the store (owner-only; numbers only)."""
        from frs_cli.accuracy import calibration as cal
        from frs_cli.faces import bands, families

        generation, faces = self.generation, self.face_count()
        family = families.of(self.model_id)
        tables = bands.fingerprint(family.name)
        try:
            data = json.loads(self.calibration_path.read_text())
            if (
                data.get("version") == CALIBRATION_VERSION
                and data.get("generation") == generation
                and data.get("faces") == faces
                and data.get("tables") == tables
                and data["calibration"].get("family", "dlib") == family.name
            ):
                return cal.Calibration.from_dict(data["calibration"])
        except (OSError, ValueError, KeyError, TypeError, AssertionError):
            pass  # missing, stale or unreadable: computed again
        self._load()
        assert self._labels is not None
        cohort = len(self.cohort)
        labels = np.concatenate([self._labels, -1 - np.arange(cohort)])
        result = cal.calibrate(labels, self._knn(), family=family)
        payload = {
            "version": CALIBRATION_VERSION,
            "generation": generation,
            "faces": faces,
            "tables": tables,  # the size bands' tables it was computed with
            "computed_at": _now(),
            "calibration": result.to_dict(),
        }
        with contextlib.suppress(OSError):  # a read-only folder: computed per use instead
            files.write_atomic(self.calibration_path, json.dumps(payload) + "\n")
        return result

    def rule(self, target_fpir: float) -> Rule:
        """The alert rule that holds `target_fpir` on this watchlist with the fewest misses."""
        from frs_cli.accuracy import calibration as cal

        return cal.choose(self.calibration(), target_fpir)

    def _knn(self) -> Any:
        """Each face's nearest faces among the watchlist's and then the cohort's (numbered
        after them): exact below EXACT_LIMIT faces, else from the index, and the cohort's
        exactly."""
        from frs_cli.accuracy import calibration as cal
        from frs_cli.faces.distances import distances

        if self.size < self.exact_limit:
            return cal.exact_knn(np.concatenate([self.vectors, self.cohort]))
        index = self.index()
        assert self._face_ids is not None
        ids, n, cohort = self._face_ids, self.size, self.cohort.astype(np.float64)
        k = min(cal.KNN, n)

        def knn(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mine = probes < n
            q = np.empty((len(probes), self.dim), np.float64)
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
