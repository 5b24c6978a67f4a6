"""Reading dlib's two face networks from the files dlib serializes them to.

`dlib_face_recognition_resnet_model_v1.dat` (the 128-d encoder) and
`mmod_human_face_detector.dat` (the MMOD CNN detector) are dlib `net_type` objects written
by dlib's `serialize`. This module reads them into a plain list of layers, in the order
they compute (input first), so that `frs_cli.faces.dlib_onnx` can run the same arithmetic on
ONNX Runtime. Only the layouts of these two files are known; anything else raises
`LayoutError` (the caller then uses dlib itself).

The format, as dlib writes it (dlib/serialize.h, dlib/dnn/{core,layers,input,loss}.h):
- an integer is one byte holding its length (0x80 set when negative), then its bytes,
  little-endian; a float or double is two integers, mantissa and base-2 exponent; a
  string is its length then its bytes; a bool is the character '0' or '1';
- a tensor is version 2, four integers (samples, channels, rows, columns) and that many
  little-endian float32 values; an "alias tensor" (a view into the parameters) is
  version 1 and the four integers;
- the network is written from the loss inwards: the loss layer's version (1), the loss's
  own fields, then each layer's version (2 for a layer, 1 for a tag or skip, which carry no
  fields of their own, 3 for the layer sitting on the input), down to the input layer's
  fields; after that, coming back out, each layer's own fields followed by three bools and
  three (empty) tensors of training state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class LayoutError(ValueError):
    """The file is not a network of a layout this module knows (or it is damaged)."""


@dataclass(frozen=True)
class Layer:
    """One step of the computation. `kind` is one of: input, con, affine, relu, max_pool,
    avg_pool, add_prev, fc, mark (a dlib tag or skip: which one follows from where it
    stands; see `residual_marks`)."""

    kind: str
    ints: tuple[int, ...] = ()
    floats: tuple[float, ...] = ()
    weights: tuple[np.ndarray, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Network:
    loss: str  # "loss_metric_2" or "loss_mmod_"
    layers: tuple[Layer, ...]
    # loss_mmod_: detector window width and height, then the non-maximum suppression test
    # (IoU threshold, share-covered threshold)
    window: tuple[int, int] = (0, 0)
    nms: tuple[float, float] = (0.0, 0.0)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise LayoutError("the file ends early (truncated?)")

    def integer(self) -> int:
        self._need(1)
        head = self.data[self.pos]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise LayoutError(f"bad integer at byte {self.pos}")
        self._need(1 + size)
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        if abs(exponent) > 2000:
            raise LayoutError("a special floating-point value where a number was expected")
        return float(mantissa * 2.0**exponent)

    def string(self, limit: int = 64) -> str:
        size = self.integer()
        if not 0 <= size <= limit:
            raise LayoutError(f"bad string length {size} at byte {self.pos}")
        self._need(size)
        raw = self.data[self.pos : self.pos + size]
        self.pos += size
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as err:
            raise LayoutError("bad string") from err

    def boolean(self) -> bool:
        self._need(1)
        char = self.data[self.pos : self.pos + 1]
        self.pos += 1
        if char not in (b"0", b"1"):
            raise LayoutError(f"bad bool at byte {self.pos - 1}")
        return char == b"1"

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise LayoutError("unknown tensor version")
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape):
            raise LayoutError("negative tensor size")
        count = shape[0] * shape[1] * shape[2] * shape[3]
        self._need(4 * count)
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        if self.integer() != 1:
            raise LayoutError("unknown alias tensor version")
        a, b, c, d = (self.integer() for _ in range(4))
        return a, b, c, d


def parse(data: bytes) -> Network:
    """The network serialized in `data`. Raises LayoutError for anything else."""
    r = _Reader(data)
    if r.integer() != 1:
        raise LayoutError("not a dlib network with a loss layer")
    loss = r.string()
    window = (0, 0)
    nms = (0.0, 0.0)
    if loss == "loss_metric_2":
        r.real()  # margin
        r.real()  # distance threshold (training only)
    elif loss == "loss_mmod_":
        if r.integer() != 1:
            raise LayoutError("unknown MMOD options version (only one detector window known)")
        window = (r.integer(), r.integer())
        for _ in range(3):  # losses per false alarm / missed target, truth-match IoU
            r.real()
        nms = (r.real(), r.real())
        r.real()  # the ignore test: training only
        r.real()
    else:
        raise LayoutError(f"unknown loss layer {loss!r}")
    layers = _net(r, depth=0)
    if r.pos != len(data):
        raise LayoutError(f"{len(data) - r.pos} bytes left after the network")
    return Network(loss, tuple(layers), window, nms)


def _net(r: _Reader, depth: int) -> list[Layer]:
    if depth > 400:  # the encoder is 131 layers deep; Python's own limit is near 1000
        raise LayoutError("network too deep")
    version = r.integer()
    if version == 1:  # a tag or a skip
        inner = _net(r, depth + 1)
        return [*inner, Layer("mark")]
    if version == 2:
        inner = _net(r, depth + 1)
    elif version == 3:
        inner = [_input(r)]
    else:
        raise LayoutError(f"unknown layer version {version}")
    layer = _details(r)
    for _ in range(3):
        r.boolean()
    for _ in range(3):
        if r.tensor().size:
            raise LayoutError("training state where none was expected")
    if version == 3 and r.integer() != 1:  # the input's sample expansion factor
        raise LayoutError("an input layer that expands samples")
    return [*inner, layer]


def _input(r: _Reader) -> Layer:
    name = r.string()
    avg = (r.real(), r.real(), r.real())
    if name == "input_rgb_image_sized":
        return Layer("input", (r.integer(), r.integer()), avg)
    if name == "input_rgb_image_pyramid":
        return Layer("input", (0, 0, 10, 11), avg)  # dlib's default paddings
    if name == "input_rgb_image_pyramid2":
        return Layer("input", (0, 0, r.integer(), r.integer()), avg)
    raise LayoutError(f"unknown input layer {name!r}")


def _details(r: _Reader) -> Layer:
    name = r.string()
    if name == "con_4":
        params = r.tensor().ravel()
        filters, rows, cols, sy, sx, py, px = (r.integer() for _ in range(7))
        shape = r.alias()
        bias_shape = r.alias()
        for _ in range(4):
            r.real()
        f, c, kr, kc = shape
        if (f, kr, kc) != (filters, rows, cols) or bias_shape[:2] != (1, filters):
            raise LayoutError("unexpected convolution shape")
        if params.size != f * c * kr * kc + f:
            raise LayoutError("convolution parameters of the wrong size")
        w = params[: f * c * kr * kc].reshape(f, c, kr, kc)
        return Layer("con", (sy, sx, py, px), (), (w, params[f * c * kr * kc :]))
    if name == "affine_":
        params = r.tensor().ravel()
        gamma = r.alias()
        beta = r.alias()
        mode = r.integer()
        n = _count(gamma)
        if mode != 0 or _count(beta) != n or params.size != 2 * n:
            raise LayoutError("unexpected affine layer")
        return Layer("affine", (), (), (params[:n], params[n:]))
    if name == "bn_con2":  # batch normalization, applied as dlib does: an affine layer
        params = r.tensor().ravel()
        gamma = r.alias()
        r.alias()
        for _ in range(2):  # training-time means and inverse deviations
            r.tensor()
        means = r.tensor().ravel()
        variances = r.tensor().ravel()
        r.integer()
        r.integer()
        for _ in range(4):
            r.real()
        eps = r.real()
        n = _count(gamma)
        if params.size != 2 * n or means.size != n or variances.size != n:
            raise LayoutError("unexpected batch normalization layer")
        scale = params[:n] / np.sqrt(variances + np.float32(eps))
        shift = params[n:] - scale * means
        return Layer("affine", (), (), (scale.astype(np.float32), shift.astype(np.float32)))
    if name == "relu_":
        return Layer("relu")
    if name == "add_prev_":
        return Layer("add_prev")
    if name in ("max_pool_2", "avg_pool_2"):
        rows, cols, sy, sx, py, px = (r.integer() for _ in range(6))
        return Layer(name[:8], (rows, cols, sy, sx, py, px))
    if name in ("fc_2", "fc_3"):
        outputs = r.integer()
        inputs = r.integer()
        params = r.tensor().ravel()
        weights_shape = r.alias()
        r.alias()  # the bias's
        no_bias = r.integer() == 1
        for _ in range(4):
            r.real()
        if name == "fc_3":
            no_bias = not r.boolean() or no_bias
        if weights_shape[:2] != (inputs, outputs) or params.size != inputs * outputs + (
            0 if no_bias else outputs
        ):
            raise LayoutError("unexpected fully connected layer")
        weights = params[: inputs * outputs].reshape(inputs, outputs)
        bias = np.zeros(outputs, np.float32) if no_bias else params[inputs * outputs :]
        return Layer("fc", (inputs, outputs), (), (weights, bias))
    raise LayoutError(f"unknown layer {name!r}")


def _count(shape: tuple[int, int, int, int]) -> int:
    return shape[0] * shape[1] * shape[2] * shape[3]


def read(path: str) -> Network:
    with open(path, "rb") as f:
        return parse(f.read())
