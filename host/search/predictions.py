"""The search's use of the online latency predictors (host/predictor): one per device.

Before each measurement the device's predictor (once it has learned from enough networks)
predicts the model's latency. Far outside a latency constraint, even at the low end of its
interval, the measurement is skipped and the candidate rejected on the prediction (its figure
says "predicted"). Otherwise the device measures, and the measurement is audited against the
prediction made before it (the store's `predictions` table) and taught to the predictor.
Predictors are saved per device under RUNS/predictors/, so the next run starts calibrated.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host.errors import HilnasError
from host.search.config import SearchConfig
from host.store.sqlite import RunStore

log = logging.getLogger(__name__)

LATENCY_METRIC = "latency_p50_us"


@dataclass(frozen=True)
class Skip:
    """A measurement not made: the prediction says the model breaks a latency limit."""

    prediction: dict[str, Any]
    limit_us: float
    reason: str


class DevicePredictors:
    def __init__(self, cfg: SearchConfig, store: RunStore, run_id: str, runs_dir: Path) -> None:
        self.cfg, self.store, self.run_id = cfg, store, run_id
        self.runs_dir = runs_dir
        self.enabled = cfg.search.predict_latency and cfg.tabular is None
        self._predictors: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.no_profile: dict[str, str] = {}  # device -> why it gives no per-operator profile
        self.limits: dict[str, float] = {}
        for c in cfg.constraints:
            if c.device and c.metric == LATENCY_METRIC and c.max is not None:
                self.limits[c.device] = min(c.max, self.limits.get(c.device, c.max))

    def _path(self, device: str) -> Path:
        from host.predictor.store import predictor_path

        return predictor_path(self.runs_dir, device)

    def predictor(self, device: str) -> Any:
        """The device's predictor: loaded from the last run's file, else a new one."""
        from host.predictor import LatencyPredictor

        with self._lock:
            if device not in self._predictors:
                path = self._path(device)
                if path.exists():
                    try:
                        self._predictors[device] = LatencyPredictor.load(path)
                        log.info("%s: latency predictor loaded from %s", device, path)
                    except (HilnasError, ValueError, KeyError, OSError) as exc:
                        log.warning("%s: cannot load %s (%s); starting a new predictor",
                                    device, path, exc)
                if device not in self._predictors:
                    self._predictors[device] = LatencyPredictor(device)
            return self._predictors[device]

    def predict(self, device: str, model: bytes) -> dict[str, Any] | None:
        """The prediction for `model` on `device`, once the predictor may be trusted."""
        if not self.enabled:
            return None
        predictor = self.predictor(device)
        with self._lock:
            if predictor.networks < self.cfg.search.predictor_min_networks:
                return None
            try:
                return predictor.predict(model).to_json()
            except (HilnasError, ValueError) as exc:
                log.warning("%s: no latency prediction (%s)", device, exc)
                return None

    def should_skip(self, device: str, prediction: dict[str, Any] | None) -> Skip | None:
        limit = self.limits.get(device)
        if prediction is None or limit is None:
            return None
        bound = limit * (1.0 + self.cfg.search.skip_margin)
        if prediction["low_us"] <= bound:
            return None
        return Skip(prediction, limit, (
            f"predicted {LATENCY_METRIC}@{device} = {prediction['p50_us']:.0f} us (interval "
            f"{prediction['low_us']:.0f}-{prediction['high_us']:.0f}), beyond the limit "
            f"{limit:g} by more than {self.cfg.search.skip_margin:.0%}; not measured"
        ))

    def record(self, device: str, arch_key: str, stage: str, sha256: str,
               prediction: dict[str, Any] | None, measured_us: float | None) -> None:
        """The audit row of one prediction (measured None: skipped on it)."""
        if prediction is not None:
            self.store.add_prediction(self.run_id, device, sha256, arch_key, stage, prediction,
                                      measured_us)

    def learn(self, device: str, model: bytes, measurement: dict[str, Any],
              profile: Any = None) -> None:
        """Teach the device's predictor a measurement (and its per-operator profile)."""
        if not self.enabled:
            return
        p50 = (measurement.get("latency") or {}).get("p50_us")
        if not p50:
            return
        predictor = self.predictor(device)
        with self._lock:
            try:
                if profile is not None:
                    predictor.observe_profile(model, profile)
                predictor.observe_measure(model, float(p50))
                predictor.fit()
            except (HilnasError, ValueError) as exc:
                log.warning("%s: the latency predictor cannot learn this model (%s)", device, exc)

    def wants_profile(self, device: str) -> bool:
        """Whether to profile the next model: profiles teach the per-kernel regressors.

        Enough once the predictor has learned from a few times the networks it needs before
        it is trusted.
        """
        if not self.enabled or device in self.no_profile:
            return False
        return bool(self.predictor(device).networks < 3 * self.cfg.search.predictor_min_networks)

    def save(self) -> None:
        for device, predictor in self._predictors.items():
            try:
                path = self._path(device)
                path.parent.mkdir(parents=True, exist_ok=True)
                predictor.save(path)
            except (HilnasError, OSError) as exc:
                log.warning("%s: could not save the latency predictor: %s", device, exc)
