"""Quality of three BioNet architectures on patient-wise and random splits, with training time.

Reduced budget so it finishes in about ten minutes on two CPU cores: every present MIT-BIH
record, at most 60 windows per record (seeded, every class kept), 256-sample windows,
at most 6 epochs with early stopping (patience 2). Figures are test-side quality.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/ecg_quality.py
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from host.data import EcgDatasetConfig, load_ecg_dataset  # noqa: E402
from host.hw.costs import analytic_costs  # noqa: E402
from host.spaces import BioNetArch  # noqa: E402
from host.spaces.base import get_space  # noqa: E402
from host.tasks.ecg import EcgClassification  # noqa: E402
from host.train import TrainConfig, train_candidate  # noqa: E402

ARCHS = {
    "small": BioNetArch(0, 1, 4),  # LSTM(16) only
    "medium": BioNetArch(2, 2, 5),  # 2 blocks of 32 filters, LSTM(32)
    "large": BioNetArch(4, 2, 6),  # 32, 32, 64, 64 filters, LSTM(64)
}
MAX_WINDOWS = int(os.environ.get("BENCH_MAX_WINDOWS", "60"))
EPOCHS = int(os.environ.get("BENCH_EPOCHS", "6"))
# BENCH_CLASS_WEIGHTS=balanced weights classes by their inverse frequency. At this reduced
# budget, unweighted aami5 models predict only the majority class (balanced accuracy 0.2);
# weighted ones trade accuracy for balanced accuracy.
CLASS_WEIGHTS = os.environ.get("BENCH_CLASS_WEIGHTS", "none")


def main() -> int:
    print(f"budget: {MAX_WINDOWS} windows/record, <= {EPOCHS} epochs, batch 32, seed 0")
    rows = []
    t_all = time.perf_counter()
    for split in ("patient", "random"):
        for preset in ("normal-vs-anomalous", "aami5"):
            ds = load_ecg_dataset(
                EcgDatasetConfig(preset=preset, split=split, max_windows_per_record=MAX_WINDOWS)
            )
            print(
                f"\n{preset} / {ds.split_description.split(';')[0]}: "
                f"train {len(ds.y_train)}, val {len(ds.y_val)}, test {len(ds.y_test)} windows"
            )
            for name, arch in ARCHS.items():
                task = EcgClassification(ds.config)
                res = train_candidate(
                    get_space("bionet", task.input_spec()), arch, task, ds, TrainConfig(
                        epochs=EPOCHS, patience=2, batch_size=32, seed=0,
                        class_weights=None if CLASS_WEIGHTS == "none" else CLASS_WEIGHTS,
                    )
                )
                t = res.test_metrics
                c = analytic_costs(arch, ds.window, ds.n_classes)
                rows.append((split, preset, name, arch.key(), t, res))
                print(
                    f"  {name:<6} {arch.key():<18} params {c.params:>7}  "
                    f"acc {t['accuracy']:.4f}  bal.acc {t['balanced_accuracy']:.4f}  "
                    f"F1 macro {t['f1_macro']:.4f}  train {res.train_seconds:6.1f} s "
                    f"({res.epochs_run} epochs)",
                    flush=True,
                )
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
