"""Plain domain types of the device contract.

These dataclasses are what backends produce and what the host's search engine consumes.
Protobuf messages never leave `device_agent.serde` (and the gRPC edges that call it).
Every hardware figure carries a `Source`: measured, estimated, replayed or unavailable.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


class Source(enum.StrEnum):
    """Where a hardware figure comes from. Shown next to the figure, always."""

    MEASURED = "measured"
    ESTIMATED = "estimated"
    REPLAYED = "replayed"  # a stand-in replaying a recorded trace; never a board's figure
    UNAVAILABLE = "unavailable"


class InputSource(enum.StrEnum):
    """What the device feeds the model during a measurement."""

    RANDOM = "random"
    ZEROS = "zeros"
    PROVIDED = "provided"


@dataclass(frozen=True)
class Figure:
    """One hardware figure with its provenance. `value` is None when unavailable."""

    value: float | None
    source: Source
    note: str = ""

    @classmethod
    def unavailable(cls, why: str) -> Figure:
        return cls(None, Source.UNAVAILABLE, why)

    @classmethod
    def measured(cls, value: float, note: str = "") -> Figure:
        return cls(float(value), Source.MEASURED, note)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source.value, "note": self.note}


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    version: str


@dataclass(frozen=True)
class PowerSensorInfo:
    name: str
    quantities: tuple[str, ...]
    source: Source
    detail: str = ""


@dataclass(frozen=True)
class Limits:
    max_model_bytes: int
    max_request_seconds: float
    max_runs: int
    ram_budget_bytes: int = 0
    flash_budget_bytes: int = 0


@dataclass(frozen=True)
class DeviceInfo:
    """What Describe returns: the device, its runtimes, sensor and limits."""

    name: str
    kind: str
    backend: str
    board: str
    cpu: str
    cpu_cores: int
    ram_bytes: int
    storage_bytes: int
    runtimes: tuple[RuntimeInfo, ...]
    power_sensor: PowerSensorInfo
    limits: Limits
    agent_version: str
    protocol_major: int
    protocol_minor: int
    is_stand_in: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["power_sensor"]["source"] = self.power_sensor.source.value
        return data


@dataclass(frozen=True)
class MeasureSettings:
    """How to measure: warm-up, then timed runs until stable, the run cap or the time budget."""

    warmup_runs: int = 10
    min_runs: int = 20
    max_runs: int = 300
    time_budget_seconds: float = 20.0
    target_ci_relative: float = 0.02
    threads: int = 1
    input_source: InputSource = InputSource.RANDOM
    inputs: tuple[np.ndarray, ...] | None = None
    seed: int = 0

    def validated(self, limits: Limits | None = None) -> MeasureSettings:
        """Return self, or raise ConfigError naming the first bad setting."""
        from device_agent.errors import ConfigError

        if self.warmup_runs < 0:
            raise ConfigError(f"warmup_runs must be >= 0, got {self.warmup_runs}")
        if self.min_runs < 1:
            raise ConfigError(f"min_runs must be >= 1, got {self.min_runs}")
        if self.max_runs < self.min_runs:
            raise ConfigError(f"max_runs ({self.max_runs}) must be >= min_runs ({self.min_runs})")
        if not self.time_budget_seconds > 0:
            raise ConfigError(f"time_budget_seconds must be > 0, got {self.time_budget_seconds}")
        if not 0 <= self.target_ci_relative < 1:
            raise ConfigError(
                f"target_ci_relative must be in [0, 1), got {self.target_ci_relative}"
            )
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.input_source is InputSource.PROVIDED and not self.inputs:
            raise ConfigError("input_source=provided needs inputs")
        if limits is not None:
            if self.max_runs > limits.max_runs:
                raise ConfigError(
                    f"max_runs {self.max_runs} exceeds the device limit {limits.max_runs}"
                )
            if self.time_budget_seconds > limits.max_request_seconds:
                raise ConfigError(
                    f"time_budget_seconds {self.time_budget_seconds} exceeds the device limit "
                    f"{limits.max_request_seconds}"
                )
        return self


@dataclass(frozen=True)
class LatencyStats:
    """Latency over the timed runs, in microseconds."""

    n: int
    min_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    mean_us: float
    std_us: float
    cv: float
    median_ci95_relative: float
    stable: bool
    source: Source
    timer: str
    stop_reason: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = self.source.value
        return data


@dataclass(frozen=True)
class MemoryStats:
    peak_rss_bytes: Figure
    model_bytes: Figure
    arena_bytes: Figure
    baseline_rss_bytes: Figure

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k).to_json() for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class PowerStats:
    mean_power_mw: Figure
    energy_per_inference_uj: Figure
    idle_power_mw: Figure
    samples: int
    sensor: str

    @classmethod
    def unavailable(cls, why: str, sensor: str = "none") -> PowerStats:
        fig = Figure.unavailable(why)
        return cls(fig, fig, fig, 0, sensor)

    def to_json(self) -> dict[str, Any]:
        return {
            "mean_power_mw": self.mean_power_mw.to_json(),
            "energy_per_inference_uj": self.energy_per_inference_uj.to_json(),
            "idle_power_mw": self.idle_power_mw.to_json(),
            "samples": self.samples,
            "sensor": self.sensor,
        }


@dataclass(frozen=True)
class Measurement:
    """One Measure result: what the device measured for one model under one setting."""

    sha256: str
    latency: LatencyStats
    memory: MemoryStats
    power: PowerStats
    runtime: RuntimeInfo
    threads: int
    started_unix: float
    wall_seconds: float
    compute_seconds: float
    notes: tuple[str, ...] = ()
    device: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "sha256": self.sha256,
            "runtime": asdict(self.runtime),
            "threads": self.threads,
            "latency": self.latency.to_json(),
            "memory": self.memory.to_json(),
            "power": self.power.to_json(),
            "started_unix": self.started_unix,
            "wall_seconds": self.wall_seconds,
            "compute_seconds": self.compute_seconds,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class OpTiming:
    index: int
    op: str
    mean_us: float
    p50_us: float
    fraction: float
    runs: int


@dataclass(frozen=True)
class OpProfile:
    sha256: str
    ops: tuple[OpTiming, ...]
    method: str
    whole_model_p50_us: float
    source: Source
    runtime: RuntimeInfo
    notes: tuple[str, ...] = ()

    def slowest(self) -> OpTiming:
        return max(self.ops, key=lambda op: op.mean_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "method": self.method,
            "source": self.source.value,
            "whole_model_p50_us": self.whole_model_p50_us,
            "runtime": asdict(self.runtime),
            "ops": [asdict(op) for op in self.ops],
            "notes": list(self.notes),
        }


# One invocation's inputs or outputs: one array per model tensor, in order.
Sample = tuple[np.ndarray, ...]


def latency_stats(
    samples_us: np.ndarray | list[float],
    *,
    source: Source,
    timer: str,
    stop_reason: str,
    target_ci_relative: float,
) -> LatencyStats:
    """Summarise timed runs; the median's CI comes from order statistics (distribution-free)."""
    x = np.sort(np.asarray(samples_us, dtype=np.float64))
    n = int(x.size)
    if n == 0:
        raise ValueError("no timed runs to summarise")
    p50, p90, p99 = (float(v) for v in np.percentile(x, [50, 90, 99]))
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    ci = median_ci95_relative(x)
    return LatencyStats(
        n=n,
        min_us=float(x[0]),
        p50_us=p50,
        p90_us=p90,
        p99_us=p99,
        max_us=float(x[-1]),
        mean_us=mean,
        std_us=std,
        cv=std / mean if mean > 0 else 0.0,
        median_ci95_relative=ci,
        stable=target_ci_relative > 0 and ci <= target_ci_relative,
        source=source,
        timer=timer,
        stop_reason=stop_reason,
    )


def median_ci95_relative(sorted_samples: np.ndarray) -> float:
    """Half-width of the 95% confidence interval of the median, relative to the median.

    Uses the normal approximation to the binomial for the ranks of the interval's ends
    (Conover, Practical Nonparametric Statistics): the interval runs from the order
    statistic of 1-based rank floor(n/2 - 1.96 sqrt(n)/2) to that of rank
    ceil(1 + n/2 + 1.96 sqrt(n)/2). Returns inf when there are too few samples for one.
    """
    x = sorted_samples
    n = x.size
    if n < 6:
        return math.inf
    half = 1.96 * math.sqrt(n) / 2
    lo = max(int(math.floor(n / 2 - half)) - 1, 0)
    hi = min(int(math.ceil(1 + n / 2 + half)) - 1, n - 1)
    median = float(np.median(x))
    if median <= 0:
        return math.inf
    return float(x[hi] - x[lo]) / 2 / median
