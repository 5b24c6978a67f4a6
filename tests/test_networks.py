"""dlib's encoder and CNN detector on ONNX Runtime give dlib's results: encodings within
1e-4 per component (every distance and decision the same to 4 decimals), CNN boxes the same
(IoU >= 0.95, same count) with scores within 1e-3; a file of an unknown layout is refused
cleanly and dlib runs the network instead, with one warning."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SAMPLE, SHARED, needs_shared, run_cli
from PIL import Image

from frs_cli.faces import detect, distances, dlib_dnn, dlib_encoder, dlib_models
from frs_cli.records import Box
from frs_cli.video import synthetic

pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed: dlib runs both networks")


@pytest.fixture
def backend(monkeypatch):
    def use(name: str) -> None:
        monkeypatch.setenv("FRS_BACKEND", name)

    return use


def _frames(path: Path, every: int, limit: int) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        frames = [
            f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i % every == 0
        ]
    return frames[:limit]


def _images(shared: bool) -> list[np.ndarray]:
    photos = [SAMPLE / "Grace_Hopper.jpg", SAMPLE / "Eileen_Collins.png"]
    frames = _frames(SAMPLE / "demo.mp4", 20, 10)
    if shared:
        photos += sorted(p for p in (SHARED / "faces").glob("*.*") if p.suffix in (".jpg", ".png"))
        for clip in sorted((SHARED / "footage").glob("*.mp4")):
            frames += _frames(clip, 50, 2)  # 4 a clip: 6 s more, no other kind of face
    return [np.asarray(Image.open(p).convert("RGB")) for p in photos] + frames


def _faces(images: list[np.ndarray]) -> list[tuple[np.ndarray, Box]]:
    """Every face HOG finds (upsample 1), as (image, box); crops around the faces in video
    frames too, the way frs encodes a followed face."""
    faces = []
    for img in images:
        for r in dlib_models.hog_detector()(img, 1):
            box = Box(r.left(), r.top(), r.width(), r.height())
            faces.append((img, box))
            area = box.expanded(1.0, img.shape[1], img.shape[0])
            crop = img[area.top : area.bottom, area.left : area.right].copy()
            faces.append(
                (crop, Box(box.left - area.left, box.top - area.top, box.width, box.height))
            )
    return faces


def _check_encodings(images: list[np.ndarray], backend) -> int:
    faces = _faces(images)
    assert faces
    backend("dlib")
    want = dlib_encoder.face_encodings(faces)
    backend("onnxruntime")
    assert dlib_models.onnx_encoder() is not None
    batched = dlib_encoder.face_encodings(faces)
    one_by_one = np.stack([dlib_encoder.face_encoding(img, box) for img, box in faces])
    for got in (batched, one_by_one):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
        # every distance between two of these faces the same to 4 decimals
        np.testing.assert_allclose(
            distances.distances(got, got), distances.distances(want, want), rtol=0, atol=5e-5
        )
    return len(faces)


def test_encodings_equal_dlibs_on_the_sample_faces(backend):
    assert _check_encodings(_images(shared=False), backend) >= 10


# ~15 s, like the CNN check below: the reference is dlib's own network (~130 ms a face,
# ~2 s a CNN frame); that is what makes these comparisons worth having.
@needs_shared
def test_encodings_equal_dlibs_on_the_shared_photos_and_footage(backend):
    assert _check_encodings(_images(shared=True), backend) >= 40


def _cnn_boxes(image: np.ndarray) -> list[tuple[Box, float]]:
    found = [(d.box, d.score) for d in detect.get("cnn")(image, 0.0)]
    return sorted(found, key=lambda d: (d[0].left, d[0].top))


def _check_cnn(images: list[np.ndarray], backend, rgb: int = 1) -> int:
    """Each image's boxes from both networks, as luma (what frs searches), the first
    `rgb` colour images also in RGB (the network's three channels, not only equal ones)."""
    found = 0
    for k, img in enumerate(images):
        luma = img if img.ndim == 2 else np.asarray(Image.fromarray(img).convert("L"))
        for pixels in (img, luma) if img.ndim == 3 and k < rgb else (luma,):
            backend("dlib")
            want = _cnn_boxes(pixels)
            backend("onnxruntime")
            got = _cnn_boxes(pixels)
            assert len(got) == len(want)
            for (gb, gs), (wb, ws) in zip(got, want, strict=True):
                assert gb.iou(wb) >= 0.95 and abs(gs - ws) <= 1e-3, (got, want)
            found += len(want)
    return found


def test_cnn_finds_the_boxes_dlib_finds_on_the_sample_media(backend):
    images = _images(shared=False)
    small = [images[0], images[3], images[5]]  # dlib's own CNN: ~2 s a frame
    assert _check_cnn(small, backend) == 3  # boxes compared


@needs_shared
def test_cnn_finds_the_boxes_dlib_finds_on_shared_photos_and_region_sized_crops(backend):
    photos = [
        np.asarray(Image.open(SHARED / "faces" / name).convert("RGB"))
        for name in ("obama_small.jpg", "alex-lacamoire.png")
    ]
    # two_people.jpg in luma only: dlib's own CNN takes 4.5 s on it in each form
    photos.append(np.asarray(Image.open(SHARED / "faces" / "two_people.jpg").convert("L")))
    # frs searches around a followed face in a ~200 px region: faces at the image's edge
    # (boxes reaching outside it) and small pyramids
    frames = _frames(SHARED / "footage" / "short_hamilton_clip.mp4", 60, 4)
    crops = [f[20:220, 150:350] for f in frames] + [f[:200, :200] for f in frames]
    assert _check_cnn(photos + crops, backend) >= 6


@pytest.mark.slow
def test_cnn_scan_rows_equal_dlibs(tmp_path, demo_watchlist, backend):
    # dlib's own CNN takes ~0.3 s a frame, so a 2 s clip of Grace Hopper (frames 5-40)
    # rather than the 8 s demo (24 s). One worker, in-process: a pool forked after dlib's
    # CNN ran in this process (the tests above) deadlocks in it.
    clip = tmp_path / "hopper.mp4"
    shot = synthetic.Shot(str(SAMPLE / "Grace_Hopper.jpg"), 5, 40, x=0.1, y=0.1, height=0.8)
    synthetic.write_clip(clip, [shot], 50)
    rows = {}
    for name in ("dlib", "onnxruntime"):
        backend(name)
        out = tmp_path / f"{name}.csv"
        result = run_cli(
            "scan", "-q", "-w", demo_watchlist, "--model", "cnn", "--min-face", "80",
            "--workers", "1", "-o", out, clip,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        rows[name] = out.read_text()
    assert rows["dlib"] == rows["onnxruntime"]
    assert rows["dlib"].count("\n") == 2  # a header and her appearance
    assert ",Grace_Hopper,0.200,1.600," in rows["dlib"]


# -- the reader --------------------------------------------------------------------------
def test_reader_knows_both_networks():
    enc = dlib_dnn.read(str(dlib_models.model_path(dlib_models.RESNET)))
    assert enc.loss == "loss_metric_2"
    assert enc.layers[0].kind == "input" and enc.layers[0].ints == (150, 150)
    kinds = [layer.kind for layer in enc.layers]
    assert kinds.count("con") == 29 and kinds.count("add_prev") == 14
    assert kinds[-2:] == ["avg_pool", "fc"] and enc.layers[-1].ints == (256, 128)
    mmod = dlib_dnn.read(str(dlib_models.model_path(dlib_models.MMOD)))
    assert mmod.loss == "loss_mmod_" and mmod.window == (80, 80)
    assert mmod.nms[1] == 1.0 and 0.3 < mmod.nms[0] < 0.4
    assert [layer.kind for layer in mmod.layers[1:]] == ["con", "affine", "relu"] * 6 + ["con"]


def test_damaged_and_truncated_files_are_refused_cleanly():
    data = dlib_models.model_path(dlib_models.MMOD).read_bytes()
    rng = np.random.default_rng(7)
    for cut in [0, 1, 5, 40, 100, 137, 200, *rng.integers(0, len(data), 40), len(data) - 1]:
        with pytest.raises(dlib_dnn.LayoutError):
            dlib_dnn.parse(data[:cut])
    with pytest.raises(dlib_dnn.LayoutError):
        dlib_dnn.parse(data + b"\x00")
    # Bytes changed in the layout (not in the weights) are refused; any other change
    # either parses or is refused, never another exception.
    for pos in [0, 2, 4, 10, 30, 95, 139, *rng.integers(0, 2000, 60)]:
        for value in (0x00, 0x7F, 0xFF):
            damaged = bytearray(data)
            damaged[pos] = value
            with contextlib.suppress(dlib_dnn.LayoutError):
                dlib_dnn.parse(bytes(damaged))
    with pytest.raises(dlib_dnn.LayoutError):  # another of dlib's files
        dlib_dnn.parse(dlib_models.model_path(dlib_models.SHAPE_5).read_bytes()[:4096])


def test_an_unknown_layout_falls_back_to_dlib_with_one_warning(tmp_path, monkeypatch, capsys):
    mine = tmp_path / "models"
    mine.mkdir()
    for name in (dlib_models.SHAPE_5, dlib_models.MMOD):
        shutil.copy(dlib_models.model_path(name), mine / name)
    (mine / dlib_models.RESNET).write_bytes(
        dlib_models.model_path(dlib_models.RESNET).read_bytes()[:50_000]
    )
    monkeypatch.setenv("FRS_MODELS_DIR", str(mine))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FRS_BACKEND", raising=False)
    dlib_models.forget()
    try:
        c = dlib_models.choice(dlib_models.RESNET)
        assert c.backend == "dlib" and "could not be converted (the file ends early" in c.why
        assert dlib_models.choice(dlib_models.MMOD).backend == "onnxruntime"
        assert dlib_models.onnx_encoder() is None
        dlib_models.warn_fallbacks("cnn")
        dlib_models.warn_fallbacks("hog")
        err = capsys.readouterr().err
        assert err.count("warning") == 1 and "dlib runs the encoder (slower)" in err
    finally:
        monkeypatch.undo()
        dlib_models.forget()


def test_a_damaged_cached_graph_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FRS_BACKEND", raising=False)
    dlib_models.forget()
    try:
        graph = dlib_models.onnx_graph(dlib_models.RESNET)
        graph.write_bytes(graph.read_bytes()[:1000])  # cut short: not a model any more
        dlib_models.forget()
        assert dlib_models.onnx_graph(dlib_models.RESNET) == graph  # the parent sees a file there
        encoder = dlib_models.onnx_encoder()
        assert encoder is not None and graph.stat().st_size > 20_000_000
        chip = np.zeros((1, 150, 150, 3), np.uint8)
        assert encoder(chip).shape == (1, 128)
    finally:
        monkeypatch.undo()
        dlib_models.forget()


def test_doctor_says_which_backend_runs_each_network(monkeypatch):
    monkeypatch.delenv("FRS_BACKEND", raising=False)
    result = run_cli("doctor")
    assert result.exit_code == 0, result.stderr
    assert (
        "encoder: ONNX Runtime" in result.stdout and "CNN detector: ONNX Runtime" in result.stdout
    )
    monkeypatch.setenv("FRS_BACKEND", "dlib")
    result = run_cli("doctor")
    assert "encoder: dlib (FRS_BACKEND=dlib)" in result.stdout
    assert "CNN detector: dlib (FRS_BACKEND=dlib)" in result.stdout
