"""`hilnas measure MODEL.tflite --device ADDRESS`: measure a model on a device."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from device_agent.errors import ConfigError
from device_agent.types import Figure, InputSource, MeasureSettings
from host.cli._common import add_device_options, device_from_args, human_bytes, print_json


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "measure", help="measure a .tflite model's latency, memory and power on a device"
    )
    parser.add_argument("model", type=Path, help="the .tflite model")
    parser.add_argument(
        "--device",
        default="local",
        help="grpc://HOST:PORT, grpcs://HOST:PORT, or local (default: an agent "
        "started on this machine)",
    )
    defaults = MeasureSettings()
    parser.add_argument(
        "--runs",
        type=int,
        default=defaults.max_runs,
        help=f"most timed runs (default {defaults.max_runs}; fewer if stable)",
    )
    parser.add_argument("--min-runs", type=int, default=defaults.min_runs)
    parser.add_argument("--warmup", type=int, default=defaults.warmup_runs)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument(
        "--time-budget",
        type=float,
        default=defaults.time_budget_seconds,
        help="seconds for the whole measurement, warm-up included",
    )
    parser.add_argument(
        "--target-ci",
        type=float,
        default=defaults.target_ci_relative,
        help="stop once the median's 95%% CI is within this fraction (0: run --runs times)",
    )
    parser.add_argument(
        "--inputs",
        choices=[s.value for s in InputSource if s is not InputSource.PROVIDED],
        default=InputSource.RANDOM.value,
    )
    parser.add_argument("--profile", action="store_true", help="also time every operator")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_device_options(parser)
    parser.set_defaults(func=run)


def _bytes(f: Figure) -> str:
    if f.value is None:
        return f"unavailable ({f.note})"
    return f"{human_bytes(f.value)} [{f.source.value}]"


def _fig(f: Figure, fmt: str = "{:.0f}") -> str:
    if f.value is None:
        return f"unavailable ({f.note})"
    return f"{fmt.format(f.value)} [{f.source.value}]"


def run(args: argparse.Namespace) -> int:
    if not args.model.is_file():
        raise ConfigError(f"model file {args.model} does not exist")
    settings = MeasureSettings(
        warmup_runs=args.warmup,
        min_runs=min(args.min_runs, args.runs),
        max_runs=args.runs,
        time_budget_seconds=args.time_budget,
        target_ci_relative=args.target_ci,
        threads=args.threads,
        input_source=InputSource(args.inputs),
    ).validated()
    with device_from_args(args.device, args) as device:
        info = device.describe()
        result = device.measure(args.model, settings)
        profile = device.profile(args.model, settings) if args.profile else None
    lat, mem, power = result.latency, result.memory, result.power
    if args.json:
        out: dict[str, Any] = {
            "model": str(args.model),
            "device": info.name,
            "backend": info.backend,
            "board": info.board,
            "is_stand_in": info.is_stand_in,
            **result.to_json(),
            # Flat keys for scripts (the nested objects carry the sources).
            "p50_us": lat.p50_us,
            "p90_us": lat.p90_us,
            "p99_us": lat.p99_us,
            "latency_source": lat.source.value,
            "arena_bytes": mem.arena_bytes.value,
            "arena_source": mem.arena_bytes.source.value,
            "peak_rss_bytes": mem.peak_rss_bytes.value,
        }
        if profile is not None:
            out["profile"] = profile.to_json()
        print_json(out)
        return 0
    stand_in = "  [STAND-IN]" if info.is_stand_in else ""
    print(
        f"{args.model.name} on {info.name} ({info.board}, {result.runtime.name} "
        f"{result.runtime.version}, {result.threads} thread(s)){stand_in}"
    )
    print(
        f"latency [{lat.source.value}]  p50 {lat.p50_us:.1f} us  p90 {lat.p90_us:.1f} us  "
        f"p99 {lat.p99_us:.1f} us  min {lat.min_us:.1f}  max {lat.max_us:.1f}  "
        f"cv {lat.cv:.3f}"
    )
    print(
        f"        n={lat.n}, stopped: {lat.stop_reason}, median CI95 "
        f"+/-{lat.median_ci95_relative:.2%}; timer: {lat.timer}"
    )
    print(
        f"memory  peak RSS {_bytes(mem.peak_rss_bytes)}  model {_bytes(mem.model_bytes)}  "
        f"arena {_bytes(mem.arena_bytes)}"
    )
    print(
        f"power   {_fig(power.mean_power_mw, '{:.1f}')} mW  energy/inference "
        f"{_fig(power.energy_per_inference_uj, '{:.2f}')} uJ"
    )
    for note in result.notes:
        print(f"note: {note}")
    if profile is not None:
        print(f"operators [{profile.source.value}] ({profile.method}):")
        for op in sorted(profile.ops, key=lambda o: -o.mean_us):
            print(f"  #{op.index:<3} {op.op:<32} {op.mean_us:10.1f} us  {op.fraction:6.1%}")
    return 0
