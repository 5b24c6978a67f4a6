"""The encoder's id names the exact weights; the weights' hash is cached per file in the
cache folder."""

import hashlib
import os
import shutil

from frs_cli.faces import dlib_models


def test_encoder_id_is_cached_per_weights_file(tmp_path, monkeypatch):
    src = dlib_models.model_path(dlib_models.RESNET).parent
    mine = tmp_path / "models"
    mine.mkdir()
    for name in (dlib_models.SHAPE_5, dlib_models.RESNET):
        shutil.copy(src / name, mine / name)
    monkeypatch.setenv("FRS_MODELS_DIR", str(mine))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    weights = mine / dlib_models.RESNET
    want = "dlib_resnet_v1:" + hashlib.sha256(weights.read_bytes()).hexdigest()[:16]

    forget()
    assert dlib_models.encoder_model_id() == want
    (cached,) = (tmp_path / "cache" / "frs").glob("model-id-*")
    assert cached.read_text() == want.split(":")[1]

    # The cache is what a second process reads (shown by planting another hash in it)...
    cached.write_text("0123456789abcdef")
    forget()
    assert dlib_models.encoder_model_id() == "dlib_resnet_v1:0123456789abcdef"
    # (as it is in the format earlier versions wrote)
    cached.write_text("dlib_resnet_v1:fedcba9876543210")
    forget()
    assert dlib_models.encoder_model_id() == "dlib_resnet_v1:fedcba9876543210"

    # ...until the weights file changes: then it is hashed again.
    with open(weights, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    os.utime(weights, ns=(1, 1))
    forget()
    changed = "dlib_resnet_v1:" + hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    assert changed != want and dlib_models.encoder_model_id() == changed

    forget()  # leave no planted id for other tests


def forget():
    dlib_models.forget()


def test_scan_without_models_is_one_clear_error(demo_watchlist, tmp_path, monkeypatch):
    from conftest import SAMPLE, run_cli

    monkeypatch.setenv("FRS_MODELS_DIR", str(tmp_path))  # empty, and no package to fall back on
    monkeypatch.setattr(dlib_models, "_package_dir", lambda: None)
    forget()
    try:
        for workers in ("1", "2"):
            result = run_cli(
                "scan", "-q", "-w", demo_watchlist, "--workers", workers, SAMPLE / "demo.mp4"
            )
            assert result.exit_code == 1, result.stderr
            assert "is missing" in result.stderr and "pip install face_recognition_models" in (
                result.stderr
            )
            assert "Traceback" not in result.stderr
    finally:
        forget()
