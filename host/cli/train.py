"""`hilnas train`: train one architecture of a space, export TFLite and C array, write metrics.

It trains exactly as a search's training job does: the same function
(`host.train.train_candidate`), the same `TrainConfig` defaults, the same inference graph
(`Space.export_model`). Every option left out takes the default of `[train]` and `[data]`
of a search configuration (docs/configuration.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from host.cli.data import add_dataset_options, config_from_args


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train one architecture and export it")
    p.add_argument("--space", default="bionet", help="the search space (bionet or half)")
    p.add_argument(
        "--arch", help="architecture key, e.g. bionet-b2-x1-l32 or half:s3.1.1.8-p2-s5.2.1.16"
    )
    p.add_argument("--blocks", type=int, default=None, help="bionet: ResNet blocks (0-15)")
    p.add_argument("--filter-step", type=int, default=1, help="bionet: blocks per doubling")
    p.add_argument("--lstm-cells", type=int, default=32, help="bionet: LSTM cells (16-256)")
    add_dataset_options(p)
    group = p.add_argument_group("training (defaults: [train] of a search configuration)")
    group.add_argument("--epochs", type=int)
    group.add_argument("--batch-size", type=int)
    group.add_argument("--learning-rate", type=float)
    group.add_argument("--clipnorm", type=float,
                       help="clip each gradient to this L2 norm (default 1.0; 0 turns it off)")
    group.add_argument("--patience", type=int, help="early-stopping patience (default 3)")
    group.add_argument("--class-weights", choices=["balanced", "none"],
                       help="default balanced")
    group.add_argument("--dropout", type=float)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-export", action="store_true", help="skip TFLite and C array export")
    p.set_defaults(func=run)


def train_config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig of the training options; what is left out takes TrainConfig's default."""
    from host.train import TrainConfig

    given = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "clipnorm": args.clipnorm,
        "patience": args.patience,
        "dropout": args.dropout,
    }
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if args.class_weights is not None:
        options["class_weights"] = None if args.class_weights == "none" else args.class_weights
    return TrainConfig(**options, seed=args.seed, verbose=2)


def _arch(args: argparse.Namespace, space: Any) -> Any:
    from host.errors import ConfigError
    from host.spaces import BioNetArch

    if args.arch:
        arch = space.from_key(args.arch)
    elif args.blocks is not None and space.name == "bionet":
        cells = args.lstm_cells
        if cells < 1 or cells & (cells - 1):
            raise ConfigError(f"--lstm-cells: must be a power of two in 16..256, not {cells}")
        arch = BioNetArch(args.blocks, args.filter_step, cells.bit_length() - 1)
    else:
        raise ConfigError("--arch (or, for bionet, --blocks): say which architecture to train")
    return arch


def run(args: argparse.Namespace) -> int:
    from host.data import load_ecg_dataset
    from host.export.carray import write_c_array
    from host.export.evaluate import evaluate_tflite
    from host.export.tflite import convert_many
    from host.spaces.base import get_space
    from host.tasks.ecg import EcgClassification
    from host.train import train_candidate

    task = EcgClassification(config_from_args(args))
    space = get_space(args.space, task.input_spec())
    arch = _arch(args, space)
    tcfg = train_config_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = task.config
    print(f"[1/4] dataset ({cfg.preset}, split {cfg.split})", flush=True)
    ds = load_ecg_dataset(task.config, progress=True)
    print(f"      {ds.split_description}", flush=True)
    print(f"[2/4] training {arch.key()}", flush=True)
    result = train_candidate(space, arch, task, ds, tcfg)
    result.model.save(str(out / "model.keras"), save_format="keras_v3")
    report: dict[str, Any] = {
        **result.summary(),
        "dataset": {"hash": ds.config_hash, "classes": list(ds.class_names), "counts": ds.counts()},
        "costs": space.costs(arch).to_json(),
    }
    if not args.no_export:
        print("[3/4] exporting float32, dynamic-range and int8 TFLite (child process)", flush=True)
        export_model = space.export_model(result.model, arch, task)
        meta = {
            **ds.metadata(),
            "architecture": arch.to_json(),
            "space": space.describe(),
            "created": time.time(),
        }
        models = convert_many(
            export_model, ["float32", "dynamic", "int8"], task.representative(ds), metadata=meta
        )
        for mode, buf in models.items():
            (out / f"model-{mode}.tflite").write_bytes(buf)
        write_c_array(models["int8"], out / "model_int8.h", "hilnas_model_int8")
        print("[4/4] quality of the .tflite models on the test side (LiteRT)", flush=True)
        report["tflite"] = {}
        for mode in ("float32", "int8"):
            m = evaluate_tflite(models[mode], ds, side="test")
            report["tflite"][mode] = {
                k: m[k] for k in ("accuracy", "balanced_accuracy", "f1_macro", "model_bytes")
            }
        report["tflite"]["int8_accuracy_drop_pp"] = 100 * (
            report["tflite"]["float32"]["accuracy"] - report["tflite"]["int8"]["accuracy"]
        )
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    t = result.test_metrics
    print(
        f"test ({ds.split_description.split(';')[0]}): accuracy {t['accuracy']:.4f}, "
        f"balanced {t['balanced_accuracy']:.4f}, F1 macro {t['f1_macro']:.4f}; "
        f"trained in {result.train_seconds:.1f} s"
    )
    if "tflite" in report:
        q = report["tflite"]
        print(
            f"tflite test accuracy: float32 {q['float32']['accuracy']:.4f}, "
            f"int8 {q['int8']['accuracy']:.4f} ({q['int8']['model_bytes']} bytes)"
        )
    print(f"wrote {out}/")
    return 0
