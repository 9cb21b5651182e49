"""Training overhead: `train_candidate` time divided by a plain `model.fit` on the same arrays.

Same network (bionet-b1-x1-l16), same arrays (normal-vs-anomalous, patient-wise, 100
windows per record), same epochs (4, early stopping off so both do equal work), batch 32.
Each variant runs three times, interleaved; the minimum is compared. Target: <= 1.1.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/train_overhead.py
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from host.data import EcgDatasetConfig, load_ecg_dataset  # noqa: E402
from host.spaces import BioNetArch, build_keras_model  # noqa: E402
from host.spaces.base import get_space  # noqa: E402
from host.tasks.ecg import EcgClassification  # noqa: E402
from host.train import TrainConfig, train_candidate  # noqa: E402
from host.train.tfenv import import_keras  # noqa: E402

EPOCHS = 4


def plain(ds, arch) -> float:  # type: ignore[no-untyped-def]
    keras = import_keras()
    keras.utils.set_random_seed(0)
    t0 = time.perf_counter()
    model = build_keras_model(arch, ds.window, 1, ds.n_classes, seed=0)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(
        ds.x_train,
        ds.y_train,
        validation_data=(ds.x_val, ds.y_val),
        epochs=EPOCHS,
        batch_size=32,
        verbose=0,
    )
    return time.perf_counter() - t0


def main() -> int:
    ds = load_ecg_dataset(EcgDatasetConfig(max_windows_per_record=100))
    arch = BioNetArch(1, 1, 4)
    cfg = TrainConfig(epochs=EPOCHS, patience=None, batch_size=32, seed=0)
    plain_t, fit_t, total_t = [], [], []
    plain(ds, arch)  # warm-up: graph tracing caches, thread pools
    for _ in range(3):
        plain_t.append(plain(ds, arch))
        t0 = time.perf_counter()
        task = EcgClassification(ds.config)
        res = train_candidate(get_space("bionet", task.input_spec()), arch, task, ds, cfg)
        total_t.append(time.perf_counter() - t0)
        fit_t.append(res.train_seconds)
    print(f"{arch.key()}, {len(ds.y_train)} training windows, {EPOCHS} epochs, runs: 3")
    runs = ", ".join(f"{t:.2f}" for t in plain_t)
    print(f"plain build+compile+fit   : {min(plain_t):.2f} s  (runs {runs})")
    print(f"train_candidate, fit only : {min(fit_t):.2f} s")
    print(f"train_candidate, whole    : {min(total_t):.2f} s  (also predicts val and test)")
    ratio = min(total_t) / min(plain_t)
    print(
        f"overhead ratio whole call / plain fit: {ratio:.3f} (target <= 1.1): "
        f"{'PASS' if ratio <= 1.1 else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
