"""The HLS project generator: an int8 .tflite 1-D CNN -> a Vitis HLS project for a board.

A straight pipeline (front end -> IR -> writer): `parser.parse_tflite` reads the flatbuffer
into a chain of hardware layers with TFLite's exact integer constants, `writer` fills the
project's templates (weights, DATAFLOW top level with AXI-Stream ports, C testbench, Vitis
HLS and Vivado Tcl, PYNQ driver, README, Makefile). `make -C DIR csim` builds the
testbench with g++ against the library's stand-in headers; its outputs equal LiteRT's int8
reference outputs bit for bit. No TensorFlow is needed: the agent's `hls-csim` backend runs
this on a machine without the host package.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from device_agent.fpga.boards import Board, as_board
from device_agent.fpga.half import HalfEstimate, UnrollSpec, estimate, resolve_unroll
from device_agent.fpga.ir import IrModel
from device_agent.fpga.parser import parse_tflite
from device_agent.fpga.writer import write_project


@dataclass(frozen=True)
class HlsProject:
    """A generated project: where it is, what it computes, for which board, and its cost."""

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
    """Write the HLS project of `tflite` (bytes or a path) into `out_dir`.

    Raises CandidateRejected naming the operator or property the library cannot build.
    """
    data = Path(tflite).read_bytes() if isinstance(tflite, (str, Path)) else bytes(tflite)
    b = as_board(board, clock_mhz)
    model = parse_tflite(data)
    hw = model.hw_layers()
    unrolls = resolve_unroll(hw, unroll)
    est = estimate(hw, b, unrolls)
    manifest = {
        "generator": "hilnas device_agent.fpga",
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
             "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
             "multiplier": layer.multiplier, "source_op": layer.source_op}
            for layer in model.layers
        ],
        "estimate": est.to_json(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_project(model, out, b, unrolls, manifest, data)
    return HlsProject(out, model, b, est)


__all__ = ["HlsProject", "generate"]
