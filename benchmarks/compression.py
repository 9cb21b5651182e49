"""Compression after BioNetExplorer: bytes and quality per stage for three BioNets (issue 13).

For a small, a medium and a large BioNet trained on a patient-wise split, it runs
float -> pruned -> clustered -> int8 -> LUT (host.compress) for each (sparsity, clusters) of a
grid and prints, per stage: bytes and their source, the reduction against the float32 file,
balanced accuracy on the validation side and its loss against the float model in percentage
points, and where each figure comes from. Then, per network, the largest reduction of the
bytes deployed on the emulated Nano 33 BLE (the LUT file if it verified bit-exact in TFLM, else
the int8 file) at a balanced-accuracy loss of at most 0.2 points, and TFLM's arena and host
time per invoke with and without decompression. The issue's goal: >= 60x deployed.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/compression.py --quick
    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/compression.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from host.compress import CompressConfig, compress_model  # noqa: E402
from host.data import EcgDatasetConfig, load_ecg_dataset  # noqa: E402
from host.errors import HilnasError  # noqa: E402
from host.export.evaluate import evaluate_tflite  # noqa: E402
from host.spaces.base import get_space  # noqa: E402
from host.tasks.ecg import EcgClassification  # noqa: E402
from host.train import TrainConfig, train_candidate  # noqa: E402
from host.train.trainer import predict  # noqa: E402

NETWORKS = {"small": "bionet-b1-x1-l16", "medium": "bionet-b2-x2-l32",
            "large": "bionet-b4-x2-l64"}
QUICK_RECORDS = ("100", "101", "103", "106", "108", "109", "111", "112", "113", "115", "116",
                 "117", "118", "119", "201", "203", "207", "208", "209", "213", "214", "215")
# k = 2 (1 bit) only without pruning: TFMOT's sparsity-preserving clustering needs k > 2.
FULL_GRID = [(s, k) for s in (0.5, 0.7, 0.8, 0.9) for k in (4, 8, 16)] + [(0.0, 2)]
QUICK_GRID = [(0.5, 16), (0.8, 4)]
MAX_LOSS_PP = 0.2


def _bal(metrics: dict[str, Any]) -> float:
    return float(metrics["balanced_accuracy"])


def loss_pp(base: dict[str, Any], q: dict[str, Any]) -> float | None:
    if "balanced_accuracy" not in q:
        return None
    return 100 * (base["balanced_accuracy"] - q["balanced_accuracy"])


def print_run(name: str, key: str, report: dict[str, Any]) -> None:
    f32 = report["storage_float32_bytes"]["bytes"]
    base = report["stages"][0]["quality"]
    c = report["config"]
    print(f"\n{name} {key}: channels removed {c['channels']}, sparsity {c['sparsity']} "
          f"({c['scope']}), k={c['clusters']}; fine-tuning lr {c['learning_rate']:g}, "
          f"distillation weight {c['distill']:g}")
    print(f"  {'stage':<10} {'figure':<8} {'bytes':>9} {'source':<10} {'x f32':>7} "
          f"{'bal.acc':>8} {'loss pp':>8}  quality source")
    for s in report["stages"]:
        loss = loss_pp(base, s["quality"])
        q = s["quality"].get("balanced_accuracy")
        qt = f"{q:8.4f}" if q is not None else f"{'-':>8}"
        lt = f"{loss:8.2f}" if loss is not None else f"{'-':>8}"
        rows = list(s["bytes"].items()) or [("-", None)]
        for i, (kind, b) in enumerate(rows):
            label = s["stage"] if i == 0 else ""
            tail = f"{qt} {lt}  {s['quality_source'][:70]}" if i == 0 else ""
            if b is None:
                print(f"  {label:<10} {kind:<8} {'-':>9} {'-':<10} {'-':>7} {tail}")
            else:
                print(f"  {label:<10} {kind:<8} {b['bytes']:>9} {b['source']:<10} "
                      f"{f32 / b['bytes']:>7.2f} {tail}")
    d = report["storage_deployed_bytes"]
    lut = next(s for s in report["stages"] if s["stage"] == "lut")["lut"]
    print(f"  deployed on the emulated Nano 33 BLE: {d['mcu']['bytes']} B ({d['mcu']['file']}, "
          f"{d['mcu']['reduction_vs_float32']}x; against the float32 file without names "
          f"{report['storage_float32_bytes']['stripped_bytes']} B: "
          f"{d['mcu']['reduction_vs_float32_stripped']}x); Linux/LiteRT: {d['linux']['bytes']} B "
          f"({d['linux']['reduction_vs_float32']}x); CSR estimate "
          f"{report['storage_sparse_bytes']['bytes']} B "
          f"({report['storage_sparse_bytes']['reduction_vs_float32']}x, estimated)")
    print(f"  {lut['summary']}")
    t = lut.get("tflm") or {}
    if t:
        print(f"  TFLM arena: int8 {t['arena_int8_bytes']} B, LUT {t['arena_lut_bytes']} B "
              f"(decoded weights in the arena), LUT with {t['alt_decompression_bytes']} B alt "
              f"memory {t['arena_lut_with_alt_bytes']} B ({t['arena_source']}); host time per "
              f"invoke: int8 {t['invoke_us']['int8']} us, LUT {t['invoke_us']['lut']} us "
              f"({t['invoke_source']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="22 records, 2 grid points (~5 min)")
    ap.add_argument("--space", choices=["bionet", "half"], default="bionet",
                    help="bionet (default) or half: HALF's networks (give their keys in "
                         "--networks)")
    ap.add_argument("--networks", default="small,medium,large",
                    help="bionet: small, medium, large; or any keys of the space, e.g. "
                         "'half:s3.2.1.4-s1.1.1.4'")
    ap.add_argument("--epochs", type=int, help="training epochs (quick 4, full 15)")
    ap.add_argument("--fine-tune-epochs", type=int, help="per stage (quick 1, full 3)")
    ap.add_argument("--scope", choices=["layer", "global"], default="global")
    ap.add_argument("--grid", help="sparsity:clusters points, e.g. '0.5:16,0.8:4' (default: "
                    "the full or quick grid)")
    ap.add_argument("--channels", default="0",
                    help="fractions of channels removed first (structured pruning), each "
                         "crossed with the grid, e.g. '0,0.5,0.75' (default 0: none)")
    ap.add_argument("--max-windows-per-record", type=int,
                    help="windows per record (quick 80, full 400)")
    defaults = CompressConfig()
    ap.add_argument("--learning-rate", default=f"{defaults.learning_rate:g}",
                    help="fine-tuning learning rates, e.g. '1e-4,1e-3' (default: "
                         f"CompressConfig's, {defaults.learning_rate:g})")
    ap.add_argument("--distill", default=f"{defaults.distill:g}",
                    help="weights of the trained model's outputs in the fine-tuning targets "
                         "(knowledge distillation, each in [0, 1)), e.g. '0,0.7' (default: "
                         f"CompressConfig's, {defaults.distill:g}; 0: labels only); crossed "
                         "with the learning rates, the channels and the grid")
    ap.add_argument("--json", help="write every report to this file")
    args = ap.parse_args(argv)
    quick = args.quick
    epochs = args.epochs or (4 if quick else 15)
    ft = args.fine_tune_epochs if args.fine_tune_epochs is not None else (1 if quick else 3)
    grid = QUICK_GRID if quick else FULL_GRID
    if args.grid:
        grid = [(float(p.split(":")[0]), int(p.split(":")[1])) for p in args.grid.split(",")]
    channel_fractions = [float(c) for c in args.channels.split(",")]
    tunings = [(float(lr), float(w)) for lr in args.learning_rate.split(",")
               for w in args.distill.split(",")]
    dcfg = EcgDatasetConfig(records=QUICK_RECORDS if quick else None,
                            max_windows_per_record=args.max_windows_per_record
                            or (80 if quick else 400))
    t0 = time.perf_counter()
    ds = load_ecg_dataset(dcfg)
    task = EcgClassification(ds.config)
    space = get_space(args.space, task.input_spec(), task=task)
    print(f"data: {ds.split_description}; train {len(ds.x_train)}, val {len(ds.x_val)} windows")
    print(f"grid: {grid} x channels removed {channel_fractions}; scope {args.scope}; "
          f"training {epochs} epochs, fine-tuning {ft} per stage at (learning rate, "
          f"distillation weight) {tunings}; quality = balanced accuracy on the validation "
          "side")
    results: dict[str, Any] = {}
    for name in args.networks.split(","):
        key = NETWORKS.get(name, name) if args.space == "bionet" else name
        t = time.perf_counter()
        tr = train_candidate(space, space.from_key(key), task, ds,
                             TrainConfig(epochs=epochs, seed=0))
        print(f"\n== {name}: {key}, trained in {time.perf_counter() - t:.0f} s "
              f"(val balanced accuracy {tr.val_metrics['balanced_accuracy']:.4f})")
        test_float = _bal(task.score(ds.y_test, predict(tr.model, ds.x_test)))
        runs = []
        reuse: dict[Any, Any] = {}  # stages are cached by all of their settings
        for (lr, distill), channels, (sparsity, k) in (
                (t, c, p) for t in tunings for c in channel_fractions for p in grid):
            cfg = CompressConfig(sparsity=sparsity, clusters=k, scope=args.scope, epochs=ft,
                                 verify_windows=64, channels=channels,
                                 learning_rate=lr, distill=distill)
            try:
                result = compress_model(tr.model, ds, task, cfg, metadata=ds.metadata(),
                                        reuse=reuse)
                report = result.to_json()
                # Every choice is made on the validation side; the test patients are scored
                # once per point, after, for the reader.
                report["test_quality"] = {
                    "float": test_float,
                    "int8": _bal(evaluate_tflite(result.files["int8.tflite"], ds, side="test")),
                    "source": "balanced accuracy on the test patients; float: tf-keras, int8: "
                              "LiteRT on the int8 file (the LUT file's TFLM outputs equal the "
                              "int8 model's on the verification windows)",
                }
            except HilnasError as exc:  # one failing point does not lose the others
                print(f"\n{name} {key}: lr {lr:g}, distill {distill:g}, channels {channels}, "
                      f"sparsity {sparsity}, k={k}: FAILED: {exc}")
                continue
            print_run(name, key, report)
            tq = report["test_quality"]
            print(f"  test patients, balanced accuracy: float {tq['float']:.4f}, int8 "
                  f"{tq['int8']:.4f} (loss {100 * (tq['float'] - tq['int8']):.2f} pp)")
            runs.append(report)
        best = None
        for r in runs:
            base = r["stages"][0]["quality"]
            deployed_quality = r["stages"][-1]["quality"] or r["stages"][-2]["quality"]
            loss = loss_pp(base, deployed_quality)
            if loss is not None and loss <= MAX_LOSS_PP:
                red = r["storage_deployed_bytes"]["mcu"]["reduction_vs_float32"]
                if best is None or red > best[0]:
                    best = (red, r, loss)
        if best is None:
            print(f"\n{name}: no grid point within {MAX_LOSS_PP} pp of the float model")
        else:
            red, r, loss = best
            c = r["config"]
            print(f"\n{name}: largest deployed reduction within {MAX_LOSS_PP} pp: {red}x "
                  f"(lr {c['learning_rate']:g}, distill {c['distill']:g}, "
                  f"channels removed {c['channels']}, sparsity {c['sparsity']}, "
                  f"k={c['clusters']}, loss {loss:.2f} pp; "
                  f"{r['storage_deployed_bytes']['mcu']['bytes']} B "
                  f"{r['storage_deployed_bytes']['mcu']['file']}); CSR estimate "
                  f"{r['storage_sparse_bytes']['reduction_vs_float32']}x (estimated); "
                  f"goal >= 60x deployed: {'met' if red >= 60 else 'not met'}; test patients: "
                  f"float {r['test_quality']['float']:.4f}, int8 {r['test_quality']['int8']:.4f}")
        results[name] = {"key": key, "runs": runs,
                         "best": None if best is None else {"reduction": best[0],
                                                            "loss_pp": best[2],
                                                            "config": best[1]["config"]}}
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
