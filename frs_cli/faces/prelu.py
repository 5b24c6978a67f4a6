"""ArcFace's encoder with its PRelu activations written as Relu(x) + (-a) * Relu(-x).

The two are the same numbers bit for bit, whatever the slope a: for x >= 0 the second term
is a zero and x + 0 is x; for x < 0 the first is 0 and (-a) * (-x) rounds to exactly what
a * x does (rounding is symmetric in sign), as does 0 + a * x. ONNX Runtime's CPU PRelu
broadcasts its per-channel slope slowly and keeps its tensors out of the blocked memory
layout the convolutions use: it was 37% of this encoder's time. Relu, Add and Mul by a
per-channel constant stay in that layout (the runtime turns the products into 1x1
convolutions), and a face costs 12 ms instead of 17.7 (docs/performance.md, issue 38).
Max(x, a * x), equal only where a <= 1, measured 12.8 ms: Max leaves the blocked layout.

The model is edited in its protobuf encoding, a few fields deep, because importing the
`onnx` package takes 0.7 s, more than the edit saves in a short scan. The fields used (all
in onnx.proto since its first versions): ModelProto.graph 7; GraphProto.node 1 and
initializer 5; NodeProto.input 1, output 2, op_type 4; TensorProto.dims 1, data_type 2,
float_data 4, name 8, raw_data 9. A model this cannot read, or whose slopes are not float32
numbers stored in it, is returned unchanged.
"""

from __future__ import annotations

import numpy as np

FLOAT = 1  # TensorProto.DataType.FLOAT
LEN = 2  # the wire type of a length-delimited field


class _Unknown(ValueError):
    """Bytes this reader does not follow."""


Bytes = bytes | memoryview


def _varint(data: Bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Unknown("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: Bytes) -> list[tuple[int, int, int, int, int]]:
    """Each field of a message: (number, wire type, start, value start, end)."""
    found = []
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _varint(data, pos)
        elif wire == 1:
            end = pos + 8
        elif wire == LEN:
            size, pos = _varint(data, pos)
            end = pos + size
        elif wire == 5:
            end = pos + 4
        else:
            raise _Unknown(f"wire type {wire}")
        if end > len(data):
            raise _Unknown("truncated field")
        found.append((number, wire, start, pos, end))
        pos = end
    return found


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | LEN) + _encode_varint(len(payload)) + payload


def _strings(data: Bytes, number: int) -> list[str]:
    return [
        bytes(data[v:e]).decode() for n, w, _, v, e in _fields(data) if n == number and w == LEN
    ]


def _tensor(data: Bytes) -> tuple[str, list[int], np.ndarray | None]:
    """A TensorProto's name, dimensions and values, where they are float32 (else None)."""
    name, kind, dims, values = "", 0, [], None
    for n, w, _, v, e in _fields(data):
        if n == 8 and w == LEN:
            name = bytes(data[v:e]).decode()
        elif n == 2 and w == 0:
            kind = _varint(data, v)[0]
        elif n == 1 and w == 0:
            dims.append(_varint(data, v)[0])
        elif n == 1 and w == LEN:  # packed
            pos = v
            while pos < e:
                dim, pos = _varint(data, pos)
                dims.append(dim)
        elif n in (4, 9) and w == LEN:
            values = np.frombuffer(data[v:e], "<f4")
    if kind != FLOAT or values is None or values.size != int(np.prod(dims)):
        return name, dims, None
    return name, dims, values


def _initializer(name: str, dims: list[int], values: np.ndarray) -> bytes:
    body = b"".join(_encode_varint(1 << 3) + _encode_varint(d) for d in dims)
    body += _encode_varint(2 << 3) + _encode_varint(FLOAT)
    body += _field(8, name.encode()) + _field(9, np.asarray(values, "<f4").tobytes())
    return _field(5, body)


def _node(inputs: list[str], outputs: list[str], op: str) -> bytes:
    body = b"".join(_field(1, s.encode()) for s in inputs)
    body += b"".join(_field(2, s.encode()) for s in outputs)
    return _field(1, body + _field(4, op.encode()))


def without_prelu(model: bytes) -> bytes:
    """The model with every PRelu written as Relu(x) + (-a) * Relu(-x) (see above), or
    unchanged."""
    try:
        return _rewrite(model)
    except (_Unknown, UnicodeDecodeError, ValueError):
        return model


def _rewrite(model: bytes) -> bytes:
    graphs = [f for f in _fields(model) if f[0] == 7 and f[1] == LEN]
    if len(graphs) != 1:
        return model
    _, _, g_start, g_value, g_end = graphs[0]
    graph = memoryview(model)[g_value:g_end]  # read in place: the model is 13 MB
    parts = _fields(graph)
    tensors = {t[0]: t for t in (_tensor(graph[v:e]) for n, w, _, v, e in parts if n == 5)}
    pieces: list[Bytes] = []
    changed = 0
    for n, w, start, v, e in parts:
        body = graph[v:e]
        if n != 1 or w != LEN or _strings(body, 4) != ["PRelu"]:
            pieces.append(graph[start:e])
            continue
        (x, a), outputs = _strings(body, 1), _strings(body, 2)
        _, dims, slope = tensors.get(a, ("", [], None))
        if slope is None or len(outputs) != 1:
            return model
        y = outputs[0]
        p = y + "/frs_"
        pieces += [
            _initializer(p + "minus_one", dims, np.full_like(slope, -1.0)),
            _initializer(p + "minus_slope", dims, -slope),
            _node([x], [p + "pos"], "Relu"),
            _node([x, p + "minus_one"], [p + "neg"], "Mul"),
            _node([p + "neg"], [p + "neg_pos"], "Relu"),
            _node([p + "neg_pos", p + "minus_slope"], [p + "scaled"], "Mul"),
            _node([p + "pos", p + "scaled"], [y], "Add"),
        ]
        changed += 1
    if not changed:
        return model
    size = sum(len(p) for p in pieces)
    head = _encode_varint(7 << 3 | LEN) + _encode_varint(size)
    return b"".join([memoryview(model)[:g_start], head, *pieces, memoryview(model)[g_end:]])
