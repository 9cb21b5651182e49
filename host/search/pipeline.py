"""The candidate pipeline: screen -> train -> export -> measure on each device -> score.

Each stage is a method of `CandidatePipeline`, testable alone, and each records its time in
the run store (`timings`, one row per stage and candidate):

1. **screen**: the analytic figures (costs, a space's own estimates) and the constraints
   that they decide, before any training (`Status.INFEASIBLE`, stage SCREEN);
2. **train**: on the executor, or from the store when the same network was trained under
   the same data and training settings, or looked up in a tabular benchmark;
3. **export**: the trained inference graph to int8 TFLite, in the warm converter process;
4. **measure**: on every device, one queue per device (Measure, and Validate where a
   quality objective is measured on the device), or from the store when the same model was
   measured on the same device, runtime and settings;
5. **score**: objectives and constraint violations from the figures.

Stages overlap across candidates: training k+1 starts as soon as training k is done, while
k is exported (export thread) and measured (device threads). A batch ends when its last
candidate is scored.

A device that stops answering is retried with backoff for `budget.device_retry_seconds`;
then the run goes on without it and records each measurement it missed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.errors import (
    CandidateRejected,
    ConfigError,
    DataError,
    DeviceUnavailable,
    HilnasError,
    MeasurementFailed,
)
from host.fleet.device import Device
from host.metrics import DEVICE_METRICS, MetricKind
from host.search.config import SearchConfig
from host.search.jobs import TrainJob, TrainOutcome
from host.search.objectives import Figures, objective_vector, total_violation, violated
from host.store.sqlite import RunStore

log = logging.getLogger(__name__)

# Windows per Validate call: a request well under the agents' size limits.
VALIDATE_BATCH = 256


class Status(StrEnum):
    """Where a candidate stands after evaluation."""

    OK = "ok"
    INFEASIBLE = "infeasible"  # breaks a constraint (before or after training)
    INVALID = "invalid"  # the chromosome names no network of the bounded space
    FAILED = "failed"  # training, export or a needed device failed on it
    INCOMPLETE = "incomplete"  # a device an objective needs left the run


class Stage(StrEnum):
    """The stages of the pipeline, in order; an evaluation says how far its candidate got."""

    SCREEN = "screen"
    TRAIN = "train"
    EXPORT = "export"
    MEASURE = "measure"
    SCORE = "score"


@dataclass
class Evaluation:
    """What the search knows about one network after evaluation."""

    arch_key: str
    figures: Figures
    objectives: list[float | None]
    violation: float
    status: Status
    stage: Stage
    detail: str = ""
    train_key: str | None = None
    sha256: str | None = None
    model_path: str | None = None
    test_metrics: dict[str, Any] = field(default_factory=dict)
    #: per device: "ok", or why the device cannot run this model
    runs_on: dict[str, str] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.violation == 0 and self.status is Status.OK

    @property
    def trained(self) -> bool:
        """Whether the candidate used a training (new, from the store, or from a table)."""
        return self.stage is not Stage.SCREEN and self.train_key is not None


class Tabular:
    """A precomputed table of the space (tools/build_tabular.py): training becomes a lookup."""

    def __init__(self, path: Path) -> None:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the tabular benchmark {path}: {exc}") from exc
        self.path = Path(path)
        self.meta = doc.get("meta", {})
        self.rows = {row["arch"]: row for row in doc["rows"]}

    def lookup(self, arch_key: str) -> dict[str, Any]:
        try:
            return self.rows[arch_key]
        except KeyError:
            raise ConfigError(f"{arch_key} is not in the tabular benchmark {self.path}") from None


@dataclass
class Trained:
    """A training's outcome as the later stages need it."""

    train_key: str
    metrics: dict[str, Any]
    keras_path: str | None = None  # the inference graph, for export
    model: dict[str, Any] | None = None  # the int8 model's store row, once exported


@dataclass
class Exported:
    """A trained candidate with its model and the measurements under way."""

    key: str
    figures: Figures
    trained: Trained
    model: dict[str, Any] | None
    futures: dict[str, Future[Any]] = field(default_factory=dict)
    validations: dict[str, Future[dict[str, Any]]] = field(default_factory=dict)
    failure: str = ""


class CandidatePipeline:
    def __init__(
        self,
        cfg: SearchConfig,
        store: RunStore,
        run_id: str,
        space: Any,
        task: Any,
        *,
        executor: Any | None,
        devices: dict[str, Device],
        models_dir: Path,
        data: Any = None,
        tabular: Tabular | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg, self.store, self.run_id = cfg, store, run_id
        self.space, self.task = space, task
        self.executor = executor
        self.devices = devices
        self.models_dir = models_dir
        self.data = data
        self.tabular = tabular
        # With a table, device figures come from it under these device names.
        self.table_devices = tuple(d.name for d in cfg.devices)
        # Training and a local device share this machine's cores: unless told otherwise,
        # leave one core to the local agent so its timings are not disturbed.
        self.tf_threads = cfg.executor.tf_threads
        if self.tf_threads == 0 and any(d.address.startswith("local") for d in cfg.devices):
            self.tf_threads = max(1, (os.cpu_count() or 2) - 1)
        items = (*cfg.objectives, *cfg.constraints)
        self.needed_devices = {o.device for o in items if o.device}
        self.quality_devices = {
            o.device for o in items if o.device and o.kind is MetricKind.QUALITY
        }
        self.on_progress = on_progress or (lambda _msg: None)
        self.data_hash = cfg.fingerprint("task", "data")
        self.train_hash = cfg.fingerprint("train", "space")
        self.settings_hash = cfg.fingerprint("measure")
        self.runtimes: dict[str, str] = {}
        self.gone: dict[str, str] = {}  # device -> why it left the run
        self.export_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")
        self.device_pools = {
            name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"measure-{name}")
            for name in devices
        }
        self._lock = threading.Lock()
        # The core that training leaves free (executor.tf_threads) is shared by the
        # converter and the agents that run on this machine: a conversion running beside a
        # local measurement would be timed with it, so the two take turns.
        self.local_devices = {d.name for d in cfg.devices if d.address.startswith("local")}
        self._spare_core = threading.Lock()
        self._representative: np.ndarray | None = None

    # ------------------------------------------------------------------ keys
    def train_key(self, arch_key: str) -> str:
        table = self.tabular.path.name if self.tabular else ""
        raw = f"{arch_key}|{self.data_hash}|{self.train_hash}|{table}"
        return hashlib.sha256(raw.encode()).hexdigest()[:20]

    def describe_devices(self) -> None:
        for name, device in self.devices.items():
            try:
                info = device.describe()
            except HilnasError as exc:
                self._device_gone(name, f"not reachable at the start of the run: {exc}")
                continue
            runtime = info.runtimes[0] if info.runtimes else None
            self.runtimes[name] = f"{runtime.name} {runtime.version}" if runtime else info.backend

    def _timed(self, stage: str, key: str, start: float, seconds: float) -> None:
        self.store.add_timing(self.run_id, stage, key, start, seconds)

    # ------------------------------------------------------------------ the batch
    def evaluate(self, arch_keys: Sequence[str]) -> dict[str, Evaluation]:
        """Evaluate distinct networks; returns one Evaluation per key."""
        results: dict[str, Evaluation] = {}
        figures: dict[str, Figures] = {}
        pending: dict[Future[Trained], str] = {}
        for key in dict.fromkeys(arch_keys):
            screened = self.screen(key)
            if isinstance(screened, Evaluation):
                results[key] = screened
                continue
            figures[key] = screened
            pending[self.train(key)] = key

        exporting: dict[str, Future[Exported]] = {}
        for future in as_completed(pending):
            key = pending[future]
            try:
                trained = future.result()
            except (DataError, ConfigError):
                raise  # the same for every candidate: stop the run, do not mark each failed
            except Exception as exc:  # noqa: BLE001 - one candidate's failure, recorded
                if not isinstance(exc, HilnasError):
                    log.exception("training %s failed", key)
                results[key] = self.score(
                    key, figures[key], Stage.TRAIN, Status.FAILED,
                    f"training failed: {type(exc).__name__}: {exc}",
                    Trained(self.train_key(key), {}),
                )
                continue
            self.on_progress(f"trained {key}")
            exporting[key] = self.export_pool.submit(self.export, key, figures[key], trained)

        for key, pending_export in exporting.items():
            results[key] = self.finish(pending_export.result())
        return results

    # ------------------------------------------------------------------ 1. screen
    def screen(self, key: str) -> Figures | Evaluation:
        """Analytic figures, and the constraints they decide (an Evaluation when broken)."""
        t0, start = time.perf_counter(), time.time()
        figures = Figures()
        arch = self.space.from_key(key)
        costs = self.space.costs(arch)
        figures.add_many(
            {m: getattr(costs, m) for m in costs.to_json()}, "analytic"
        )
        figures.add_many(self.space.estimates(arch), self.space.estimate_source())
        self._timed(Stage.SCREEN, key, start, time.perf_counter() - t0)
        if total_violation(self.cfg, figures, cheap_only=True) > 0:
            broken = "; ".join(violated(self.cfg, figures, cheap_only=True))
            return self.score(key, figures, Stage.SCREEN, Status.INFEASIBLE,
                              f"before training: {broken}")
        return figures

    # ------------------------------------------------------------------ 2. train
    def train(self, key: str) -> Future[Trained]:
        """A future of the training of `key`: from the store, a table, or the executor."""
        tk = self.train_key(key)
        stored = self.store.training(tk)
        if stored is not None:
            model = self.store.model_for(tk)
            keras = self.store.model_for(tk, "keras")
            keras_path = keras["path"] if keras and Path(keras["path"]).exists() else None
            if model is not None or keras_path is not None or not self._needs_model():
                return _done(Trained(tk, stored["metrics"], keras_path, model))
        if self.tabular is not None:
            row = self.tabular.lookup(key)
            metrics = {
                "val": row["val"],
                "test": row["test"],
                "tabular": {k: row[k] for k in row if k not in ("val", "test")},
            }
            self.store.add_training(
                tk, key, self.data_hash, self.train_hash, metrics,
                float(row.get("train_seconds", 0.0)), f"tabular:{self.tabular.path.name}",
            )
            return _done(Trained(tk, metrics))
        if self.executor is None:
            raise HilnasError("no executor for training")  # pragma: no cover
        job = TrainJob(
            train_key=tk,
            arch_key=key,
            space=self.cfg.space.name,
            space_options=dict(self.cfg.space.options),
            task=self.cfg.task,
            data=self.cfg.data,
            train=self.cfg.train,
            tf_threads=self.tf_threads,
            data_dir=os.environ.get("HILNAS_DATA_DIR"),
        )
        outcome: Future[TrainOutcome] = self.executor.submit(job)
        result: Future[Trained] = Future()

        def done(f: Future[TrainOutcome]) -> None:
            try:
                result.set_result(self._store_training(key, f.result()))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                result.set_exception(exc)

        outcome.add_done_callback(done)
        return result

    def _needs_model(self) -> bool:
        return self.tabular is None and (bool(self.devices) or self.cfg.budget.export_int8)

    def _store_training(self, key: str, outcome: TrainOutcome) -> Trained:
        metrics = {
            **outcome.metrics,
            "fit_seconds": outcome.fit_seconds,
            "train_seconds": outcome.job_seconds,
        }
        keras_path = None
        if outcome.keras_model:
            sha = hashlib.sha256(outcome.keras_model).hexdigest()
            path = self.models_dir / f"{key}-{outcome.train_key[:12]}.keras"
            _write_atomic(path, outcome.keras_model)
            keras_path = str(path)
        # The training row first: a model row refers to it.
        self.store.add_training(
            outcome.train_key, key, self.data_hash, self.train_hash, metrics,
            outcome.job_seconds, "trained",
        )
        if keras_path is not None:
            self.store.add_model(sha, outcome.train_key, "keras", keras_path,
                                 len(outcome.keras_model), 0.0)
        self._timed(Stage.TRAIN, key, outcome.started, outcome.job_seconds)
        return Trained(outcome.train_key, metrics, keras_path, None)

    # ------------------------------------------------------------------ 3. export
    def export(self, key: str, figures: Figures, trained: Trained) -> Exported:
        """Quality figures, the int8 model (converted unless stored), measurements queued."""
        metrics = trained.metrics
        figures.add_many(metrics.get("val", {}), "validation set",
                         names=[m.name for m in self.task.metrics()])
        tabular = metrics.get("tabular")
        if tabular is not None:
            source = tabular.get("latency_source", "measured (tabular)")
            for device in self.table_devices:
                figures.add_many(tabular, source, names=[m.name for m in DEVICE_METRICS],
                                 device=device)
        exported = Exported(key, figures, trained, trained.model)
        if exported.model is None and trained.keras_path and self._needs_model():
            try:
                exported.model = self._convert(key, trained)
            except HilnasError as exc:
                exported.failure = f"export failed: {exc}"
                return exported
        if exported.model is not None and tabular is None:
            for name in self.devices:
                exported.futures[name] = self.device_pools[name].submit(
                    self.measure, name, exported.model
                )
                if name in self.quality_devices:
                    exported.validations[name] = self.device_pools[name].submit(
                        self.validate, name, exported.model
                    )
        return exported

    def representative(self) -> np.ndarray:
        if self._representative is None:
            self._representative = self.task.representative(self.data)
        return self._representative

    def _convert(self, key: str, trained: Trained) -> dict[str, Any]:
        from host.export.tflite import convert

        meta = {
            **self.data.metadata(),
            "arch": key,
            "architecture": self.space.from_key(key).to_json(),
            "space": self.space.describe(),
            "task": self.task.name,
            "train_key": trained.train_key,
        }
        with self._spare_core:
            t0, start = time.perf_counter(), time.time()
            model = convert(trained.keras_path, "int8", representative=self.representative(),
                            metadata=meta, batch_size=None)
            seconds = time.perf_counter() - t0
        sha = hashlib.sha256(model).hexdigest()
        path = self.models_dir / f"{key}-{sha[:12]}.tflite"
        _write_atomic(path, model)
        self.store.add_model(sha, trained.train_key, "int8", str(path), len(model), seconds)
        self._timed(Stage.EXPORT, key, start, seconds)
        self.on_progress(f"exported {key}")
        row = self.store.model_for(trained.train_key)
        assert row is not None
        return row

    # ------------------------------------------------------------------ 4. measure
    def measure(self, device_name: str, model: dict[str, Any]) -> dict[str, Any]:
        """A measurement of `model` on a device (from the store when already measured)."""
        return self._on_device(device_name, model, "measure")

    def validate(self, device_name: str, model: dict[str, Any]) -> dict[str, Any]:
        """The task's metrics of the device's own outputs on the validation windows."""
        return self._on_device(device_name, model, "validate")

    def _on_device(self, device_name: str, model: dict[str, Any], what: str) -> dict[str, Any]:
        sha = model["sha256"]
        if device_name in self.gone:
            raise DeviceUnavailable(f"left the run earlier: {self.gone[device_name]}")
        runtime = self.runtimes.get(device_name, "")
        settings_hash = self.settings_hash if what == "measure" else f"validate:{self.data_hash}"
        cached = self.store.measurement(sha, device_name, runtime, settings_hash)
        if cached is not None:
            return cached
        device = self.devices[device_name]
        deadline = time.monotonic() + self.cfg.budget.device_retry_seconds
        delay = 1.0
        spare_core = self._spare_core if device_name in self.local_devices else nullcontext()
        while True:
            try:
                with spare_core:
                    t0, start = time.perf_counter(), time.time()
                    if what == "measure":
                        data = device.measure(Path(model["path"]), self.cfg.measure).to_json()
                    else:
                        data = self._validate_on(device, Path(model["path"]))
                    seconds = time.perf_counter() - t0
            except DeviceUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    self._device_gone(device_name, str(exc))
                    raise
                log.warning("%s unavailable (%s); retrying in %.0f s", device_name, exc, delay)
                self.on_progress(f"{device_name} unavailable, retrying")
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
                continue
            self.store.add_measurement(sha, device_name, runtime, settings_hash, data, seconds)
            self._timed(f"{what}:{device_name}", sha, start, seconds)
            return data

    def _validate_on(self, device: Device, path: Path) -> dict[str, Any]:
        from host.export.evaluate import dequantize, quantize
        from host.export.flatbuf import io_tensors

        model = path.read_bytes()
        io = io_tensors(model)
        inp, out = io["inputs"][0], io["outputs"][0]
        x = quantize(np.asarray(self.data.x_val, np.float32), inp["dtype"], inp["scale"],
                     inp["zero_point"])
        shape = [max(1, d) for d in inp["shape"]]
        outputs = []
        for i in range(0, len(x), VALIDATE_BATCH):
            batch = [(w.reshape(shape),) for w in x[i : i + VALIDATE_BATCH]]
            outputs += [np.asarray(o[0], dtype=np.float32).ravel()
                        for o in device.validate(model, batch)]
        y = np.stack(outputs) if outputs else np.zeros((0, 1), np.float32)
        y = dequantize(y, out["dtype"], out["scale"], out["zero_point"])
        metrics = self.task.score(self.data.y_val, y)
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}

    def _device_gone(self, name: str, why: str) -> None:
        with self._lock:
            if name not in self.gone:
                log.error("device %s leaves the run: %s", name, why)
                self.gone[name] = why

    # ------------------------------------------------------------------ 5. score
    def finish(self, exported: Exported) -> Evaluation:
        """Wait for a candidate's device work, then score it."""
        key, figures, trained = exported.key, exported.figures, exported.trained
        model = exported.model
        if exported.failure:
            return self.score(key, figures, Stage.EXPORT, Status.FAILED, exported.failure,
                              trained)
        problems: list[str] = []
        status = Status.OK
        runs_on: dict[str, str] = {}
        for device, pending in exported.futures.items():
            try:
                figures.add_measurement(device, pending.result())
                runs_on[device] = "ok"
            except (CandidateRejected, MeasurementFailed) as exc:
                runs_on[device] = f"{type(exc).__name__}: {exc}"
                problems.append(f"{device}: {type(exc).__name__}: {exc}")
                # A device no objective needs only tells where the model can run.
                if device in self.needed_devices:
                    status = Status.FAILED
            except DeviceUnavailable as exc:
                runs_on[device] = f"missing ({exc})"
                problems.append(f"{device}: missing ({exc})")
                self.store.add_missing(self.run_id, key, device, str(exc))
                if device in self.needed_devices and status is Status.OK:
                    status = Status.INCOMPLETE
        for device, pending in exported.validations.items():
            try:
                figures.add_many(pending.result(), f"validated on {device} (device outputs)",
                                 names=[m.name for m in self.task.metrics()], device=device)
            except (HilnasError, ValueError) as exc:
                problems.append(f"{device}: validation: {type(exc).__name__}: {exc}")
                if status is Status.OK:
                    status = Status.FAILED if runs_on.get(device) == "ok" else status
        stage = Stage.MEASURE if exported.futures else Stage.EXPORT if model else Stage.TRAIN
        return self.score(key, figures, stage, status, "; ".join(problems), trained, model,
                          runs_on)

    def score(
        self,
        key: str,
        figures: Figures,
        stage: Stage,
        status: Status,
        detail: str = "",
        trained: Trained | None = None,
        model: dict[str, Any] | None = None,
        runs_on: dict[str, str] | None = None,
    ) -> Evaluation:
        """Objectives and violations from the figures: the candidate's Evaluation.

        `trained` and `model` (its store row) are what the candidate reached, if anything;
        `runs_on` says, per device, whether it ran there.
        """
        t0, start = time.perf_counter(), time.time()
        objectives = objective_vector(self.cfg, figures)
        violation = total_violation(self.cfg, figures)
        if status is Status.OK and violation > 0:
            status = Status.INFEASIBLE
            detail = "; ".join(violated(self.cfg, figures))
        if status is Status.FAILED:
            violation = float("inf")
        self._timed(Stage.SCORE, key, start, time.perf_counter() - t0)
        return Evaluation(
            key, figures, objectives, violation, status, stage, detail,
            trained.train_key if trained else None,
            model["sha256"] if model else None,
            model["path"] if model else None,
            trained.metrics.get("test", {}) if trained else {},
            runs_on or {},
        )

    def close(self) -> None:
        self.export_pool.shutdown(wait=False, cancel_futures=True)
        for pool in self.device_pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


def _done(value: Trained) -> Future[Trained]:
    future: Future[Trained] = Future()
    future.set_result(value)
    return future


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
