#!/usr/bin/env python3
"""Minimal reproduction: TFLM LUT compression and per-channel quantized weights.

Why this exists: a Dense kernel LUT-compressed with the tflite-micro wheel's compression tool
(`tflite_micro.tensorflow.lite.micro.compression`) ran in the wheel's TFLM interpreter but gave
outputs that differed from the uncompressed model's (docs/compression.md, "The LUT finding").

The model here is one FULLY_CONNECTED operator written with the tool's own `model_editor`, so
no TensorFlow converter is involved: int8 input (1, 16), an int8 weight (8, 16) holding at most
4 distinct values per output channel, an int32 bias, an int8 output (1, 8). The script
LUT-compresses the weight in several ways, runs every model in the wheel's TFLM interpreter on
the same 30 random int8 inputs and prints, for each case, on how many inputs the compressed
model's outputs differ from the uncompressed model's and the largest difference in LSB.

The cause it shows (the DECODE kernel, tensorflow/lite/micro/kernels/decode_state_lut.cc,
`DecodeStateLut::Setup`): the kernel takes the number of value tables from the *output tensor's
quantization* (`scale->size`, and the last axis if `quantized_dimension` is the last one), not
from the axis the compression tool wrote into the ancillary data (DCM byte 5, bits 7-4, which
the kernel never reads). So:

* a per-channel quantized weight (one scale per output channel, as the TFLite converter makes
  for Conv and Dense kernels) compressed `per_tensor` (one table) is decoded with 8 tables: the
  kernel steps past the single table for channels 1..7 and reads unrelated bytes;
* compressed `per_channel` on an axis other than the quantized one, the tables are built along
  one axis and read along another;
* compressed `per_channel` on the quantized axis (axis 0 here), or `per_tensor` for a weight
  quantized per tensor, the decoded weight is bit-exact and so are the outputs.

Run: `.venv/bin/python tools/repro/tflm_lut_compression.py` (needs only the tflite-micro wheel
and numpy; prints one line per case and exits 0).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

import numpy as np

N_IN, N_OUT, N_INPUTS = 16, 8, 30
IN_SCALE, OUT_SCALE = 0.05, 0.5


def build_model(per_channel: bool, seed: int = 0) -> bytes:
    """One int8 FULLY_CONNECTED; its weight has at most 4 values per output channel."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl

    rng = np.random.default_rng(seed)
    # Each channel draws its 4 levels from its own range: the union over the tensor has up to
    # 32 values, as a clustered float kernel gives after per-channel int8 quantization.
    levels = np.sort(rng.integers(-127, 128, size=(N_OUT, 4)), axis=1)
    pick = rng.integers(0, 4, size=(N_OUT, N_IN))
    weight = np.take_along_axis(levels, pick, axis=1).astype(np.int8)
    if per_channel:
        w_scales = [float(s) for s in rng.uniform(0.002, 0.02, size=N_OUT)]
        w_quant = me.Quantization(scales=w_scales, zero_points=[0] * N_OUT, axis=0)
        b_quant = me.Quantization(
            scales=[IN_SCALE * s for s in w_scales], zero_points=[0] * N_OUT, axis=0
        )
    else:
        w_quant = me.Quantization(scales=0.01, zero_points=0)
        b_quant = me.Quantization(scales=IN_SCALE * 0.01, zero_points=0)
    bias = rng.integers(-500, 500, size=N_OUT).astype(np.int32)
    x = me.Tensor(shape=(1, N_IN), dtype=tfl.TensorType.INT8, name="input",
                  quantization=me.Quantization(scales=IN_SCALE, zero_points=0))
    w = me.Tensor(shape=(N_OUT, N_IN), dtype=tfl.TensorType.INT8, name="weight", data=weight,
                  quantization=w_quant)
    b = me.Tensor(shape=(N_OUT,), dtype=tfl.TensorType.INT32, name="bias", data=bias,
                  quantization=b_quant)
    y = me.Tensor(shape=(1, N_OUT), dtype=tfl.TensorType.INT8, name="output",
                  quantization=me.Quantization(scales=OUT_SCALE, zero_points=0))
    op = me.Operator(opcode=tfl.BuiltinOperator.FULLY_CONNECTED, inputs=[x, w, b], outputs=[y])
    sg = me.Subgraph(tensors=[x, w, b, y], operators=[op], inputs=[x], outputs=[y])
    return bytes(me.Model(subgraphs=[sg]).build())


def run_tflm(model: bytes, inputs: np.ndarray, alt_memory: int = 0) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(
        model, arena_size=64 * 1024, alt_decompression_memory_size=alt_memory
    )
    out = []
    for x in inputs:
        interp.set_input(x.reshape(1, N_IN), 0)
        interp.invoke()
        out.append(np.array(interp.get_output(0)).reshape(-1).astype(np.int32))
    return np.stack(out)


def lut_compress(model: bytes, bits: int, mode: Any) -> bytes:
    # `tflite_micro.compression.compress` is the function (the package's __init__ re-exports
    # it over the module name), so the module is imported by its full name.
    tool = importlib.import_module("tflite_micro.tensorflow.lite.micro.compression.compress")
    from tflite_micro.tensorflow.lite.micro.compression import spec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "resulted in expansion": a 128-byte toy weight
        return bytes(tool.compress(model, [spec.Tensor(0, 1, [spec.LookUpTableCompression(
            index_bitwidth=bits, mode=mode)])]))


def main() -> int:
    from tflite_micro.tensorflow.lite.micro.compression import spec

    inputs = np.random.default_rng(1).integers(-128, 128, size=(N_INPUTS, N_IN)).astype(np.int8)
    cases: list[tuple[str, bool, int, Any, int]] = [
        # (label, weight quantized per channel?, index bits, LUT mode, alt decompression bytes)
        ("per-tensor quantized weight, per_tensor LUT, 5 bits", False, 5, spec.PerTensor(), 0),
        ("per-channel quantized weight, per_tensor LUT, 5 bits", True, 5, spec.PerTensor(), 0),
        ("per-channel quantized weight, per_tensor LUT, 6 bits", True, 6, spec.PerTensor(), 0),
        ("per-channel quantized weight, per_tensor LUT, 5 bits, alt memory", True, 5,
         spec.PerTensor(), 4096),
        ("per-channel quantized weight, per_channel axis 1 LUT, 4 bits", True, 4,
         spec.PerChannel(axis=1), 0),
        ("per-channel quantized weight, per_channel axis 0 LUT, 2 bits", True, 2,
         spec.PerChannel(axis=0), 0),
        ("per-channel quantized weight, per_channel axis 0 LUT, 4 bits", True, 4,
         spec.PerChannel(axis=0), 0),
        ("per-channel quantized weight, per_channel axis 0 LUT, 2 bits, alt memory", True, 2,
         spec.PerChannel(axis=0), 4096),
    ]
    print(f"{'case':<76} {'differ':>7} {'max|diff| LSB':>14}")
    for label, per_channel, bits, mode, alt in cases:
        plain = build_model(per_channel)
        ref = run_tflm(plain, inputs)
        try:
            packed = lut_compress(plain, bits, mode)
        except Exception as exc:  # noqa: BLE001 - the tool's refusal is a result to print
            print(f"{label:<76} tool refused: {exc}")
            continue
        got = run_tflm(packed, inputs, alt)
        diff = np.abs(got - ref)
        n_diff = int((diff.max(axis=1) > 0).sum())
        print(f"{label:<76} {n_diff:>3}/{N_INPUTS:<3} {int(diff.max()):>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
