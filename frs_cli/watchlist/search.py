"""Searching: the nearest identity of a face (grouping several photos of one person),
the margin to the next identity or cohort face, and one decision for the several views of
one face followed through footage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from frs_cli.records import Match

if TYPE_CHECKING:
    pass

from frs_cli.watchlist.index import NEIGHBOURS, Indexed

COHORT_NAME = "(cohort)"  # second_identity when a cohort face was the nearest other: no
# name or photo of a cohort person ever reaches a row


class Searchable(Indexed):
    """The store, its index, and the searches."""

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
