"""dlib's face encoder and MMOD CNN detector, run on ONNX Runtime.

The layers `frs_cli.faces.dlib_dnn` reads from dlib's files become an ONNX graph (built with the
`onnx` package at first use, then cached in the cache folder keyed by the weights' hash),
run by ONNX Runtime on the CPU with one thread per process (the pools already use every
core). Everything around the networks is done here as dlib does it, so that the results
are dlib's: the encoder's input chip comes from dlib itself (`get_face_chip`, the same
call `compute_face_descriptor` makes); the detector's tiled image pyramid, the mapping of
its output back to the image and its non-maximum suppression follow dlib's code
(dlib/dnn/input.h, dlib/image_transforms/image_pyramid.h, dlib/dnn/loss.h).

Measured agreement and speed: docs/performance.md ("dlib's networks on ONNX Runtime").
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli import files
from frs_cli.faces.dlib_dnn import Layer, LayoutError, Network, read

# Part of the cache key: a change to how graphs are built must not reuse old files.
GRAPH_VERSION = 1
OPSET = 17


# -- graphs ------------------------------------------------------------------------------
class _Graph:
    """Collects ONNX nodes and initializers while the layers are walked."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out


def _normalise(g: _Graph, net: Network, pixels: str) -> str:
    """uint8 NHWC pixels -> dlib's input tensor: (value - channel mean) / 256, NCHW."""
    avg = np.asarray(net.layers[0].floats, np.float32).reshape(1, 3, 1, 1)
    x = g.op("Cast", [pixels], to=1)
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    x = g.op("Sub", [x, g.const(avg)])
    return g.op("Mul", [x, g.const(np.asarray(1 / 256, np.float32))])


def _body(g: _Graph, layers: tuple[Layer, ...], x: str, shape: tuple[int, int, int] | None) -> str:
    """The layers after the input, from tensor `x` of (channels, rows, columns) `shape`
    (None where rows and columns vary: then no layer may need them)."""
    tags: list[tuple[str, tuple[int, int, int] | None]] = []
    previous = ""
    i = 0
    while i < len(layers):
        layer = layers[i]
        kind = layer.kind
        if kind == "con":
            w, b = layer.weights
            if i + 1 < len(layers) and layers[i + 1].kind == "affine":  # fold it in
                scale, shift = layers[i + 1].weights
                w = w * scale[:, None, None, None]
                b = b * scale + shift
                i += 1
            sy, sx, py, px = layer.ints
            x = g.op(
                "Conv",
                [x, g.const(w.astype(np.float32), "w"), g.const(b.astype(np.float32), "b")],
                kernel_shape=list(w.shape[2:]),
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            if shape is not None:
                shape = (
                    w.shape[0],
                    1 + (shape[1] + 2 * py - w.shape[2]) // sy,
                    1 + (shape[2] + 2 * px - w.shape[3]) // sx,
                )
        elif kind == "affine":
            scale, shift = layer.weights
            x = g.op("Mul", [x, g.const(scale.reshape(1, -1, 1, 1))])
            x = g.op("Add", [x, g.const(shift.reshape(1, -1, 1, 1))])
        elif kind == "relu":
            x = g.op("Relu", [x])
        elif kind in ("max_pool", "avg_pool"):
            rows, cols, sy, sx, py, px = layer.ints
            if rows == 0 and cols == 0 and kind == "avg_pool":
                x = g.op("GlobalAveragePool", [x])
                shape = None if shape is None else (shape[0], 1, 1)
            else:
                if rows == 0 or cols == 0:
                    raise LayoutError("a pooling over a whole dimension")
                x = g.op(
                    "MaxPool" if kind == "max_pool" else "AveragePool",
                    [x],
                    kernel_shape=[rows, cols],
                    strides=[sy, sx],
                    pads=[py, px, py, px],
                )
                if shape is not None:
                    shape = (
                        shape[0],
                        1 + (shape[1] + 2 * py - rows) // sy,
                        1 + (shape[2] + 2 * px - cols) // sx,
                    )
        elif kind == "mark":
            # dlib's tags name a tensor; a skip makes a tagged tensor current again. In a
            # residual block a single mark is a tag; a mark right after another one (tag2,
            # then skip1) goes back to the tensor tagged before that.
            if previous == "mark":
                if len(tags) < 2:
                    raise LayoutError("a skip with nothing to go back to")
                x, shape = tags[-2]
            else:
                tags.append((x, shape))
        elif kind == "add_prev":
            if not tags or shape is None:
                raise LayoutError("an addition with no tagged tensor")
            other, other_shape = tags[-1]
            tags.clear()
            assert other_shape is not None
            x, shape = _add_padded(g, x, shape, other, other_shape)
        elif kind == "fc":
            weights, bias = layer.weights
            x = g.op("Flatten", [x], axis=1)
            x = g.op("MatMul", [x, g.const(weights, "w")])
            if bias.any():
                x = g.op("Add", [x, g.const(bias, "b")])
            shape = None
        else:
            raise LayoutError(f"a {kind} layer where it was not expected")
        previous = kind
        i += 1
    return x


def _add_padded(
    g: _Graph, a: str, sa: tuple[int, int, int], b: str, sb: tuple[int, int, int]
) -> tuple[str, tuple[int, int, int]]:
    """dlib's add_prev: the output is as large as the larger input in every dimension, the
    smaller one padded with zeros after its end."""
    out = (max(sa[0], sb[0]), max(sa[1], sb[1]), max(sa[2], sb[2]))

    def grown(x: str, s: tuple[int, int, int]) -> str:
        if s == out:
            return x
        pads = np.asarray([0, 0, 0, 0, 0, out[0] - s[0], out[1] - s[1], out[2] - s[2]])
        return g.op("Pad", [x, g.const(pads.astype(np.int64), "pads")])

    return g.op("Add", [grown(a, sa), grown(b, sb)]), out


def build(net: Network) -> bytes:
    """The ONNX model (serialized) for an encoder or detector network."""
    from onnx import TensorProto, checker, helper

    g = _Graph()
    first = net.layers[0]
    if first.kind != "input":
        raise LayoutError("no input layer")
    if net.loss == "loss_metric_2":
        rows, cols = first.ints
        inp = helper.make_tensor_value_info("chips", TensorProto.UINT8, ["n", rows, cols, 3])
        x = _normalise(g, net, "chips")
        x = _body(g, net.layers[1:], x, (3, rows, cols))
        name = "encodings"
        out = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", None])
    elif net.loss == "loss_mmod_":
        # The pyramid is built outside the graph (numpy), so its input is dlib's tensor.
        inp = helper.make_tensor_value_info("pyramid", TensorProto.FLOAT, [1, 3, "h", "w"])
        x = _body(g, net.layers[1:], "pyramid", None)
        name = "scores"
        out = helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, None, None])
    else:
        raise LayoutError(f"unknown loss {net.loss}")
    g.nodes.append(helper.make_node("Identity", [x], [name]))
    graph = helper.make_graph(g.nodes, "frs_" + net.loss, [inp], [out], g.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="frs"
    )
    model.ir_version = 8
    checker.check_model(model)
    return bytes(model.SerializeToString())


# -- sessions ----------------------------------------------------------------------------
def session(graph: Path) -> Any:
    """An ONNX Runtime session for the graph file, one thread, on the CPU.

    ONNX Runtime's full optimisation (fusions, then a blocked memory layout for this CPU's
    vector width) takes ~50-110 ms per load; the optimised graph is therefore saved beside
    the graph, keyed by the runtime's version and this CPU, and loaded without
    optimising again (~15 ms)."""
    import onnxruntime as ort

    def options(level: Any) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = level
        opts.log_severity_level = 3
        return opts

    providers = ["CPUExecutionProvider"]
    optimised = graph.parent / f"{graph.stem}-ort{ort.__version__}-{_cpu_signature()}.onnx"
    if optimised.is_file():
        with contextlib.suppress(Exception):  # damaged: optimise again below
            return ort.InferenceSession(
                str(optimised), options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL), providers
            )
    opts = options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    tmp = None
    with contextlib.suppress(OSError):  # a read-only cache: run without saving
        tmp = files.reserve(optimised)
        opts.optimized_model_filepath = str(tmp)
    sess = ort.InferenceSession(str(graph), opts, providers)
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.replace(tmp, optimised)
    return sess


@functools.cache
def _cpu_signature() -> str:
    """Names this CPU's model and instruction set (an optimised graph is only for it)."""
    text = platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            lines = f.read().split("\n\n", 1)[0].splitlines()
        text += "".join(line for line in lines if line.startswith(("model name", "flags")))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- the encoder ---------------------------------------------------------------------------
class Encoder:
    """128-d encodings of 150x150 face chips, as dlib's network computes them."""

    def __init__(self, graph: Path) -> None:
        self.session = session(graph)
        rows, cols = self.session.get_inputs()[0].shape[1:3]
        self.size = (int(rows), int(cols))

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        """float32[n, 128] for uint8 chips[n, rows, cols, 3]."""
        if len(chips) == 0:
            return np.empty((0, 128), np.float32)
        out = self.session.run(None, {"chips": np.ascontiguousarray(chips, np.uint8)})[0]
        return np.asarray(out, np.float32)


# -- the MMOD detector -------------------------------------------------------------------
@dataclass(frozen=True)
class _Rect:  # dlib's rectangle: inclusive corners
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)


def _pyramid_rects(nr: int, nc: int, padding: int, outer: int) -> tuple[list[_Rect], int, int]:
    """Where each level of dlib's pyramid_down<6> lies in its tiled pyramid image, and
    that image's rows and columns (dlib's compute_tiled_image_pyramid_details)."""
    if nr * nc == 0:
        return [], 0, 0
    sizes = [(nr, nc)]
    while True:
        nr, nc = math.floor(5 / 6 * nr), math.floor(5 / 6 * nc)
        if nr * nc == 0 or nr < 5:
            break
        sizes.append((nr, nc))
    total = sum(h + padding for h, _ in sizes) - 2 * padding
    first_h, first_w = sizes[0]
    height = 0
    prev_w = 0
    for h, w in sizes:
        if w <= first_w - prev_w - padding and (height - first_h) * 2 >= total - first_h:
            break
        height += h + padding
        prev_w = w
    height -= padding
    rects: list[_Rect] = []
    y = outer
    i = 0
    while y < height + outer and i < len(sizes):
        h, w = sizes[i]
        rects.append(_Rect(outer, y, outer + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    while i < len(sizes):
        h, w = sizes[i]
        right, bottom = outer + first_w - 1, y - 1
        rect = _Rect(right - (w - 1), bottom - (h - 1), right, bottom)
        r0 = rects[0]
        if not (
            rect.right < r0.left
            or rect.left > r0.right
            or rect.bottom < r0.top
            or rect.top > r0.bottom
        ):
            break
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, height + 2 * outer, first_w + 2 * outer


def _resize_bilinear(src: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib's tt::resize_bilinear (corners aligned), in float32 as dlib computes it:
    (1-ty) * ((1-tx) * top-left + tx * top-right) + ty * ((1-tx) * bottom-left + tx *
    bottom-right). The inner interpolations are done once per source row (every output row
    reads two of them), the same arithmetic in fewer operations."""
    snr, snc = src.shape[1:]
    ys = np.float32(snr - 1) / np.float32(max(rows - 1, 1))
    xs = np.float32(snc - 1) / np.float32(max(cols - 1, 1))
    y = np.arange(rows, dtype=np.float32) * ys
    x = np.arange(cols, dtype=np.float32) * xs
    top = np.floor(y).astype(np.intp)
    left = np.floor(x).astype(np.intp)
    bottom = np.minimum(top + 1, snr - 1)
    right = np.minimum(left + 1, snc - 1)
    ty = (y - top.astype(np.float32))[None, :, None]
    tx = (x - left.astype(np.float32))[None, None, :]
    one = np.float32(1)
    used = np.unique(np.concatenate([top, bottom]))  # source rows read
    inner = src[:, used]
    across = (one - tx) * inner[:, :, left] + tx * inner[:, :, right]
    where = np.searchsorted(used, top), np.searchsorted(used, bottom)
    return (one - ty) * across[:, where[0]] + ty * across[:, where[1]]


class Detector:
    """dlib's MMOD CNN face detector (`cnn_face_detection_model_v1`, no upsampling)."""

    def __init__(self, path: Path, graph: Path) -> None:
        self.net = read(str(path))
        self.session = session(graph)
        if self.net.loss != "loss_mmod_":
            raise LayoutError("not an MMOD detector network")
        first = self.net.layers[0]
        self.avg = np.asarray(first.floats, np.float32).reshape(3, 1, 1)
        self.padding, self.outer = first.ints[2], first.ints[3]
        # dlib maps an output position back through each layer to the input tensor:
        # p -> p * stride - padding + kernel // 2, from the last layer to the first.
        self.steps = [
            (layer.ints[0], layer.ints[2], layer.weights[0].shape[2] // 2)
            for layer in reversed(self.net.layers)
            if layer.kind == "con"
        ]
        if any(layer.ints[0] != layer.ints[1] for layer in self.net.layers if layer.kind == "con"):
            raise LayoutError("unequal strides")

    def pyramid(self, image: np.ndarray) -> tuple[np.ndarray, list[_Rect]]:
        """dlib's input tensor for an RGB (or grey) uint8 image: the image and its
        pyramid_down<6> levels tiled into one, normalised, zero between them."""
        nr, nc = image.shape[:2]
        rects, rows, cols = _pyramid_rects(nr, nc, self.padding, self.outer)
        data = np.zeros((3, rows, cols), np.float32)
        r0 = rects[0]
        pixels = np.asarray(image, np.float32)
        # A grey image is used as dlib's Python API uses it: the same value in R, G and B.
        planes = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        data[:, r0.top : r0.bottom + 1, r0.left : r0.right + 1] = (planes - self.avg) / np.float32(
            256
        )
        for prev, rect in zip(rects, rects[1:], strict=False):
            src = data[:, prev.top : prev.bottom + 1, prev.left : prev.right + 1]
            data[:, rect.top : rect.bottom + 1, rect.left : rect.right + 1] = _resize_bilinear(
                src, rect.height, rect.width
            )
        return data[None], rects

    def __call__(
        self, image: np.ndarray, threshold: float = 0.0
    ) -> list[tuple[tuple[int, int, int, int], float]]:
        """((left, top, right, bottom) inclusive, confidence) per face, best first."""
        if image.shape[0] < 1 or image.shape[1] < 1:
            return []
        tensor, rects = self.pyramid(image)
        scores = self.session.run(None, {"pyramid": tensor})[0][0, 0]
        rs, cs = np.nonzero(scores > threshold)
        found: list[tuple[float, _Rect]] = []
        width, height = self.net.window
        for r, c in zip(rs.tolist(), cs.tolist(), strict=True):
            x, y = float(c), float(r)
            for stride, pad, half in self.steps:
                x = x * stride - pad + half
                y = y * stride - pad + half
            w, h = width - 1.0, height - 1.0
            box = _to_image(rects, (x - w / 2, y - h / 2, x + w / 2, y + h / 2))
            found.append((float(scores[r, c]), box))
        found.sort(key=lambda d: d[0], reverse=True)
        kept: list[tuple[float, _Rect]] = []
        iou, covered = self.net.nms
        for score, box in found:
            if not any(_overlaps(k, box, iou, covered) for _, k in kept):
                kept.append((score, box))
        return [((b.left, b.top, b.right, b.bottom), s) for s, b in kept]


def _to_image(rects: list[_Rect], r: tuple[float, float, float, float]) -> _Rect:
    """dlib's tiled_pyramid_to_image for pyramid_down<6>, then rounded to a rectangle."""
    cx, cy = _round((r[0] + r[2]) / 2), _round((r[1] + r[3]) / 2)
    best, best_d = 0, math.inf
    for i, q in enumerate(rects):
        if q.left <= cx <= q.right and q.top <= cy <= q.bottom:
            best = i
            break
        nx = min(max(cx, q.left), q.right)
        ny = min(max(cy, q.top), q.bottom)
        d = math.hypot(nx - cx, ny - cy)
        if d < best_d:
            best, best_d = i, d
    origin = rects[best]
    coords = [r[0] - origin.left, r[1] - origin.top, r[2] - origin.left, r[3] - origin.top]
    for _ in range(best):
        coords = [v * 1.2 + 0.3 for v in coords]  # point_up: p * (6 / 5.0) + 0.3
    return _Rect(*(_round(v) for v in coords))


def _round(v: float) -> int:
    """To the nearest integer, halves away from zero (std::round, as dlib converts a
    drectangle to a rectangle: a box reaching above the image at -7.5 becomes -8)."""
    whole = math.floor(abs(v) + 0.5)
    return -whole if v < 0 else whole


def _overlaps(a: _Rect, b: _Rect, iou: float, covered: float) -> bool:
    """dlib's test_box_overlap: IoU against the box around both, or either one covered."""
    inner = _Rect(
        max(a.left, b.left), max(a.top, b.top), min(a.right, b.right), min(a.bottom, b.bottom)
    ).area()
    if inner == 0:
        return False
    outer = _Rect(
        min(a.left, b.left), min(a.top, b.top), max(a.right, b.right), max(a.bottom, b.bottom)
    ).area()
    return inner / outer > iou or inner / a.area() > covered or inner / b.area() > covered
