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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
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
    ProtocolError,
)
from host.errors import StoreError
from host.fleet.device import Device
from host.metrics import DEVICE_METRICS, MetricKind
from host.search.config import SearchConfig
from host.search.jobs import TrainJob, TrainOutcome
from host.search.objectives import Figures, objective_vector, total_violation, violated
from host.search.predictions import LATENCY_METRIC, DevicePredictors
from host.store.files import write_atomic
from host.store.sqlite import RunStore

log = logging.getLogger(__name__)

# The store's kind of an untrained network's int8 model (measured before training).
UNTRAINED = "int8-untrained"



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
    PROBE = "probe"  # the untrained network measured on the devices (measure_before_train)
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
    #: a device's own file where it is not `model` (a joint candidate's LUT file on an MCU)
    device_models: dict[str, dict[str, Any]] = field(default_factory=dict)


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
        self.kinds: dict[str, str] = {}  # device -> its kind ("mcu", "linux", ...)
        #: trainings under way, by train key: candidates that share a network wait for one
        self._training: dict[str, Future[Trained]] = {}
        #: [compress] mode = "joint": arch key -> its compression block (front.json)
        self.compressed: dict[str, dict[str, Any]] = {}
        self._compressor: Any = None
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
        #: int8 calibration inputs per task configuration (one, unless the run is data-aware)
        self._representative: dict[str, np.ndarray | list[np.ndarray]] = {}
        # Measured before training: the devices with a constraint or an objective on a
        # device figure (latency, memory, energy), which weights do not change.
        self.probe_devices = sorted(
            {o.device for o in items if o.device and o.kind is MetricKind.DEVICE}
            & set(devices)
        ) if cfg.measure_before_train and tabular is None else []
        self.predictors = DevicePredictors(cfg, store, run_id, models_dir.parent)

    # ------------------------------------------------------------------ keys
    def train_key(self, arch_key: str) -> str:
        """The training of `arch_key`'s network under this run's data and training.

        Candidates that differ only in their compression share it (`Space.network_key`).
        """
        table = self.tabular.path.name if self.tabular else ""
        raw = f"{self.space.network_key(arch_key)}|{self.data_hash}|{self.train_hash}|{table}"
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
            self.kinds[name] = info.kind

    def _timed(self, stage: str, key: str, start: float, seconds: float) -> None:
        self.store.add_timing(self.run_id, stage, key, start, seconds)

    # ------------------------------------------------------------------ the batch
    def evaluate(self, arch_keys: Sequence[str]) -> dict[str, Evaluation]:
        """Evaluate distinct networks; returns one Evaluation per key."""
        results: dict[str, Evaluation] = {}
        figures: dict[str, Figures] = {}
        # A future may train several candidates (a joint compression search's candidates
        # that share their network).
        pending: dict[Future[Trained], list[str]] = {}
        converting: dict[Future[dict[str, Any]], str] = {}
        for key in dict.fromkeys(arch_keys):
            screened = self.screen(key)
            if isinstance(screened, Evaluation):
                results[key] = screened
                continue
            figures[key] = screened
            if self.probe_devices and self.store.training(self.train_key(key)) is None:
                converting[self.export_pool.submit(self._untrained_model, key)] = key
            else:
                self._stored_untrained_figures(key, screened)
                pending.setdefault(self.train(key), []).append(key)
        # Untrained networks are exported one after another in the export thread; each one
        # ready is measured here, the most promising first (the predictor's ranking), and
        # trained at once if it passes, while the next ones are still being exported.
        for key, outcome in self._probe_in_rank_order(converting, figures):
            if isinstance(outcome, Evaluation):
                results[key] = outcome
            else:
                pending.setdefault(self.train(key), []).append(key)

        exporting: dict[str, Future[Exported]] = {}
        for future in as_completed(pending):
            for key in pending[future]:
                try:
                    trained = future.result()
                except (DataError, ConfigError, StoreError):
                    raise  # the same for every candidate: stop the run, fail none of them
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
                exporting[key] = self.export_pool.submit(self.export, key, figures[key],
                                                         trained)

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
        cannot = self._runtimes_without(self.task_of(key).frontend_ops())
        if cannot:
            return self.score(key, figures, Stage.SCREEN, Status.FAILED,
                              "before training: " + "; ".join(cannot))
        if total_violation(self.cfg, figures, cheap_only=True) > 0:
            broken = "; ".join(violated(self.cfg, figures, cheap_only=True))
            return self.score(key, figures, Stage.SCREEN, Status.INFEASIBLE,
                              f"before training: {broken}")
        return figures

    def _runtimes_without(self, ops: frozenset[str]) -> list[str]:
        """Why each needed device's runtime cannot run a model with operators `ops`."""
        from host.hw.tflm_gate import unsupported_ops

        out = []
        for name in sorted(self.needed_devices & set(self.runtimes)):
            missing = unsupported_ops(self.runtimes[name], ops)
            if missing:
                out.append(f"{name} ({self.runtimes[name]}) cannot run the input's front end: "
                           f"no {', '.join(sorted(missing))}; give it the features "
                           "([data] preprocessing = \"host\")")
        return out

    # ------------------------------------------------------------------ 1b. probe
    def _probe_in_rank_order(
        self, converting: dict[Future[dict[str, Any]], str], figures: dict[str, Figures]
    ) -> Iterator[tuple[str, Figures | Evaluation]]:
        """Probe each exported untrained network as it becomes ready.

        Among those ready, the one with the best predicted slack goes first (the predictor's
        ranking); while no predictor is trusted, they go in the order they were exported.
        """
        ready: dict[str, dict[str, Any] | HilnasError] = {}  # in arrival order
        waiting = set(converting)
        index = {f: i for i, f in enumerate(converting)}
        while waiting or ready:
            if waiting:  # block only when nothing is ready to measure
                done, _ = wait(waiting, timeout=0 if ready else None,
                               return_when=FIRST_COMPLETED)
                for f in sorted(done, key=index.__getitem__):
                    waiting.discard(f)
                    try:
                        ready[converting[f]] = f.result()
                    except StoreError:
                        raise
                    except HilnasError as exc:
                        ready[converting[f]] = exc
            if not ready:
                continue
            key = min(ready, key=lambda k: self._probe_rank(ready[k]))  # ties: arrival
            model = ready.pop(key)
            if isinstance(model, HilnasError):
                yield key, self.score(key, figures[key], Stage.PROBE, Status.FAILED,
                                      f"export failed (untrained network): {model}")
            else:
                yield key, self.probe(key, figures[key], model)

    def _probe_rank(self, model: dict[str, Any] | HilnasError) -> float:
        """Predicted latency over its limit (lower first); 0 when nothing is predicted."""
        if isinstance(model, HilnasError):
            return -1.0  # report failures at once
        worst = 0.0
        for device, limit in self.predictors.limits.items():
            if device in self.probe_devices:
                prediction = self.predictors.predict(device, Path(model["path"]).read_bytes())
                if prediction is not None:
                    worst = max(worst, prediction["p50_us"] / limit)
        return worst

    def probe(self, key: str, figures: Figures, model: dict[str, Any]) -> Figures | Evaluation:
        """The untrained network's int8 model measured on the probe devices.

        Latency, memory and energy do not depend on the weights, so a candidate that breaks
        a device constraint is rejected here, before any training; its figures say
        "(untrained)". Figures of a candidate that passes are kept as `untrained:LABEL`, for
        the comparison with its trained model's measurement.
        """
        untrained = Figures()
        buffer = figures.get("input_buffer_bytes")
        if buffer is not None:  # for the RAM figure (arena + input buffer) of the probe
            untrained.add("input_buffer_bytes", buffer, figures.sources["input_buffer_bytes"])
        runs_on: dict[str, str] = {}
        skipped: list[Skipped] = []
        for name in self.probe_devices:
            try:
                data = self._on_device(name, model, "measure", arch_key=key, stage=Stage.PROBE)
            except Skipped as skip:
                untrained.add(f"{LATENCY_METRIC}@{name}", skip.prediction["p50_us"],
                              skip.prediction["source"])
                skipped.append(skip)
                continue
            except (CandidateRejected, MeasurementFailed) as exc:
                runs_on[name] = f"{type(exc).__name__}: {exc}"
                if name in self.needed_devices:
                    return self.score(key, figures, Stage.PROBE, Status.FAILED,
                                      f"{name} cannot run it (untrained network): {exc}",
                                      runs_on=runs_on)
                continue
            except DeviceUnavailable:
                return figures  # the trained model's measurement will say what is missing
            untrained.add_measurement(name, data)
            runs_on[name] = "ok"
        _keep_untrained(figures, untrained)
        broken = [c for c in self.cfg.constraints
                  if c.device in self.probe_devices and c.violation(untrained.get(c.label)) > 0]
        if not broken and not skipped:
            return figures
        for label, value in untrained.values.items():  # the figures that decided it
            figures.add(label, value, figures.sources[f"untrained:{label}"])
        reasons = [skip.reason for skip in skipped]
        for c in broken:
            if c.device in {skip.device for skip in skipped}:
                continue  # not measured there: the prediction is the reason
            value = untrained.get(c.label)
            limits = " and ".join(x for x in (f"<= {c.max:g}" if c.max is not None else "",
                                              f">= {c.min:g}" if c.min is not None else "") if x)
            shown = "unavailable" if value is None else f"{value:g}"
            reasons.append(f"{c.label} = {shown} measured before training, must be {limits}")
        return self.score(key, figures, Stage.PROBE, Status.INFEASIBLE, "; ".join(reasons),
                          runs_on=runs_on)

    def _stored_untrained_figures(self, key: str, figures: Figures) -> None:
        """A network trained earlier keeps the figures its untrained model was measured at."""
        row = self.store.model_for(self.train_key(key), UNTRAINED) if self.probe_devices \
            else None
        if row is None:
            return
        for name in self.probe_devices:
            data = self.store.measurement(row["sha256"], name, self.runtimes.get(name, ""),
                                          self.settings_hash)
            if data is not None:
                untrained = Figures()
                untrained.add_measurement(name, data)
                _keep_untrained(figures, untrained)

    def _untrained_model(self, key: str) -> dict[str, Any]:
        """The int8 model of the untrained network (seeded weights; from the store if made)."""
        tk = self.train_key(key)
        row = self.store.model_for(tk, UNTRAINED)
        if row is not None and Path(row["path"]).exists():
            return row
        from host.spaces.base import BuildOptions

        arch = self.space.from_key(key)
        built = self.space.build_model(arch, self.task, BuildOptions(seed=self.cfg.run.seed))
        graph = self.space.export_model(built, arch, self.task)
        return self._convert(key, tk, graph, UNTRAINED)

    # ------------------------------------------------------------------ 2. train
    def train(self, key: str) -> Future[Trained]:
        """A future of the training of `key`: from the store, a table, or the executor.

        Candidates that share a network (a joint compression search) share its training:
        a second one waits for the first one's.
        """
        tk = self.train_key(key)
        with self._lock:
            running = self._training.get(tk)
        if running is not None and not running.done():
            return running
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
        network = self.space.network_key(key)
        job = TrainJob(
            train_key=tk,
            arch_key=network,
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
                result.set_result(self._store_training(network, f.result()))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                result.set_exception(exc)

        with self._lock:
            self._training[tk] = result
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
            write_atomic(path, outcome.keras_model)
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
        val = metrics.get("val", {})
        folds = val.get("cv_folds")
        figures.add_many(val, f"mean of {folds}-fold grouped cross-validation" if folds
                         else "validation set", names=[m.name for m in self.task.metrics()])
        tabular = metrics.get("tabular")
        if tabular is not None:
            source = tabular.get("latency_source", "measured (tabular)")
            for device in self.table_devices:
                figures.add_many(tabular, source, names=[m.name for m in DEVICE_METRICS],
                                 device=device)
        exported = Exported(key, figures, trained, trained.model)
        point = self.space.compression(self.space.from_key(key))
        if point is not None:
            return self._compressed(exported, point)
        if exported.model is None and trained.keras_path and self._needs_model():
            try:
                exported.model = self._convert(key, trained.train_key, trained.keras_path)
            except StoreError:
                raise  # nowhere to keep results: stop the run (it resumes), fail no candidate
            except HilnasError as exc:
                exported.failure = f"export failed: {exc}"
                return exported
        if exported.model is not None and tabular is None:
            self._queue_device_work(exported)
        return exported

    def _queue_device_work(self, exported: Exported) -> None:
        """Measure (and validate, where a quality objective needs it) on every device."""
        for name in self.devices:
            model = exported.device_models.get(name, exported.model)
            assert model is not None
            exported.futures[name] = self.device_pools[name].submit(
                self._on_device, name, model, "measure", arch_key=exported.key
            )
            if name in self.quality_devices:
                exported.validations[name] = self.device_pools[name].submit(
                    self.validate, name, model
                )

    # ------------------------------------------------------------------ 3b. compress
    def _compressed(self, exported: Exported, point: Any) -> Exported:
        """`[compress] mode = "joint"`: the trained network compressed at the candidate's point.

        The stages of host.compress (channels, pruning, clustering, each fine-tuned; int8;
        TFLM's LUT, verified) run here, in the export thread, or come from the store's
        `compressions` table when this network was compressed at this point before. The
        candidate's quality figures become the compressed model's (the float network's are
        kept as `float:NAME`), it gains the compressed files' sizes, and each device is sent
        the file it would run: an MCU the LUT file if it verified, any other device the int8
        file (LiteRT has no DECODE).
        """
        key, figures, trained = exported.key, exported.figures, exported.trained
        if not trained.keras_path:
            exported.failure = "compression: no trained network in the store to compress"
            return exported
        compressor = self._joint_compressor(key)
        t0, start = time.perf_counter(), time.time()
        try:
            summary = compressor.point(
                key, trained.train_key, point.sparsity, point.clusters,
                channels=point.channels)
        except StoreError:
            raise  # nowhere to keep results: stop the run (it resumes), fail no candidate
        except Exception as exc:  # noqa: BLE001 - one candidate's failure, recorded
            if not isinstance(exc, HilnasError):
                log.exception("compressing %s failed", key)
            exported.failure = f"compression failed: {type(exc).__name__}: {exc}"
            return exported
        self._timed("compress", key, start, time.perf_counter() - t0)
        stages = {s["stage"]: s for s in summary["stages"]}
        deployed = stages[summary["deployed_stage"]]
        for name in [label for label in figures.values if "@" not in label
                     and label in {m.name for m in self.task.metrics()}]:
            figures.add(f"float:{name}", figures.values[name], figures.sources[name])
            del figures.values[name], figures.sources[name]
        where = deployed["quality_source"]
        figures.add_many(summary["deployed_quality"], f"validation set, compressed ({where})")
        mcu, linux = summary["storage_deployed_bytes"]["mcu"], \
            summary["storage_deployed_bytes"]["linux"]
        figures.add("deployed_mcu_bytes", mcu["bytes"], f"file ({mcu['file']})")
        figures.add("deployed_linux_bytes", linux["bytes"], f"file ({linux['file']})")
        figures.add("compression_ratio_mcu", mcu["reduction_vs_float32"],
                    "file (float32 file / MCU file)")
        # The test figures the front reports are the deployed model's too (the int8 file:
        # the LUT file's TFLM outputs equal its outputs on the verification windows); the
        # float network's stay as `test_float`. Scored for the reader, never for a choice.
        from dataclasses import replace

        from host.export.evaluate import evaluate_tflite

        try:
            test = evaluate_tflite(Path(summary["files"][linux["file"]]).read_bytes(),
                                   self.data_of(key), side="test")
            exported.trained = trained = replace(trained, metrics={
                **trained.metrics, "test": test, "test_float": trained.metrics.get("test", {})})
        except (HilnasError, ValueError) as exc:
            log.warning("%s: no test figures of the compressed model (%s)", key, exc)
        block = compressor.block([summary], summary, "the candidate's compression genes",
                                 summary["settings_hash"], point.channels)
        with self._lock:
            self.compressed[key] = block
        if not self._needs_model():
            return exported
        rows = {}
        for kind, figure in (("mcu", mcu), ("linux", linux)):
            path = Path(summary["files"][figure["file"]])
            blob = path.read_bytes()
            sha = hashlib.sha256(blob).hexdigest()
            self.store.add_model(sha, trained.train_key, f"compressed-{point.suffix()}-{kind}",
                                 str(path), len(blob), 0.0)
            rows[kind] = {"sha256": sha, "path": str(path), "bytes": len(blob)}
        exported.model = rows["linux"]
        exported.device_models = {name: rows[self.deployed_kind(name)]
                                  for name in self.devices}
        self._queue_device_work(exported)
        return exported

    def deployed_kind(self, device: str) -> str:
        """Which compressed file `device` runs: "mcu" (the LUT file) or "linux" (int8)."""
        return "mcu" if self.kinds.get(device) == "mcu" else "linux"

    def _joint_compressor(self, key: str) -> Any:
        """The compressor of a joint search (one per run: its counters and settings)."""
        with self._lock:
            if self._compressor is None:
                from host.compress.front import FrontCompressor

                self._compressor = FrontCompressor(
                    self.cfg, self.store, self.space, self.task, self.data_of(key),
                    self.models_dir / "compressed", say=self.on_progress)
            return self._compressor

    # ------------------------------------------------------------------ the task's data
    def task_of(self, key: str) -> Any:
        """The task `key` is trained and scored on (its own granularity in a data-aware run)."""
        return self.space.task_for(self.space.from_key(key), self.task)

    def data_of(self, key: str) -> Any:
        """The dataset of `key`'s task: the run's, or the one of its own granularity."""
        task = self.task_of(key)
        if task.config == self.task.config and self.data is not None:
            return self.data
        from host.search.jobs import load_dataset

        return load_dataset(task)

    def representative(self, key: str | None = None) -> np.ndarray | list[np.ndarray]:
        """The int8 calibration inputs of `key`'s task (of the run's task without a key)."""
        task = self.task if key is None else self.task_of(key)
        cache_key = repr(task.config)
        with self._lock:
            cached = self._representative.get(cache_key)
        if cached is None:
            data = self.data if key is None else self.data_of(key)
            cached = task.representative(data)
            with self._lock:
                if len(self._representative) >= 8:  # a data-aware run meets many
                    self._representative.pop(next(iter(self._representative)))
                self._representative[cache_key] = cached
        return cached

    def _convert(self, key: str, train_key: str, keras: Any, kind: str = "int8") -> dict[str, Any]:
        """Convert a network (a `.keras` path or a model) to int8 and store it as `kind`."""
        from host.export.tflite import convert

        task = self.task_of(key)
        meta = {
            **self.data_of(key).metadata(),
            "arch": key,
            "architecture": self.space.from_key(key).to_json(),
            "space": self.space.describe(),
            "task": task.name,
            "data": task.identity(),
            "train_key": train_key,
            "trained": kind == "int8",
        }
        with self._spare_core:
            t0, start = time.perf_counter(), time.time()
            model = convert(keras, task.export_mode(), representative=self.representative(key),
                            metadata=meta, batch_size=None)
            seconds = time.perf_counter() - t0
        sha = hashlib.sha256(model).hexdigest()
        suffix = "" if kind == "int8" else f"-{kind}"
        path = self.models_dir / f"{key}-{sha[:12]}{suffix}.tflite"
        write_atomic(path, model)
        self.store.add_model(sha, train_key, kind, str(path), len(model), seconds)
        self._timed(Stage.EXPORT if kind == "int8" else f"{Stage.EXPORT}:{kind}", key, start,
                    seconds)
        self.on_progress(f"exported {key}" + ("" if kind == "int8" else f" ({kind})"))
        row = self.store.model_for(train_key, kind)
        assert row is not None
        return row

    # ------------------------------------------------------------------ 4. measure
    def measure(self, device_name: str, model: dict[str, Any]) -> dict[str, Any]:
        """A measurement of `model` on a device (from the store when already measured)."""
        return self._on_device(device_name, model, "measure")

    def validate(self, device_name: str, model: dict[str, Any]) -> dict[str, Any]:
        """The task's metrics of the device's own outputs on the validation windows."""
        return self._on_device(device_name, model, "validate")

    def _on_device(self, device_name: str, model: dict[str, Any], what: str, *,
                   arch_key: str = "", stage: str = Stage.MEASURE) -> dict[str, Any]:
        """Measure or validate `model` on a device (the store's result when already done).

        The device is retried while it is unreachable (up to budget.device_retry_seconds).
        A measurement is predicted first (the online latency predictor, once trusted) and
        audited after; a prediction far beyond a latency limit raises Skipped instead.
        """
        sha = model["sha256"]
        if device_name in self.gone:
            raise DeviceUnavailable(f"left the run earlier: {self.gone[device_name]}")
        runtime = self.runtimes.get(device_name, "")
        settings_hash = self.settings_hash if what == "measure" else f"validate:{self.data_hash}"
        cached = self.store.measurement(sha, device_name, runtime, settings_hash)
        if cached is not None:
            return cached
        device = self.devices[device_name]
        prediction = None
        if what == "measure":
            blob = Path(model["path"]).read_bytes()
            prediction = self.predictors.predict(device_name, blob)
            skip = self.predictors.should_skip(device_name, prediction) if stage == Stage.PROBE \
                else None
            if skip is not None:
                self.predictors.record(device_name, arch_key, stage, sha, prediction, None)
                raise Skipped(device_name, skip.prediction, skip.reason)
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
            if what == "measure":
                measured = (data.get("latency") or {}).get("p50_us")
                self.predictors.record(device_name, arch_key, stage, sha, prediction, measured)
                self.predictors.learn(device_name, blob, data,
                                      self._profile_for_predictor(device_name, device, model))
            return data

    def _profile_for_predictor(self, name: str, device: Device, model: dict[str, Any]) -> Any:
        """A per-operator profile to teach the predictor's kernels, or None.

        None when not wanted or not available: a device without profiles gets whole-model
        predictions, and says so.
        """
        if not self.predictors.wants_profile(name):
            return None
        spare_core = self._spare_core if name in self.local_devices else nullcontext()
        try:
            with spare_core:
                t0, start = time.perf_counter(), time.time()
                profile = device.profile(Path(model["path"]), self.cfg.measure)
            self._timed(f"profile:{name}", model["sha256"], start, time.perf_counter() - t0)
            return profile
        except (ProtocolError, MeasurementFailed, CandidateRejected, NotImplementedError) as exc:
            self.predictors.no_profile[name] = f"{type(exc).__name__}: {exc}"
            log.info("%s gives no per-operator profile (%s): whole-model predictions only",
                     name, exc)
            return None
        except DeviceUnavailable as exc:
            # Only the predictor wanted it: the measurement is stored, the next model will
            # be profiled once the device is back (the measurement's retries handle it).
            log.info("%s: no profile of %s (%s)", name, model["sha256"][:12], exc)
            return None

    def _validate_on(self, device: Device, path: Path) -> dict[str, Any]:
        """The task's metrics of the device's outputs on the validation windows.

        host.fleet.validation does the work (batches within the agent's limits); the
        host reference is skipped here: the search keeps only the device's figures.
        """
        from host.export.flatbuf import read_metadata
        from host.fleet.validation import validate_on_device

        blob = path.read_bytes()
        key = str((read_metadata(blob) or {}).get("arch", ""))
        task, data = (self.task_of(key), self.data_of(key)) if key else (self.task, self.data)
        result = validate_on_device(device, blob, data.inputs("val"), data.y_val, task,
                                    reference=False)
        return dict(result.numeric_metrics)

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
            except StoreError:
                raise
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
        self.predictors.save()
        self.export_pool.shutdown(wait=False, cancel_futures=True)
        for pool in self.device_pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


class Skipped(HilnasError):
    """A measurement not made: its prediction is far beyond a latency limit."""

    def __init__(self, device: str, prediction: dict[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.device = device
        self.prediction = prediction
        self.reason = reason


def _keep_untrained(figures: Figures, untrained: Figures) -> None:
    """Add an untrained model's figures as `untrained:LABEL`, measured ones said so."""
    for label, value in untrained.values.items():
        source = untrained.sources[label]
        figures.add(f"untrained:{label}", value,
                    source if source.startswith("predicted") else f"{source} (untrained)")


def _done(value: Trained) -> Future[Trained]:
    future: Future[Trained] = Future()
    future.set_result(value)
    return future

