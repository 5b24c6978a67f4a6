"""The per-frame reference loop: what face_recognition's `facerec_from_video_file.py`
example does, written with dlib directly (no face_recognition import).

Every frame is decoded and converted to RGB, HOG detection runs with upsample 1 on
the whole frame, and every face found is encoded and compared with the watchlist
(nearest identity within the tolerance). Prints one JSON line per frame:
{"t": seconds, "faces": [[left, top, width, height, identity-or-null, distance], ...]}.

Run: python benchmarks/reference.py WATCHLIST.db VIDEO [--tolerance 0.6]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av
import dlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from frs_cli.faces import dlib_models  # noqa: E402  (model files only)
from frs_cli.watchlist import Watchlist  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("watchlist", type=Path)
    parser.add_argument("video")
    parser.add_argument("--tolerance", type=float, default=0.6)
    args = parser.parse_args()
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_models.model_path(dlib_models.SHAPE_5)))
    encoder = dlib.face_recognition_model_v1(str(dlib_models.model_path(dlib_models.RESNET)))
    with Watchlist.open(args.watchlist) as wl:
        container = av.open(args.video)
        stream = container.streams.video[0]
        origin = (container.start_time or 0) / 1_000_000
        for frame in container.decode(stream):
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            faces = []
            for rect in detector(rgb, 1):
                shape = predictor(rgb, rect)
                vec = np.asarray(encoder.compute_face_descriptor(rgb, shape, 1), dtype=np.float32)
                match = wl.search(vec)[0]
                ident = match.identity if match and match.distance <= args.tolerance else None
                box = [rect.left(), rect.top(), rect.width(), rect.height()]
                faces.append([*box, ident, round(match.distance, 4) if match else None])
            t = float(frame.pts * stream.time_base) - origin
            print(json.dumps({"t": round(t, 4), "faces": faces}), flush=True)


if __name__ == "__main__":
    main()
