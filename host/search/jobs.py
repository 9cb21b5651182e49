"""The unit of work an executor runs: train one architecture and export it as int8 TFLite.

`run_training_job` is a top-level function of plain data in and plain data out, so the
in-process, process-pool and Ray executors can all run it. The trained model never crosses
a process boundary: the job writes the .tflite file itself and returns its path and hash.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DATASETS: dict[Any, Any] = {}  # per process: a search loads its dataset once


@dataclass(frozen=True)
class TrainJob:
    train_key: str
    arch_key: str
    space_name: str
    space_bounds: dict[str, Any]
    dataset: Any  # host.data.EcgDatasetConfig (frozen, picklable)
    train: Any  # host.train.TrainConfig
    models_dir: str
    export_int8: bool = True
    tf_threads: int = 0
    data_dir: str | None = None


@dataclass
class TrainOutcome:
    train_key: str
    arch_key: str
    metrics: dict[str, Any]
    train_seconds: float
    export_seconds: float
    model_path: str | None = None
    sha256: str | None = None
    model_bytes: int = 0
    started: float = 0.0
    pid: int = 0
    notes: list[str] = field(default_factory=list)


def _configure_threads(n: int) -> None:
    if n <= 0:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, n // 2))
    except RuntimeError:
        pass  # already initialised in this process; the first setting stays


def load_dataset(config: Any) -> Any:
    from host.data import load_ecg_dataset

    if config not in _DATASETS:
        _DATASETS.clear()  # one dataset per search; do not grow without bound
        _DATASETS[config] = load_ecg_dataset(config)
    return _DATASETS[config]


def run_training_job(job: TrainJob) -> TrainOutcome:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if job.data_dir:
        os.environ.setdefault("HILNAS_DATA_DIR", job.data_dir)
    started = time.time()
    _configure_threads(job.tf_threads)
    from host.export.tflite import convert
    from host.spaces import get_space
    from host.train import train_model

    space = get_space(job.space_name, **job.space_bounds)
    arch = next(a for a in space.architectures(bounded=False) if a.key() == job.arch_key)
    dataset = load_dataset(job.dataset)
    result = train_model(arch, dataset, job.train)
    metrics = {
        "val": result.val_metrics,
        "test": result.test_metrics,
        "epochs_run": result.epochs_run,
        "split": result.split_description,
    }
    outcome = TrainOutcome(
        job.train_key,
        job.arch_key,
        metrics,
        result.train_seconds,
        0.0,
        started=started,
        pid=os.getpid(),
    )
    if job.export_int8:
        t0 = time.perf_counter()
        meta = {
            **dataset.metadata(),
            "arch": job.arch_key,
            "space": job.space_name,
            "train_key": job.train_key,
        }
        model = convert(result.model, "int8", representative=dataset.x_train, metadata=meta)
        outcome.export_seconds = time.perf_counter() - t0
        sha = hashlib.sha256(model).hexdigest()
        path = Path(job.models_dir) / f"{job.arch_key}-{sha[:12]}.tflite"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(model)
        os.replace(tmp, path)
        outcome.model_path, outcome.sha256, outcome.model_bytes = str(path), sha, len(model)
    return outcome
