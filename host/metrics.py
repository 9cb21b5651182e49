"""What a figure of a candidate is: its name, direction, and when in the pipeline it is known.

Tasks name their quality metrics, spaces their analytic costs, and devices report the
measured ones; a search configuration's objectives and constraints are validated against the
catalogue that the chosen task and space give (`metric_catalogue`), so a metric that the run
cannot produce is a `ConfigError` before anything is trained.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class MetricKind(StrEnum):
    """When a metric becomes known for a candidate."""

    #: from the architecture alone, before training (parameters, MACs, storage, a model's
    #: estimate such as HALF's power); cheap constraints on these reject before training
    ANALYTIC = "analytic"
    #: from the trained network's outputs on the validation split (the task's metrics); with
    #: a device, from that device's own outputs for the same windows (Validate)
    QUALITY = "quality"
    #: measured on a device (latency, memory, power), with the device's own source label
    DEVICE = "device"
    #: from the compression stage of a joint compression search (host/compress/joint.py):
    #: the bytes of the compressed files a device would hold, known after training
    COMPRESSED = "compressed"


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name, whether larger is better, when it is known, and its unit."""

    name: str
    maximise: bool
    kind: MetricKind
    unit: str = ""
    description: str = ""


_A, _D = MetricKind.ANALYTIC, MetricKind.DEVICE
# name, kind, unit, description; every one minimised.
_BUILTIN: tuple[tuple[str, MetricKind, str, str], ...] = (
    # Analytic costs every space computes (host.hw.costs.Costs).
    ("params", _A, "", "parameters Keras counts (batch-norm statistics included)"),
    ("storage_int8_bytes", _A, "B", "int8 weights and int32 biases (no file overhead)"),
    ("storage_float32_bytes", _A, "B", "4 bytes per deployed parameter"),
    ("macs", _A, "", "multiply-accumulates per inference"),
    ("flops", _A, "", "2 x MACs plus elementwise work"),
    ("input_buffer_bytes", _A, "B", "the int8 input window the device must hold"),
    # What a device reports in a Measure call (device_agent.types.Measurement), each figure
    # with its own source (measured, estimated, replayed or unavailable).
    ("latency_p50_us", _D, "us", "median latency of one inference"),
    ("latency_p90_us", _D, "us", "90th percentile latency"),
    ("peak_rss_bytes", _D, "B", "peak resident memory of the runtime process"),
    ("arena_bytes", _D, "B", "the runtime's tensor arena"),
    ("model_bytes", _D, "B", "bytes of the model file the device holds"),
    # Derived from a measurement and the analytic costs (host.search.objectives.Figures).
    ("ram_bytes", _D, "B", "the runtime's arena plus the input buffer the application holds"),
    ("mean_power_mw", _D, "mW", "mean power while running"),
    ("energy_per_inference_uj", _D, "uJ", "energy of one inference"),
)
ANALYTIC_METRICS: tuple[MetricSpec, ...] = tuple(
    MetricSpec(n, False, k, u, d) for n, k, u, d in _BUILTIN if k is _A
)
DEVICE_METRICS: tuple[MetricSpec, ...] = tuple(
    MetricSpec(n, False, k, u, d) for n, k, u, d in _BUILTIN if k is _D
)


def catalogue(*groups: Iterable[MetricSpec]) -> dict[str, MetricSpec]:
    """Merge metric groups into one name -> spec map; a name defined twice must agree."""
    out: dict[str, MetricSpec] = {}
    for group in groups:
        for spec in group:
            if spec.name in out and out[spec.name] != spec:
                from device_agent.errors import ConfigError

                raise ConfigError(f"metric {spec.name!r} is defined twice, differently")
            out[spec.name] = spec
    return out
