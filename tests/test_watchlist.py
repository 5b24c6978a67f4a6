"""The watchlist store and its derived HNSW index, with hand-made vectors."""

import json
import os

import numpy as np
import pytest
from conftest import MADE_UP

from frs_cli.errors import WatchlistError
from frs_cli.watchlist import Watchlist

# Points placed by hand (on a line, at any length): a made-up family that takes them.
pytestmark = pytest.mark.usefixtures("made_up_family")


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(0, 0.1, size=(n, 128)).astype(np.float32)
    return v


def fill(wl: Watchlist, n: int, per_identity: int = 2) -> np.ndarray:
    v = vectors(n)
    wl.add_faces(
        [(f"id{i // per_identity}", v[i], f"sha{i}", f"p{i}.jpg", "[0,0,1,1]") for i in range(n)]
    )
    return v


def test_search_groups_by_identity_and_reports_margin(tmp_path):
    with Watchlist.create(tmp_path / "wl.db", MADE_UP + "m1") as wl:
        v = fill(wl, 6)
        matches = wl.search(v[3] + 0.001)
        assert matches[0].identity == "id1"
        assert matches[0].distance == pytest.approx(np.linalg.norm(np.full(128, 0.001)), rel=1e-3)
        # The margin is to the reference: the mean of the other identities' nearest photos.
        d = [float(np.linalg.norm(v[i] - v[3] - 0.001)) for i in range(6)]
        others = [min(d[0], d[1]), min(d[4], d[5])]
        assert matches[0].margin == pytest.approx(np.mean(others) - matches[0].distance, rel=1e-4)


def test_index_path_matches_exact_search_and_is_a_checked_cache(tmp_path):
    path = tmp_path / "wl.db"
    with Watchlist.create(path, MADE_UP + "m1") as wl:
        v = fill(wl, 200)
        exact = wl.search(v[:20] + 0.01)
        wl.exact_limit = 0
        assert wl.index_state() == "missing"
        via_index = wl.search(v[:20] + 0.01)
        assert [m.identity for m in via_index] == [m.identity for m in exact]
        assert wl.index_state() == "fresh"
        assert oct(os.stat(wl.index_path).st_mode & 0o777) == "0o600"
        wl.add_faces([("new", v[0] * -1, "shaX", "x.jpg", "[0,0,1,1]")])
        assert wl.index_state() == "stale"
        assert wl.search(v[0] * -1)[0].identity == "new"  # rebuilt on use
        assert wl.index_state() == "fresh"
    wl.index_path.write_bytes(b"garbage")
    assert len(list(tmp_path.glob("wl.db.hnsw-*"))) == 1  # old versions are cleaned up
    with Watchlist.open(path) as again:
        again.exact_limit = 0
        assert again.index_state() == "unreadable"
        assert again.search(v[5] + 0.01)[0].identity == "id2"
        assert json.loads(again.index_meta_path.read_text())["count"] == 201


def test_refuses_another_encoders_watchlist_and_non_watchlists(tmp_path):
    path = tmp_path / "wl.db"
    Watchlist.create(path, MADE_UP + "m1").close()
    with pytest.raises(WatchlistError, match="was made with encoder made_up:m1, not made_up:m2"):
        Watchlist.create(path, MADE_UP + "m2")
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite at all " * 100)
    with pytest.raises(WatchlistError, match="is not a watchlist"):
        Watchlist.open(junk)


def test_rejects_non_finite_vectors(tmp_path):
    with Watchlist.create(tmp_path / "wl.db", MADE_UP + "m1") as wl:
        bad = np.full(128, np.nan, np.float32)
        with pytest.raises(WatchlistError, match="not 128 finite numbers of length"):
            wl.add_faces([("x", bad, "s", "p", "[0,0,1,1]")])
        assert wl.face_count() == 0


def on_a_line(*positions: float) -> np.ndarray:
    v = np.zeros((len(positions), 128), np.float32)
    v[:, 0] = positions
    return v


@pytest.mark.parametrize("exact", [True, False])
def test_views_of_one_face_are_judged_on_their_mean_distance(tmp_path, exact):
    with Watchlist.create(tmp_path / "wl.db", MADE_UP + "m1") as wl:
        if not exact:
            wl.exact_limit = 0  # through the HNSW index
        # a at 0.0 (two photos: 0.0 and 0.05), b at 1.0, c at 3.0
        wl.add_vectors(["a", "a", "b", "c"], on_a_line(0.0, 0.05, 1.0, 3.0))
        one = wl.match_views(on_a_line(0.3))
        assert one == wl.search(on_a_line(0.3))[0]
        # Views at 0.3, 0.45 and 0.7: the mean to a's nearest photo is (0.25 + 0.4 + 0.65)
        # / 3; to b (0.7 + 0.55 + 0.3) / 3. The margin is to each view's reference of the
        # identities other than a (b and c: 1.7, 1.55, 1.3), averaged.
        m = wl.match_views(on_a_line(0.3, 0.45, 0.7))
        assert m is not None and (m.identity, m.second) == ("a", "b")
        assert m.distance == pytest.approx(1.3 / 3, abs=1e-5)
        assert m.margin == pytest.approx((1.7 + 1.55 + 1.3) / 3 - 1.3 / 3, abs=1e-5)
        # a first in both views, b second in one and c in the other: the second named is
        # the one nearer on average (c: 0.975 against b's 1.025), whatever the order of a
        # set of names in this process.
        wl.add_vectors(["c"], on_a_line(-1.0))
        m = wl.match_views(on_a_line(0.2, -0.25))
        assert m is not None and (m.identity, m.second) == ("a", "c")
        # Nearest of the views would name a at 0.10 here; on the mean b is nearer.
        m = wl.match_views(on_a_line(0.9, 0.8, 0.15))
        assert m is not None and m.identity == "b"
        assert m.distance == pytest.approx((0.1 + 0.2 + 0.85) / 3, abs=1e-5)


def test_a_large_stores_labels_are_cached_beside_it_and_checked(tmp_path, monkeypatch):
    from frs_cli.watchlist.store import Store

    monkeypatch.setattr(Store, "exact_limit", 50)  # "large" from 50 faces
    path = tmp_path / "wl.db"
    with Watchlist.create(path, MADE_UP + "m1") as wl:
        wl.add_vectors([f"id{i // 2}" for i in range(120)], vectors(120))
        assert wl.size == 120
        want = (wl._face_ids.copy(), wl._labels.copy(), list(wl._names))
    cache = path.with_name("wl.db.labels.npz")
    assert cache.exists() and cache.stat().st_mode & 0o777 == 0o600
    with Watchlist.open(path) as wl:
        assert wl._load_labels()  # read from the cache, not the store
        assert (wl._face_ids.tolist(), wl._labels.tolist(), wl._names) == (
            want[0].tolist(), want[1].tolist(), want[2],
        )  # fmt: skip
        wl.add_vectors(["new"], vectors(1, seed=9))  # a new generation: the cache is stale
        assert not wl._load_labels()
        assert wl.size == 121 and "new" in wl._names
    cache.write_bytes(b"not an npz")  # damaged: read from the store again
    with Watchlist.open(path) as wl:
        assert not wl._load_labels() and wl.size == 121
    # The index, loaded in a thread while other work goes on, searches as the plain one.
    with Watchlist.open(path) as wl:
        wl.rebuild()
    with Watchlist.open(path) as wl:
        wl.preload()
        assert wl._preloading is not None
        found = wl.search(vectors(120)[7] + 0.001)[0]
        assert found is not None and found.identity == "id3" and wl._preloading is None
