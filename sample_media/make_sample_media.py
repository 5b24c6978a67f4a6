"""Regenerate sample_media/: two public-domain portraits that installed packages ship,
and demo.mp4, a synthetic clip in which those two people appear at known times.

    python sample_media/make_sample_media.py      (needs: pip install matplotlib scikit-image)

Provenance (both public domain, as their packages' READMEs say):
- Grace_Hopper.jpg: matplotlib/mpl-data/sample_data/grace_hopper.jpg (US Navy photo).
- Eileen_Collins.png: skimage/data/astronaut.png (NASA photo of astronaut Eileen Collins).
The files are named after the people, so `frs enroll` takes the identities from the names.

demo.mp4 (640x360, 25 fps, 8 s, H.264) shows, over a plain background:
- Grace Hopper, frames 25-99 (1.000-3.960 s), left of centre, drifting right;
- Eileen Collins, frames 125-199 (5.000-7.960 s), on the right;
- Grace Hopper again, frames 150-199 (6.000-7.960 s), on the left.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from frs_cli.video.synthetic import Shot, write_clip  # noqa: E402

HOPPER = HERE / "Grace_Hopper.jpg"
COLLINS = HERE / "Eileen_Collins.png"

FPS = 25
FRAMES = 200
# (identity, first frame, last frame): what a scan of demo.mp4 must find.
EXPECTED = [("Grace_Hopper", 25, 99), ("Eileen_Collins", 125, 199), ("Grace_Hopper", 150, 199)]


def demo_shots(hopper: Path = HOPPER, collins: Path = COLLINS) -> list[Shot]:
    return [
        Shot(str(hopper), 25, 99, x=0.15, y=0.04, height=0.92, drift_px=1.0),
        Shot(str(collins), 125, 199, x=0.55, y=0.08, height=0.84),
        Shot(str(hopper), 150, 199, x=0.05, y=0.04, height=0.92),
    ]


def copy_portraits() -> None:
    import matplotlib
    import skimage

    mpl = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    ski = Path(skimage.__file__).parent / "data" / "astronaut.png"
    shutil.copyfile(mpl, HOPPER)
    shutil.copyfile(ski, COLLINS)


def main() -> None:
    copy_portraits()
    write_clip(HERE / "demo.mp4", demo_shots(), FRAMES, fps=FPS)
    print(f"wrote {HOPPER.name}, {COLLINS.name}, demo.mp4 in {HERE}")


if __name__ == "__main__":
    main()
