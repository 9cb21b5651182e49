"""`hilnas train`: train one BioNet architecture, export TFLite and C array, write metrics."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from host.cli.data import add_dataset_options, config_from_args


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train one architecture and export it")
    p.add_argument("--arch", help="bionet key, e.g. bionet-b2-x1-l32 (or use the three below)")
    p.add_argument("--blocks", type=int, default=None, help="ResNet blocks (0-15)")
    p.add_argument("--filter-step", type=int, default=1, help="blocks per filter doubling")
    p.add_argument("--lstm-cells", type=int, default=32, help="LSTM cells (16-256)")
    add_dataset_options(p)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--clipnorm", type=float, default=1.0,
                   help="clip each gradient to this L2 norm (default 1.0; 0 turns it off)")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--class-weights", choices=["balanced"], default=None)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-export", action="store_true", help="skip TFLite and C array export")
    p.set_defaults(func=run)


def _arch(args: argparse.Namespace) -> Any:
    from host.errors import ConfigError
    from host.spaces import BioNetArch, arch_from_any

    if args.arch:
        return arch_from_any(args.arch)
    if args.blocks is None:
        raise ConfigError("--arch or --blocks: say which architecture to train")
    cells = args.lstm_cells
    if cells < 1 or cells & (cells - 1):
        raise ConfigError(f"--lstm-cells: must be a power of two in 16..256, not {cells}")
    return BioNetArch(args.blocks, args.filter_step, cells.bit_length() - 1)


def run(args: argparse.Namespace) -> int:
    from host.data import load_ecg_dataset
    from host.export.carray import write_c_array
    from host.export.evaluate import evaluate_tflite
    from host.export.tflite import convert_many
    from host.hw.costs import analytic_costs
    from host.train import TrainConfig, train_model

    arch = _arch(args)
    cfg = config_from_args(args)
    tcfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm or None,
        patience=args.patience,
        class_weights=args.class_weights,
        seed=args.seed,
        verbose=2,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/4] dataset ({cfg.preset}, split {cfg.split})", flush=True)
    ds = load_ecg_dataset(cfg, progress=True)
    print(f"      {ds.split_description}", flush=True)
    print(f"[2/4] training {arch.key()}", flush=True)
    result = train_model(arch, ds, tcfg)
    result.model.save(out / "model.keras")
    costs = analytic_costs(arch, ds.window, ds.n_classes, int(ds.x_train.shape[2]))
    report: dict[str, Any] = {
        **result.summary(),
        "dataset": {"hash": ds.config_hash, "classes": list(ds.class_names), "counts": ds.counts()},
        "costs": costs.to_json(),
    }
    if not args.no_export:
        print("[3/4] exporting float32, dynamic-range and int8 TFLite (child process)", flush=True)
        from host.spaces import build_keras_model

        export_model = build_keras_model(
            arch, ds.window, int(ds.x_train.shape[2]), ds.n_classes, batch_size=1
        )
        export_model.set_weights(result.model.get_weights())
        meta = {**ds.metadata(), "architecture": arch.to_json(), "created": time.time()}
        models = convert_many(
            export_model, ["float32", "dynamic", "int8"], ds.x_train, metadata=meta
        )
        for mode, buf in models.items():
            (out / f"model-{mode}.tflite").write_bytes(buf)
        symbol = "hilnas_model_int8"
        write_c_array(models["int8"], out / "model_int8.h", symbol)
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
