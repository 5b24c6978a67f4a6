"""Managing a watchlist: remove, rename, incremental index updates, verify, bulk loads,
and crash safety under kill -9."""

import json
import random
import subprocess
import sys

import dlib
import numpy as np
import pytest
from conftest import MADE_UP, ROOT, SAMPLE, run_cli
from PIL import Image

from frs_cli.faces import dlib_models
from frs_cli.watchlist import Watchlist

pytestmark = pytest.mark.usefixtures("made_up_family")  # hand-made vectors of any length


def vectors(n, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, size=(n, 128)).astype(np.float32)


def test_remove_and_rename_with_merge(tmp_path):
    path = tmp_path / "wl.db"
    with Watchlist.create(path, MADE_UP + "m") as wl:
        v = vectors(6)
        wl.add_vectors(["a", "a", "b", "b", "c", "c"], v)
        assert wl.remove("b") == 2
        assert wl.rename("c", "a") is True  # merge
        assert wl.rename("a", "alpha") is False
        assert [(i.name, i.faces) for i in wl.identities()] == [("alpha", 4)]
        assert wl.search(v[2])[0].identity == "alpha"  # b's face is gone
        assert wl.verify() == []


def test_index_is_extended_and_marked_not_rebuilt(tmp_path):
    path = tmp_path / "wl.db"
    with Watchlist.create(path, MADE_UP + "m") as wl:
        wl.exact_limit = 0
        v = vectors(300)
        names = [f"p{i // 3}" for i in range(300)]
        wl.add_vectors(names[:200], v[:200])
        wl.search(v[0])  # builds the index
        wl.add_vectors(names[200:], v[200:])
        wl.remove("p1")
        assert wl.index_state() == "stale"
        assert wl.search(v[250])[0].identity == names[250]
        meta = json.loads(wl.index_meta_path.read_text())
        assert (meta["labels"], meta["deleted"], meta["count"]) == (300, 3, 297)
        assert wl.search(v[4])[0].identity != "p1"
        assert wl.verify() == []
        wl.rebuild()
        meta = json.loads(wl.index_meta_path.read_text())
        assert (meta["labels"], meta["deleted"]) == (297, 0)


def test_verify_reports_tampered_and_truncated_files(tmp_path):
    path = tmp_path / "wl.db"
    with Watchlist.create(path, MADE_UP + "m") as wl:
        wl.add_vectors(["a", "b"], vectors(2))
        wl.rebuild()
    ok = run_cli("watchlist", "verify", "-w", path)
    assert ok.exit_code == 0 and "ok (2 faces)" in ok.stderr
    with Watchlist.open(path) as wl:
        index_file = wl.index_path
    assert index_file.name.startswith("wl.db.hnsw-")
    data = bytearray(index_file.read_bytes())
    data[-10] ^= 0xFF
    index_file.write_bytes(bytes(data))
    bad = run_cli("watchlist", "verify", "-w", path)
    assert bad.exit_code == 1
    assert "does not match its checksum (damaged or tampered with)" in bad.stderr
    assert run_cli("watchlist", "rebuild", "-w", path).exit_code == 0
    assert run_cli("watchlist", "verify", "-w", path).exit_code == 0
    truncated = tmp_path / "cut.db"
    truncated.write_bytes(path.read_bytes()[:3000])
    cut = run_cli("watchlist", "verify", "-w", truncated)
    assert cut.exit_code == 1 and "Traceback" not in cut.stderr


def test_cli_info_list_remove_rename(tmp_path):
    path = tmp_path / "wl.db"
    run_cli("enroll", "-q", "-w", path, SAMPLE / "Grace_Hopper.jpg", SAMPLE / "Eileen_Collins.png")
    info = run_cli("watchlist", "info", "-w", path)
    assert (
        "identities: 2" in info.stdout
        and "faces: 2" in info.stdout
        and "encoder: dlib_resnet_v1:" in info.stdout
    )
    listed = run_cli("watchlist", "list", "-w", path)
    assert listed.stdout == "identity,faces\nEileen_Collins,1\nGrace_Hopper,1\n"
    assert run_cli("watchlist", "rename", "-w", path, "Grace_Hopper", "Grace Hopper").exit_code == 0
    assert run_cli("watchlist", "remove", "-w", path, "Eileen_Collins").exit_code == 0
    assert run_cli("watchlist", "list", "-w", path).stdout == "identity,faces\nGrace Hopper,1\n"
    missing = run_cli("watchlist", "remove", "-w", path, "Nobody")
    assert missing.exit_code == 1 and "no identity 'Nobody'" in missing.stderr
    log = [
        json.loads(x)["command"] for x in (tmp_path / "wl.db.audit.jsonl").read_text().splitlines()
    ]
    assert log == ["enroll", "rename", "remove"]


def test_bulk_loaded_encodings_match_like_enrolled_photos(tmp_path, demo_watchlist):
    """face_recognition-style encodings (computed with dlib here) loaded in bulk give the
    same scan rows as enrolling the photos."""
    names, vecs = [], []
    for name, file in (
        ("Grace_Hopper", "Grace_Hopper.jpg"),
        ("Eileen_Collins", "Eileen_Collins.png"),
    ):
        rgb = np.asarray(Image.open(SAMPLE / file).convert("RGB"))
        rect = max(dlib.get_frontal_face_detector()(rgb, 1), key=lambda r: r.area())
        shape = dlib_models.shape_predictor()(rgb, rect)
        vecs.append(np.asarray(dlib_models.face_encoder().compute_face_descriptor(rgb, shape, 1)))
        names.append(name)
    bulk = tmp_path / "bulk.db"
    with Watchlist.create(bulk, dlib_models.encoder_model_id()) as wl:
        assert wl.add_vectors(names, np.stack(vecs)) == 2
        assert wl.add_vectors(names, np.stack(vecs)) == 0  # the same vectors again: no-op
    demo = SAMPLE / "demo.mp4"
    a = run_cli("scan", "-q", "-w", bulk, "--format", "jsonl", demo).stdout
    b = run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", demo).stdout
    assert a == b and a.count("\n") == 3


CHURN = """
import random, sys
import numpy as np
from frs_cli.watchlist import Watchlist
path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
wl = Watchlist.create(__import__("pathlib").Path(path), "dlib_resnet_v1:m")
wl.exact_limit = 0
k = 0
while True:
    op = rng.random()
    if op < 0.5:
        v = np.random.default_rng(k).normal(0, 0.1, (200, 128)).astype(np.float32)
        v *= 1.4 / np.linalg.norm(v, axis=1, keepdims=True)  # as long as dlib's encodings
        wl.add_vectors([f"p{k}_{i // 4}" for i in range(200)], v)
        k += 1
    elif op < 0.7 and wl.identities():
        wl.remove(rng.choice(wl.identities()).name)
    elif op < 0.85:
        wl.rebuild()
    else:
        wl.search(np.full(128, 1.4 / 128**0.5, np.float32))
"""


# ~9 s: dozens of real frs processes killed at random moments, each store then checked.
@pytest.mark.slow
def test_kill_9_during_enrol_remove_rebuild_never_corrupts(tmp_path):
    path = tmp_path / "wl.db"
    script = tmp_path / "churn.py"
    script.write_text(CHURN)
    rng = random.Random(11)
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(round_)], cwd=ROOT)
        try:
            proc.wait(timeout=rng.uniform(0.5, 2.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        result = run_cli("watchlist", "verify", "-w", path)
        assert result.exit_code == 0, result.stderr
    with Watchlist.open(path) as wl:
        assert wl.face_count() > 0 and wl.verify() == []
