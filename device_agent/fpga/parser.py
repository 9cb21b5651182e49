"""Front end: an int8 .tflite 1-D CNN (a HALF-space candidate, or a user's) -> the layer IR.

Why the flatbuffer and not the interpreter: the interpreter's tensor details give shapes,
quantization and constant data, but not the operators' options (strides, padding, fused
activation, depth multiplier, MEAN's axis), and those decide the hardware. The TFLite
schema (device_agent.tflite_schema, bundled with LiteRT) reads them directly, without
allocating tensors or running anything.

The quantization constants are derived exactly as TFLite's kernels derive them
(PopulateConvolutionQuantizationParams, CalculateActivationRangeQuantized, MEAN's
Prepare): double-precision effective scales, frexp-based QuantizeMultiplier, float32
activation bounds, so the C simulation is bit-exact with the interpreter.

Padding: 'valid' and 'same' (TFLite's Padding option of CONV_2D, DEPTHWISE_CONV_2D and
MAX_POOL_2D), split as TFLite splits it (left = total // 2). Anything the library cannot
build (SOFTMAX, an LSTM, dilation, a second input) is a `CandidateRejected` that names the
operator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from device_agent.errors import CandidateRejected, ConfigError
from device_agent.fpga.ir import IrLayer, IrModel
from device_agent.tflite_schema import operator_name, read_model, rejecting_corrupt, schema

# The operators the library maps; the others are named from the schema in the rejection.
_SUPPORTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "RELU",
              "RESHAPE", "MEAN", "SQUEEZE", "EXPAND_DIMS"}
_NO_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}  # layout only: NWC bytes do not move
_INT8 = 9  # TensorType.INT8
_PADDING = {0: "same", 1: "valid"}  # schema Padding: SAME = 0, VALID = 1


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
        self.fb = schema()
        self.data = data
        self.model = read_model(data)
        if self.model.SubgraphsLength() != 1:
            raise CandidateRejected("the HLS generator takes single-subgraph models")
        self.sg = self.model.Subgraphs(0)

    def op_name(self, op: Any) -> str:
        """The builtin name; a custom operator by its custom code (TFLM_DECODE), not CUSTOM."""
        code = self.model.OperatorCodes(op.OpcodeIndex())
        if code.CustomCode() is not None:
            return bytes(code.CustomCode()).decode("ascii", "replace")
        return operator_name(self.model, op)

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


def _padding(op_name: str, code: int) -> str:
    if code not in _PADDING:
        raise CandidateRejected(f"{op_name}: padding {code} is not in the HLS library")
    return _PADDING[code]


def _windowed(layer: IrLayer, lout: int) -> IrLayer:
    """Check a sliding-window layer: its modelled output length must be the model's."""
    if layer.out_length != lout:
        raise CandidateRejected(
            f"{layer.source_op}: {layer.padding} padding of {layer.length} positions with "
            f"window {layer.kernel} and stride {layer.stride} gives {layer.out_length} "
            f"outputs, the model has {lout}"
        )
    return layer


def parse_tflite(data: bytes) -> IrModel:
    """Parse an int8 .tflite of a 1-D CNN into the generator's IR.

    Raises CandidateRejected naming the operator or property the HLS library lacks, or
    saying that the bytes are not a readable .tflite flatbuffer.
    """
    with rejecting_corrupt():
        model = _parse(_Graph(bytes(data)))
    return model


def _parse(g: _Graph) -> IrModel:
    sg = g.sg
    if sg.InputsLength() != 1 or sg.OutputsLength() != 1:
        raise CandidateRejected(
            f"the accelerator has one input and one output stream; this model has "
            f"{sg.InputsLength()} inputs and {sg.OutputsLength()} outputs (a second input, "
            "such as a beat's RR features, has no port in the HLS dataflow design)"
        )
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
        if name not in _SUPPORTED:
            hint = "; export the logits (no softmax)" if name == "SOFTMAX" else ""
            if name == "TFLM_DECODE":
                # Clustered weights are taken as they are in the int8 file (ROM of int8
                # values); the LUT file's index tables and DECODE are TFLM's, not the library's.
                hint = ("; a LUT-compressed (TFLM) model: give the generator the int8 file, "
                        "whose clustered weights it builds as plain int8 ROM")
            raise CandidateRejected(f"operator {name} (op {i}) is not in the HLS library{hint}")
        if int(op.Inputs(0)) != current:
            raise CandidateRejected(f"op {i} ({name}) breaks the single chain of layers")
        current = int(op.Outputs(0))
        if name in _NO_OPS:
            continue
        try:
            layers.append(_layer(g, op, f"{name}#{i}"))
        except ConfigError as exc:  # a shape the hardware layers refuse
            raise CandidateRejected(f"{name}#{i}: {exc}") from None
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


def _layer(g: _Graph, op: Any, where: str) -> IrLayer:
    """The hardware layer of one supported operator (`where` names it: "CONV_2D#3")."""
    name = where.split("#")[0]
    inputs = [int(v) for v in op.InputsAsNumpy()]
    outputs = [int(v) for v in op.OutputsAsNumpy()]
    shape_in, shape_out = g.shape(inputs[0]), g.shape(outputs[0])
    length, cin = _spatial(shape_in)
    lout, cout = _spatial(shape_out)
    s_in, zp_in = g.quant(inputs[0])
    s_out, zp_out = g.quant(outputs[0])
    s_in_f, s_out_f = float(s_in[0]), float(s_out[0])
    base: dict[str, Any] = dict(length=length, cin=cin, cout=cout, in_zp=int(zp_in[0]),
                                out_zp=int(zp_out[0]), source_op=where)
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
            return IrLayer("dense", **{**base, "length": 1, "cin": nin},
                           weights=w.reshape(cout, nin), bias=bias, mult=mult, shift=shift,
                           act_min=lo, act_max=hi, single_rounding=w_scale.size > 1)
        opt_cls = "Conv2DOptions" if name == "CONV_2D" else "DepthwiseConv2DOptions"
        o = g.options(op, opt_cls)
        k = _axis_pick(w.shape[1], w.shape[2], shape_in)
        stride = _axis_pick(o.StrideH(), o.StrideW(), shape_in)
        if o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
            raise CandidateRejected(f"{where}: dilation is not in the HLS library")
        lo, hi = activation_range(o.FusedActivationFunction(), s_out_f, int(zp_out[0]))
        q: dict[str, Any] = dict(bias=bias, mult=mult, shift=shift, act_min=lo, act_max=hi)
        window: dict[str, Any] = dict(kernel=k, stride=stride,
                                      padding=_padding(where, o.Padding()))
        if name == "DEPTHWISE_CONV_2D":
            return _windowed(IrLayer("dwconv", **base, weights=w.reshape(k, cout),
                                     multiplier=cout // cin, **q, **window), lout)
        wk = w.reshape(cout, k, cin)
        if k == 1 and stride == 1:  # no window: 'same' and 'valid' are one layer
            return IrLayer("pwconv", **base, weights=wk[:, 0, :], **q)
        return _windowed(IrLayer("conv", **base, weights=wk, **q, **window), lout)
    if name == "MAX_POOL_2D":
        o = g.options(op, "Pool2DOptions")
        pool = _axis_pick(o.FilterHeight(), o.FilterWidth(), shape_in)
        stride = _axis_pick(o.StrideH(), o.StrideW(), shape_in)
        if s_in_f != s_out_f or zp_in[0] != zp_out[0]:
            raise CandidateRejected(f"{where}: requantizing max pooling is not supported")
        lo, hi = activation_range(o.FusedActivationFunction(), s_out_f, int(zp_out[0]))
        return _windowed(IrLayer("maxpool", **base, kernel=pool, stride=stride,
                                 padding=_padding(where, o.Padding()), act_min=lo,
                                 act_max=hi), lout)
    # The rescaling of MEAN and RELU: input scale / output scale.
    m, s = quantize_multiplier(float(np.float64(s_in_f) / np.float64(s_out_f)))
    if name == "MEAN":
        axis = g.constant(inputs[1], np.int32).ravel().tolist()
        spatial_axes = {1} if len(shape_in) == 3 else {1, 2}
        if not set(axis) <= spatial_axes or lout != 1:
            raise CandidateRejected(f"{where} over axes {axis} is not global pooling")
        return IrLayer("gap", **base, mult=np.array([m]), shift=np.array([s]))
    assert name == "RELU", name  # _SUPPORTED and _NO_OPS cover every other name
    return IrLayer("relu", **{**base, "length": length * cin, "cin": 1, "cout": 1},
                   mult=np.array([m]), shift=np.array([s]), act_min=max(-128, int(zp_out[0])))
