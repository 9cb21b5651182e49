"""Front end: an int8 .tflite candidate of the HALF space -> the generator's layer IR.

Why the flatbuffer and not the interpreter: the interpreter's tensor details give shapes,
quantization and constant data, but not the operators' options (strides, padding, fused
activation, depth multiplier, MEAN's axis), and those decide the hardware. The schema
bundled with LiteRT (`ai_edge_litert.schema_py_generated`) reads them directly, without
allocating tensors or running anything.

The quantization constants are derived exactly as TFLite's kernels derive them
(PopulateConvolutionQuantizationParams, CalculateActivationRangeQuantized, MEAN's
Prepare): double-precision effective scales, frexp-based QuantizeMultiplier, float32
activation bounds, so the C simulation is bit-exact with the interpreter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from host.errors import CandidateRejected
from host.hw.half import HwLayer

# TFLite BuiltinOperator codes (schema.fbs) that the library maps.
_OPS = {
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    9: "FULLY_CONNECTED",
    17: "MAX_POOL_2D",
    19: "RELU",
    22: "RESHAPE",
    40: "MEAN",
    43: "SQUEEZE",
    70: "EXPAND_DIMS",
}
_NO_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}  # layout only: NWC bytes do not move
_INT8 = 9  # TensorType.INT8
_PADDING_VALID = 1


@dataclass
class IrLayer:
    """One hardware layer with its int8 constants (arrays in the C library's layouts)."""

    kind: str  # conv | dwconv | pwconv | maxpool | gap | dense | relu
    length: int
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    multiplier: int = 1
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    mult: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    in_zp: int = 0
    out_zp: int = 0
    act_min: int = -128
    act_max: int = 127
    source_op: str = ""
    single_rounding: bool = False  # LiteRT rounds per-channel FULLY_CONNECTED once

    def hw(self) -> HwLayer:
        return HwLayer(self.kind, self.length, self.cin, self.cout, self.kernel, self.stride,
                       self.multiplier)

    @property
    def out_length(self) -> int:
        return self.hw().out_length


@dataclass
class IrModel:
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    layers: list[IrLayer]

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape))

    def hw_layers(self) -> list[HwLayer]:
        return [layer.hw() for layer in self.layers]


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = M * 2^(shift - 31), M in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5))  # TfLiteRound of a positive value
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


def activation_range(fused: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized for int8 (float32 arithmetic, like TFLite)."""

    def q(f: float) -> int:
        return int(zero_point + int(np.round(np.float32(f) / np.float32(scale))))

    if fused == 0:
        return -128, 127
    if fused == 1:  # RELU
        return max(-128, q(0.0)), 127
    if fused == 2:  # RELU_N1_TO_1
        return max(-128, q(-1.0)), min(127, q(1.0))
    if fused == 3:  # RELU6
        return max(-128, q(0.0)), min(127, q(6.0))
    raise CandidateRejected(f"fused activation {fused} is not in the HLS library")


class _Graph:
    def __init__(self, data: bytes) -> None:
        from ai_edge_litert import schema_py_generated as fb

        self.fb = fb
        self.data = data
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise CandidateRejected("not a .tflite flatbuffer (file identifier TFL3 missing)")
        self.model = fb.Model.GetRootAs(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise CandidateRejected("the HLS generator takes single-subgraph models")
        self.sg = self.model.Subgraphs(0)

    def op_name(self, op: Any) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        return _OPS.get(builtin, f"builtin#{builtin}")

    def tensor(self, index: int) -> Any:
        return self.sg.Tensors(index)

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensor(index).ShapeAsNumpy())

    def quant(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.tensor(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            raise CandidateRejected(f"tensor {index} is not quantized")
        return q.ScaleAsNumpy().astype(np.float32), q.ZeroPointAsNumpy().astype(np.int64)

    def constant(self, index: int, dtype: Any) -> np.ndarray:
        t = self.tensor(index)
        buf = self.model.Buffers(t.Buffer())
        if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = self.data[buf.Offset() : buf.Offset() + buf.Size()]
        else:
            raw = buf.DataAsNumpy().tobytes() if buf.DataLength() else b""
        if not raw:
            raise CandidateRejected(f"tensor {index} ({t.Name()!r}) is not a constant")
        return np.frombuffer(raw, dtype=dtype).reshape(self.shape(index))

    def options(self, op: Any, cls_name: str) -> Any:
        table = op.BuiltinOptions()
        opts = getattr(self.fb, cls_name)()
        opts.Init(table.Bytes, table.Pos)
        return opts


def _spatial(shape: tuple[int, ...]) -> tuple[int, int]:
    """(length, channels) of an NHWC or NWC activation with a unit H or W."""
    if len(shape) == 4:
        if shape[0] != 1 or (shape[1] != 1 and shape[2] != 1):
            raise CandidateRejected(f"activation {shape} is not a batch-1 1-D feature map")
        return shape[1] * shape[2], shape[3]
    if len(shape) == 3 and shape[0] == 1:
        return shape[1], shape[2]
    if len(shape) == 2 and shape[0] == 1:
        return 1, shape[1]
    raise CandidateRejected(f"activation {shape} is not a batch-1 1-D feature map")


def _axis_pick(h: int, w: int, shape_in: tuple[int, ...]) -> int:
    """Pick the kernel/stride value along the activation's long axis (H or W)."""
    return h if len(shape_in) == 4 and shape_in[1] != 1 else w


def parse_tflite(data: bytes) -> IrModel:
    """Parse an int8 .tflite of a 1-D CNN into the generator's IR.

    Raises CandidateRejected naming the operator or property the HLS library lacks.
    """
    g = _Graph(data)
    sg = g.sg
    if sg.InputsLength() != 1 or sg.OutputsLength() != 1:
        raise CandidateRejected("the accelerator has one input and one output stream")
    t_in, t_out = int(sg.Inputs(0)), int(sg.Outputs(0))
    for idx, what in ((t_in, "input"), (t_out, "output")):
        if g.tensor(idx).Type() != _INT8:
            raise CandidateRejected(f"model {what} must be int8 (full-integer conversion)")
    in_scale, in_zp = g.quant(t_in)
    out_scale, out_zp = g.quant(t_out)
    layers: list[IrLayer] = []
    current = t_in
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        name = g.op_name(op)
        inputs = [int(v) for v in op.InputsAsNumpy()]
        outputs = [int(v) for v in op.OutputsAsNumpy()]
        if name.startswith("builtin#") or name == "SOFTMAX":
            raise CandidateRejected(
                f"operator {name} (op {i}) is not in the HLS library; export the logits "
                "(no softmax) of a HALF-space model"
            )
        if inputs[0] != current:
            raise CandidateRejected(f"op {i} ({name}) breaks the single chain of layers")
        current = outputs[0]
        if name in _NO_OPS:
            continue
        shape_in, shape_out = g.shape(inputs[0]), g.shape(outputs[0])
        length, cin = _spatial(shape_in)
        lout, cout = _spatial(shape_out)
        s_in, zp_in = g.quant(inputs[0])
        s_out, zp_out = g.quant(outputs[0])
        s_in_f, s_out_f = float(s_in[0]), float(s_out[0])
        base: dict[str, Any] = dict(length=length, cin=cin, cout=cout, in_zp=int(zp_in[0]),
                    out_zp=int(zp_out[0]), source_op=f"{name}#{i}")
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = g.constant(inputs[1], np.int8)
            w_scale, _ = g.quant(inputs[1])
            bias = (g.constant(inputs[2], np.int32).astype(np.int64)
                    if len(inputs) > 2 and inputs[2] >= 0 else np.zeros(cout, np.int64))
            scales = np.broadcast_to(w_scale, (cout,))
            pairs = [quantize_multiplier(float(np.float64(s_in_f) * np.float64(s) / s_out_f))
                     for s in scales]
            mult = np.array([p[0] for p in pairs], np.int64)
            shift = np.array([p[1] for p in pairs], np.int64)
            if name == "FULLY_CONNECTED":
                fc = g.options(op, "FullyConnectedOptions")
                lo, hi = activation_range(fc.FusedActivationFunction(), s_out_f, int(zp_out[0]))
                nin = int(np.prod(shape_in))
                layers.append(IrLayer("dense", **{**base, "length": 1, "cin": nin},
                                      weights=w.reshape(cout, nin), bias=bias, mult=mult,
                                      shift=shift, act_min=lo, act_max=hi,
                                      single_rounding=w_scale.size > 1))
                continue
            opt_cls = "Conv2DOptions" if name == "CONV_2D" else "DepthwiseConv2DOptions"
            o = g.options(op, opt_cls)
            k = _axis_pick(w.shape[1], w.shape[2], shape_in)
            stride = _axis_pick(o.StrideH(), o.StrideW(), shape_in)
            if o.Padding() != _PADDING_VALID and k != 1:
                raise CandidateRejected(f"{name}#{i}: 'same' padding is not in the HLS library")
            if o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
                raise CandidateRejected(f"{name}#{i}: dilation is not in the HLS library")
            lo, hi = activation_range(o.FusedActivationFunction(), s_out_f, int(zp_out[0]))
            q: dict[str, Any] = dict(bias=bias, mult=mult, shift=shift, act_min=lo, act_max=hi,
                                     kernel=k,
                     stride=stride)
            if name == "CONV_2D":
                wk = w.reshape(cout, k, cin)
                if k == 1 and stride == 1:
                    layers.append(IrLayer("pwconv", **base, weights=wk[:, 0, :], **{
                        kk: v for kk, v in q.items() if kk not in ("kernel", "stride")}))
                else:
                    layers.append(IrLayer("conv", **base, weights=wk, **q))
            else:
                layers.append(IrLayer("dwconv", **base, weights=w.reshape(k, cout),
                                      multiplier=cout // cin, **q))
        elif name == "MAX_POOL_2D":
            o = g.options(op, "Pool2DOptions")
            pool = _axis_pick(o.FilterHeight(), o.FilterWidth(), shape_in)
            stride = _axis_pick(o.StrideH(), o.StrideW(), shape_in)
            if o.Padding() != _PADDING_VALID and pool != 1:
                raise CandidateRejected(f"{name}#{i}: 'same' padding is not in the HLS library")
            if s_in_f != s_out_f or zp_in[0] != zp_out[0]:
                raise CandidateRejected(f"{name}#{i}: requantizing max pooling is not supported")
            lo, hi = activation_range(o.FusedActivationFunction(), s_out_f, int(zp_out[0]))
            layers.append(IrLayer("maxpool", **base, kernel=pool, stride=stride, act_min=lo,
                                  act_max=hi))
        elif name == "MEAN":
            axis = g.constant(inputs[1], np.int32).ravel().tolist()
            spatial_axes = {1} if len(shape_in) == 3 else {1, 2}
            if not set(axis) <= spatial_axes or lout != 1:
                raise CandidateRejected(f"MEAN#{i} over axes {axis} is not global pooling")
            m, s = quantize_multiplier(float(np.float64(s_in_f) / np.float64(s_out_f)))
            layers.append(IrLayer("gap", **base, mult=np.array([m]), shift=np.array([s])))
        elif name == "RELU":
            m, s = quantize_multiplier(float(np.float64(s_in_f) / np.float64(s_out_f)))
            lo = max(-128, int(zp_out[0]))
            layers.append(IrLayer("relu", **{**base, "length": length * cin, "cin": 1,
                                             "cout": 1},
                                  mult=np.array([m]), shift=np.array([s]), act_min=lo))
    if current != t_out:
        raise CandidateRejected("the chain of layers does not end at the model output")
    if not layers:
        raise CandidateRejected("the model has no layers the accelerator computes")
    return IrModel(
        input_shape=g.shape(t_in),
        output_shape=g.shape(t_out),
        input_scale=float(in_scale[0]),
        input_zero_point=int(in_zp[0]),
        output_scale=float(out_scale[0]),
        output_zero_point=int(out_zp[0]),
        layers=layers,
    )
