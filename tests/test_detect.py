"""dlib's HOG face detector split into its filters: exact on real faces."""

import dlib
import numpy as np
import pytest
from conftest import SAMPLE
from PIL import Image

from frs_cli import detect, models


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("hog") / "hog.svm"
    dlib.get_frontal_face_detector().save(str(path))
    return path.read_bytes()


def _subset(saved, keep, tmp_path):
    path = tmp_path / ("hog-" + "".join(map(str, keep)) + ".svm")
    path.write_bytes(models.hog_filters(saved, keep))
    return dlib.fhog_object_detector(str(path))


def _portraits():
    for name in ("Grace_Hopper.jpg", "Eileen_Collins.png"):
        image = np.asarray(Image.open(SAMPLE / name).convert("L"))
        yield image
        yield np.ascontiguousarray(image[:, ::-1])  # mirrored: the other profile filter


def test_all_filters_reproduce_the_file_exactly(saved):
    assert models.hog_filters(saved, models.HOG_ALL) == saved


def test_each_filter_alone_scores_as_inside_the_full_detector(saved, tmp_path):
    full = dlib.get_frontal_face_detector()
    singles = [_subset(saved, (k,), tmp_path) for k in range(5)]
    assert [d.num_detectors for d in singles] == [1] * 5
    for image in _portraits():
        # Low threshold: every filter reports something, and the full detector's best box
        # (never suppressed by overlap with another) is the best of the five filters alone.
        rects, scores, kinds = full.run(image, 0, -1.0)
        best = max(zip(scores, kinds, [(r.left(), r.top(), r.right()) for r in rects], strict=True))
        alone = []
        for k, single in enumerate(singles):
            r, s, _ = single.run(image, 0, -1.0)
            if r:
                alone.append((s[0], k, (r[0].left(), r[0].top(), r[0].right())))
        assert len(alone) >= 3
        assert max(alone) == best


def test_upright_search_finds_the_portraits_as_frontal_faces():
    search = detect.get("hog", whole_frame=True)
    follow = detect.get("hog")
    assert models.hog_detector(models.HOG_UPRIGHT).num_detectors == 3
    for image in _portraits():
        (found,) = search(image, 0.0)
        (same,) = [d for d in follow(image, 0.0) if d.box.iou(found.box) > 0.5]
        assert found.frontal and same.frontal
        assert (found.box, found.score) == (same.box, pytest.approx(same.score))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-1],  # truncated
        lambda b: b + b"\x01\x00",  # trailing bytes
        lambda b: b"\x01\x03" + b[2:],  # another object_detector version
        lambda b: b[:2] + b"\x09" + b[3:],  # an integer longer than 8 bytes
    ],
)
def test_an_unknown_layout_is_refused(saved, damage):
    with pytest.raises(ValueError):
        models.hog_filters(damage(saved), (0,))
    with pytest.raises(ValueError):
        models.hog_filters(saved, (5,))
