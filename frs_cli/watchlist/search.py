"""Searching: the nearest identity of a face (grouping several photos of one person),
the margin to the next identities and cohort faces, and one decision for the several
views of one face followed through footage.

The margin is measured to the *reference*: the mean distance of the next
`calibration.MARGIN_IDENTITIES` (8) identities or cohort faces after the nearest
identity (`calibration.reference`), which is steadier than the next one alone."""

from __future__ import annotations

import numpy as np

from frs_cli.accuracy.calibration import MARGIN_IDENTITIES, reference
from frs_cli.errors import WatchlistError
from frs_cli.records import Match
from frs_cli.watchlist.index import NEIGHBOURS, Indexed
from frs_cli.watchlist.store import unusable_rows

COHORT_NAME = "(cohort)"  # second_identity when a cohort face was the nearest other: no
# name or photo of a cohort person ever reaches a row

Neighbours = list[tuple[str, float]]  # (identity or COHORT_NAME, distance), nearest first


class Searchable(Indexed):
    """The store, its index, and the searches."""

    def search(self, queries: np.ndarray) -> list[Match | None]:
        """Per query vector: the nearest identity, its distance, and the margin (the
        reference of the identities and cohort faces after it, minus the distance).
        None when the watchlist is empty. A query that is not an encoding of the
        watchlist's family (another size, not finite, of no encoding's length) is refused
        (WatchlistError): its distances would mean nothing, or be nan."""
        queries = np.asarray(queries, dtype=np.float32)
        queries = queries.reshape(1, -1) if queries.ndim == 1 else queries
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise WatchlistError(
                f"a query must be {self.dim} numbers (a {self.family.name} encoding, as "
                f"{self.path} holds), not an array of shape {np.shape(queries)}"
            )
        bad = unusable_rows(queries, self.norms, [f"query {i}" for i in range(len(queries))])
        if bad:
            raise WatchlistError(f"{bad}: not {self.family.describe()}")
        return [self._match(near) for near in self.neighbours(queries)]

    @staticmethod
    def _match(near: Neighbours, first: str | None = None) -> Match | None:
        """The match for `first` (default: the nearest listed identity) among `near`."""
        listed = [(n, d) for n, d in near if n != COHORT_NAME]
        if not listed:
            return None
        if first is None:
            first = listed[0][0]
        distance = next(d for n, d in near if n == first)
        others = [(n, d) for n, d in near if n != first]
        second = others[0][0] if others else None
        return Match(first, distance, reference([d for _, d in others]) - distance, second)

    def neighbours(self, queries: np.ndarray) -> list[Neighbours]:
        """Per query: the nearest `MARGIN_IDENTITIES` + 1 identities (each at its nearest
        photo) and cohort faces (each its own), nearest first. From the index's
        `NEIGHBOURS` faces when the watchlist is large: fewer when one person's photos
        fill them."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        self._load()
        assert self._labels is not None
        found: list[Neighbours] = [[] for _ in queries]
        if self.size:
            if self.size < self.exact_limit:
                vectors = self.vectors
                for q, query in enumerate(queries):
                    d = np.linalg.norm(vectors - query, axis=1)  # exact, as rows print it
                    found[q] = self._distinct(np.argsort(d, kind="stable"), d, self._labels)
            else:
                index = self.index()
                k = min(NEIGHBOURS, self.size)
                ids, squared = index.knn_query(queries, k=k)
                assert self._face_ids is not None
                pos = np.searchsorted(self._face_ids, ids.astype(np.int64))
                dist = np.sqrt(np.maximum(squared, 0))
                for q in range(len(queries)):
                    found[q] = self._distinct(np.arange(k), dist[q], self._labels[pos[q]])
        cohort = self.cohort
        if len(cohort):
            from frs_cli.faces.distances import distances

            near = np.sort(distances(queries, cohort), axis=1)[:, : MARGIN_IDENTITIES + 1]
            for q in range(len(queries)):
                merged = found[q] + [(COHORT_NAME, float(c)) for c in near[q]]
                found[q] = sorted(merged, key=lambda e: e[1])[: MARGIN_IDENTITIES + 1]
        return found

    def _distinct(self, order: np.ndarray, dist: np.ndarray, labels: np.ndarray) -> Neighbours:
        out: Neighbours = []
        seen: set[int] = set()
        for i in order:
            label = int(labels[i])
            if label in seen:
                continue
            seen.add(label)
            out.append((self._names[label], float(dist[i])))
            if len(out) > MARGIN_IDENTITIES:
                break
        return out

    def match_views(self, views: np.ndarray) -> Match | None:
        """One decision for several views of one face (a track's encodings): the identity
        whose faces are nearest on average over the views, that mean distance, and the
        margin to the mean over the views of each view's reference of the identities
        and cohort faces other than it. One view gives what `search` gives. Averaging
        the views' distances keeps a face of someone not on the list from alerting more
        often than one view does (on lfw-dev: FPIR 0.085 -> 0.053 -> 0.046 for 1, 2, 3
        photos of each unlisted person at t 0.52, m 0.04, where the nearest of the views
        gave 0.085 -> 0.112 -> 0.092), while a listed face is missed less often (0.229 ->
        0.146 -> 0.126); docs/accuracy.md."""
        views = np.atleast_2d(np.asarray(views, dtype=np.float32))
        near = self.neighbours(views)
        firsts = {m.identity for m in (self._match(n) for n in near) if m is not None}
        if not firsts:
            return None
        if len(views) == 1:
            return self._match(near[0])
        means = {name: float(self.identity_distances(views, name).mean()) for name in firsts}
        first = min(firsts, key=lambda name: (means[name], name))
        refs = [reference([d for n, d in view if n != first]) for view in near]
        runner = min((n for n in firsts if n != first), key=lambda n: (means[n], n), default=None)
        if runner is None:
            # The identity most often second; of those, the nearest on average (a set's
            # order, which the first version let decide, changes from one process to the
            # next with Python's string hashing: the same scan named another second).
            named = [next((n for n, _ in view if n != first), None) for view in near]
            runner = max(
                sorted({n for n in named if n is not None}),
                key=lambda n: (named.count(n), -self._mean_distance(views, n)),
                default=None,
            )
        return Match(first, means[first], float(np.mean(refs)) - means[first], runner)

    def _mean_distance(self, views: np.ndarray, name: str) -> float:
        if name == COHORT_NAME:
            return float("inf")  # not an identity: named second only where nothing else is
        return float(self.identity_distances(views, name).mean())

    def identity_distances(self, views: np.ndarray, name: str) -> np.ndarray:
        """Per view: the distance to the nearest enrolled face of identity `name`."""
        from frs_cli.faces.distances import distances

        self._load()
        assert self._labels is not None and self._face_ids is not None
        mine = self._labels == self._names.index(name)
        if self.size < self.exact_limit:
            faces = self.vectors[mine]
        else:
            faces = np.asarray(self.index().get_items(self._face_ids[mine]), np.float32)
        return distances(views, faces).min(axis=1)
