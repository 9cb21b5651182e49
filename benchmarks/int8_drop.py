"""int8 versus float32 TFLite test accuracy (LiteRT) for a trained BioNet model.

Budget: normal-vs-anomalous, patient-wise split, at most 150 windows per record, the
medium architecture (bionet-b2-x2-l32) trained for at most 8 epochs. Both models are the
batch-1 export of the same weights; the int8 model is calibrated on 200 training windows.
Target: a drop of at most 0.3 percentage points.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/int8_drop.py
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from host.data import EcgDatasetConfig, load_ecg_dataset  # noqa: E402
from host.export.evaluate import evaluate_tflite  # noqa: E402
from host.export.tflite import convert_many, model_ops  # noqa: E402
from host.spaces import BioNetArch  # noqa: E402
from host.spaces.base import get_space  # noqa: E402
from host.tasks.ecg import EcgClassification  # noqa: E402
from host.train import TrainConfig, train_candidate  # noqa: E402


def main() -> int:
    preset = os.environ.get("BENCH_PRESET", "normal-vs-anomalous")
    ds = load_ecg_dataset(EcgDatasetConfig(preset=preset, max_windows_per_record=150))
    arch = BioNetArch(2, 2, 5)
    task = EcgClassification(ds.config)
    space = get_space("bionet", task.input_spec())
    res = train_candidate(space, arch, task, ds,
                          TrainConfig(epochs=8, patience=2, batch_size=32, seed=0))
    export = space.export_model(res.model, arch, task)
    models = convert_many(
        export,
        ["float32", "int8"],
        ds.x_train,
        metadata={**ds.metadata(), "architecture": arch.to_json()},
    )
    q = {m: evaluate_tflite(b, ds, side="test", isolate=True) for m, b in models.items()}
    drop = 100 * (q["float32"]["accuracy"] - q["int8"]["accuracy"])
    print(f"{preset}, {ds.split_description.split(';')[0]}, {arch.key()}, test n={q['int8']['n']}")
    print(f"keras float test accuracy : {res.test_metrics['accuracy']:.4f}")
    for m in ("float32", "int8"):
        print(
            f"tflite {m:<7} accuracy {q[m]['accuracy']:.4f}  bal.acc "
            f"{q[m]['balanced_accuracy']:.4f}  F1 macro {q[m]['f1_macro']:.4f}  "
            f"size {len(models[m])} bytes"
        )
    print(f"int8 ops: {', '.join(model_ops(models['int8']))}")
    print(
        f"accuracy drop float32 -> int8: {drop:+.3f} pp (target <= 0.3 pp): "
        f"{'PASS' if drop <= 0.3 else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
