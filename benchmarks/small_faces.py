"""Do small faces cause false alerts? LFW probes downscaled (faces ~63 px -> ~37 px),
searched against a 1,400-identity gallery under the rule frs chooses for FPIR 1%.

    python benchmarks/small_faces.py     (after benchmarks/alert_rule.py made its cache)

Measured (docs/accuracy.md): FPIR 0.0088 at both sizes, FNIR 0.346 -> 0.417; at 0.45x
most faces are no longer found. So a minimum face size would not lower false alerts
under the margin rule; small faces cost misses instead."""

import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from frs_cli.accuracy import calibration as C
from frs_cli.faces import dlib_models
from frs_cli.faces.dlib_encoder import face_encoding
from frs_cli.faces.photos import find_faces

root = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-dev"
d = np.load(Path.home() / ".cache/frs/lfw-dev-encodings.npz")
names, vectors = d["names"], d["vectors"]
by = {}
for i, n in enumerate(names):
    by.setdefault(str(n), []).append(i)
people = sorted(by)
rng = np.random.default_rng(0)
rng.shuffle(people)
gallery_p = people[:1400]
others = people[1400:]
G = vectors[[by[p][0] for p in gallery_p]]
mated = [(k, p) for k, p in enumerate(gallery_p) if len(by[p]) > 1]
photos = {p: sorted((root / p).glob("*.jpg")) for p in people}


def enc(job):
    path, scale = job
    img = Image.open(path).convert("RGB")
    if scale != 1.0:
        img = img.resize(
            (round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR
        )
    rgb = np.asarray(img)
    boxes = find_faces(rgb, "central")
    if not boxes:
        return None, 0
    return face_encoding(rgb, boxes[0]), boxes[0].width


def init():
    dlib_models.preload("hog")


cal = C.calibrate(np.arange(1400), C.exact_knn(G))
rule = C.choose(cal, 0.01)
print("rule", rule.threshold, rule.margin, rule.fpir)
with get_context("fork").Pool(2, initializer=init) as pool:
    for scale in (1.0, 0.6, 0.45):
        t0 = time.time()
        nm = pool.map(enc, [(photos[p][0], scale) for p in others[:800]], 16)
        mt = pool.map(enc, [(photos[p][1], scale) for _, p in mated], 16)

        def srch(v):
            dd = np.linalg.norm(G - v, axis=1)
            o = np.argsort(dd)
            return o[0], dd[o[0]], dd[o[1]]

        widths = [w for _, w in nm if w]
        fp = [
            (lambda r: r[1] <= rule.threshold and r[2] - r[1] >= rule.margin)(srch(v))
            for v, _ in nm
            if v is not None
        ]
        hits = []
        for (k, _), (v, _) in zip(mated, mt, strict=True):
            if v is None:
                hits.append(False)
                continue
            r = srch(v)
            hits.append(bool(r[0] == k and r[1] <= rule.threshold and r[2] - r[1] >= rule.margin))
        print(
            f"scale {scale}: median face {np.median(widths):.0f} px; non-mated found {len(fp)}/{len(nm)}, FPIR {np.mean(fp):.4f}; mated {len(mt)}, FNIR {1 - np.mean(hits):.3f} ({time.time() - t0:.0f} s)",
            flush=True,
        )
