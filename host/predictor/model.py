"""`LatencyPredictor`: an online per-device latency predictor (nn-Meter's, learned online).

Per-kernel mode (the device gave at least one Profile): one regressor per operator type,
fitted on the per-operator timings of every profiled network; a network's latency is

    latency = a * sum(predicted kernels) + b + c * number_of_operators

with (a, b, c) fitted on the whole-model Measure results (weighted least squares on
relative error, pulled towards (1, 0, 0) while there are few networks). Operator types seen
too rarely fall back to one shared regressor over all operators.

Whole-model mode (the device never gave a Profile: a serial board without per-op timing, a
phone without the op table): one regressor on the network's aggregated features (MACs per
operator family, bytes moved, number of operators), fitted on Measure results. Its
predictions say so in `Prediction.source`.

The interval comes from cross-validation over networks (grouped K-fold, K <= 5): the
quantiles of measured / predicted on networks each fold had not seen, widened while there
are few. `observe_*` only records (cheap); `fit()` refits everything (see `fit` for time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.errors import ConfigError
from device_agent.types import OpProfile
from host.predictor.audit import AuditEntry, AuditStats, audit
from host.predictor.features import MAC_OPS, NUMERIC, OpFeatures, numeric, op_features
from host.predictor.regressors import KINDS, Regressor

log = logging.getLogger(__name__)

FORMAT = "hilnas-latency-predictor"
FORMAT_VERSION = 1
#: The regressor kind chosen on held-out networks (docs/predictor.md, "Regressor choice").
DEFAULT_KIND = "linear"
#: Operator types with fewer samples than this use the shared regressor.
MIN_OP_SAMPLES = 6
#: Interval before there are enough networks to cross-validate: [p/2, 2p].
NO_CV_RATIO = (0.5, 2.0)


def _hilnas_version() -> str:
    try:
        from importlib.metadata import version

        return version("hilnas")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


@dataclass(frozen=True)
class Prediction:
    """A predicted median latency with its interval and where it comes from."""

    p50_us: float
    low_us: float
    high_us: float
    networks: int
    per_kernel: bool
    source: str
    unseen_ops: tuple[str, ...] = ()

    def surely_above(self, limit_us: float) -> bool:
        """True when even the interval's low end is over `limit_us` (safe to skip)."""
        return self.low_us > limit_us

    def surely_below(self, limit_us: float) -> bool:
        return self.high_us < limit_us

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["unseen_ops"] = list(self.unseen_ops)
        return d


@dataclass
class _Network:
    sha256: str
    ops: list[OpFeatures]
    measured_us: list[float] = field(default_factory=list)
    profile_us: dict[int, float] | None = None
    profile_whole_us: float | None = None
    order: int = 0

    def target(self) -> float | None:
        """The whole-model latency to fit: the median of Measure results, else the profile's."""
        if self.measured_us:
            return float(np.median(self.measured_us))
        return self.profile_whole_us

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "order": self.order,
            "measured_us": self.measured_us,
            "profile_us": None if self.profile_us is None
            else {str(k): v for k, v in sorted(self.profile_us.items())},
            "profile_whole_us": self.profile_whole_us,
            "ops": [f.to_json() for f in self.ops],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _Network:
        prof = d.get("profile_us")
        return cls(
            sha256=str(d["sha256"]),
            ops=[OpFeatures.from_json(o) for o in d["ops"]],
            measured_us=[float(v) for v in d.get("measured_us", [])],
            profile_us=None if prof is None else {int(k): float(v) for k, v in prof.items()},
            profile_whole_us=d.get("profile_whole_us"),
            order=int(d.get("order", 0)),
        )


# Whole-model features: MACs per operator family, work of the other operators, bytes, ops.
_FAMILIES = (("conv", ("CONV_2D", "CONV_3D", "TRANSPOSE_CONV")), ("dw", ("DEPTHWISE_CONV_2D",)),
             ("fc", ("FULLY_CONNECTED", "BATCH_MATMUL")),
             ("rnn", ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "LSTM",
                      "UNIDIRECTIONAL_SEQUENCE_RNN", "SVDF")))


def network_features(ops: Sequence[OpFeatures]) -> list[float]:
    """Aggregated features of a network, for whole-model mode."""
    fam = {name: 0.0 for name, _ in _FAMILIES}
    other = 0.0
    for f in ops:
        for name, members in _FAMILIES:
            if f.op in members:
                fam[name] += f.macs
                break
        else:
            other += f.macs
    return [
        *fam.values(),
        other,
        float(sum(f.steps for f in ops)),
        float(sum(f.in_bytes + f.out_bytes for f in ops)),
        float(sum(f.weight_bytes for f in ops)),
        float(len(ops)),
    ]


class LatencyPredictor:
    """Learns one device's latency from its Profile and Measure results as they arrive."""

    def __init__(
        self,
        device: str,
        *,
        runtime: str = "",
        kind: str = DEFAULT_KIND,
        seed: int = 0,
        cv_folds: int = 5,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"predictor kind: unknown {kind!r}; choose one of {list(KINDS)}")
        self.device = device
        self.runtime = runtime
        self.kind = kind
        self.seed = seed
        self.cv_folds = cv_folds
        self._networks: dict[str, _Network] = {}
        self._features: dict[str, list[OpFeatures]] = {}
        self._pending: dict[str, Prediction] = {}
        self.audit_log: list[AuditEntry] = []
        self._fitted: _Fitted | None = None
        self._dirty = True
        self.fit_seconds = 0.0
        self.cv_ratios: np.ndarray = np.empty(0)
        self._cv_networks = 0

    # ---------------------------------------------------------------- observing
    def features(self, model_bytes: bytes) -> tuple[str, list[OpFeatures]]:
        sha = hashlib.sha256(model_bytes).hexdigest()
        if sha not in self._features:
            self._features[sha] = op_features(model_bytes)
        return sha, self._features[sha]

    def _network(self, model_bytes: bytes) -> _Network:
        sha, ops = self.features(model_bytes)
        net = self._networks.get(sha)
        if net is None:
            net = _Network(sha, ops, order=len(self._networks))
            self._networks[sha] = net
        return net

    def _check_runtime(self, runtime: str) -> None:
        if runtime and self.runtime and runtime != self.runtime:
            log.warning("predictor for %s: observation from runtime %r, predictor learned %r",
                        self.device, runtime, self.runtime)
        if runtime:
            self.runtime = runtime

    def observe_profile(self, model_bytes: bytes, profile: OpProfile) -> None:
        """Record a Profile's per-operator timings (OpTiming.index = operator index)."""
        net = self._network(model_bytes)
        self._check_runtime(f"{profile.runtime.name} {profile.runtime.version}".strip())
        n = len(net.ops)
        timings = {t.index: float(t.p50_us) for t in profile.ops
                   if 0 <= t.index < n and t.p50_us > 0 and net.ops[t.index].op == t.op}
        if timings:
            net.profile_us = timings
        if profile.whole_model_p50_us > 0:
            net.profile_whole_us = float(profile.whole_model_p50_us)
        self._dirty = True

    def observe_measure(
        self, model_bytes: bytes, latency_p50_us: float, *, runtime: str = ""
    ) -> AuditEntry | None:
        """Record a Measure result; returns the audit entry when a prediction preceded it."""
        if not latency_p50_us > 0 or not math.isfinite(latency_p50_us):
            raise ValueError(f"latency must be a positive number, not {latency_p50_us!r}")
        net = self._network(model_bytes)
        self._check_runtime(runtime)
        net.measured_us.append(float(latency_p50_us))
        self._dirty = True
        before = self._pending.pop(net.sha256, None)
        if before is None:
            return None
        entry = AuditEntry.of(net.sha256, before, float(latency_p50_us))
        self.audit_log.append(entry)
        return entry

    # ---------------------------------------------------------------- state
    def measured(self, model_bytes: bytes) -> list[float]:
        """The Measure results recorded for a model (empty if none)."""
        net = self._networks.get(hashlib.sha256(model_bytes).hexdigest())
        return list(net.measured_us) if net else []

    @property
    def networks(self) -> int:
        """Networks with a whole-model latency (what the predictor is calibrated on)."""
        return sum(1 for n in self._networks.values() if n.target() is not None)

    @property
    def per_kernel(self) -> bool:
        return any(n.profile_us for n in self._networks.values())

    def op_types(self) -> dict[str, int]:
        """Operator type -> profiled samples (per-kernel mode), else -> networks using it."""
        counts: dict[str, int] = {}
        for n in self._networks.values():
            if n.profile_us:
                for i in n.profile_us:
                    counts[n.ops[i].op] = counts.get(n.ops[i].op, 0) + 1
            elif not self.per_kernel:
                for op in {f.op for f in n.ops}:
                    counts[op] = counts.get(op, 0) + 1
        return dict(sorted(counts.items()))

    def source(self) -> str:
        mode = "per-kernel" if self.per_kernel else "whole-model only"
        return f"predicted ({self.networks} networks, {mode})"

    # ---------------------------------------------------------------- fitting
    def fit(self, *, cv: bool | None = None) -> LatencyPredictor:
        """Refit on every observation; cross-validate (for the interval) when due.

        The grouped cross-validation costs K more fits, so by default it reruns only when the
        networks have grown by a fifth since the last one (always with `cv=True`, never
        with `cv=False`); the other fits reuse its ratios. See docs/predictor.md for times.
        """
        t0 = time.perf_counter()
        nets = [n for n in self._networks.values() if n.target() is not None or n.profile_us]
        if not any(n.target() is not None for n in nets):
            raise ConfigError(
                f"predictor for {self.device}: no measurements yet (observe_measure or "
                "observe_profile first)"
            )
        self._fitted = _Fitted.train(nets, self.kind, self.seed)
        n = self.networks
        if cv is None:
            cv = self._cv_networks == 0 or n >= max(self._cv_networks * 1.2,
                                                    self._cv_networks + 1) or n < 10
        if cv:
            self.cv_ratios = self._cross_validate(nets)
            self._cv_networks = n
        self._dirty = False
        self.fit_seconds = time.perf_counter() - t0
        return self

    def _cross_validate(self, nets: list[_Network]) -> np.ndarray:
        targets = [n for n in nets if n.target() is not None]
        k = min(self.cv_folds, len(targets))
        if k < 3:
            return np.empty(0)
        order = sorted(targets, key=lambda n: n.sha256)
        ratios = []
        for fold in range(k):
            held = {n.sha256 for n in order[fold::k]}
            train = [n for n in nets if n.sha256 not in held]
            if not any(n.target() is not None for n in train):
                continue
            model = _Fitted.train(train, self.kind, self.seed)
            for n in order[fold::k]:
                t = n.target()
                assert t is not None
                ratios.append(t / model.predict(n.ops)[0])
        return np.asarray(ratios)

    def calibration(self) -> float:
        """Median of measured / predicted on networks the folds had not seen (1 when few).

        The per-kernel regressors fit log-latencies, so their sum predicts a median-like
        figure that runs low; on 100 BioNet networks on this machine, by a median 6.5%
        (docs/predictor.md, "Calibration"). Scaling by the cross-validated median ratio
        removes that bias without looking at any network the predictor is scored on.
        """
        r = self.cv_ratios
        return float(np.median(r)) if r.size >= 5 else 1.0

    def _interval(self) -> tuple[float, float]:
        r = self.cv_ratios / self.calibration()
        if r.size < 3:
            return NO_CV_RATIO
        lo, hi = (float(v) for v in np.quantile(r, [0.05, 0.95]))
        # Few networks: widen by the small-sample uncertainty of those quantiles.
        widen = 1.0 + 1.0 / math.sqrt(r.size)
        lo_log, hi_log = math.log(min(lo, 1.0)) * widen, math.log(max(hi, 1.0)) * widen
        return math.exp(lo_log), math.exp(hi_log)

    def cv_stats(self) -> AuditStats:
        """Cross-validated error of whole-model predictions on networks a fold did not see."""
        return audit([(1.0, float(r)) for r in self.cv_ratios / self.calibration()])

    # ---------------------------------------------------------------- predicting
    def predict(self, model_bytes: bytes) -> Prediction:
        """Predicted median latency of a model on this device (fits first if needed)."""
        if self._fitted is None or self._dirty:
            self.fit()
        assert self._fitted is not None
        sha, ops = self.features(model_bytes)
        p50, unseen = self._fitted.predict(ops)
        p50 *= self.calibration()
        lo, hi = self._interval()
        pred = Prediction(
            p50_us=p50, low_us=p50 * lo, high_us=p50 * hi, networks=self.networks,
            per_kernel=self._fitted.per_kernel, source=self.source(), unseen_ops=unseen,
        )
        self._pending[sha] = pred
        return pred

    def rank(self, models: Iterable[bytes]) -> list[tuple[int, Prediction]]:
        """(position, prediction) of `models`, fastest predicted first."""
        preds = [(i, self.predict(m)) for i, m in enumerate(models)]
        return sorted(preds, key=lambda t: t[1].p50_us)

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "device": self.device,
            "runtime": self.runtime,
            "hilnas_version": _hilnas_version(),
            "kind": self.kind,
            "seed": self.seed,
            "saved_unix": time.time(),
            "networks": [n.to_json() for n in
                         sorted(self._networks.values(), key=lambda n: n.order)],
            "audit": [e.to_json() for e in self.audit_log],
        }

    def save(self, path: str | Path) -> Path:
        from host.store.files import write_atomic

        path = Path(path)
        write_atomic(path, json.dumps(self.to_json()))
        return path

    @classmethod
    def from_json(
        cls, data: dict[str, Any], *, runtime: str | None = None, fit: bool = True
    ) -> LatencyPredictor:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError("not a saved hilnas latency predictor (format field missing)")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ConfigError(
                f"predictor format version {data['format_version']} is newer than this "
                f"hilnas reads ({FORMAT_VERSION}); upgrade hilnas"
            )
        pred = cls(str(data["device"]), runtime=str(data.get("runtime", "")),
                   kind=str(data.get("kind", DEFAULT_KIND)), seed=int(data.get("seed", 0)))
        if runtime and pred.runtime and runtime != pred.runtime:
            log.warning(
                "predictor for %s was learned under runtime %r; this device runs %r: "
                "its predictions may be off until it has relearned", pred.device,
                pred.runtime, runtime,
            )
        for d in data.get("networks", []):
            net = _Network.from_json(d)
            pred._networks[net.sha256] = net
            pred._features[net.sha256] = net.ops
        pred.audit_log = [AuditEntry.from_json(e) for e in data.get("audit", [])]
        if fit and pred.networks:
            pred.fit()
        return pred

    @classmethod
    def load(cls, path: str | Path, *, runtime: str | None = None) -> LatencyPredictor:
        """Load a saved predictor and refit it; warns when `runtime` differs from its own."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no saved predictor at {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not a saved predictor: {exc}") from None
        return cls.from_json(data, runtime=runtime)

    def merge(self, other: LatencyPredictor) -> None:
        """Add another predictor's observations (same device) to this one's."""
        for sha, net in other._networks.items():
            mine = self._networks.get(sha)
            if mine is None:
                self._networks[sha] = _Network(sha, net.ops, list(net.measured_us),
                                               net.profile_us, net.profile_whole_us,
                                               order=len(self._networks))
                self._features[sha] = net.ops
            else:
                mine.measured_us += [v for v in net.measured_us if v not in mine.measured_us]
                mine.profile_us = mine.profile_us or net.profile_us
                mine.profile_whole_us = mine.profile_whole_us or net.profile_whole_us
        if not self.runtime:
            self.runtime = other.runtime
        self._dirty = True


#: Columns of `features.NUMERIC` the linear part of a kernel regressor uses (costs, not shapes).
LINEAR_COLUMNS = tuple(NUMERIC.index(k) for k in
                       ("macs", "in_bytes", "out_bytes", "weight_bytes", "out_elements", "steps"))


class _Fitted:
    """The regressors of one fit (the full fit, or one cross-validation fold's)."""

    def __init__(self) -> None:
        self.per_kernel = False
        self.kernels: dict[str, Regressor] = {}
        self.shared: Regressor | None = None
        self.whole: Regressor | None = None
        self.overhead = (1.0, 0.0, 0.0)

    @classmethod
    def train(cls, nets: list[_Network], kind: str, seed: int) -> _Fitted:
        self = cls()
        profiled = [n for n in nets if n.profile_us]
        if profiled:
            self.per_kernel = True
            self._fit_kernels(profiled, kind, seed)
            self._fit_overhead([n for n in nets if n.target() is not None])
        else:
            measured = [n for n in nets if n.target() is not None]
            x = np.array([network_features(n.ops) for n in measured])
            y = np.array([n.target() for n in measured], dtype=np.float64)
            self.whole = Regressor(kind, seed).fit(x, y)
        return self

    def _fit_kernels(self, profiled: list[_Network], kind: str, seed: int) -> None:
        by_op: dict[str, tuple[list[list[float]], list[float]]] = {}
        all_x: list[list[float]] = []
        all_y: list[float] = []
        for n in profiled:
            assert n.profile_us is not None
            for i, us in n.profile_us.items():
                f = n.ops[i]
                xs, ys = by_op.setdefault(f.op, ([], []))
                xs.append(numeric(f))
                ys.append(us)
                all_x.append([*numeric(f), float(f.op in MAC_OPS)])
                all_y.append(us)
        for op, (xs, ys) in by_op.items():
            if len(ys) >= MIN_OP_SAMPLES:
                self.kernels[op] = Regressor(kind, seed, LINEAR_COLUMNS).fit(
                    np.array(xs), np.array(ys))
        self.shared = Regressor(kind, seed, LINEAR_COLUMNS).fit(np.array(all_x),
                                                                 np.array(all_y))

    def _kernel_sum(self, ops: Sequence[OpFeatures],
                    known: dict[int, float] | None = None) -> tuple[float, tuple[str, ...]]:
        known = known or {}
        total = sum(known.values())
        rest = [f for f in ops if f.index not in known]
        unseen: set[str] = set()
        groups: dict[str, list[OpFeatures]] = {}
        for f in rest:
            groups.setdefault(f.op, []).append(f)
        for op, fs in groups.items():
            reg = self.kernels.get(op)
            if reg is not None:
                total += float(reg.predict(np.array([numeric(f) for f in fs])).sum())
            else:
                unseen.add(op)
                assert self.shared is not None
                x = np.array([[*numeric(f), float(f.op in MAC_OPS)] for f in fs])
                total += float(self.shared.predict(x).sum())
        return total, tuple(sorted(unseen))

    def _fit_overhead(self, measured: list[_Network]) -> None:
        """Fit whole ~ a * kernel_sum + b + c * n_ops, relative least squares with a prior."""
        if not measured:
            return
        s = np.array([self._kernel_sum(n.ops, n.profile_us)[0] for n in measured])
        y = np.array([n.target() for n in measured], dtype=np.float64)
        n_ops = np.array([len(n.ops) for n in measured], dtype=np.float64)
        if len(measured) < 4:
            self.overhead = (float(np.median(y / np.maximum(s, 1e-9))), 0.0, 0.0)
            return
        design = np.column_stack([s, np.ones_like(s), n_ops]) / y[:, None]
        y_med, n_med = float(np.median(y)), float(np.median(n_ops))
        prior = np.diag([1.0, 1.0 / y_med, n_med / y_med])  # each counts as one network
        a = np.vstack([design, prior])
        b = np.concatenate([np.ones(len(y)), [1.0, 0.0, 0.0]])
        coef, *_ = np.linalg.lstsq(a, b, rcond=None)
        if coef[0] <= 0:
            coef = np.array([float(np.median(y / np.maximum(s, 1e-9))), 0.0, 0.0])
        self.overhead = (float(coef[0]), float(coef[1]), float(coef[2]))

    def predict(self, ops: Sequence[OpFeatures]) -> tuple[float, tuple[str, ...]]:
        if self.per_kernel:
            s, unseen = self._kernel_sum(ops)
            a, b, c = self.overhead
            return max(a * s + b + c * len(ops), 1e-3), unseen
        assert self.whole is not None
        return float(self.whole.predict(np.array([network_features(ops)]))[0]), ()


__all__ = ["DEFAULT_KIND", "LatencyPredictor", "Prediction", "network_features"]
