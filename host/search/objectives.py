"""From a candidate's figures to objective vectors, constraint violations and weighted cost."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from host.metrics import DEVICE_METRICS, MetricKind

if TYPE_CHECKING:
    from host.search.config import Objective, SearchConfig

# What a device metric reads from a measurement's JSON (device_agent.types.Measurement):
# the value's path, and the path of its source label.
DEVICE_METRIC_PATHS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "latency_p50_us": (("latency", "p50_us"), ("latency", "source")),
    "latency_p90_us": (("latency", "p90_us"), ("latency", "source")),
    **{
        name: ((group, name, "value"), (group, name, "source"))
        for group, names in (
            ("memory", ("peak_rss_bytes", "arena_bytes", "model_bytes")),
            ("power", ("mean_power_mw", "energy_per_inference_uj")),
        )
        for name in names
    },
}
#: device figures derived from a measurement and the candidate's analytic costs
DERIVED_DEVICE_METRICS = ("ram_bytes",)
assert set(DEVICE_METRIC_PATHS) | set(DERIVED_DEVICE_METRICS) == {m.name for m in DEVICE_METRICS}


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

    def add(self, label: str, value: Any, source: str) -> None:
        self.values[label] = None if value is None else float(value)
        self.sources[label] = source

    def add_many(
        self, values: Mapping[str, Any], source: str, names: Iterable[str] | None = None,
        device: str | None = None,
    ) -> None:
        """Add `names` (default: every number in `values`), labelled `name@device` if given."""
        for name in names if names is not None else values:
            value = values.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.add(f"{name}@{device}" if device else name, value, source)

    def add_measurement(self, device: str, measurement: Mapping[str, Any]) -> None:
        for name, (path, source_path) in DEVICE_METRIC_PATHS.items():
            value = _dig(measurement, path)
            self.add(
                f"{name}@{device}", value, str(_dig(measurement, source_path) or "unavailable")
            )
        # The RAM a deployment needs beyond the firmware: the runtime's arena and the input
        # window the application buffers (Data Aware NAS counts it), each with its source.
        arena, buffer = self.get(f"arena_bytes@{device}"), self.get("input_buffer_bytes")
        if arena is not None and buffer is not None:
            source = self.sources.get(f"arena_bytes@{device}", "unavailable")
            self.add(f"ram_bytes@{device}", arena + buffer,
                     f"arena {source} + input buffer analytic")

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
    """Maps objective values to minimised [0, 1] values (for hypervolume and weighted cost).

    A minimised objective becomes value / reference, a maximised one 1 - value / reference,
    both clipped to [0, 1]. References (docs/decisions.md, "Weighted cost"): the configured
    `cost.references`; else 1 for a quality metric (it lies in [0, 1]); else, for an analytic
    metric of a space that can be listed, the largest value in the bounded space; else (a
    figure measured on a device, or a space too large to list) twice the largest value of
    the first batch of evaluations that has one (`observe`), fixed from then on, so that
    later hypervolumes are comparable and a resumed run (whose first batch comes from the
    store) normalises the same way.
    """

    def __init__(self, objectives: Sequence[Objective], references: Mapping[str, float]) -> None:
        self.objectives = tuple(objectives)
        self.references = dict(references)
        for obj in self.objectives:
            if obj.label not in self.references and obj.kind is MetricKind.QUALITY and obj.maximise:
                self.references[obj.label] = 1.0

    def missing(self) -> list[Objective]:
        """Objectives whose reference is not known yet."""
        return [o for o in self.objectives if o.label not in self.references]

    def observe(self, vectors: Iterable[Sequence[float | None]]) -> None:
        """Fix the missing references from a batch of objective vectors (see the class doc)."""
        vectors = list(vectors)
        for i, obj in enumerate(self.objectives):
            if obj.label in self.references:
                continue
            seen = [abs(x) for v in vectors if (x := v[i]) is not None]
            if seen:
                self.references[obj.label] = 2 * max(seen) or 1.0

    def reference(self, objective: Objective) -> float:
        try:
            return float(self.references[objective.label])
        except KeyError:
            raise KeyError(
                f"no reference for {objective.label} yet: a value arrived before observe()"
            ) from None

    def normalise(self, values: Sequence[float | None]) -> list[float]:
        out = []
        for obj, value in zip(self.objectives, values, strict=True):
            if value is None:
                out.append(1.0)  # unknown counts as worst
                continue
            ref = self.reference(obj)
            # A maximised objective with reference 1 (quality) keeps 1 - value exactly.
            scaled = value if ref == 1.0 else value / ref
            out.append(min(max(1.0 - scaled if obj.maximise else scaled, 0.0), 1.0))
        return out

    def weighted_fitness(self, values: Sequence[float | None], alpha: float, beta: float) -> float:
        """(alpha + beta) - [alpha * (1 - Q) + beta * H]: maximised, in [0, alpha + beta].

        Q is the first quality objective; H is the mean normalised value of the others.
        """
        return self.weighted_from_normalised(self.normalise(values), alpha, beta)

    def weighted_from_normalised(self, norm: Sequence[float], alpha: float, beta: float) -> float:
        """weighted_fitness of an already normalised objective vector."""
        quality_idx = next(
            i for i, o in enumerate(self.objectives) if o.kind is MetricKind.QUALITY
        )
        hardware = [n for i, n in enumerate(norm) if i != quality_idx]
        cost = alpha * norm[quality_idx] + beta * (sum(hardware) / len(hardware))
        return (alpha + beta) - cost
