"""dlib's two networks on dlib (the dlib-bin wheel, or a source build) and on ONNX Runtime,
measured side by side in one run: the networks alone, then whole `frs` commands.

    python benchmarks/networks.py [--repeat 5] [--street-times 8] [--photos 300]
        [--skip-cnn-scan] [--skip-networks] [--skip-commands] [--out results.json]

Part 1, whole processes (`frs` as installed, FRS_BACKEND=dlib vs onnxruntime, interleaved),
each with wall time, CPU and the peak RSS of the largest process:
- `frs scan` (HOG) of the Hamilton clip (`--repeat` runs each, median);
- `frs scan` (HOG) of the 1080p street clip concatenated `--street-times` times;
- `frs scan --model cnn` of the Hamilton clip (dlib-bin: ~2 minutes; once each);
  rows compared for every scan;
- `frs enroll` of `--photos` lfw-dev photos (photos per second).
Part 2, in this process (one thread, the backend chosen per call; medians):
- encoding: frs_cli.faces.dlib_encoder.face_encodings on faces of the shared photos and of Hamilton
  frames (landmarks, chip and network: what a scan or enrolment pays per face), one face
  per call and in batches of 8, and the network alone on the same chips;
- CNN detection of a 1280x720 frame (obama-720p.jpg), whole frame, no upsampling.

Needs ../shared/data beside the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_speed import CLIPS, DATA, PHOTOS, concat_clip, run  # noqa: E402

from frs_cli.faces import dlib_encoder, dlib_models  # noqa: E402
from frs_cli.records import Box  # noqa: E402


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _faces() -> list[tuple[np.ndarray, Box]]:
    """Faces of the shared photos and of every 40th Hamilton frame, as frs finds them."""
    import av
    from PIL import Image

    images = [
        np.asarray(Image.open(p).convert("RGB"))
        for p in sorted((DATA / "faces").glob("*.*"))
        if p.suffix in (".jpg", ".png")
    ]
    with av.open(str(CLIPS["hamilton"])) as c:
        images += [
            f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i % 40 == 0
        ]
    detector = dlib_models.hog_detector()
    faces = []
    for img in images:
        for r in detector(img, 1):
            faces.append((img, Box(r.left(), r.top(), r.width(), r.height())))
    return faces


def numpy_encoder(net, chip: np.ndarray) -> np.ndarray:
    """dlib's encoder written with NumPy (convolutions as im2col + one matrix product, on
    NumPy's BLAS): the alternative to ONNX Runtime the issue asked to measure."""
    x = (
        chip.astype(np.float32).transpose(2, 0, 1) - np.float32(net.layers[0].floats)[:, None, None]
    ) / np.float32(256)
    tags: list[np.ndarray] = []
    previous = ""
    for layer in net.layers[1:]:
        if layer.kind == "con":
            w, b = layer.weights
            sy, _, py, _ = layer.ints
            f, c, kh, kw = w.shape
            xp = np.pad(x, ((0, 0), (py, py), (py, py)))
            win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sy, ::sy]
            oh, ow = win.shape[1:3]
            cols = win.transpose(0, 3, 4, 1, 2).reshape(c * kh * kw, oh * ow)
            x = (w.reshape(f, -1) @ cols).reshape(f, oh, ow) + b[:, None, None]
        elif layer.kind == "affine":
            g, h = layer.weights
            x = x * g[:, None, None] + h[:, None, None]
        elif layer.kind == "relu":
            x = np.maximum(x, 0)
        elif layer.kind == "max_pool":
            k, _, st = layer.ints[:3]
            win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::st, ::st]
            x = win.max(axis=(3, 4))
        elif layer.kind == "avg_pool":
            k, _, st = layer.ints[:3]
            if k == 0:
                x = x.mean(axis=(1, 2))
            else:
                win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[
                    :, ::st, ::st
                ]
                x = win.mean(axis=(3, 4))
        elif layer.kind == "mark":
            if previous == "mark":
                x = tags[-2]
            else:
                tags.append(x)
        elif layer.kind == "add_prev":
            y = tags[-1]
            tags.clear()
            shape = tuple(max(a, b) for a, b in zip(x.shape, y.shape, strict=True))
            out = np.zeros(shape, np.float32)
            out[: x.shape[0], : x.shape[1], : x.shape[2]] += x
            out[: y.shape[0], : y.shape[1], : y.shape[2]] += y
            x = out
        elif layer.kind == "fc":
            x = x.reshape(-1) @ layer.weights[0]
        previous = layer.kind
    return x.astype(np.float32)


def networks(repeat: int) -> dict:
    """Part 2: the networks alone and as frs calls them, per backend, in this process."""
    import dlib
    from PIL import Image

    faces = _faces()
    out: dict = {"faces": len(faces)}
    frame = np.asarray(Image.open(DATA / "faces" / "obama-720p.jpg").convert("RGB"))
    for backend in ("dlib", "onnxruntime"):
        os.environ["FRS_BACKEND"] = backend
        dlib_encoder.face_encodings(faces[:2])  # load
        one = [_median_ms(lambda f=f: dlib_encoder.face_encodings([f]), repeat) for f in faces]
        batches = [faces[i : i + 8] for i in range(0, len(faces) - 7, 8)]
        batch = [
            _median_ms(lambda b=b: dlib_encoder.face_encodings(b), repeat) / 8 for b in batches
        ]
        shapes = [dlib_models.shape_predictor()(img, dlib_encoder._rect(box)) for img, box in faces]
        chips = np.stack(
            [
                np.asarray(dlib.get_face_chip(img, s, 150, 0.25))
                for (img, _), s in zip(faces, shapes, strict=True)
            ]
        )
        onnx = dlib_models.onnx_encoder()
        net = (
            dlib_models.face_encoder().compute_face_descriptor
            if backend == "dlib"
            else lambda chip, onnx=onnx: onnx(chip[None])
        )
        alone = [_median_ms(lambda c=c, net=net: net(c), repeat) for c in chips]
        if backend == "onnxruntime":
            from frs_cli.faces import dlib_dnn

            parsed = dlib_dnn.read(str(dlib_models.model_path(dlib_models.RESNET)))
            diff = max(
                float(np.abs(numpy_encoder(parsed, c) - onnx(c[None])[0]).max()) for c in chips[:5]
            )
            out["numpy_encoder"] = {
                "network_alone_ms": statistics.median(
                    _median_ms(lambda c=c, p=parsed: numpy_encoder(p, c), repeat)
                    for c in chips[:10]
                ),
                "max_abs_diff_to_onnxruntime": diff,
            }
            print("numpy", json.dumps(out["numpy_encoder"]), flush=True)
        cnn = dlib_models.cnn_detector()
        cnn(frame)
        out[backend] = {
            "encode_one_ms": statistics.median(one),
            "encode_batch8_ms_per_face": statistics.median(batch),
            "network_alone_ms": statistics.median(alone),
            "cnn_1280x720_ms": _median_ms(lambda cnn=cnn: cnn(frame), max(1, repeat // 2)),
        }
        print(backend, json.dumps(out[backend]), flush=True)
    del os.environ["FRS_BACKEND"]
    d, o = out["dlib"], out["onnxruntime"]
    out["speedup"] = {k: d[k] / o[k] for k in d}
    print("speed-up", json.dumps(out["speedup"]), flush=True)
    return out


def _timed(backend: str, args: list[str], stdout: Path | None = None) -> dict[str, float]:
    os.environ["FRS_BACKEND"] = backend
    try:
        return run([sys.executable, "-m", "frs_cli", *args], stdout)
    finally:
        del os.environ["FRS_BACKEND"]


def commands(args: argparse.Namespace, tmp: Path) -> dict:
    """Part 1: whole frs commands, FRS_BACKEND=dlib against onnxruntime, interleaved."""
    backends = ("dlib", "onnxruntime")
    wl = tmp / "wl.db"
    run(
        [sys.executable, "-m", "frs_cli", "enroll", "-q", "-w", str(wl)]
        + [str(DATA / "faces" / p) for p in PHOTOS]
    )
    out: dict = {}

    def scans(name: str, clip: Path, repeat: int, *extra: str) -> None:
        runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
        for _ in range(repeat):
            for b in backends:
                rows = tmp / f"{name}-{b}.csv"
                runs[b].append(_timed(b, ["scan", "-q", "-w", str(wl), *extra, str(clip)], rows))
        result = {b: _summary(runs[b]) for b in backends}
        same = (tmp / f"{name}-dlib.csv").read_text() == (
            tmp / f"{name}-onnxruntime.csv"
        ).read_text()
        result["speedup"] = result["dlib"]["wall_s"] / result["onnxruntime"]["wall_s"]
        result["same_rows"] = same
        out[name] = result
        print(name, json.dumps(result), flush=True)

    scans("hamilton_hog", CLIPS["hamilton"], args.repeat)
    if args.street_times:
        long_clip = tmp / f"street-x{args.street_times}.mp4"
        concat_clip(CLIPS["street"], args.street_times, long_clip)
        scans(f"street_x{args.street_times}_hog", long_clip, 2)
    if not args.skip_cnn_scan:
        scans("hamilton_cnn", CLIPS["hamilton"], 1, "--model", "cnn")
    if args.photos:
        folder = tmp / "photos"
        folder.mkdir()
        people = sorted((DATA / "lfw-dev").iterdir())
        n = 0
        for person in people:
            for photo in sorted(person.iterdir())[:2]:
                if n < args.photos:
                    os.symlink(photo, folder / photo.name)  # Name_Surname_0001.jpg
                    n += 1
        result = {}
        for b in backends:
            r = _timed(b, ["enroll", "-q", "-w", str(tmp / f"enrol-{b}.db"), str(folder)])
            r["photos_per_s"] = n / r["wall_s"]
            result[b] = r
        result["speedup"] = result["onnxruntime"]["photos_per_s"] / result["dlib"]["photos_per_s"]
        out["enroll"] = result
        print("enroll", json.dumps(result), flush=True)
    return out


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    walls = sorted(r["wall_s"] for r in runs)
    middle = min(runs, key=lambda r: abs(r["wall_s"] - statistics.median(walls)))
    return {**middle, "wall_min_s": walls[0], "wall_max_s": walls[-1], "runs": len(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--street-times", type=int, default=8)
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--skip-cnn-scan", action="store_true")
    parser.add_argument("--skip-networks", action="store_true")
    parser.add_argument("--skip-commands", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"needs the shared data at {DATA}")
    import dlib
    import onnxruntime

    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "dlib": f"{dlib.__version__} BLAS {dlib.DLIB_USE_BLAS}",
        "onnxruntime": onnxruntime.__version__,
    }
    # Commands first: a child's peak RSS counts from the fork, so this process must not have
    # grown yet (dlib's CNN takes ~1 GB).
    if not args.skip_commands:
        with tempfile.TemporaryDirectory() as folder:
            results["commands"] = commands(args, Path(folder))
    if not args.skip_networks:
        results["networks"] = networks(args.repeat)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
