"""Candidate evaluation: cheap checks, training and export, measurement on the devices.

The pipeline for a batch of architectures (one generation):

1. analytic costs, and cheap constraints checked before any training;
2. training and int8 export on the executor, skipped when the store already holds a
   training with the same architecture, data and training configuration;
3. as each model is ready, measurement on every device (one queue per device, so devices
   work while the next candidates train), skipped when the store already holds a
   measurement of that model on that device, runtime and settings;
4. objectives and constraint violations from the figures.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from device_agent.errors import (
    CandidateRejected,
    ConfigError,
    DataError,
    DeviceUnavailable,
    HilnasError,
    MeasurementFailed,
)
from device_agent.types import MeasureSettings
from host.fleet.device import Device
from host.search.config import DEVICE_METRICS, SearchConfig
from host.search.jobs import TrainJob, TrainOutcome
from host.search.objectives import Figures, objective_vector, total_violation, violated
from host.store.sqlite import RunStore

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What the search knows about one architecture after evaluation."""

    arch_key: str
    figures: Figures
    objectives: list[float | None]
    violation: float
    status: str  # ok | infeasible | failed | incomplete
    detail: str = ""
    train_key: str | None = None
    sha256: str | None = None
    model_path: str | None = None
    test_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.violation == 0 and self.status in ("ok",)


class Tabular:
    """A precomputed table of the space (tools/build_tabular.py): training becomes a lookup."""

    def __init__(self, path: Path) -> None:
        from device_agent.errors import ConfigError

        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the tabular benchmark {path}: {exc}") from exc
        self.path = Path(path)
        self.meta = doc.get("meta", {})
        self.rows = {row["arch"]: row for row in doc["rows"]}

    def lookup(self, arch_key: str) -> dict[str, Any]:
        from device_agent.errors import ConfigError

        try:
            return self.rows[arch_key]
        except KeyError:
            raise ConfigError(f"{arch_key} is not in the tabular benchmark {self.path}") from None


class Evaluator:
    def __init__(
        self,
        cfg: SearchConfig,
        store: RunStore,
        run_id: str,
        space: Any,
        *,
        executor: Any | None,
        devices: dict[str, Device],
        models_dir: Path,
        costs: Callable[[Any], dict[str, float]],
        tabular: Tabular | None = None,
        table_devices: Sequence[str] = (),
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg, self.store, self.run_id, self.space = cfg, store, run_id, space
        self.executor = executor
        self.devices = devices
        self.models_dir = models_dir
        self.costs = costs
        self.tabular = tabular
        # With a table, device figures come from it under these device names.
        self.table_devices = tuple(table_devices)
        # Training and a local device share this machine's cores: unless told otherwise,
        # leave one core to the local agent so its timings are not disturbed.
        self.tf_threads = cfg.executor.tf_threads
        if self.tf_threads == 0 and any(d.address == "local" for d in cfg.devices):
            self.tf_threads = max(1, (os.cpu_count() or 2) - 1)
        self.needed_devices = {o.device for o in cfg.objectives if o.device} | {
            c.device for c in cfg.constraints if c.device
        }
        self.on_progress = on_progress or (lambda _msg: None)
        self.dataset_config = cfg.data.dataset_config(cfg.run.seed)
        self.train_config = cfg.train.train_config(cfg.run.seed)
        data_identity = {k: v for k, v in asdict(cfg.data).items() if k != "data_dir"}
        self.data_hash = hashlib.sha256(
            json.dumps(data_identity, sort_keys=True, default=str).encode()
            + str(cfg.run.seed).encode()
        ).hexdigest()[:16]
        self.train_hash = hashlib.sha256(
            json.dumps(self.train_config.to_json(), sort_keys=True).encode()
            + json.dumps(dict(cfg.space.bounds), sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        m = cfg.measure
        self.settings = MeasureSettings(
            warmup_runs=m.warmup_runs,
            min_runs=m.min_runs,
            max_runs=m.max_runs,
            time_budget_seconds=m.time_budget_seconds,
            threads=m.threads,
        ).validated()
        self.settings_hash = hashlib.sha256(
            json.dumps(asdict(m), sort_keys=True).encode()
        ).hexdigest()[:12]
        self.runtimes: dict[str, str] = {}
        self.gone: dict[str, str] = {}  # device -> why it left the run
        self.device_pools = {
            name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"measure-{name}")
            for name in devices
        }
        self._lock = threading.Lock()
        self.device_busy_s: dict[str, float] = dict.fromkeys(devices, 0.0)
        self.trained_keys: set[str] = set()

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

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, arch_keys: Sequence[str]) -> dict[str, Evaluation]:
        """Evaluate distinct architectures; returns one Evaluation per key."""
        results: dict[str, Evaluation] = {}
        pending_train: dict[Future[TrainOutcome], str] = {}
        # (arch key, figures, train key, model row, test metrics, futures per device)
        measuring: list[
            tuple[str, Figures, str, dict[str, Any], dict[str, Any], dict[str, Future[Any]]]
        ] = []
        figures_by_key: dict[str, Figures] = {}

        for key in dict.fromkeys(arch_keys):
            figures = Figures()
            figures.add_costs(self.costs(key))
            figures_by_key[key] = figures
            if total_violation(self.cfg, figures, cheap_only=True) > 0:
                results[key] = self._finish(
                    key,
                    figures,
                    status="infeasible",
                    detail="before training: "
                    + "; ".join(violated(self.cfg, figures, cheap_only=True)),
                )
                continue
            tk = self.train_key(key)
            training = self.store.training(tk)
            model = self.store.model_for(tk) if training else None
            needs_model = bool(self.devices) and self.tabular is None
            if training and (model or not needs_model):
                self.trained_keys.add(tk)
                self._after_training(
                    key, tk, training["metrics"], model, figures, measuring, results
                )
            elif self.tabular is not None:
                row = self.tabular.lookup(key)
                metrics = {
                    "val": row["val"],
                    "test": row["test"],
                    "tabular": {k: row[k] for k in row if k not in ("val", "test")},
                }
                self.store.add_training(
                    tk,
                    key,
                    self.data_hash,
                    self.train_hash,
                    metrics,
                    float(row.get("train_seconds", 0.0)),
                    f"tabular:{self.tabular.path.name}",
                )
                self.trained_keys.add(tk)
                self._after_training(key, tk, metrics, None, figures, measuring, results)
            else:
                if self.executor is None:
                    raise HilnasError("no executor for training")  # pragma: no cover
                job = TrainJob(
                    train_key=tk,
                    arch_key=key,
                    space_name=self.cfg.space.name,
                    space_bounds=dict(self.cfg.space.bounds),
                    dataset=self.dataset_config,
                    train=self.train_config,
                    models_dir=str(self.models_dir),
                    export_int8=self.cfg.budget.export_int8 or bool(self.devices),
                    tf_threads=self.tf_threads,
                )
                pending_train[self.executor.submit(job)] = key

        for future in as_completed(pending_train):
            key = pending_train[future]
            tk = self.train_key(key)
            try:
                outcome = future.result()
            except (DataError, ConfigError):
                raise  # the same for every candidate: stop the run, do not mark each failed
            except HilnasError as exc:
                results[key] = self._finish(
                    key,
                    figures_by_key[key],
                    status="failed",
                    detail=f"training or export failed: {exc}",
                    train_key=tk,
                )
                continue
            except Exception as exc:
                log.exception("training %s failed", key)
                results[key] = self._finish(
                    key,
                    figures_by_key[key],
                    status="failed",
                    detail=f"training failed: {type(exc).__name__}: {exc}",
                    train_key=tk,
                )
                continue
            metrics = {
                **outcome.metrics,
                "train_seconds": outcome.train_seconds,
                "export_seconds": outcome.export_seconds,
            }
            self.store.add_training(
                tk, key, self.data_hash, self.train_hash, metrics, outcome.train_seconds, "trained"
            )
            self.store.add_timing(self.run_id, "train", key, outcome.started, outcome.train_seconds)
            model = None
            if outcome.sha256 and outcome.model_path:
                self.store.add_model(
                    outcome.sha256,
                    tk,
                    "int8",
                    outcome.model_path,
                    outcome.model_bytes,
                    outcome.export_seconds,
                )
                self.store.add_timing(
                    self.run_id,
                    "export",
                    key,
                    outcome.started + outcome.train_seconds,
                    outcome.export_seconds,
                )
                model = self.store.model_for(tk)
            self.trained_keys.add(tk)
            self.on_progress(f"trained {key}")
            self._after_training(key, tk, metrics, model, figures_by_key[key], measuring, results)

        for key, figures, tk, model, test, futures in measuring:
            problems = []
            status = "ok"
            for device, pending in futures.items():
                try:
                    measurement = pending.result()
                except (CandidateRejected, MeasurementFailed) as exc:
                    problems.append(f"{device}: {type(exc).__name__}: {exc}")
                    status = "failed"
                    continue
                except DeviceUnavailable as exc:
                    problems.append(f"{device}: missing ({exc})")
                    self.store.add_missing(self.run_id, key, device, str(exc))
                    # Only a device that an objective or constraint needs leaves a gap.
                    if device in self.needed_devices and status == "ok":
                        status = "incomplete"
                    continue
                figures.add_measurement(device, measurement)
            results[key] = self._finish(
                key,
                figures,
                status=status,
                detail="; ".join(problems),
                train_key=tk,
                sha256=model["sha256"],
                model_path=model["path"],
                test=test,
            )
        return results

    def _after_training(
        self,
        key: str,
        tk: str,
        metrics: dict[str, Any],
        model: dict[str, Any] | None,
        figures: Figures,
        measuring: list[Any],
        results: dict[str, Evaluation],
    ) -> None:
        figures.add_quality(metrics.get("val", {}), "validation set")
        tabular = metrics.get("tabular")
        if tabular is not None:
            for name in DEVICE_METRICS:
                for device in self.table_devices:
                    if name in tabular:
                        label = f"{name}@{device}"
                        figures.values[label] = float(tabular[name])
                        figures.sources[label] = tabular.get("latency_source", "measured (tabular)")
        if model is None or not self.devices or tabular is not None:
            results[key] = self._finish(
                key,
                figures,
                status="ok",
                train_key=tk,
                sha256=model["sha256"] if model else None,
                model_path=model["path"] if model else None,
                test=metrics.get("test", {}),
            )
            return
        futures = {
            name: self.device_pools[name].submit(self._measure, name, model)
            for name in self.devices
        }
        measuring.append((key, figures, tk, model, metrics.get("test", {}), futures))

    def _measure(self, device_name: str, model: dict[str, Any]) -> dict[str, Any]:
        sha = model["sha256"]
        if device_name in self.gone:
            raise DeviceUnavailable(f"left the run earlier: {self.gone[device_name]}")
        runtime = self.runtimes.get(device_name, "")
        cached = self.store.measurement(sha, device_name, runtime, self.settings_hash)
        if cached is not None:
            return cached
        device = self.devices[device_name]
        deadline = time.monotonic() + self.cfg.budget.device_retry_seconds
        delay = 1.0
        while True:
            t0, start = time.perf_counter(), time.time()
            try:
                result = device.measure(Path(model["path"]), self.settings)
            except DeviceUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    self._device_gone(device_name, str(exc))
                    raise
                log.warning("%s unavailable (%s); retrying in %.0f s", device_name, exc, delay)
                self.on_progress(f"{device_name} unavailable, retrying")
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
                continue
            seconds = time.perf_counter() - t0
            data = result.to_json()
            self.store.add_measurement(sha, device_name, runtime, self.settings_hash, data, seconds)
            self.store.add_timing(self.run_id, f"measure:{device_name}", sha, start, seconds)
            with self._lock:
                self.device_busy_s[device_name] += seconds
            return data

    def _device_gone(self, name: str, why: str) -> None:
        with self._lock:
            if name not in self.gone:
                log.error("device %s leaves the run: %s", name, why)
                self.gone[name] = why

    def _finish(
        self,
        key: str,
        figures: Figures,
        *,
        status: str,
        detail: str = "",
        train_key: str | None = None,
        sha256: str | None = None,
        model_path: str | None = None,
        test: dict[str, Any] | None = None,
    ) -> Evaluation:
        objectives = objective_vector(self.cfg, figures)
        violation = total_violation(self.cfg, figures)
        if status == "ok" and violation > 0:
            status = "infeasible"
            detail = "; ".join(violated(self.cfg, figures))
        if status in ("failed",):
            violation = float("inf")
        return Evaluation(
            key,
            figures,
            objectives,
            violation,
            status,
            detail,
            train_key,
            sha256,
            model_path,
            test or {},
        )

    def close(self) -> None:
        for pool in self.device_pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
