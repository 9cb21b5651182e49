"""Conversion between the domain dataclasses and the hilnas.agent.v1 protobuf messages.

This is the only module (with the gRPC edges that call it) that touches `_pb2` types, so the
search engine and the backends never see protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

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

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")

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


# Each dataclass and its message share field names, so fields are copied by name and only
# those that change form (enums, nested messages, tuples) are converted by hand. A field
# added to one side only fails loudly here instead of being dropped on the wire.
def _fields(obj: Any, *, skip: tuple[str, ...] = (), **converted: Any) -> dict[str, Any]:
    """A dataclass's fields as keyword arguments for its message; `converted` overrides."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj) if f.name not in skip}
    return {**values, **converted}


def _build(cls: type[D], msg: Any, **converted: Any) -> D:
    """Dataclass `cls` from the message's fields of the same names; `converted` overrides."""
    values = {f.name: getattr(msg, f.name) for f in fields(cls) if f.name not in converted}
    return cls(**values, **converted)


@cache
def _figure_fields(cls: type) -> tuple[str, ...]:
    hints = get_type_hints(cls)
    return tuple(f.name for f in fields(cls) if hints[f.name] is Figure)


def _figures_to_pb(obj: Any) -> dict[str, pb.Figure]:
    return {name: figure_to_pb(getattr(obj, name)) for name in _figure_fields(obj.__class__)}


def _figures_from_pb(cls: type, msg: Any) -> dict[str, Figure]:
    return {name: figure_from_pb(getattr(msg, name)) for name in _figure_fields(cls)}


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
    if any(d < 0 for d in shape):
        raise ProtocolError(f"tensor shape {list(shape)[:8]} has a negative dimension")
    # Python ints: a product of int64 dimensions must not wrap around to a small size.
    expected = dtype.itemsize
    for d in shape:
        expected *= d
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
    return pb.RuntimeInfo(**_fields(rt))


def runtime_from_pb(msg: pb.RuntimeInfo) -> RuntimeInfo:
    return _build(RuntimeInfo, msg)


# ------------------------------------------------------------------------------ describe
def device_info_to_pb(info: DeviceInfo) -> pb.DeviceDescription:
    sensor = info.power_sensor
    return pb.DeviceDescription(**_fields(
        info,
        runtimes=[runtime_to_pb(r) for r in info.runtimes],
        power_sensor=pb.PowerSensorInfo(**_fields(
            sensor, quantities=list(sensor.quantities), source=source_to_pb(sensor.source)
        )),
        limits=pb.Limits(**_fields(info.limits)),
        extra=dict(info.extra),
    ))


def device_info_from_pb(msg: pb.DeviceDescription) -> DeviceInfo:
    sensor = msg.power_sensor
    return _build(
        DeviceInfo,
        msg,
        runtimes=tuple(runtime_from_pb(r) for r in msg.runtimes),
        power_sensor=_build(
            PowerSensorInfo,
            sensor,
            quantities=tuple(sensor.quantities),
            source=source_from_pb(sensor.source),
        ),
        limits=_build(Limits, msg.limits),
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
    return pb.LatencyStats(**_fields(lat, source=source_to_pb(lat.source)))


def latency_from_pb(msg: pb.LatencyStats) -> LatencyStats:
    return _build(LatencyStats, msg, source=source_from_pb(msg.source))


def measurement_to_pb(m: Measurement) -> pb.MeasureResponse:
    return pb.MeasureResponse(**_fields(
        m,
        skip=("device",),  # the client knows which device it asked
        latency=latency_to_pb(m.latency),
        memory=pb.MemoryStats(**_figures_to_pb(m.memory)),
        power=pb.PowerStats(**_fields(m.power, **_figures_to_pb(m.power))),
        runtime=runtime_to_pb(m.runtime),
        notes=list(m.notes),
    ))


def measurement_from_pb(msg: pb.MeasureResponse, device: str = "") -> Measurement:
    return _build(
        Measurement,
        msg,
        latency=latency_from_pb(msg.latency),
        memory=_build(MemoryStats, msg.memory, **_figures_from_pb(MemoryStats, msg.memory)),
        power=_build(PowerStats, msg.power, **_figures_from_pb(PowerStats, msg.power)),
        runtime=runtime_from_pb(msg.runtime),
        notes=tuple(msg.notes),
        device=device,
    )


# ------------------------------------------------------------------------------ profile
def profile_to_pb(p: OpProfile) -> pb.ProfileResponse:
    return pb.ProfileResponse(**_fields(
        p,
        ops=[pb.OpTiming(**_fields(o)) for o in p.ops],
        source=source_to_pb(p.source),
        runtime=runtime_to_pb(p.runtime),
        notes=list(p.notes),
    ))


def profile_from_pb(msg: pb.ProfileResponse) -> OpProfile:
    return _build(
        OpProfile,
        msg,
        ops=tuple(_build(OpTiming, o) for o in msg.ops),
        source=source_from_pb(msg.source),
        runtime=runtime_from_pb(msg.runtime),
        notes=tuple(msg.notes),
    )
