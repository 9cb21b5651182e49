"""`hilnas export`: write deployable artifacts.

    hilnas export hls MODEL.tflite --board pynq-z1 --out DIR [--unroll min|max] [--clock-mhz F]
    hilnas export RUN --front [--runs-dir runs] [--out DIR]

The first positional selects the target. `hls` is the HLS project generator
(host.export.hls); anything else is a run of the run store, whose Pareto front is written
as .tflite and C-array files with a front.json listing each model's files and figures.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from host.errors import ConfigError

TARGETS = ("hls",)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write deployable artifacts (HLS project, ...)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="'hls' (HLS project of a .tflite); later: a run to export")
    p.add_argument("model", nargs="?", help="for 'hls': the int8 .tflite of a HALF-space model")
    p.add_argument("--board", default="pynq-z1", help="FPGA board from the board data file")
    p.add_argument("--out", help="output folder of the project")
    p.add_argument(
        "--unroll",
        choices=("min", "max"),
        default="min",
        help="unrolling of every layer: none (min) or full (max)",
    )
    p.add_argument("--clock-mhz", type=float, default=None, help="clock (default: the board's)")
    p.add_argument("--front", action="store_true", help="for a run: export its Pareto front")
    p.add_argument("--runs-dir", default="runs", help="for a run: the runs directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target == "hls":
        return _export_hls(args)
    return _export_run(args)


def _export_hls(args: argparse.Namespace) -> int:
    from host.export.hls import generate

    if not args.model:
        raise ConfigError("export hls: give the .tflite model: hilnas export hls MODEL.tflite")
    if not args.out:
        raise ConfigError("export hls: --out DIR is required")
    t0 = time.perf_counter()
    project = generate(
        args.model, args.out, board=args.board, unroll=args.unroll, clock_mhz=args.clock_mhz
    )
    est = project.estimate
    print(
        f"wrote {project.path} ({len(project.model.layers)} layers, {project.board.name} "
        f"{project.board.part} at {project.board.clock_mhz:g} MHz) in "
        f"{time.perf_counter() - t0:.2f} s"
    )
    print(
        f"estimated (HALF model, unroll={args.unroll}): latency {est.latency.value:.3e} s, "
        f"power {est.power.value:.3e} W, energy {est.energy.value:.3e} J per window"
    )
    print(
        f"next: put int8 windows in {project.path}/csim/input.bin and run "
        f"`make -C {project.path} csim`"
    )
    return 0


def _export_run(args: argparse.Namespace) -> int:
    import json
    import shutil
    from pathlib import Path

    from host.cli._common import open_store
    from host.search.runner import STORE_NAME

    if not args.front:
        raise ConfigError(
            f"export {args.target}: say what to export from the run (--front); "
            f"other targets: {', '.join(TARGETS)}"
        )
    runs_dir = Path(args.runs_dir)
    if not (runs_dir / STORE_NAME).exists():
        raise ConfigError(
            f"export: {args.target!r} is neither a target ({', '.join(TARGETS)}) "
            f"nor a run: there is no run store at {runs_dir / STORE_NAME}"
        )
    open_store(runs_dir, [args.target])
    front_json = runs_dir / args.target / "front.json"
    if not front_json.exists():
        raise ConfigError(
            f"run {args.target} has no front yet (it did not finish); resume it "
            f"with `hilnas search --resume {args.target}`"
        )
    doc = json.loads(front_json.read_text())
    out = Path(args.out) if args.out else runs_dir / args.target / "front"
    out.mkdir(parents=True, exist_ok=True)
    for entry in doc["front"]:
        files = entry.get("files", {})
        for kind, src in list(files.items()):
            dst = out / Path(src).name
            if Path(src).resolve() != dst.resolve():
                shutil.copyfile(src, dst)
            files[kind] = str(dst)
    (out / "front.json").write_text(json.dumps(doc, indent=2))
    print(f"exported {len(doc['front'])} models of {args.target} to {out}")
    for entry in doc["front"]:
        print(
            f"  {entry['arch']:<28} "
            + "  ".join(
                f"{k}={v:.4g}" for k, v in entry["objectives"].items() if isinstance(v, float)
            )
        )
    return 0
