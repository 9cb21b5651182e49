"""`hilnas compress MODEL`: remove channels, prune, cluster, quantize and LUT-compress a model.

MODEL is what `hilnas train` writes: its folder, or the `model.keras` in it. The dataset is
rebuilt exactly as the model was trained on: from the hilnas metadata of a `.tflite` next to
the model (`model-float32.tflite`), else from `--config`'s `[data]` table, else from the
dataset options (the same defaults as `hilnas train`). Every stage's file and
`compression.json` (each figure with its source) go to `--out` (docs/compression.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from host.cli.data import add_dataset_options


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compress", help="prune, cluster, int8-quantize and LUT-compress a trained model"
    )
    p.add_argument("model", help="a trained model: the folder `hilnas train` wrote, or its .keras")
    p.add_argument("--prune", type=float, required=True, metavar="SPARSITY",
                   help="target fraction of zero kernel weights, in [0, 1)")
    p.add_argument("--channels", type=float, default=0.0, metavar="FRACTION",
                   help="structured pruning first: the fraction of every prunable channel "
                        "group removed, in [0, 1) (default 0: none)")
    p.add_argument("--clusters", type=int, required=True, metavar="K",
                   help="k-means weight sharing: values per kernel (2..256)")
    p.add_argument("--scope", choices=["layer", "global"], default="layer",
                   help="layer: every layer to SPARSITY; global: class-blind, one threshold")
    p.add_argument("--schedule", choices=["constant", "polynomial"], default="constant",
                   help="TFMOT pruning schedule (default constant)")
    p.add_argument("--task", default="ecg", help="the task the model was trained for (ecg)")
    p.add_argument("--config", help="a search configuration whose [data] table built the data")
    p.add_argument("--epochs", type=int, default=2,
                   help="fine-tuning epochs after pruning and after clustering (default 2)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="fine-tuning rate (1e-3)")
    p.add_argument("--distill", type=float, default=0.7, metavar="WEIGHT",
                   help="knowledge distillation: the weight, in [0, 1), of the trained model's "
                        "own outputs in the fine-tuning targets (default 0.7; 0: labels only)")
    p.add_argument("--verify-windows", type=int, default=64,
                   help="validation windows the LUT model must reproduce bit-exactly (64)")
    add_dataset_options(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true", help="print compression.json")
    p.set_defaults(func=run)


def _model_path(text: str) -> Path:
    from host.errors import ConfigError

    path = Path(text)
    if path.is_dir():
        found = sorted(path.glob("*.keras")) + sorted(path.glob("*.h5"))
        if not found:
            raise ConfigError(f"model: {path} holds no .keras model (hilnas train writes one)")
        return found[0]
    if not path.exists():
        raise ConfigError(f"model: {path} does not exist")
    if path.suffix not in (".keras", ".h5"):
        raise ConfigError(f"model: {path} is not a tf-keras model (.keras or .h5)")
    return path


def _metadata(model_path: Path) -> dict[str, Any]:
    """The hilnas metadata of a .tflite next to the model (`hilnas train` exports three)."""
    from host.export.flatbuf import read_metadata

    for name in ("model-float32.tflite", "model-int8.tflite", "model-dynamic.tflite"):
        f = model_path.parent / name
        if f.is_file():
            meta = read_metadata(f.read_bytes())
            if meta:
                return meta
    return {}


def dataset_config(args: argparse.Namespace, model_path: Path) -> tuple[Any, dict[str, Any], str]:
    """(dataset config, metadata for the new files, where the config came from)."""
    from host.cli.data import config_from_args, parse_records
    from host.errors import ConfigError
    from host.export.evaluate import config_from_metadata

    if args.task != "ecg":
        raise ConfigError(f"--task: only 'ecg' is supported by compress, not {args.task!r}")
    meta = _metadata(model_path)
    if args.config:
        from host.search.config import load_config

        cfg = load_config(args.config)
        if cfg.task != "ecg":
            raise ConfigError(f"--config: its task is {cfg.task!r}; compress supports ecg")
        return cfg.data, meta, f"[data] of {args.config}"
    if meta:
        overrides = {
            "records": parse_records(args.records), "data_dir": args.data_dir,
            "max_windows_per_record": args.max_windows_per_record,
        }
        return config_from_metadata(meta, **overrides), meta, "the model's .tflite metadata"
    return config_from_args(args), meta, "the dataset options (no .tflite metadata found)"


def run(args: argparse.Namespace) -> int:
    from host.compress import CompressConfig, compress_model
    from host.data import load_ecg_dataset
    from host.tasks.ecg import EcgClassification
    from host.train.tfenv import load_keras_model

    # Flags first: a bad value fails before TensorFlow and the data load.
    ccfg = CompressConfig(
        sparsity=args.prune, clusters=args.clusters, scope=args.scope, schedule=args.schedule,
        channels=args.channels,
        epochs=args.epochs, learning_rate=args.learning_rate, distill=args.distill,
        verify_windows=args.verify_windows, seed=args.seed,
    )
    model_path = _model_path(args.model)
    dcfg, meta, origin = dataset_config(args, model_path)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda _m: None) if args.json else (lambda m: print(m, flush=True))
    say(f"dataset from {origin}")
    ds = load_ecg_dataset(dcfg, progress=not args.json)
    say(f"  {ds.split_description}")
    model = load_keras_model(model_path)
    task = EcgClassification(ds.config)
    metadata = {**(meta or ds.metadata()), "compression": {
        "sparsity": ccfg.sparsity, "clusters": ccfg.clusters, "scope": ccfg.scope,
        "channels": ccfg.channels}}
    result = compress_model(model, ds, task, ccfg, metadata=metadata,
                            log=lambda m: say(f"[stage] {m}"))
    for name, buf in result.files.items():
        (out / name).write_bytes(buf)
    report = {"model": str(model_path), "dataset": {"from": origin,
                                                    "split": ds.split_description},
              **result.to_json()}
    (out / "compression.json").write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print_table(report)
    print(f"wrote {out}/ (compression.json and {len(result.files)} .tflite files)")
    return 0


def print_table(report: dict[str, Any]) -> None:
    """One line per stage: bytes, reduction vs float32, balanced accuracy and its loss."""
    f32 = report["storage_float32_bytes"]["bytes"]
    base = report["stages"][0]["quality"].get("balanced_accuracy")
    print(f"{'stage':<10} {'bytes':>9} {'source':<10} {'x float32':>9} {'bal.acc':>8} "
          f"{'loss pp':>8}  quality source")
    for s in report["stages"]:
        q = s["quality"].get("balanced_accuracy")
        loss = f"{100 * (base - q):8.2f}" if q is not None and base is not None else f"{'-':>8}"
        qtxt = f"{q:8.4f}" if q is not None else f"{'-':>8}"
        entries = list(s["bytes"].items()) or [("", None)]
        for i, (kind, b) in enumerate(entries):
            label = f"{s['stage']}" if i == 0 else ""
            if b is None:
                print(f"{label:<10} {'-':>9} {'-':<10} {'-':>9} {qtxt} {loss}  "
                      f"{s['quality_source']}")
                continue
            red = f32 / b["bytes"]
            tail = f"{qtxt} {loss}  {s['quality_source']}" if i == 0 else f"({kind})"
            print(f"{label:<10} {b['bytes']:>9} {b['source']:<10} {red:>9.2f} {tail}")
    d = report["storage_deployed_bytes"]
    print(f"deployed: mcu {d['mcu']['bytes']} B ({d['mcu']['file']}, "
          f"{d['mcu']['reduction_vs_float32']}x), linux {d['linux']['bytes']} B "
          f"({d['linux']['reduction_vs_float32']}x); sparse (estimated) "
          f"{report['storage_sparse_bytes']['bytes']} B")
    lut = next(s for s in report["stages"] if s["stage"] == "lut")["lut"]
    print(lut["summary"])
