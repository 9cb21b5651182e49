"""Read a .tflite flatbuffer without TensorFlow: operators, metadata entries, tensor types."""

from __future__ import annotations

import json
from typing import Any

from flatbuffers import table
from flatbuffers.number_types import (
    Float32Flags,
    Int8Flags,
    Int32Flags,
    Int64Flags,
    Uint8Flags,
    Uint32Flags,
)

from host.errors import HilnasError

METADATA_NAME = "hilnas"

# Model table field slots (schema.fbs): version 0, operator_codes 1, subgraphs 2,
# description 3, buffers 4, metadata_buffer 5, metadata 6.
_MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 1, 2, 4, 6
_TENSOR_TYPES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    9: "int8",
    7: "int16",
    10: "float64",
}


class InvalidModel(HilnasError):
    """The bytes are not a TFLite model."""


def _root(buf: bytes) -> table.Table:
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise InvalidModel("not a TFLite model (no TFL3 identifier)")
    import flatbuffers.encode as enc
    from flatbuffers.packer import uoffset

    pos = enc.Get(uoffset, buf, 0)
    return table.Table(bytearray(buf), pos)


def _field(t: table.Table, slot: int) -> int:
    return int(t.Offset(4 + 2 * slot))


def _vector(t: table.Table, slot: int) -> list[table.Table]:
    o = _field(t, slot)
    if not o:
        return []
    n = t.VectorLen(o)
    start = t.Vector(o)
    out = []
    for i in range(n):
        x = start + 4 * i
        out.append(table.Table(t.Bytes, t.Indirect(x)))
    return out


def _string(t: table.Table, slot: int) -> str | None:
    o = _field(t, slot)
    return t.String(o + t.Pos).decode("utf-8") if o else None


def _scalar(t: table.Table, slot: int, flags: Any, default: int = 0) -> int:
    o = _field(t, slot)
    return int(t.Get(flags, o + t.Pos)) if o else default


def _buffer_bytes(buf: bytes, model: table.Table, index: int) -> bytes:
    buffers = _vector(model, _MODEL_BUFFERS)
    b = buffers[index]
    o = _field(b, 0)
    if not o:
        return b""
    start = b.Vector(o)
    return bytes(buf[start : start + b.VectorLen(o)])


def model_ops(buf: bytes) -> list[str]:
    """Return the operator names the model uses (builtin names, or custom codes)."""
    model = _root(buf)
    names = []
    for oc in _vector(model, _MODEL_OPCODES):
        custom = _string(oc, 1)
        code = max(_scalar(oc, 0, Int8Flags), _scalar(oc, 3, Int32Flags))
        names.append(
            custom if custom else _BUILTIN_OPS[code] if code < len(_BUILTIN_OPS) else str(code)
        )
    return names


def metadata_entries(buf: bytes) -> dict[str, bytes]:
    """Return the model's metadata entries: name -> raw buffer content."""
    model = _root(buf)
    out = {}
    for md in _vector(model, _MODEL_METADATA):
        name = _string(md, 0) or ""
        out[name] = _buffer_bytes(buf, model, _scalar(md, 1, Uint32Flags))
    return out


def read_metadata(buf: bytes, name: str = METADATA_NAME) -> dict[str, Any]:
    """Return hilnas's JSON metadata stored in the model ({} when there is none)."""
    raw = metadata_entries(buf).get(name)
    if not raw:
        return {}
    try:
        data = json.loads(raw.rstrip(b"\x00").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModel(f"metadata entry {name!r} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidModel(f"metadata entry {name!r} is not a JSON object")
    return data


def _numbers(t: table.Table, slot: int, flags: Any, size: int) -> list[Any]:
    o = _field(t, slot)
    if not o:
        return []
    start = t.Vector(o)
    return [t.Get(flags, start + size * i) for i in range(t.VectorLen(o))]


def io_tensors(buf: bytes) -> dict[str, list[dict[str, Any]]]:
    """The first subgraph's inputs and outputs: shape, element type, and quantization.

    Each tensor is `{"shape": [...], "dtype": "int8", "scale": s, "zero_point": z}` (scale 0
    and zero point 0 for a tensor that is not quantized), which is what a host needs to
    quantize windows for a device's Validate and to read its outputs back.
    """
    model = _root(buf)
    sg = _vector(model, _MODEL_SUBGRAPHS)[0]
    tensors = _vector(sg, 0)

    def describe(i: int) -> dict[str, Any]:
        t = tensors[i]
        code = _scalar(t, 1, Uint8Flags)
        scale, zero = 0.0, 0
        q = _field(t, 4)
        if q:
            qt = table.Table(t.Bytes, t.Indirect(q + t.Pos))
            scales = _numbers(qt, 2, Float32Flags, 4)
            zeros = _numbers(qt, 3, Int64Flags, 8)
            scale = float(scales[0]) if scales else 0.0
            zero = int(zeros[0]) if zeros else 0
        return {
            "shape": [int(d) for d in _numbers(t, 0, Int32Flags, 4)],
            "dtype": _TENSOR_TYPES.get(code, str(code)),
            "scale": scale,
            "zero_point": zero,
        }

    inputs = [int(i) for i in _numbers(sg, 1, Int32Flags, 4)]
    outputs = [int(i) for i in _numbers(sg, 2, Int32Flags, 4)]
    return {"inputs": [describe(i) for i in inputs], "outputs": [describe(i) for i in outputs]}


def io_types(buf: bytes) -> dict[str, list[str]]:
    """Return the element types of the first subgraph's inputs and outputs."""
    return {side: [t["dtype"] for t in tensors] for side, tensors in io_tensors(buf).items()}


_BUILTIN_OPS = (
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
    "EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D "
    "LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU "
    "RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH "
    "CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD "
    "UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB "
    "DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP "
    "TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX "
    "MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV "
    "SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN "
    "FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK "
    "REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE "
    "RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL "
    "REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE "
    "MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 "
    "SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES "
    "CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE "
    "HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE "
    "READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE "
    "RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD "
    "UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST "
    "BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE "
    "STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP "
    "STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM STABLEHLO_CONVOLUTION STABLEHLO_SLICE "
    "STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS STABLEHLO_AND STABLEHLO_COSINE "
    "STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM STABLEHLO_NEGATE "
    "STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT "
    "STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT "
    "STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA "
    "STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE "
    "STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW "
    "STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE "
).split()


def op_outputs(buf: bytes) -> list[tuple[str, list[str]]]:
    """(operator name, names of its output tensors) of each operator of the first subgraph.

    In execution order, so item i is the operator a profile reports as index i. The
    converter names a tensor after the tf-keras layers that produced it
    (`model/conv/BiasAdd;...`), which is how `host.adapt.select` charges an operator's
    measured time to the layer it came from.
    """
    model = _root(buf)
    codes = model_ops(buf)
    sg = _vector(model, _MODEL_SUBGRAPHS)[0]
    tensors = _vector(sg, 0)
    out = []
    for op in _vector(sg, 3):
        code = _scalar(op, 0, Uint32Flags)
        outputs = [int(i) for i in _numbers(op, 2, Int32Flags, 4)]
        names = [(_string(tensors[i], 3) or "") for i in outputs if 0 <= i < len(tensors)]
        out.append((codes[code] if code < len(codes) else str(code), names))
    return out
