"""HLS project generator: an int8 TFLite candidate of the HALF space -> an HLS project.

A straight pipeline (front end -> IR -> writer): `parser.parse_tflite` reads the flatbuffer
into a chain of hardware layers with TFLite's exact integer constants, `writer` emits the
project (weights, DATAFLOW top level with AXI-Stream ports, C testbench, Vitis HLS and
Vivado Tcl, PYNQ driver, README, Makefile). `make -C DIR csim` builds the testbench with g++
against the library's stand-in headers; its outputs equal LiteRT's int8 outputs bit for bit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from host.export.hls.parser import IrModel, parse_tflite, quantize_multiplier
from host.hw.half import Board, HalfEstimate, UnrollSpec, estimate, load_board, resolve_unroll


@dataclass(frozen=True)
class HlsProject:
    path: Path
    model: IrModel
    board: Board
    estimate: HalfEstimate


def generate(
    tflite: bytes | str | Path,
    out_dir: str | Path,
    board: str | Board = "pynq-z1",
    unroll: UnrollSpec = "min",
    clock_mhz: float | None = None,
) -> HlsProject:
    """Write the HLS project of `tflite` (bytes or a path) into `out_dir`."""
    from host.export.hls.writer import write_project

    data = Path(tflite).read_bytes() if isinstance(tflite, (str, Path)) else bytes(tflite)
    b = load_board(board) if isinstance(board, str) else board
    if clock_mhz is not None:
        b = b.at_clock(clock_mhz)
    model = parse_tflite(data)
    hw = model.hw_layers()
    unrolls = resolve_unroll(hw, unroll)
    est = estimate(hw, b, unrolls)
    manifest = {
        "generator": "hilnas.export.hls",
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "board": b.name,
        "part": b.part,
        "clock_mhz": b.clock_mhz,
        "input_shape": list(model.input_shape),
        "output_shape": list(model.output_shape),
        "input_quantization": {"scale": model.input_scale, "zero_point": model.input_zero_point},
        "output_quantization": {
            "scale": model.output_scale, "zero_point": model.output_zero_point},
        "unroll_strategy": unroll if isinstance(unroll, str) else "explicit",
        "layers": [
            {"kind": layer.kind, "length": layer.length, "cin": layer.cin, "cout": layer.cout,
             "kernel": layer.kernel, "stride": layer.stride, "multiplier": layer.multiplier,
             "source_op": layer.source_op}
            for layer in model.layers
        ],
        "estimate": est.to_json(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_project(model, out, b, unrolls, manifest, data)
    return HlsProject(out, model, b, est)


__all__ = ["HlsProject", "IrModel", "generate", "parse_tflite", "quantize_multiplier"]
