"""Conversion between the domain dataclasses and the hilnas.agent.v1 protobuf messages.

This is the only module (with the gRPC edges that call it) that touches `_pb2` types, so the
search engine and the backends never see protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from device_agent.errors import ProtocolError
from device_agent.proto import agent_pb2 as pb
from device_agent.types import (
    DeviceInfo,
    Figure,
    InputSource,
    LatencyStats,
    Limits,
    Measurement,
    MeasureSettings,
    MemoryStats,
    OpProfile,
    OpTiming,
    PowerSensorInfo,
    PowerStats,
    RuntimeInfo,
    Sample,
    Source,
)

_SOURCE_TO_PB = {
    Source.MEASURED: pb.MEASURED,
    Source.ESTIMATED: pb.ESTIMATED,
    Source.REPLAYED: pb.REPLAYED,
    Source.UNAVAILABLE: pb.UNAVAILABLE,
}
_SOURCE_FROM_PB = {v: k for k, v in _SOURCE_TO_PB.items()}
_INPUT_TO_PB = {
    InputSource.RANDOM: pb.RANDOM,
    InputSource.ZEROS: pb.ZEROS,
    InputSource.PROVIDED: pb.PROVIDED,
}
_INPUT_FROM_PB = {v: k for k, v in _INPUT_TO_PB.items()}
_INPUT_FROM_PB[pb.INPUT_SOURCE_UNSPECIFIED] = InputSource.RANDOM

# dtypes a model tensor can have; anything else on the wire is a protocol error.
_ALLOWED_DTYPES = {
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "bool",
}


def source_to_pb(source: Source) -> Any:
    return _SOURCE_TO_PB[source]


def source_from_pb(value: Any) -> Source:
    try:
        return _SOURCE_FROM_PB[value]
    except KeyError:
        # An unset source must never be read as "measured".
        return Source.UNAVAILABLE


# ------------------------------------------------------------------------------ tensors
def tensor_to_pb(array: np.ndarray) -> pb.Tensor:
    arr = np.ascontiguousarray(array)
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    return pb.Tensor(
        dtype=arr.dtype.name, shape=list(arr.shape), data=arr.astype(dtype, copy=False).tobytes()
    )


def tensor_from_pb(msg: pb.Tensor) -> np.ndarray:
    if msg.dtype not in _ALLOWED_DTYPES:
        raise ProtocolError(f"unsupported tensor dtype {msg.dtype!r}")
    dtype = np.dtype(msg.dtype).newbyteorder("<")
    shape = tuple(int(d) for d in msg.shape)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(msg.data) != expected:
        raise ProtocolError(
            f"tensor of shape {shape} and dtype {msg.dtype} needs {expected} bytes, "
            f"got {len(msg.data)}"
        )
    return np.frombuffer(msg.data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def sample_to_pb(sample: Sequence[np.ndarray]) -> pb.Sample:
    return pb.Sample(tensors=[tensor_to_pb(t) for t in sample])


def sample_from_pb(msg: pb.Sample) -> Sample:
    return tuple(tensor_from_pb(t) for t in msg.tensors)


# ------------------------------------------------------------------------------ figures
def figure_to_pb(fig: Figure) -> pb.Figure:
    return pb.Figure(
        value=0.0 if fig.value is None else float(fig.value),
        source=source_to_pb(fig.source),
        note=fig.note,
    )


def figure_from_pb(msg: pb.Figure) -> Figure:
    source = source_from_pb(msg.source)
    value = None if source is Source.UNAVAILABLE else float(msg.value)
    return Figure(value, source, msg.note)


def runtime_to_pb(rt: RuntimeInfo) -> pb.RuntimeInfo:
    return pb.RuntimeInfo(name=rt.name, version=rt.version)


def runtime_from_pb(msg: pb.RuntimeInfo) -> RuntimeInfo:
    return RuntimeInfo(msg.name, msg.version)


# ------------------------------------------------------------------------------ describe
def device_info_to_pb(info: DeviceInfo) -> pb.DeviceDescription:
    return pb.DeviceDescription(
        name=info.name,
        kind=info.kind,
        backend=info.backend,
        board=info.board,
        cpu=info.cpu,
        cpu_cores=info.cpu_cores,
        ram_bytes=info.ram_bytes,
        storage_bytes=info.storage_bytes,
        runtimes=[runtime_to_pb(r) for r in info.runtimes],
        power_sensor=pb.PowerSensorInfo(
            name=info.power_sensor.name,
            quantities=list(info.power_sensor.quantities),
            source=source_to_pb(info.power_sensor.source),
            detail=info.power_sensor.detail,
        ),
        limits=pb.Limits(
            max_model_bytes=info.limits.max_model_bytes,
            max_request_seconds=info.limits.max_request_seconds,
            max_runs=info.limits.max_runs,
            ram_budget_bytes=info.limits.ram_budget_bytes,
            flash_budget_bytes=info.limits.flash_budget_bytes,
        ),
        agent_version=info.agent_version,
        protocol_major=info.protocol_major,
        protocol_minor=info.protocol_minor,
        is_stand_in=info.is_stand_in,
        extra=dict(info.extra),
    )


def device_info_from_pb(msg: pb.DeviceDescription) -> DeviceInfo:
    return DeviceInfo(
        name=msg.name,
        kind=msg.kind,
        backend=msg.backend,
        board=msg.board,
        cpu=msg.cpu,
        cpu_cores=msg.cpu_cores,
        ram_bytes=msg.ram_bytes,
        storage_bytes=msg.storage_bytes,
        runtimes=tuple(runtime_from_pb(r) for r in msg.runtimes),
        power_sensor=PowerSensorInfo(
            name=msg.power_sensor.name,
            quantities=tuple(msg.power_sensor.quantities),
            source=source_from_pb(msg.power_sensor.source),
            detail=msg.power_sensor.detail,
        ),
        limits=Limits(
            max_model_bytes=msg.limits.max_model_bytes,
            max_request_seconds=msg.limits.max_request_seconds,
            max_runs=msg.limits.max_runs,
            ram_budget_bytes=msg.limits.ram_budget_bytes,
            flash_budget_bytes=msg.limits.flash_budget_bytes,
        ),
        agent_version=msg.agent_version,
        protocol_major=msg.protocol_major,
        protocol_minor=msg.protocol_minor,
        is_stand_in=msg.is_stand_in,
        extra=dict(msg.extra),
    )


# ------------------------------------------------------------------------------ measure
def settings_to_pb(s: MeasureSettings) -> pb.MeasureSettings:
    msg = pb.MeasureSettings(
        warmup_runs=s.warmup_runs,
        min_runs=s.min_runs,
        max_runs=s.max_runs,
        time_budget_seconds=s.time_budget_seconds,
        target_ci_relative=s.target_ci_relative,
        threads=s.threads,
        input_source=_INPUT_TO_PB[s.input_source],
        seed=s.seed,
    )
    if s.inputs is not None:
        msg.inputs.CopyFrom(sample_to_pb(s.inputs))
    return msg


def settings_from_pb(msg: pb.MeasureSettings) -> MeasureSettings:
    """Settings from the wire; zero (unset) fields take the defaults."""
    d = MeasureSettings()
    source = _INPUT_FROM_PB.get(msg.input_source)
    if source is None:
        raise ProtocolError(f"unknown input source {msg.input_source}")
    return MeasureSettings(
        warmup_runs=msg.warmup_runs if msg.HasField("warmup_runs") else d.warmup_runs,
        min_runs=msg.min_runs or d.min_runs,
        max_runs=msg.max_runs or d.max_runs,
        time_budget_seconds=msg.time_budget_seconds or d.time_budget_seconds,
        target_ci_relative=(
            msg.target_ci_relative if msg.HasField("target_ci_relative") else d.target_ci_relative
        ),
        threads=msg.threads or d.threads,
        input_source=source,
        inputs=sample_from_pb(msg.inputs) if msg.HasField("inputs") else None,
        seed=msg.seed,
    )


def latency_to_pb(lat: LatencyStats) -> pb.LatencyStats:
    return pb.LatencyStats(
        n=lat.n,
        min_us=lat.min_us,
        p50_us=lat.p50_us,
        p90_us=lat.p90_us,
        p99_us=lat.p99_us,
        max_us=lat.max_us,
        mean_us=lat.mean_us,
        std_us=lat.std_us,
        cv=lat.cv,
        median_ci95_relative=lat.median_ci95_relative,
        stable=lat.stable,
        source=source_to_pb(lat.source),
        timer=lat.timer,
        stop_reason=lat.stop_reason,
    )


def latency_from_pb(msg: pb.LatencyStats) -> LatencyStats:
    return LatencyStats(
        n=msg.n,
        min_us=msg.min_us,
        p50_us=msg.p50_us,
        p90_us=msg.p90_us,
        p99_us=msg.p99_us,
        max_us=msg.max_us,
        mean_us=msg.mean_us,
        std_us=msg.std_us,
        cv=msg.cv,
        median_ci95_relative=msg.median_ci95_relative,
        stable=msg.stable,
        source=source_from_pb(msg.source),
        timer=msg.timer,
        stop_reason=msg.stop_reason,
    )


def measurement_to_pb(m: Measurement) -> pb.MeasureResponse:
    return pb.MeasureResponse(
        sha256=m.sha256,
        latency=latency_to_pb(m.latency),
        memory=pb.MemoryStats(
            peak_rss_bytes=figure_to_pb(m.memory.peak_rss_bytes),
            model_bytes=figure_to_pb(m.memory.model_bytes),
            arena_bytes=figure_to_pb(m.memory.arena_bytes),
            baseline_rss_bytes=figure_to_pb(m.memory.baseline_rss_bytes),
        ),
        power=pb.PowerStats(
            mean_power_mw=figure_to_pb(m.power.mean_power_mw),
            energy_per_inference_uj=figure_to_pb(m.power.energy_per_inference_uj),
            idle_power_mw=figure_to_pb(m.power.idle_power_mw),
            samples=m.power.samples,
            sensor=m.power.sensor,
        ),
        runtime=runtime_to_pb(m.runtime),
        started_unix=m.started_unix,
        wall_seconds=m.wall_seconds,
        compute_seconds=m.compute_seconds,
        notes=list(m.notes),
        threads=m.threads,
    )


def measurement_from_pb(msg: pb.MeasureResponse, device: str = "") -> Measurement:
    return Measurement(
        sha256=msg.sha256,
        latency=latency_from_pb(msg.latency),
        memory=MemoryStats(
            peak_rss_bytes=figure_from_pb(msg.memory.peak_rss_bytes),
            model_bytes=figure_from_pb(msg.memory.model_bytes),
            arena_bytes=figure_from_pb(msg.memory.arena_bytes),
            baseline_rss_bytes=figure_from_pb(msg.memory.baseline_rss_bytes),
        ),
        power=PowerStats(
            mean_power_mw=figure_from_pb(msg.power.mean_power_mw),
            energy_per_inference_uj=figure_from_pb(msg.power.energy_per_inference_uj),
            idle_power_mw=figure_from_pb(msg.power.idle_power_mw),
            samples=msg.power.samples,
            sensor=msg.power.sensor,
        ),
        runtime=runtime_from_pb(msg.runtime),
        threads=msg.threads,
        started_unix=msg.started_unix,
        wall_seconds=msg.wall_seconds,
        compute_seconds=msg.compute_seconds,
        notes=tuple(msg.notes),
        device=device,
    )


# ------------------------------------------------------------------------------ profile
def profile_to_pb(p: OpProfile) -> pb.ProfileResponse:
    return pb.ProfileResponse(
        sha256=p.sha256,
        ops=[
            pb.OpTiming(
                index=o.index,
                op=o.op,
                mean_us=o.mean_us,
                p50_us=o.p50_us,
                fraction=o.fraction,
                runs=o.runs,
            )
            for o in p.ops
        ],
        method=p.method,
        whole_model_p50_us=p.whole_model_p50_us,
        source=source_to_pb(p.source),
        runtime=runtime_to_pb(p.runtime),
        notes=list(p.notes),
    )


def profile_from_pb(msg: pb.ProfileResponse) -> OpProfile:
    return OpProfile(
        sha256=msg.sha256,
        ops=tuple(
            OpTiming(o.index, o.op, o.mean_us, o.p50_us, o.fraction, o.runs) for o in msg.ops
        ),
        method=msg.method,
        whole_model_p50_us=msg.whole_model_p50_us,
        source=source_from_pb(msg.source),
        runtime=runtime_from_pb(msg.runtime),
        notes=tuple(msg.notes),
    )
