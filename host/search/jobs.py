"""The unit of work an executor runs: train one architecture of a space on a task.

`run_training_job` is a top-level function of plain data in and plain data out, so the
in-process, process-pool and Ray executors can all run it. It returns the trained network's
inference graph (`Space.export_model`: batch of one, batch norm folded where the space does
that) as the bytes of a `.keras` file, so nothing depends on a filesystem shared with the
worker; int8 conversion and measurement then run on the host, overlapped with the next
training (host/search/pipeline.py).

The dataset reaches the job in one of two ways: `run_training_job(job, dataset)` with the
dataset itself (the Ray executor loads it once on the driver, puts it in Ray's object store
and passes the reference, which Ray resolves on the worker: no filesystem shared with the
worker is assumed), or, without one, `load_dataset` in the worker process from
`HILNAS_DATA_DIR` / `job.data_dir` (the in-process and process-pool executors, which run
on the machine whose files the driver read).

`HILNAS_TRAIN_MARKER_DIR`, when set in a worker's environment, is a directory where each job
creates an empty file `<train_key>.<pid>` once its data and TensorFlow are ready, just
before the network is built and fitted; tests use it to kill a worker in mid-training.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.train.trainer import TrainConfig

_DATASETS: dict[Any, Any] = {}  # per process: a search loads its dataset once


@dataclass(frozen=True)
class TrainJob:
    train_key: str
    arch_key: str
    space: str
    space_options: dict[str, Any]
    task: str
    data: Any  # the task's configuration (a frozen, picklable dataclass)
    train: TrainConfig
    tf_threads: int = 0
    data_dir: str | None = None


@dataclass
class TrainOutcome:
    train_key: str
    arch_key: str
    metrics: dict[str, Any]
    #: time in `fit`, and the whole job (building, fitting, scoring on val and test)
    fit_seconds: float
    job_seconds: float
    #: the inference graph as a .keras file's bytes (see the module docstring)
    keras_model: bytes = b""
    started: float = 0.0
    pid: int = 0
    notes: list[str] = field(default_factory=list)
    #: where it ran: host name and pid, and on Ray the node, worker and task ids (also kept
    #: in `metrics["worker"]`, so the run store says which machine trained each network)
    worker: dict[str, Any] = field(default_factory=dict)


def _configure_threads(n: int) -> None:
    if n <= 0:
        return
    from host.train.tfenv import import_tf

    tf = import_tf()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, n // 2))
    except RuntimeError:
        pass  # already initialised in this process; the first setting stays


#: datasets kept per process: one for most searches; a data-aware search meets one per
#: granularity and comes back to the fitter ones, so a few recent ones are kept
MAX_DATASETS = 4
_DATASETS_LOCK = threading.Lock()


def load_dataset(task: Any, progress: bool = False) -> Any:
    """The task's dataset, loaded once per process (the `MAX_DATASETS` most recent kept)."""
    key = (task.name, task.config)
    with _DATASETS_LOCK:
        if key in _DATASETS:
            _DATASETS[key] = _DATASETS.pop(key)  # most recently used last
            return _DATASETS[key]
    data = task.load(progress=progress)
    with _DATASETS_LOCK:
        _DATASETS[key] = data
        while len(_DATASETS) > MAX_DATASETS:
            _DATASETS.pop(next(iter(_DATASETS)))
    return data


def _worker_info() -> dict[str, Any]:
    """The host and process running this job, and its Ray node, worker and task if any."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ctx = ray.get_runtime_context()
        task_id = ctx.get_task_id()
        if task_id is not None:  # in a Ray task, not in a driver that uses Ray
            info.update(ray_node=ctx.get_node_id(), ray_worker=ctx.get_worker_id(),
                        ray_task=task_id)
    return info


def _mark_started(job: TrainJob) -> None:
    marker_dir = os.environ.get("HILNAS_TRAIN_MARKER_DIR")
    if marker_dir:
        from host.train.tfenv import import_keras

        import_keras()  # loaded now, so that what follows the marker is building and fitting
        Path(marker_dir, f"{job.train_key}.{os.getpid()}").touch()


def run_training_job(job: TrainJob, dataset: Any = None) -> TrainOutcome:
    """Train `job`'s network; `dataset`: the task's data (None: load it in this process)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if job.data_dir:
        os.environ.setdefault("HILNAS_DATA_DIR", job.data_dir)
    started = time.time()
    t0 = time.perf_counter()
    _configure_threads(job.tf_threads)
    from host.spaces.base import get_space
    from host.tasks import task_class
    from host.train.trainer import train_candidate

    run_task = task_class(job.task)(job.data)
    space = get_space(job.space, task=run_task, **job.space_options)
    arch = space.from_key(job.arch_key)
    task = space.task_for(arch, run_task)  # a data-aware space's own granularity
    if dataset is not None and task.config != run_task.config:
        dataset = None  # the driver's dataset is the run's; this network needs its own
    data = dataset if dataset is not None else load_dataset(task)
    worker = _worker_info()
    _mark_started(job)
    result = train_candidate(space, arch, task, data, job.train)
    export = space.export_model(result.model, arch, task)
    with tempfile.TemporaryDirectory(prefix="hilnas-train-") as tmp:
        path = Path(tmp) / "model.keras"
        # save_format explicitly: tf_keras saves a second ".keras" file of a thread as HDF5
        # (docs/decisions.md, "tf_keras saves .keras as HDF5 in threads").
        export.save(str(path), save_format="keras_v3")
        keras_model = path.read_bytes()
    metrics = {
        "val": result.val_metrics,
        "test": result.test_metrics,
        "epochs_run": result.epochs_run,
        "split": result.split_description,
        "selection": result.selection,
        "worker": worker,
    }
    return TrainOutcome(
        job.train_key,
        job.arch_key,
        metrics,
        fit_seconds=result.train_seconds,
        job_seconds=time.perf_counter() - t0,
        keras_model=keras_model,
        started=started,
        pid=os.getpid(),
        worker=worker,
    )
