"""`hilnas predictor fit|show|export DEVICE`: the per-device online latency predictors.

A device's predictor lives at RUNS/predictors/<device>.json; the search saves it there and
loads it at the next run, so a second run starts calibrated. `fit` rebuilds it from the run
store's measurements (keeping the per-operator profiles the saved one learned from, which
the store does not hold), `--from FILE` imports an exported one first; `show` prints what
it knows and its cross-validated accuracy; `export --to FILE` writes it for another machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("predictor", help="fit, show or export a device's latency predictor")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("fit", "rebuild the device's predictor from the run store (and --from FILE)"),
        ("show", "what the device's predictor learned, and its cross-validated accuracy"),
        ("export", "write the device's predictor as JSON (--to FILE)"),
    ):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument("device", help="device name as the run store records it (e.g. local)")
        p.add_argument("--out", type=Path, default=Path("runs"), help="runs directory")
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "fit":
            p.add_argument("--from", dest="from_file", type=Path,
                           help="an exported predictor to start from (same device)")
        if name == "export":
            p.add_argument("--to", type=Path, required=True, help="the JSON file to write")
        p.set_defaults(func=run)


def _load_saved(runs: Path, device: str) -> Any:
    from host.errors import ConfigError
    from host.predictor import LatencyPredictor
    from host.predictor.store import predictor_path

    path = predictor_path(runs, device)
    if not path.exists():
        from host.predictor.store import store_devices
        from host.search.runner import STORE_NAME
        from host.store.sqlite import RunStore

        if (runs / STORE_NAME).exists():
            store = RunStore(runs / STORE_NAME)
            try:
                known = store_devices(store)
            finally:
                store.close()
            if device not in known:
                raise ConfigError(f"the run store {runs / STORE_NAME} has no measurements on "
                                  f"device {device!r}; devices it knows: "
                                  f"{', '.join(known) or 'none'}")
        raise ConfigError(f"no predictor for {device!r} at {path}; build one with "
                          f"`hilnas predictor fit {device} --out {runs}`")
    return LatencyPredictor.load(path)


def _summary(pred: Any) -> dict[str, Any]:
    cv = pred.cv_stats()
    return {
        "device": pred.device,
        "runtime": pred.runtime,
        "kind": pred.kind,
        "networks": pred.networks,
        "per_kernel": pred.per_kernel,
        "source": pred.source(),
        "op_types": pred.op_types(),
        "cross_validated": cv.to_json(),
        "audited_predictions": len(pred.audit_log),
        "fit_seconds": pred.fit_seconds,
    }


def run(args: argparse.Namespace) -> int:
    from host.cli._common import open_store, print_json
    from host.predictor import LatencyPredictor, audit_entries
    from host.predictor.store import from_store, predictor_path

    device = args.device
    if args.action == "fit":
        base = None
        saved = predictor_path(args.out, device)
        if saved.exists():
            base = LatencyPredictor.from_json(json.loads(saved.read_text()), fit=False)
        if args.from_file is not None:
            imported = LatencyPredictor.from_json(
                json.loads(Path(args.from_file).read_text()), fit=False)
            if imported.device != device:
                print(f"note: {args.from_file} was learned on {imported.device!r}; "
                      f"importing it for {device!r}")
            if base is None:
                base = imported
            else:
                base.merge(imported)
        store = open_store(args.out)
        try:
            pred, counts = from_store(store, device, base)
        finally:
            store.close()
        path = pred.save(saved)
        if args.json:
            print_json({**_summary(pred), "path": str(path), **counts})
            return 0
        extra = ""
        if counts["missing_file"]:
            extra += f", {counts['missing_file']} skipped (model file gone)"
        if counts["not_tflite"]:
            extra += f", {counts['not_tflite']} skipped (not a .tflite model)"
        print(f"{device}: {pred.source()}, from {counts['used']} store measurements{extra}; "
              f"fitted in {pred.fit_seconds:.2f} s; saved to {path}")
        print(f"  cross-validated: {pred.cv_stats().line()}")
        return 0

    pred = _load_saved(args.out, device)
    if args.action == "export":
        args.to.parent.mkdir(parents=True, exist_ok=True)
        pred.save(args.to)
        print(f"{device}: {pred.source()} written to {args.to}")
        return 0
    summary = _summary(pred)
    if args.json:
        print_json(summary)
        return 0
    print(f"{device}: {pred.source()}; runtime {pred.runtime or '?'}; regressor {pred.kind}")
    if pred.per_kernel:
        print("  per-operator profiles: yes (per-kernel regressors + fitted overhead)")
    else:
        print("  per-operator profiles: none (the device gave none): whole-model regressor "
              "on aggregated features only")
    ops = summary["op_types"]
    unit = "profiled operators" if pred.per_kernel else "networks using it"
    print(f"  operator types ({unit}): " + ", ".join(f"{k} {v}" for k, v in ops.items()))
    print(f"  cross-validated: {pred.cv_stats().line()}")
    if pred.audit_log:
        print(f"  audit of predictions made before measurements: "
              f"{audit_entries(pred.audit_log).line()}")
    return 0
