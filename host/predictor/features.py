"""Per-operator features of a .tflite model, read from its flatbuffer (no interpreter).

One `OpFeatures` per operator of the main subgraph, in execution order, so that
`OpTiming.index` of a device's Profile is the index into the list. The rules:

MACs (multiply-accumulates; for non-MAC operators the "work" count the regressors use):

    CONV_2D                 out_elements * Kh * Kw * Ci          (weights [Co, Kh, Kw, Ci])
    DEPTHWISE_CONV_2D       out_elements * Kh * Kw               (weights [1, Kh, Kw, Co])
    CONV_3D                 out_elements * Kd * Kh * Kw * Ci     (weights [Kd, Kh, Kw, Ci, Co])
    TRANSPOSE_CONV          in_elements * Kh * Kw * Co           (weights [Co, Kh, Kw, Ci])
    FULLY_CONNECTED         rows * out * in                      (weights [out, in])
    BATCH_MATMUL            out_elements * K                     (K: the contracted axis)
    UNIDIRECTIONAL_SEQUENCE_LSTM   B * T * 4H * (I + H)          (input [B, T, I])
    BIDIRECTIONAL_SEQUENCE_LSTM    2 * B * T * 4H * (I + H)
    UNIDIRECTIONAL_SEQUENCE_RNN    B * T * H * (I + H)
    LSTM (one step)         B * 4H * (I + H)
    SVDF                    B * (units*rank) * (I + memory)      (approximately)
    MAX/AVERAGE/L2_POOL_2D  out_elements * filter_h * filter_w   (comparisons or adds)
    MEAN, SUM, REDUCE_*     in_elements                          (one op per element read)
    anything else           the larger of input and output element counts

Bytes moved: the operator's non-constant inputs (activations, states), its outputs and its
constant inputs (weights, biases), each at its element size. Params: elements of the
constant inputs. `steps`: the recurrence length T of sequence operators (0 otherwise).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from device_agent.tflite_schema import operator_name, read_model, rejecting_corrupt, schema

#: TensorType -> bytes per element (schema.fbs order).
ITEMSIZE = {
    0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8,
    13: 4, 14: 8, 15: 2, 16: 1, 17: 1,
}

#: Operators whose cost the MAC count drives.
MAC_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "TRANSPOSE_CONV", "FULLY_CONNECTED",
    "BATCH_MATMUL", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "LSTM", "SVDF",
})
_POOL_OPS = frozenset({"MAX_POOL_2D", "AVERAGE_POOL_2D", "L2_POOL_2D"})
_REDUCE_OPS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY",
                         "REDUCE_ALL"})


@dataclass(frozen=True)
class OpFeatures:
    """What the regressors know of one operator."""

    index: int
    op: str
    input_shapes: tuple[tuple[int, ...], ...]   # non-constant inputs (activations, states)
    output_shapes: tuple[tuple[int, ...], ...]
    weight_shapes: tuple[tuple[int, ...], ...]  # constant inputs
    dtype: str                                   # element type of the first input
    macs: int
    in_bytes: int
    out_bytes: int
    weight_bytes: int
    params: int
    out_elements: int
    kernel_area: int      # Kh*Kw (convolutions, pools), else 1
    c_in: int             # innermost dimension of the first input
    c_out: int            # innermost dimension of the first output
    steps: int            # recurrence length (sequence operators), else 0

    @property
    def bytes_moved(self) -> int:
        return self.in_bytes + self.out_bytes + self.weight_bytes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpFeatures:
        d = dict(data)
        for key in ("input_shapes", "output_shapes", "weight_shapes"):
            d[key] = tuple(tuple(int(x) for x in s) for s in d[key])
        return cls(**d)


#: Numeric features the regressors see, in order (log1p-scaled for the tree models).
NUMERIC = ("macs", "in_bytes", "out_bytes", "weight_bytes", "out_elements", "kernel_area",
           "c_in", "c_out", "steps")


def numeric(f: OpFeatures) -> list[float]:
    return [float(getattr(f, k)) for k in NUMERIC]


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(max(d, 1) for d in shape) if shape else 1


_TYPE_NAMES: dict[int, str] | None = None


def _type_name(code: int) -> str:
    global _TYPE_NAMES
    if _TYPE_NAMES is None:
        types = vars(schema().TensorType)
        _TYPE_NAMES = {v: k.lower() for k, v in types.items()
                       if not k.startswith("_") and isinstance(v, int)}
    return _TYPE_NAMES.get(code, str(code))


def op_features(model_bytes: bytes) -> list[OpFeatures]:
    """Features of every operator of the main subgraph (CandidateRejected if unreadable)."""
    with rejecting_corrupt():
        return _op_features(model_bytes)


def _op_features(model_bytes: bytes) -> list[OpFeatures]:
    from device_agent.errors import CandidateRejected

    model = read_model(model_bytes)
    if model.SubgraphsLength() < 1:
        raise CandidateRejected("the model has no subgraph")
    sg = model.Subgraphs(0)
    n_buffers = model.BuffersLength()

    def is_constant(t: Any) -> bool:
        b = t.Buffer()
        if b <= 0 or b >= n_buffers:
            return False
        buf = model.Buffers(b)
        return bool(buf.DataLength() > 0 or buf.Size() > 0)

    def shape(t: Any) -> tuple[int, ...]:
        return tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    out: list[OpFeatures] = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        name = operator_name(model, op)
        in_idx = [int(j) for j in op.InputsAsNumpy()] if op.InputsLength() else []
        out_idx = [int(j) for j in op.OutputsAsNumpy()] if op.OutputsLength() else []
        # Keep positions (-1 = optional input absent): the LSTM's weights are positional.
        positional = [sg.Tensors(j) if j >= 0 else None for j in in_idx]
        acts: list[Any] = []
        weights: list[Any] = []
        for t in positional:
            if t is None:
                continue
            (weights if is_constant(t) and not t.IsVariable() else acts).append(t)
        outs = [sg.Tensors(j) for j in out_idx if j >= 0]

        def nbytes(ts: list[Any]) -> int:
            return sum(int(_numel(shape(t)) * ITEMSIZE.get(int(t.Type()), 1)) for t in ts)

        first_in = shape(positional[0]) if positional and positional[0] is not None else ()
        first_out = shape(outs[0]) if outs else ()
        out_el = sum(_numel(shape(t)) for t in outs)
        in_el = sum(_numel(shape(t)) for t in acts)
        w_shapes = [shape(t) for t in weights]
        macs, k_area, steps = _macs(name, op, positional, first_in, first_out, out_el, in_el,
                                    shape)
        out.append(OpFeatures(
            index=i,
            op=name,
            input_shapes=tuple(shape(t) for t in acts),
            output_shapes=tuple(shape(t) for t in outs),
            weight_shapes=tuple(w_shapes),
            dtype=_type_name(positional[0].Type()) if positional and positional[0] else "",
            macs=int(macs),
            in_bytes=nbytes(acts),
            out_bytes=nbytes(outs),
            weight_bytes=nbytes(weights),
            params=sum(_numel(s) for s in w_shapes),
            out_elements=int(out_el),
            kernel_area=int(k_area),
            c_in=int(first_in[-1]) if first_in else 1,
            c_out=int(first_out[-1]) if first_out else 1,
            steps=int(steps),
        ))
    return out


def _macs(
    name: str,
    op: Any,
    ins: list[Any],
    x: tuple[int, ...],
    y: tuple[int, ...],
    out_el: int,
    in_el: int,
    shape: Any,
) -> tuple[int, int, int]:
    """(MACs or work count, kernel area, recurrence steps) by the rules of the module doc."""
    def w(k: int) -> tuple[int, ...]:
        return shape(ins[k]) if len(ins) > k and ins[k] is not None else ()

    if name == "CONV_2D" and len(w(1)) == 4:
        _, kh, kw, ci = w(1)
        return out_el * kh * kw * ci, kh * kw, 0
    if name == "DEPTHWISE_CONV_2D" and len(w(1)) == 4:
        _, kh, kw, _ = w(1)
        return out_el * kh * kw, kh * kw, 0
    if name == "CONV_3D" and len(w(1)) == 5:
        kd, kh, kw, ci, _ = w(1)
        return out_el * kd * kh * kw * ci, kd * kh * kw, 0
    if name == "TRANSPOSE_CONV" and len(w(1)) == 4:
        co, kh, kw, _ = w(1)
        return _numel(w(2)) * kh * kw * co, kh * kw, 0
    if name == "FULLY_CONNECTED" and len(w(1)) == 2:
        n_out, n_in = w(1)
        rows = _numel(x) // max(n_in, 1)
        return rows * n_out * n_in, 1, 0
    if name == "BATCH_MATMUL" and len(x) >= 2:
        return out_el * x[-1], 1, 0
    if name in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "LSTM") and x:
        # input-to-output weights (position 4) are [H, I]; recurrent ones (8) are [H, H].
        hidden = w(4)[0] if w(4) else (w(8)[0] if w(8) else y[-1] if y else 1)
        n_in = x[-1]
        if name == "LSTM":
            b, t = _numel(x[:-1]), 1
        else:
            b, t = (_numel(x[:-2]), x[-2]) if len(x) >= 3 else (1, x[0])
        directions = 2 if name.startswith("BIDIRECTIONAL") else 1
        return directions * b * t * 4 * hidden * (n_in + hidden), 1, t
    if name == "UNIDIRECTIONAL_SEQUENCE_RNN" and x:
        hidden = w(1)[0] if w(1) else (y[-1] if y else 1)
        b, t = (_numel(x[:-2]), x[-2]) if len(x) >= 3 else (1, x[0])
        return b * t * hidden * (x[-1] + hidden), 1, t
    if name == "SVDF" and x and w(1) and w(2):
        features, memory = w(1)[0], w(2)[-1]
        return _numel(x[:-1]) * features * (x[-1] + memory), 1, 0
    if name in _POOL_OPS:
        opts = op.BuiltinOptions()
        area = 1
        if opts is not None:
            pool = schema().Pool2DOptions()
            pool.Init(opts.Bytes, opts.Pos)
            area = max(pool.FilterHeight() * pool.FilterWidth(), 1)
        return out_el * area, area, 0
    if name in _REDUCE_OPS:
        return _numel(x), 1, 0
    return max(out_el, in_el), 1, 0


__all__ = ["ITEMSIZE", "MAC_OPS", "NUMERIC", "OpFeatures", "numeric", "op_features"]
