"""`hilnas evaluate MODEL.tflite`: quality of an exported model on chosen ECG records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from host.cli.data import add_dataset_options, parse_records


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="quality of a .tflite model on ECG records (LiteRT)")
    p.add_argument("model", help="a .tflite exported by hilnas (its metadata sets windowing)")
    add_dataset_options(p, for_eval=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host.errors import ConfigError
    from host.export.evaluate import config_from_metadata, evaluate_tflite
    from host.export.flatbuf import read_metadata

    path = Path(args.model)
    if not path.is_file():
        raise ConfigError(f"model: {path} does not exist")
    buf = path.read_bytes()
    meta = read_metadata(buf)
    records = parse_records(args.records)
    if args.records is None:
        test = (meta.get("records") or {}).get("test")
        records = tuple(test) if test else None
    cfg = config_from_metadata(meta, preset=args.preset, records=records, data_dir=args.data_dir)
    metrics = evaluate_tflite(buf, cfg, progress=not args.json)
    if args.json:
        print(json.dumps(metrics, indent=2, default=str))
        return 0
    print(f"{path.name} ({metrics.get('quantization') or 'unknown'}, {len(buf)} bytes)")
    print(f"data: {metrics['data']}  (preset {cfg.preset}, {metrics['n']} windows)")
    print(
        f"accuracy {metrics['accuracy']:.4f}  balanced {metrics['balanced_accuracy']:.4f}  "
        f"F1 macro {metrics['f1_macro']:.4f}"
    )
    for name, pc in metrics["per_class"].items():
        print(
            f"  {name:<12} precision {pc['precision']:.3f} recall {pc['recall']:.3f} "
            f"F1 {pc['f1']:.3f} n={pc['support']}"
        )
    return 0
