"""From a candidate's figures to objective vectors, constraint violations and weighted cost."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from host.search.config import (
    ANALYTIC_METRICS,
    DEVICE_METRICS,
    QUALITY_METRICS,
    Objective,
    SearchConfig,
)

# What a device metric reads from a measurement's JSON (device_agent.types.Measurement).
DEVICE_METRIC_PATHS: dict[str, tuple[str, ...]] = {
    "latency_p50_us": ("latency", "p50_us"),
    "latency_p90_us": ("latency", "p90_us"),
    "peak_rss_bytes": ("memory", "peak_rss_bytes", "value"),
    "arena_bytes": ("memory", "arena_bytes", "value"),
    "model_bytes": ("memory", "model_bytes", "value"),
    "energy_per_inference_uj": ("power", "energy_per_inference_uj", "value"),
}
SOURCE_PATHS: dict[str, tuple[str, ...]] = {
    "latency_p50_us": ("latency", "source"),
    "latency_p90_us": ("latency", "source"),
    "peak_rss_bytes": ("memory", "peak_rss_bytes", "source"),
    "arena_bytes": ("memory", "arena_bytes", "source"),
    "model_bytes": ("memory", "model_bytes", "source"),
    "energy_per_inference_uj": ("power", "energy_per_inference_uj", "source"),
}


def _dig(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


@dataclass
class Figures:
    """Everything known about one candidate, by metric label, with each figure's source."""

    values: dict[str, float | None] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def add_quality(self, metrics: Mapping[str, Any], source: str) -> None:
        for name in QUALITY_METRICS:
            if name in metrics:
                self.values[name] = float(metrics[name])
                self.sources[name] = source

    def add_costs(self, costs: Mapping[str, Any]) -> None:
        for name in ANALYTIC_METRICS:
            if name in costs:
                self.values[name] = float(costs[name])
                self.sources[name] = "analytic"

    def add_measurement(self, device: str, measurement: Mapping[str, Any]) -> None:
        for name in DEVICE_METRICS:
            value = _dig(measurement, DEVICE_METRIC_PATHS[name])
            label = f"{name}@{device}"
            self.values[label] = None if value is None else float(value)
            self.sources[label] = str(_dig(measurement, SOURCE_PATHS[name]) or "unavailable")

    def get(self, label: str) -> float | None:
        value = self.values.get(label)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def objective_vector(cfg: SearchConfig, figures: Figures) -> list[float | None]:
    return [figures.get(o.label) for o in cfg.objectives]


def total_violation(cfg: SearchConfig, figures: Figures, *, cheap_only: bool = False) -> float:
    total = 0.0
    for c in cfg.constraints:
        if cheap_only and not c.cheap:
            continue
        total += c.violation(figures.get(c.label))
    return total


def violated(cfg: SearchConfig, figures: Figures, *, cheap_only: bool = False) -> list[str]:
    """Readable list of the constraints a candidate breaks."""
    out = []
    for c in cfg.constraints:
        if cheap_only and not c.cheap:
            continue
        value = figures.get(c.label)
        if c.violation(value) > 0:
            limit = " and ".join(
                x
                for x in (
                    f"<= {c.max:g}" if c.max is not None else "",
                    f">= {c.min:g}" if c.min is not None else "",
                )
                if x
            )
            shown = "unknown" if value is None else f"{value:g}"
            out.append(f"{c.label} = {shown}, must be {limit}")
    return out


class Normaliser:
    """Maps objective values to minimised [0, 1] values (for hypervolume and weighted cost)."""

    def __init__(self, objectives: tuple[Objective, ...], references: Mapping[str, float]) -> None:
        self.objectives = objectives
        self.references = dict(references)

    def reference(self, objective: Objective) -> float:
        return float(self.references[objective.label])

    def normalise(self, values: list[float | None]) -> list[float]:
        out = []
        for obj, value in zip(self.objectives, values, strict=True):
            if value is None:
                out.append(1.0)  # unknown counts as worst
            elif obj.maximise:
                out.append(min(max(1.0 - value, 0.0), 1.0))
            else:
                out.append(min(max(value / self.reference(obj), 0.0), 1.0))
        return out

    def weighted_fitness(self, values: list[float | None], alpha: float, beta: float) -> float:
        """(alpha + beta) - [alpha * (1 - Q) + beta * H]: maximised, in [0, alpha + beta].

        Q is the first quality objective; H is the mean normalised value of the others.
        """
        return self.weighted_from_normalised(self.normalise(values), alpha, beta)

    def weighted_from_normalised(self, norm: list[float], alpha: float, beta: float) -> float:
        """weighted_fitness of an already normalised objective vector."""
        quality_idx = next(i for i, o in enumerate(self.objectives) if o.maximise)
        hardware = [n for i, n in enumerate(norm) if i != quality_idx]
        cost = alpha * norm[quality_idx] + beta * (sum(hardware) / len(hardware))
        return (alpha + beta) - cost
