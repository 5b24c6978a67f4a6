"""dlib's HOG face detector split into its filters: exact on real faces."""

import dlib
import numpy as np
import pytest
from conftest import SAMPLE
from PIL import Image

from frs_cli.faces import detect, dlib_models
from frs_cli.scanner import analyse


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("hog") / "hog.svm"
    dlib.get_frontal_face_detector().save(str(path))
    return path.read_bytes()


def _subset(saved, keep, tmp_path):
    path = tmp_path / ("hog-" + "".join(map(str, keep)) + ".svm")
    path.write_bytes(dlib_models.hog_filters(saved, keep))
    return dlib.fhog_object_detector(str(path))


def _portraits():
    for name in ("Grace_Hopper.jpg", "Eileen_Collins.png"):
        image = np.asarray(Image.open(SAMPLE / name).convert("L"))
        yield image
        yield np.ascontiguousarray(image[:, ::-1])  # mirrored: the other profile filter


def test_all_filters_reproduce_the_file_exactly(saved):
    assert dlib_models.hog_filters(saved, dlib_models.HOG_ALL) == saved


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
    assert dlib_models.hog_detector(dlib_models.HOG_UPRIGHT).num_detectors == 3
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
        dlib_models.hog_filters(damage(saved), (0,))
    with pytest.raises(ValueError):
        dlib_models.hog_filters(saved, (5,))


def test_fewer_pyramid_levels_find_the_same_small_faces_and_no_large_ones():
    few = dlib_models.hog_detector(dlib_models.HOG_ALL, 4)  # faces of 80 px up to about 140
    full = dlib_models.hog_detector()
    portrait = Image.open(SAMPLE / "Grace_Hopper.jpg").convert("L")
    (face,) = detect.get("hog")(np.asarray(portrait), 0.0)
    for width, found_by_few in ((100, True), (130, True), (200, False), (260, False)):
        scale = width / face.box.width
        size = (round(portrait.width * scale), round(portrait.height * scale))
        image = np.asarray(portrait.resize(size, Image.Resampling.BILINEAR))
        rects, scores, kinds = full.run(image, 0, 0.0)
        assert len(rects) == 1
        mine = few.run(image, 0, 0.0)
        if found_by_few:
            assert (list(mine[0]), mine[1], mine[2]) == (list(rects), scores, kinds)
        else:
            assert len(mine[0]) == 0


def test_region_searches_use_the_levels_a_face_may_grow_into():
    # Level 3 finds faces of 80 * 1.2**3 = 138 px, within a followed face's growth (1.43 x
    # 100 px); level 4 (166 px) is beyond it.
    assert analyse.FOLLOW_LEVELS == 4
    assert analyse.SIZE_STEP[1] * analyse.REGION_FACE_PX >= detect.WINDOW_PX * 1.2**3
    assert analyse.SIZE_STEP[1] * analyse.REGION_FACE_PX < detect.WINDOW_PX * 1.2**4


def test_an_unknown_dlib_layout_falls_back_to_the_whole_detector(tmp_path, monkeypatch):
    def refuse(*args):
        raise ValueError("a layout this code does not know")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(dlib_models, "hog_filters", refuse)
    dlib_models.hog_detector.cache_clear()
    detect._hog_with.cache_clear()
    try:
        assert dlib_models.hog_detector(dlib_models.HOG_UPRIGHT).num_detectors == 5
        for image in _portraits():
            (found,) = detect.get("hog", whole_frame=True)(image, 0.0)
            assert found.frontal
    finally:
        dlib_models.hog_detector.cache_clear()
        detect._hog_with.cache_clear()
    assert [p.name for p in (tmp_path / "frs").iterdir()] == [f"hog-frontal-{dlib.__version__}.svm"]
