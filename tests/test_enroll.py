"""Enrolment: identities from names and folders, per-photo outcomes, odd image files,
and encodings identical to face_recognition's defaults computed with dlib directly."""

import io
import shutil
from pathlib import Path

import dlib
import numpy as np
import pytest
from conftest import SAMPLE, run_cli
from PIL import Image

from frs_cli.faces import dlib_models
from frs_cli.watchlist import Watchlist
from frs_cli.watchlist.enroll import collect_jobs, identity_from_filename

HOPPER = SAMPLE / "Grace_Hopper.jpg"
COLLINS = SAMPLE / "Eileen_Collins.png"


def test_identity_from_filename():
    assert identity_from_filename(Path("Ada_Lovelace.jpg")) == "Ada_Lovelace"
    assert identity_from_filename(Path("Ada_Lovelace_0002.jpg")) == "Ada_Lovelace"
    assert identity_from_filename(Path("ada lovelace (2).png")) == "ada lovelace"
    assert identity_from_filename(Path("007.jpg")) == "007"


def test_collect_jobs_from_person_folders_files_and_name(tmp_path):
    (tmp_path / "people" / "Grace_Hopper").mkdir(parents=True)
    shutil.copy(HOPPER, tmp_path / "people" / "Grace_Hopper" / "a.jpg")
    shutil.copy(HOPPER, tmp_path / "people" / "Grace_Hopper" / "b.jpg")
    shutil.copy(COLLINS, tmp_path / "people" / "Eileen_Collins_1.png")
    (tmp_path / "people" / "readme.txt").write_text("x")
    jobs = collect_jobs([str(tmp_path / "people")], None)
    assert [(j.identity, Path(j.path).name) for j in jobs] == [
        ("Eileen_Collins", "Eileen_Collins_1.png"),
        ("Grace_Hopper", "a.jpg"),
        ("Grace_Hopper", "b.jpg"),
    ]
    named = collect_jobs([str(HOPPER), str(COLLINS)], "Someone")
    assert {j.identity for j in named} == {"Someone"}


def reference_encoding(path: Path) -> np.ndarray:
    """face_recognition.face_encodings(load_image_file(path))[0], written with dlib."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    rect = max(dlib.get_frontal_face_detector()(rgb, 1), key=lambda r: r.area())
    shape = dlib_models.shape_predictor()(rgb, rect)
    return np.asarray(dlib_models.face_encoder().compute_face_descriptor(rgb, shape, 1), np.float32)


def stored_vectors(path: Path) -> dict[str, np.ndarray]:
    with Watchlist.open(path) as wl:
        rows = wl.conn.execute(
            "SELECT i.name, f.vector FROM faces f JOIN identities i ON i.id = f.identity_id"
        ).fetchall()
    return {name: np.frombuffer(blob, np.float32) for name, blob in rows}


@pytest.mark.parametrize("backend", ["onnxruntime", "dlib"])
def test_enrolled_vectors_equal_face_recognition_defaults(tmp_path, backend, monkeypatch):
    """dlib's own encoder gives face_recognition's vectors bit for bit; ONNX Runtime (the
    default where installed) within 1e-4 per component (measured: 3e-7)."""
    monkeypatch.setenv("FRS_BACKEND", backend)
    wl = tmp_path / "wl.db"
    result = run_cli("enroll", "-w", wl, HOPPER, COLLINS)
    assert result.exit_code == 0, result.stderr
    vectors = stored_vectors(wl)
    tolerance = 0 if backend == "dlib" else 1e-4
    for name, photo in (("Grace_Hopper", HOPPER), ("Eileen_Collins", COLLINS)):
        np.testing.assert_allclose(vectors[name], reference_encoding(photo), rtol=0, atol=tolerance)
    assert "largest of 2 faces" in result.stderr  # the astronaut photo has a second face-like box
    assert (wl.stat().st_mode & 0o777) == 0o600


def test_reenrolling_is_a_no_op_and_counts_are_reported(tmp_path):
    wl = tmp_path / "wl.db"
    run_cli("enroll", "-w", wl, HOPPER)
    again = run_cli("enroll", "-w", wl, HOPPER)
    assert again.exit_code == 0
    assert f"already enrolled: {HOPPER} (Grace_Hopper)" in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("0 enrolled, 1 already enrolled")
    assert len(stored_vectors(wl)) == 1


def odd_images(folder: Path) -> dict[str, Path]:
    """The same portrait in formats that trip image loaders."""
    img = Image.open(HOPPER).convert("RGB")
    out = {}
    out["rgba"] = folder / "rgba.png"
    img.convert("RGBA").save(out["rgba"])
    out["gray16"] = folder / "gray16.png"
    Image.fromarray(np.asarray(img.convert("L"), np.uint16) * 257).save(out["gray16"])
    out["gray"] = folder / "gray.jpg"
    img.convert("L").save(out["gray"])
    out["webp_named_jpg"] = folder / "webp.jpg"
    img.save(out["webp_named_jpg"], format="WEBP")
    out["cmyk"] = folder / "cmyk.jpg"
    img.convert("CMYK").save(out["cmyk"])
    # A phone photo stored on its side, with EXIF orientation 6 (rotate 90 clockwise to view).
    out["exif_rotated"] = folder / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    img.rotate(90, expand=True).save(out["exif_rotated"], exif=exif)
    out["large"] = folder / "large.jpg"
    img.resize((img.width * 10, img.height * 10)).save(out["large"])
    return out


def test_odd_image_files_all_enrol(tmp_path):
    files = odd_images(tmp_path)
    wl = tmp_path / "wl.db"
    result = run_cli("enroll", "-w", wl, "--name", "Grace_Hopper", *files.values())
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("enrolled: ") == len(files)
    with Watchlist.open(wl) as w:
        assert w.face_count() == len(files)
        matches = w.search(reference_encoding(HOPPER))
    assert matches[0].identity == "Grace_Hopper"


def test_no_face_and_unreadable_photos(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (120, 140, 160)).save(blank)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(HOPPER.read_bytes()[:400])
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    wl = tmp_path / "wl.db"
    result = run_cli("enroll", "-w", wl, HOPPER, blank, corrupt, tiny, text)
    assert result.exit_code == 3
    err = result.stderr
    assert f"no face: {blank}: no face found" in err
    assert f"no face: {tiny}: no face found" in err
    assert f"unreadable: {text}: not an image Pillow can read" in err
    assert f"unreadable: {corrupt}:" in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("1 enrolled, 0 already enrolled, 2 without a face, 2 unreadable")
    )


def test_decompression_bomb_is_refused(tmp_path):
    bomb = tmp_path / "bomb.png"
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, format="PNG")
    bomb.write_bytes(buf.getvalue())
    result = run_cli("enroll", "-w", tmp_path / "wl.db", bomb)
    assert result.exit_code == 1
    assert "refusing it as a decompression bomb" in result.stderr


def test_photos_unlike_the_rest_of_their_identity_are_reported(tmp_path):
    """img1.jpg, img2.png, img3.jpg are enrolled as one identity "img" by their names:
    two of Grace Hopper (one mirrored), one of Eileen Collins. Only hers is reported,
    with its median distance to the others (each of Grace Hopper's has one near and one
    far photo: a median below the limit). verify lists the same."""
    from PIL import ImageOps

    folder = tmp_path / "photos"
    folder.mkdir()
    hopper = Image.open(SAMPLE / "Grace_Hopper.jpg").convert("RGB")
    hopper.save(folder / "img1.jpg")
    Image.open(SAMPLE / "Eileen_Collins.png").convert("RGB").save(folder / "img2.png")
    ImageOps.mirror(hopper).save(folder / "img3.jpg")
    wl = tmp_path / "wl.db"
    result = run_cli("enroll", "-w", wl, "--workers", "1", folder)
    assert result.exit_code == 0, result.stderr
    with Watchlist.open(wl) as store:
        vectors = store.vectors.astype(float)
    d = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    medians = [float(np.median(np.delete(d[k], k))) for k in range(3)]
    flagged = [k for k in range(3) if medians[k] > 0.6]
    assert flagged == [1]  # Eileen Collins's photo: far from both of Grace Hopper's
    photo = str(folder / "img2.png")
    assert (
        f"unlike: {photo} (img): median distance {round(medians[1], 4):.2f} to its 2 other "
        "photo(s); a different person?" in result.stderr
    )
    assert "warning: 1 photo(s) of 1 identit(y/ies) look unlike the rest" in result.stderr
    verify = run_cli("watchlist", "verify", "-w", wl)
    assert verify.exit_code == 0
    assert verify.stderr.splitlines()[0] == (
        f"warning: {photo} (img) looks unlike its identity's other 2 photo(s): median "
        f"distance {round(medians[1], 4):.2f}"
    )
