"""Fixtures. Real faces: sample_media/ (public-domain portraits shipped by matplotlib and
scikit-image, see sample_media/make_sample_media.py) and, when present, ../shared/data.
Clips are generated here with frs_cli.video.synthetic: known people at known frames."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_media"
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(SAMPLE))

import make_sample_media  # noqa: E402

from frs_cli.cli import cli  # noqa: E402

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"real footage and photos not found at {SHARED}"
)


def run_cli(*args: str, input: str | None = None):
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
    return result


@pytest.fixture(scope="session")
def demo_watchlist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wl") / "demo.db"
    result = run_cli(
        "enroll", "-q", "-w", path, SAMPLE / "Grace_Hopper.jpg", SAMPLE / "Eileen_Collins.png"
    )
    assert result.exit_code == 0, result.stderr
    return path


@pytest.fixture
def wl(tmp_path: Path, demo_watchlist: Path) -> Path:
    """A private copy of the demo watchlist (both portraits), so a test may damage it."""
    import sqlite3

    path = tmp_path / "w.db"
    with sqlite3.connect(demo_watchlist) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    return path


@pytest.fixture(scope="session")
def shared_watchlist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real footage and photos not found at {SHARED}")
    path = tmp_path_factory.mktemp("wl") / "hamilton.db"
    faces = SHARED / "faces"
    result = run_cli(
        "enroll", "-q", "-w", path,
        faces / "lin-manuel-miranda.png", faces / "alex-lacamoire.png", faces / "obama.jpg",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return path


@pytest.fixture(scope="session")
def arc_watchlist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two sample portraits enrolled with the ArcFace family (skips without its
    weights)."""
    from test_arcface import real_networks

    real_networks()
    path = tmp_path_factory.mktemp("arc") / "arc.db"
    result = run_cli(
        "enroll", "-w", path, "--encoder", "arcface",
        SAMPLE / "Grace_Hopper.jpg", SAMPLE / "Eileen_Collins.png",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "non-commercial research use only" in result.stderr  # said at the first enrolment
    return path


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def demo_expected() -> list[tuple[str, float, float]]:
    """(identity, start_s, end_s) of every appearance in sample_media/demo.mp4."""
    fps = make_sample_media.FPS
    return sorted(
        (name, first / fps, last / fps) for name, first, last in make_sample_media.EXPECTED
    )


@pytest.fixture(scope="session")
def lfw_faces() -> tuple[list[str], object]:
    """Every photo of the first 500 lfw-dev identities (by name) encoded once per test run
    as `frs evaluate` does (central face): (identity per encoding, encodings). ~9 s."""
    if not SHARED.is_dir():
        pytest.skip(f"real footage and photos not found at {SHARED}")
    import numpy as np

    from frs_cli.faces.photos import PhotoJob, encode_photos
    from frs_cli.workers.executors import make_executor, ordered_map

    people = sorted(p for p in (SHARED / "lfw-dev").iterdir() if p.is_dir())[:500]
    jobs = [PhotoJob(p.name, str(f)) for p in people for f in sorted(p.glob("*.jpg"))]
    executor = make_executor(2, "hog")
    try:
        results = list(
            encode_photos(jobs, lambda fn, items: ordered_map(executor, fn, items), "central")
        )
    finally:
        executor.shutdown()
    kept = [r for r in results if r.vector is not None]
    return [r.job.identity for r in kept], np.stack([r.vector for r in kept])


MADE_UP = "made_up:"  # the model id prefix of `made_up_family`


@pytest.fixture
def made_up_family(monkeypatch: pytest.MonkeyPatch):
    """A family of hand-built 128-d vectors of any length (dlib's numbers otherwise), for
    tests of the watchlist's logic with points placed on a line: its model ids start with
    MADE_UP. Real families refuse vectors of no encoding's length (Family.norms)."""
    import dataclasses

    from frs_cli.faces import families

    fake = dataclasses.replace(families.DLIB, name="made_up", prefix=MADE_UP, norms=(0.0, 1e6))
    monkeypatch.setitem(families.FAMILIES, fake.name, fake)
    return fake
