"""Issue 37: the ArcFace family's paths trust nothing they are given: weights are run from
the very bytes that were checked, vectors must be the family's, tolerances on its scale,
every network a scan uses is checked before any work, erasing needs no weights, an
unknown family is named as such, a face of degenerate landmarks is skipped with a
reason. One test (or more) per row of the issue's table."""

from __future__ import annotations

import builtins
import os
import shutil
import sqlite3

import numpy as np
import pytest
from conftest import SAMPLE, run_cli
from test_arcface import real_networks

import frs_cli as frs
from frs_cli.errors import UsageError, WatchlistError
from frs_cli.faces import arcface, arcface_weights, dlib_models, families, images

PHOTOS = (SAMPLE / "Grace_Hopper.jpg", SAMPLE / "Eileen_Collins.png")
DEMO = SAMPLE / "demo.mp4"


@pytest.fixture
def fresh_networks():
    """Networks loaded anew in this test, and again after it (nothing it planted stays)."""
    arcface.detector.cache_clear()
    arcface.encoder.cache_clear()
    yield
    arcface.detector.cache_clear()
    arcface.encoder.cache_clear()


def own_copy(tmp_path, monkeypatch):
    """The ArcFace weights copied into a folder of this test's, named by FRS_MODELS_DIR."""
    real_networks()
    mine = tmp_path / "models"
    mine.mkdir()
    for network in ("arcface", "scrfd"):
        found = arcface_weights.find(network)
        shutil.copy(found.path, mine / found.path.name)
    monkeypatch.setenv("FRS_MODELS_DIR", str(mine))
    return mine


def hopper_encoding() -> np.ndarray:
    rgb = images.load_photo(str(PHOTOS[0])).rgb
    [face] = arcface.detector()(rgb)
    return arcface.encode_faces(rgb, [face])[0]


# -- row 1: weights swapped after their hash check ------------------------------------
def test_weights_changed_between_their_check_and_their_use_are_never_run(
    tmp_path, monkeypatch, fresh_networks
):
    import onnxruntime as ort

    mine = own_copy(tmp_path, monkeypatch)
    want = hopper_encoding()
    weights = mine / "w600k_mbf.onnx"
    real_session = ort.InferenceSession
    import onnx

    tensors = onnx.load_model_from_string(weights.read_bytes()).graph.initializer
    largest = max((t.raw_data for t in tensors), key=len)

    def swapped_first(model, *args, **kwargs):
        # Right after the encoder's bytes were checked, before the network is built from
        # them: the file is changed in place (same size, its mtime put back), every time.
        if str(model) != str(weights) and len(model) < weights.stat().st_size:
            # SCRFD's (2.5 MB, by its bytes or path); the encoder's are its 13.6 MB, or a
            # little more with its PRelu rewritten (faces/prelu.py)
            return real_session(model, *args, **kwargs)
        st = weights.stat()
        data = bytearray(weights.read_bytes())
        at = data.find(largest[:64])  # inside the largest weight tensor: still a valid model
        data[at : at + 4096] = (-np.frombuffer(largest[:4096], np.float32)).tobytes()
        weights.write_bytes(bytes(data))
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
        return real_session(model, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", swapped_first)
    arcface.detector.cache_clear()
    arcface.encoder.cache_clear()
    got = hopper_encoding()
    assert np.array_equal(got, want)  # the checked bytes ran, not the file's new ones
    monkeypatch.setattr(ort, "InferenceSession", real_session)
    arcface.encoder.cache_clear()
    with pytest.raises(arcface_weights.ModelMissing, match="is not the w600k_mbf.onnx"):
        arcface.encoder()  # the changed file, checked again: refused


def test_a_wrong_file_of_any_size_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("FRS_MODELS_DIR", str(tmp_path))
    big = tmp_path / "w600k_mbf.onnx"
    with open(big, "wb") as f:
        f.truncate(512 << 20)  # 512 MB, sparse: hashing it would read all of it
    read = []
    monkeypatch.setattr(arcface_weights, "sha256", lambda data: read.append(1) or "0")
    with pytest.raises(
        arcface_weights.ModelMissing, match="536,870,912 bytes, expected 13,616,099"
    ):
        arcface_weights.find("arcface")
    assert not read


# -- row 3: one FRS_MODELS_DIR for both families ---------------------------------------
def test_a_models_folder_with_only_the_arcface_files_serves_both_families(
    tmp_path, monkeypatch, fresh_networks
):
    own_copy(tmp_path, monkeypatch)
    dlib_models.forget()
    try:
        assert dlib_models.model_path(dlib_models.SHAPE_5).is_file()  # from the package
        doctor = run_cli("doctor")
        assert doctor.exit_code == 0 and "MISSING" not in doctor.stdout
        assert f"scrfd {tmp_path / 'models'}" in doctor.stdout
        arc = tmp_path / "arc.db"
        enrolled = run_cli("enroll", "-q", "-w", arc, "--encoder", "arcface", *PHOTOS)
        assert enrolled.exit_code == 0, enrolled.stderr
        plain = tmp_path / "dlib.db"
        assert run_cli("enroll", "-q", "-w", plain, *PHOTOS).exit_code == 0
        scanned = run_cli("scan", "-q", "-w", plain, "--format", "jsonl", DEMO)
        assert scanned.exit_code == 0 and scanned.stdout.count("\n") == 3, scanned.stderr
    finally:
        dlib_models.forget()


# -- row 4: an unreadable weights file -------------------------------------------------
def test_an_unreadable_weights_file_is_one_line_and_doctor_goes_on(
    tmp_path, monkeypatch, fresh_networks
):
    mine = own_copy(tmp_path, monkeypatch)
    locked = mine / "scrfd_500m_bnkps.onnx"
    real_open = builtins.open

    def guarded(file, *args, **kwargs):  # as for a file of mode 000 (this may run as root)
        if str(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    doctor = run_cli("doctor")
    assert f"scrfd: cannot read {locked}" in doctor.stdout and "Permission denied" in doctor.stdout
    assert "licence of family arcface" in doctor.stdout  # the report went on to its end
    result = run_cli("enroll", "-w", tmp_path / "a.db", "--encoder", "arcface", PHOTOS[0])
    assert result.exit_code == 1
    assert f"cannot read {locked}" in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "a.db").exists()  # row 11: no empty watchlist left behind


# -- row 5: big faces ------------------------------------------------------------------
def tight_headshot(path, width: int = 1000) -> None:
    """Grace Hopper's face cropped tight (it fills 75% of the width) and saved `width` px
    wide, as custody and passport photos are."""
    from PIL import Image

    from frs_cli.faces import photos

    rgb = images.load_photo(str(PHOTOS[0])).rgb
    [box] = photos.find_faces(rgb)
    side = box.width / 0.75
    cx, cy = box.left + box.width / 2, box.top + box.height / 2
    crop = Image.fromarray(rgb).crop(
        (round(cx - side / 2), round(cy - side * 0.6), round(cx + side / 2), round(cy + side * 0.6))
    )
    crop.resize((width, round(width * crop.height / crop.width))).save(path)


@pytest.mark.parametrize("encoder", ["dlib", "arcface"])
def test_a_tight_high_resolution_headshot_enrols_in_both_families(tmp_path, encoder):
    real_networks()
    photo = tmp_path / "Grace_Hopper.jpg"
    tight_headshot(photo)
    wl = tmp_path / "w.db"
    result = run_cli("enroll", "-w", wl, "--encoder", encoder, photo)
    assert result.exit_code == 0 and "1 enrolled" in result.stderr, result.stderr
    with frs.Watchlist.open(wl) as opened:
        # the same person as the sample portrait at its own size
        plain = frs.Watchlist.create(tmp_path / "plain.db", encoder=encoder)
        plain.enroll([PHOTOS[0]])
        distance = float(np.linalg.norm(opened.vectors[0] - plain.vectors[0]))
        plain.close()
    assert distance < families.get(encoder).fixed_tolerance / 2


@pytest.mark.slow
def test_a_face_filling_a_720p_frame_is_found_at_every_min_face(tmp_path, arc_watchlist):
    from frs_cli.video import synthetic

    photo = tmp_path / "Grace_Hopper.jpg"
    tight_headshot(photo, 600)
    clip = tmp_path / "close.mp4"
    # The face 500 px wide in a 1280x720 frame, for one second.
    shot = synthetic.Shot(str(photo), 0, 24, x=0.25, y=0.0, height=1.0)
    synthetic.write_clip(clip, [shot], frames=25, width=1280, height=720)
    for min_face in (12, 40):
        result = run_cli(
            "scan", "-q", "-w", arc_watchlist, "--min-face", min_face, "--format", "jsonl", clip
        )
        assert result.exit_code == 0, result.stderr
        rows = [r for r in map(__import__("json").loads, result.stdout.splitlines())]
        assert [r["identity"] for r in rows] == ["Grace_Hopper"], (min_face, rows)


@pytest.fixture
def arc_copy(tmp_path, arc_watchlist):
    """A private copy of the ArcFace watchlist (the two sample portraits)."""
    path = tmp_path / "arc.db"
    with sqlite3.connect(arc_watchlist) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    return path


# -- row 2: vectors must be the family's -------------------------------------------------
def test_a_vector_of_no_encoding_s_length_is_refused_everywhere(arc_copy, tmp_path):
    with frs.Watchlist.open(arc_copy) as wl:
        good = wl.vectors[0].copy()
        with pytest.raises(WatchlistError, match=r"row 1 \(Stranger, length 0\): not 512"):
            wl.add_vectors(["Someone", "Stranger"], np.stack([good, np.zeros(512)]))
        with pytest.raises(WatchlistError, match="not 512 finite numbers of length 0.99 to 1.01"):
            wl.add_faces([("Stranger", np.zeros(512), "s", "p", "[]")])
        with pytest.raises(WatchlistError, match="cohort face of c.jpg: not 512"):
            wl.add_cohort([(good * 3, "s", "c.jpg")])
        assert wl.face_count() == 2 and wl.cohort_count() == 0  # nothing was added
    # A zero vector planted in the file: verify names it, a scan refuses before any work.
    with sqlite3.connect(arc_copy) as db:
        db.execute("UPDATE faces SET vector = ? WHERE id = 1", (bytes(512 * 4),))
    verify = run_cli("watchlist", "verify", "-w", arc_copy)
    assert verify.exit_code == 1 and "1 face(s) of Grace_Hopper have a vector" in verify.stderr
    scan = run_cli("scan", "-q", "-w", arc_copy, DEMO)
    assert scan.exit_code == 1 and "(Grace_Hopper) have no valid encoding" in scan.stderr
    assert scan.stdout == ""
    # ... and the damaged identity can still be removed.
    removed = run_cli("watchlist", "remove", "-w", arc_copy, "Grace_Hopper")
    assert removed.exit_code == 0, removed.stderr
    assert run_cli("watchlist", "verify", "-w", arc_copy).exit_code == 0


def test_a_query_that_is_not_the_family_s_encoding_is_frs_s_own_error(arc_copy):
    with frs.Watchlist.open(arc_copy) as wl:
        with pytest.raises(WatchlistError, match=r"must be 512 numbers .* shape \(1, 128\)"):
            wl.search(np.zeros(128))
        with pytest.raises(WatchlistError, match="query 0, length nan"):
            wl.search(np.full(512, np.nan))
        [match] = wl.search(wl.vectors[1])
        assert match is not None and match.identity == "Eileen_Collins" and match.distance == 0


# -- row 6: --tolerance on the family's scale ---------------------------------------------
def test_a_tolerance_off_the_family_s_scale_is_a_usage_error(demo_watchlist, arc_watchlist):
    dlib_list = run_cli("scan", "-w", demo_watchlist, "--tolerance", "1.15", DEMO)
    assert dlib_list.exit_code == 2 and dlib_list.stdout == ""
    assert (
        "--tolerance 1.15 is off the dlib family's scale: its thresholds run from 0.3 to 0.65"
        in (dlib_list.stderr)
    )
    arc_list = run_cli("scan", "-w", arc_watchlist, "--tolerance", "0.6", DEMO)
    assert arc_list.exit_code == 2 and "off the arcface family's scale" in arc_list.stderr
    with pytest.raises(UsageError, match="off the arcface family's scale"):
        list(frs.scan([DEMO], arc_watchlist, tolerance=0.6))  # the API too


# -- row 7: every model a scan uses checked before any work; only those loaded ------------
def test_every_network_a_scan_uses_is_checked_before_any_work(
    tmp_path, monkeypatch, arc_watchlist, fresh_networks
):
    mine = own_copy(tmp_path, monkeypatch)
    (mine / "scrfd_500m_bnkps.onnx").write_bytes(b"x" * 2_524_155)  # the size, other bytes
    for workers in ("1", "2"):
        result = run_cli("scan", "-w", arc_watchlist, "--model", "hog", "--workers", workers, DEMO)
        assert result.exit_code == 1 and result.stdout == ""
        assert "scrfd_500m_bnkps.onnx ($FRS_MODELS_DIR) is not the scrfd_500m_bnkps.onnx" in (
            result.stderr
        )
        assert "internal error" not in result.stderr and "demo.mp4" not in result.stderr


def test_a_dlib_scan_with_scrfd_loads_no_arcface_encoder(fresh_networks):
    real_networks()
    families.preload("scrfd", "dlib")
    assert arcface.detector.cache_info().currsize == 1
    assert arcface.encoder.cache_info().currsize == 0
    families.preload("hog", "arcface")  # HOG finds, SCRFD's landmarks align, ArcFace encodes
    assert arcface.encoder.cache_info().currsize == 1


# -- row 8: erasing needs no model --------------------------------------------------------
def test_people_and_the_cohort_are_erased_without_the_weights(arc_copy, tmp_path, monkeypatch):
    added = run_cli("watchlist", "cohort", "add", "-q", "-w", arc_copy, PHOTOS[1])
    assert added.exit_code == 0, added.stderr
    monkeypatch.setattr(arcface_weights, "places", lambda: [("nowhere", tmp_path / "none")])
    with pytest.raises(arcface_weights.ModelMissing):
        arcface_weights.find("arcface")
    removed = run_cli("watchlist", "remove", "-w", arc_copy, "Grace_Hopper")
    assert removed.exit_code == 0, removed.stderr
    renamed = run_cli("watchlist", "rename", "-w", arc_copy, "Eileen_Collins", "E_Collins")
    assert renamed.exit_code == 0, renamed.stderr
    cleared = run_cli("watchlist", "cohort", "clear", "-w", arc_copy)
    assert cleared.exit_code == 0 and "(1 faces)" in cleared.stderr, cleared.stderr
    with frs.Watchlist.open(arc_copy) as wl:
        assert [i.name for i in wl.identities()] == ["E_Collins"] and wl.cohort_count() == 0
    # Adding needs the weights, and says so.
    again = run_cli("watchlist", "cohort", "add", "-q", "-w", arc_copy, PHOTOS[1])
    assert again.exit_code == 1 and "frs never downloads weights" in again.stderr


# -- row 9: an unknown family is named, and nothing destructive is advised -----------------
def test_a_watchlist_of_an_unknown_family_is_named_as_such(arc_copy):
    with sqlite3.connect(arc_copy) as db:
        db.execute("UPDATE meta SET value = 'facenet_v9:0123' WHERE key = 'model_id'")
    for command in (("watchlist", "info"), ("watchlist", "verify"), ("scan",), ("enroll",)):
        args = [*command, "-w", arc_copy] + ([DEMO] if command == ("scan",) else [])
        args += [PHOTOS[0]] if command == ("enroll",) else []
        result = run_cli(*args)
        assert result.exit_code == 1, (command, result.stderr)
        assert "unknown model family 'facenet_v9' (made by a newer frs?)" in result.stderr
        assert "remove" not in result.stderr and "enrol them again" not in result.stderr


# -- row 10: landmarks at one point ---------------------------------------------------------
def test_a_face_whose_landmarks_lie_at_one_point_is_skipped_with_a_reason(monkeypatch):
    real_networks()
    with pytest.raises(arcface.Unalignable, match="5 landmarks lie at one point"):
        arcface.similarity(np.full((5, 2), 40.0), arcface.TEMPLATE)
    rgb = images.load_photo(str(PHOTOS[0])).rgb
    [face] = arcface.detector()(rgb)
    box = arcface.to_box(face, rgb.shape[1], rgb.shape[0])
    # Given landmarks at one point: those SCRFD finds around the box are used instead.
    [v] = arcface.encode_boxes([(rgb, box, (100.0, 100.0) * 5)])
    assert np.isfinite(v).all() and np.linalg.norm(v - hopper_encoding()) < 0.5  # her, still
    # Where no way aligns it, the face gets a row of NaN, which the scan leaves out.
    monkeypatch.setattr(arcface, "landmarks", lambda rgb, box: np.full((5, 2), 7.0))
    monkeypatch.setattr(arcface, "eyes_chip", lambda rgb, box: arcface.align(rgb, np.zeros((2, 2))))
    ok, skipped = arcface.encode_boxes([(rgb, box, tuple(face.landmarks.ravel())), (rgb, box)])
    assert np.isfinite(ok).all() and np.isnan(skipped).all()


# -- row 11: smaller ------------------------------------------------------------------------
def test_the_article_before_the_family_s_name(arc_watchlist):
    result = run_cli("enroll", "-w", arc_watchlist, "--encoder", "dlib", PHOTOS[0])
    assert result.exit_code == 2 and "is an arcface watchlist; --encoder dlib" in result.stderr


def test_a_fused_probe_is_on_the_family_s_scale():
    from frs_cli.accuracy import evaluation

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 512))
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    fused = evaluation.fuse(a, b, families.ARCFACE)
    assert np.isclose(np.linalg.norm(fused), 1.0, atol=1e-6)
    assert np.allclose(fused, (a + b) / np.linalg.norm(a + b), atol=1e-6)
    c, d = 1.4 * rng.normal(size=(2, 128)) / np.sqrt(128)
    assert np.allclose(evaluation.fuse(c, d, families.DLIB), (c + d) / 2, atol=1e-6)


def test_a_scan_leaves_out_faces_it_cannot_align_and_says_how_many(
    arc_watchlist, tmp_path, monkeypatch
):
    real_networks()
    monkeypatch.setattr(arcface, "_chip", lambda rgb, box, given: None)  # no way aligns any
    summary = tmp_path / "s.json"
    result = run_cli(
        "scan", "-w", arc_watchlist, "--workers", "1", "--summary", summary, "--format",
        "jsonl", DEMO,
    )  # fmt: skip
    assert result.exit_code == 0 and result.stdout == "", result.stderr
    data = __import__("json").loads(summary.read_text())
    assert data["views_not_aligned"] > 0 and data["tracks"] == 0
    assert f"{data['views_not_aligned']} view(s) of faces left out" in result.stderr
