"""`hilnas validate MODEL.tflite --device SPEC`: a model's quality measured on a device.

The windows go through the device's Validate; quality is computed from the device's own
outputs and compared with the host's int8 reference (LiteRT on this machine, same inputs).
See docs/validation.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from host.cli._common import add_device_options, device_from_args, print_json
from host.cli.data import add_dataset_options, parse_records


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="quality of a .tflite model from a device's own outputs, vs the host's int8 "
        "reference (field validation)",
    )
    p.add_argument("model", type=Path, help="a .tflite exported by hilnas (its metadata sets "
                   "the windowing, classes and default test records)")
    p.add_argument(
        "--device",
        default="local",
        help="local, local:BACKEND?KEY=VALUE (e.g. local:mcu-emulator?board=nano33ble), "
        "grpc://HOST:PORT or grpcs://HOST:PORT (default: local)",
    )
    add_dataset_options(p, for_eval=True)
    p.add_argument("--batch", type=int, default=None,
                   help="windows per Validate call (default: automatic, within the agent's "
                   "limits); more windows are always split into calls")
    p.add_argument("--max-windows", type=int, default=None,
                   help="validate only the first N windows (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_device_options(p)
    p.set_defaults(func=run)


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def run(args: argparse.Namespace) -> int:
    import sys

    from host.errors import ConfigError, DataError
    from host.export.evaluate import config_from_metadata
    from host.export.flatbuf import read_metadata
    from host.fleet.validation import ModelIO, numeric, validate_on_device
    from host.tasks.base import task_class

    path: Path = args.model
    if not path.is_file():
        raise ConfigError(f"model: {path} does not exist")
    if args.batch is not None and args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")
    buf = path.read_bytes()
    ModelIO.of(buf)  # a clear error for a file that is not a .tflite
    try:
        meta = read_metadata(buf)
    except Exception as exc:  # noqa: BLE001 - a corrupt flatbuffer, whatever it raises
        raise ConfigError(f"model: cannot read {path}'s metadata: {exc}") from exc
    if not meta:
        raise ConfigError(
            f"model: {path} is not a hilnas model (no hilnas metadata): validate needs the "
            "windowing, classes and records it was trained with; export it with hilnas"
        )
    records = parse_records(args.records)
    if args.records is None:
        test = (meta.get("records") or {}).get("test")
        records = tuple(test) if test else None
    cfg = config_from_metadata(meta, preset=args.preset, records=records, data_dir=args.data_dir)
    task = task_class(str(meta.get("task") or "ecg"))(cfg)

    from host.data.dataset import load_ecg_windows

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\r{done}/{total} windows", end="", file=sys.stderr, flush=True)

    with device_from_args(args.device, args) as device:
        device.describe()  # an unreachable device fails here, before the data is read
        x, y, names, used = load_ecg_windows(cfg, progress=not args.json)
        if meta.get("classes") and list(meta["classes"]) != list(names):
            raise DataError(
                f"classes: the model predicts {meta['classes']} but the data has {list(names)}"
            )
        if args.max_windows is not None:
            x, y = x[: args.max_windows], y[: args.max_windows]
        result = validate_on_device(device, buf, x, y, task, batch=args.batch,
                                    progress=progress)
    if not args.json:
        print(file=sys.stderr)
    doc = {
        "model": str(path),
        "quantization": meta.get("quantization"),
        "model_bytes": len(buf),
        "data": f"records {','.join(used)}",
        "preset": cfg.preset,
        **result.to_json(),
    }
    if args.json:
        print_json(doc)
        return 0
    stand_in = "  [STAND-IN]" if result.is_stand_in else ""
    print(f"{path.name} ({doc['quantization'] or 'unknown'}, {len(buf)} bytes) on "
          f"{result.device} ({result.backend}, {result.board}, {result.runtime}){stand_in}")
    print(f"data: {doc['data']}  (preset {cfg.preset}, {result.n_windows} windows, "
          f"{result.batches} Validate call(s) of <= {result.batch_size}, "
          f"{result.seconds:.2f} s on the device)")
    dev, host = numeric(result.device_metrics), numeric(result.host_metrics)
    print(f"{'metric':<20} {'device':>10} {'host':>10}")
    for name in ("accuracy", "balanced_accuracy", "f1_macro", "detection_rate",
                 "false_alarm_rate"):
        if name in dev or name in host:
            print(f"{name:<20} {_fmt(dev.get(name)):>10} {_fmt(host.get(name)):>10}")
    print(f"  device: {result.device_source}")
    print(f"  host:   {result.host_source}")
    share = result.identical_share
    print(f"agreement: {result.identical_windows}/{result.n_windows} windows with identical "
          f"{result.output_dtype} outputs ({_fmt(share, '.2%')}), max abs diff "
          f"{_fmt(result.max_abs_diff_raw, 'g')} raw = {_fmt(result.max_abs_diff, '.4g')} "
          f"dequantized, same class {_fmt(result.same_prediction_share, '.2%')}")
    print(f"  source: {result.agreement_source}")
    ref = result.reference_kernels
    if ref is not None:
        print(f"vs LiteRT reference kernels: {ref['identical_windows']}/{result.n_windows} "
              f"identical ({_fmt(ref['identical_share'], '.2%')}), max abs diff "
              f"{_fmt(ref['max_abs_diff_raw'], 'g')} raw, same class "
              f"{_fmt(ref['same_prediction_share'], '.2%')}")
    if share is not None and share < 1:
        print("note: outputs differ from the host's; see docs/validation.md (kernel rounding: "
              "XNNPACK vs reference kernels vs TFLite Micro)")
    return 0
