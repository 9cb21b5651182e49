"""Back end: the layer IR -> a self-contained HLS project directory.

Layout of a project (the project's README.md repeats it for its users):

    include/hilnas/    the layer library (package data: device_agent/fpga/include/hilnas)
    include/hls_stub/  g++ stand-ins for hls_stream.h, ap_int.h, ap_axi_sdata.h (csim only)
    src/weights.h      weights, biases and requantization constants, one block per layer
    src/dnnu.h/.cpp    top level: AXI-Stream in -> layers under DATAFLOW -> AXI-Stream out
    tb/tb.cpp          C testbench: csim/input.bin -> csim/output.bin
    scripts/hls.tcl    Vitis HLS: csim, synthesis, IP export
    scripts/bd.tcl     Vivado: PS + AXI DMA + the IP, bitstream and .hwh
    driver/dnnu_driver.py   PYNQ driver (Overlay + DMA)
    manifest.json      shapes, quantization, board, clock, unrolling, modelled figures
    Makefile           csim (g++), hls, bitstream, bundle

Every file but the weights and the manifest comes from a template file
(`device_agent/fpga/templates/`, filled by `device_agent.fpga.render`); this module only
computes what goes into the templates' markers.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.fpga.boards import Board
from device_agent.fpga.half import Unroll
from device_agent.fpga.ir import IrLayer, IrModel
from device_agent.fpga.render import fill, read_template

#: The C++ layer library and its g++ stand-in headers, as installed package data. In the
#: source tree `include` is a link to the repository's hls/include (docs/decisions-fpga.md).
LIBRARY: Traversable = resources.files("device_agent.fpga").joinpath("include")
LIBRARY_PARTS = ("hilnas", "hls_stub")


def _carray(name: str, ctype: str, values: np.ndarray) -> str:
    v = np.asarray(values)
    dims = "".join(f"[{d}]" for d in v.shape)
    flat = v.astype(np.int64).ravel()
    rows = [", ".join(str(int(x)) for x in flat[i : i + 24]) for i in range(0, flat.size, 24)]
    body = ",\n    ".join(rows)
    return f"static const {ctype} {name}{dims} = {{\n    {body}}};"


def weights_header(model: IrModel) -> str:
    """src/weights.h: each layer's constants, named L<i>_W, _B, _M, _S and _Q."""
    lines: list[str] = []
    for i, layer in enumerate(model.layers):
        p = f"L{i}"
        lines.append(f"// layer {i}: {layer.kind} from {layer.source_op}")
        if layer.weights is not None:
            lines.append(_carray(f"{p}_W", "hilnas::wgt_t", layer.weights))
            lines.append(_carray(f"{p}_B", "hilnas::acc_t", np.asarray(layer.bias)))
            lines.append(_carray(f"{p}_M", "int32_t", layer.mult))
            lines.append(_carray(f"{p}_S", "int32_t", layer.shift))
        if layer.kind in ("conv", "dwconv", "pwconv", "dense", "relu"):
            lines.append(
                f"static const hilnas::QuantCtx {p}_Q = {{{layer.in_zp}, {layer.out_zp}, "
                f"{layer.act_min}, {layer.act_max}}};"
            )
        lines.append("")
    return fill("weights.h", blocks={"layers": lines})


def _call(i: int, layer: IrLayer, u: Unroll, src: str, dst: str) -> str:
    """The C++ call of one layer's template, reading stream `src` and writing `dst`."""
    p = f"L{i}"
    constants = f"{p}_W, {p}_B, {p}_M, {p}_S, {p}_Q"  # weights.h's names for layer i
    pad = "hilnas::SAME" if layer.padding == "same" else "hilnas::VALID"
    rounding = "hilnas::SINGLE_ROUNDING" if layer.single_rounding else "hilnas::DOUBLE_ROUNDING"
    # GAP and RELU take one requantization multiplier and shift as arguments.
    m, sh = (int(layer.mult[0]), int(layer.shift[0])) if layer.mult.size else (0, 0)
    n, cin, cout, k, s = layer.length, layer.cin, layer.cout, layer.kernel, layer.stride
    # kind -> (template, its parameters, the arguments after the two streams)
    calls: dict[str, tuple[str, tuple[object, ...], str]] = {
        "conv": ("conv1d", (n, cin, cout, k, s, u.filters, u.kernel, u.channels, pad),
                 constants),
        "pwconv": ("pointwise1d", (n, cin, cout, u.filters, u.channels), constants),
        "dwconv": ("depthwise1d", (n, cin, layer.multiplier, k, s, u.filters, u.kernel, pad),
                   constants),
        "maxpool": ("maxpool1d", (n, cin, k, s, u.filters, pad),
                    f"{layer.act_min}, {layer.act_max}"),
        "gap": ("global_avg_pool1d", (n, cin, u.filters),
                f"{m}, {sh}, {layer.in_zp}, {layer.out_zp}"),
        "dense": ("dense", (cin, cout, u.filters, u.channels, rounding), constants),
        "relu": ("relu", (n, u.filters), f"{m}, {sh}, {p}_Q"),
    }
    template, params, args = calls[layer.kind]
    return f"hilnas::{template}<{', '.join(map(str, params))}>({src}, {dst}, {args});"


def _legal_unroll(layer: IrLayer, u: Unroll) -> Unroll:
    """Clamp factors to divisors of their dimension (the library's static_assert)."""

    def fit(f: int, n: int) -> int:
        f = max(1, min(f, n))
        while n % f:
            f -= 1
        return f

    if layer.kind == "relu":
        return Unroll(1, 1, 1)
    n_filters = layer.cin if layer.kind in ("maxpool", "gap") else layer.cout
    return Unroll(fit(u.filters, n_filters), fit(u.kernel, layer.kernel),
                  fit(u.channels, layer.cin))


def top_level(model: IrModel, unrolls: Sequence[Unroll]) -> tuple[str, str]:
    """src/dnnu.h and src/dnnu.cpp: the FIFOs and the layer processes under DATAFLOW."""
    header = fill("dnnu.h", blocks={"sizes": [
        f"#define DNNU_INPUT_SIZE {model.input_size}",
        f"#define DNNU_OUTPUT_SIZE {model.output_size}",
    ]})
    n = len(model.layers)
    body: list[str] = []
    for s in range(n + 1):
        depth = 2 * max(model.layers[min(s, n - 1)].cin, 2)
        body.append(f'hls::stream<hilnas::act_t> s{s}("s{s}");')
        body.append(f"#pragma HLS STREAM variable = s{s} depth = {depth}")
    body.append("hilnas::axis_to_stream<DNNU_INPUT_SIZE>(in, s0);")
    for i, (layer, u) in enumerate(zip(model.layers, unrolls, strict=True)):
        body.append(_call(i, layer, u, f"s{i}", f"s{i + 1}"))
    body.append(f"hilnas::stream_to_axis<DNNU_OUTPUT_SIZE>(s{n}, out);")
    return header, fill("dnnu.cpp", blocks={"dataflow": body})


def hls_tcl(board: Board) -> str:
    return fill("hls.tcl.in", values={"PART": board.part,
                                      "CLOCK_PERIOD_NS": f"{1000.0 / board.clock_mhz:.3f}"})


def bd_tcl(board: Board) -> str:
    """scripts/bd.tcl; the processing system's part comes from the template of its PS IP."""
    ps_template = f"ps_{board.ps_ip}.tcl.in"
    ps = fill(ps_template, values={"CLOCK_MHZ": f"{board.clock_mhz:g}"})
    return fill(
        "bd.tcl.in",
        values={"BOARD": board.name, "PART": board.part, "BOARD_PART": board.board_part},
        blocks={"processing_system": ps.rstrip("\n").splitlines()},
    )


def readme(model: IrModel, board: Board, manifest: dict[str, Any]) -> str:
    rows = [
        f"| {i} | {layer.kind} | {layer.length} | {layer.cin} | {layer.cout} | {layer.kernel} | "
        f"{layer.stride} | {layer.padding} | {u['filters']}x{u['kernel']}x{u['channels']} |"
        for i, (layer, u) in enumerate(zip(model.layers, manifest["unroll"], strict=True))
    ]
    est = manifest["estimate"]
    return fill("README.md.in", blocks={"layers": rows}, values={
        "MODEL_SHA256": manifest["model_sha256"],
        "BOARD": board.name,
        "PART": board.part,
        "CLOCK_MHZ": f"{board.clock_mhz:g}",
        "INPUT_SIZE": model.input_size,
        "INPUT_SHAPE": list(model.input_shape),
        "INPUT_SCALE": repr(model.input_scale),
        "INPUT_ZERO_POINT": model.input_zero_point,
        "OUTPUT_SIZE": model.output_size,
        "OUTPUT_SHAPE": list(model.output_shape),
        "OUTPUT_SCALE": repr(model.output_scale),
        "OUTPUT_ZERO_POINT": model.output_zero_point,
        "LATENCY_S": f"{est['latency_s']['value']:.3e}",
        "LATENCY_CYCLES": est["latency_cycles"],
        "THROUGHPUT": f"{est['throughput_per_s']['value']:.3e}",
        "POWER_W": f"{est['power_w']['value']:.3e}",
        "ENERGY_J": f"{est['energy_j']['value']:.3e}",
    })


def _copy_tree(source: Traversable, destination: Path) -> None:
    """Copy package data (a folder, possibly inside a zip) to a real directory."""
    destination.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.is_dir():
            _copy_tree(entry, destination / entry.name)
        else:
            (destination / entry.name).write_bytes(entry.read_bytes())


def copy_library(include_dir: Path) -> None:
    """Copy the layer library and the g++ stand-ins into `include_dir` (replacing them)."""
    for part in LIBRARY_PARTS:
        source = LIBRARY.joinpath(part)
        if not source.is_dir():
            raise FileNotFoundError(
                f"the HLS layer library is missing from the installed package ({source}); "
                "reinstall hilnas"
            )
        dst = include_dir / part
        if dst.exists():
            shutil.rmtree(dst)
        _copy_tree(source, dst)


def write_project(
    model: IrModel,
    out: Path,
    board: Board,
    unrolls: Sequence[Unroll],
    manifest: dict[str, Any],
    tflite: bytes,
) -> None:
    unrolls = [_legal_unroll(layer, u) for layer, u in zip(model.layers, unrolls, strict=True)]
    manifest["unroll"] = [
        {"filters": u.filters, "kernel": u.kernel, "channels": u.channels} for u in unrolls
    ]
    for sub in ("src", "tb", "csim", "scripts", "driver", "include"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    copy_library(out / "include")
    header, source = top_level(model, unrolls)
    files = {
        "src/weights.h": weights_header(model),
        "src/dnnu.h": header,
        "src/dnnu.cpp": source,
        "tb/tb.cpp": read_template("tb.cpp"),
        "Makefile": read_template("Makefile.in"),
        "scripts/hls.tcl": hls_tcl(board),
        "scripts/bd.tcl": bd_tcl(board),
        "driver/dnnu_driver.py": read_template("dnnu_driver.py.in"),
        "manifest.json": json.dumps(manifest, indent=2) + "\n",
        "README.md": readme(model, board, manifest),
    }
    for name, text in files.items():
        (out / name).write_text(text)
    (out / "model.tflite").write_bytes(tflite)
