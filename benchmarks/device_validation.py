"""Field validation of front models: device quality vs host quality, int8 agreement.

Validates hilnas .tflite models (e.g. a run's front/*.tflite) on the local LiteRT agent
and the emulated Nano 33 BLE (TFLite Micro), on each model's own test records, and prints
per model and device: identical int8 outputs against the host reference (LiteRT default
kernels) and against LiteRT's reference kernels, the largest difference, and both
qualities (F1 macro) with their sources. JSON of every result with --json OUT.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/device_validation.py \
        RUN_DIR/front/*.tflite [--max-windows 400] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine_line  # type: ignore[import-not-found]  # noqa: E402

from host.data.dataset import load_ecg_windows  # noqa: E402
from host.export.evaluate import config_from_metadata  # noqa: E402
from host.export.flatbuf import read_metadata  # noqa: E402
from host.fleet import open_device  # noqa: E402
from host.fleet.validation import validate_front  # noqa: E402
from host.tasks.base import task_class  # noqa: E402

DEVICES = {"local": "local", "nano33ble-emu": "local:mcu-emulator?board=nano33ble"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--max-windows", type=int, default=400)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    print(machine_line())
    devices = {name: open_device(spec, name=name) for name, spec in DEVICES.items()}
    everything = {}
    try:
        for path in args.models:
            buf = path.read_bytes()
            meta = read_metadata(buf)
            test = tuple((meta.get("records") or {}).get("test") or ()) or None
            cfg = config_from_metadata(meta, records=test)
            x, y, _, used = load_ecg_windows(cfg)
            x, y = x[: args.max_windows], y[: args.max_windows]
            task = task_class(str(meta.get("task") or "ecg"))(cfg)
            t0 = time.perf_counter()
            front = validate_front(devices, [{"arch": path.stem, "model_path": str(path)}], x, y,
                                   task)
            row = front[path.stem]
            everything[path.stem] = row
            print(f"\n{path.name}: {len(x)} windows of records {','.join(used)} "
                  f"({time.perf_counter() - t0:.1f} s)")
            for name, r in row.items():
                if not r["ok"]:
                    print(f"  {name:<14} {r['reason']}: {r['error']}")
                    continue
                ref = r["reference_kernels"]
                print(f"  {name:<14} identical {r['identical_share']:7.2%} (max diff "
                      f"{r['max_abs_diff_raw']:g})  vs ref kernels {ref['identical_share']:7.2%} "
                      f"(max {ref['max_abs_diff_raw']:g})  same class "
                      f"{r['same_prediction_share']:7.2%}  F1 device "
                      f"{r['device_metrics']['f1_macro']:.4f} host "
                      f"{r['host_metrics']['f1_macro']:.4f}  {r['batches']} calls")
    finally:
        for device in devices.values():
            device.close()
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
