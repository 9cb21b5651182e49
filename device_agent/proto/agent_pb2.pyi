from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    MEASURED: _ClassVar[Source]
    ESTIMATED: _ClassVar[Source]
    REPLAYED: _ClassVar[Source]
    UNAVAILABLE: _ClassVar[Source]

class InputSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_SOURCE_UNSPECIFIED: _ClassVar[InputSource]
    RANDOM: _ClassVar[InputSource]
    ZEROS: _ClassVar[InputSource]
    PROVIDED: _ClassVar[InputSource]
SOURCE_UNSPECIFIED: Source
MEASURED: Source
ESTIMATED: Source
REPLAYED: Source
UNAVAILABLE: Source
INPUT_SOURCE_UNSPECIFIED: InputSource
RANDOM: InputSource
ZEROS: InputSource
PROVIDED: InputSource

class Figure(_message.Message):
    __slots__ = ("value", "source", "note")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    value: float
    source: Source
    note: str
    def __init__(self, value: _Optional[float] = ..., source: _Optional[_Union[Source, str]] = ..., note: _Optional[str] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RuntimeInfo(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class PowerSensorInfo(_message.Message):
    __slots__ = ("name", "quantities", "source", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    quantities: _containers.RepeatedScalarFieldContainer[str]
    source: Source
    detail: str
    def __init__(self, name: _Optional[str] = ..., quantities: _Optional[_Iterable[str]] = ..., source: _Optional[_Union[Source, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_model_bytes", "max_request_seconds", "max_runs", "ram_budget_bytes", "flash_budget_bytes")
    MAX_MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    RAM_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    FLASH_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_model_bytes: int
    max_request_seconds: float
    max_runs: int
    ram_budget_bytes: int
    flash_budget_bytes: int
    def __init__(self, max_model_bytes: _Optional[int] = ..., max_request_seconds: _Optional[float] = ..., max_runs: _Optional[int] = ..., ram_budget_bytes: _Optional[int] = ..., flash_budget_bytes: _Optional[int] = ...) -> None: ...

class DeviceDescription(_message.Message):
    __slots__ = ("name", "kind", "backend", "board", "cpu", "cpu_cores", "ram_bytes", "storage_bytes", "runtimes", "power_sensor", "limits", "agent_version", "protocol_major", "protocol_minor", "is_stand_in", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BOARD_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    POWER_SENSOR_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_MAJOR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_MINOR_FIELD_NUMBER: _ClassVar[int]
    IS_STAND_IN_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    backend: str
    board: str
    cpu: str
    cpu_cores: int
    ram_bytes: int
    storage_bytes: int
    runtimes: _containers.RepeatedCompositeFieldContainer[RuntimeInfo]
    power_sensor: PowerSensorInfo
    limits: Limits
    agent_version: str
    protocol_major: int
    protocol_minor: int
    is_stand_in: bool
    extra: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., backend: _Optional[str] = ..., board: _Optional[str] = ..., cpu: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., ram_bytes: _Optional[int] = ..., storage_bytes: _Optional[int] = ..., runtimes: _Optional[_Iterable[_Union[RuntimeInfo, _Mapping]]] = ..., power_sensor: _Optional[_Union[PowerSensorInfo, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., agent_version: _Optional[str] = ..., protocol_major: _Optional[int] = ..., protocol_minor: _Optional[int] = ..., is_stand_in: _Optional[bool] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class HasModelRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class HasModelResponse(_message.Message):
    __slots__ = ("present",)
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    present: bool
    def __init__(self, present: _Optional[bool] = ...) -> None: ...

class ModelHeader(_message.Message):
    __slots__ = ("sha256", "total_bytes", "filename")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    total_bytes: int
    filename: str
    def __init__(self, sha256: _Optional[str] = ..., total_bytes: _Optional[int] = ..., filename: _Optional[str] = ...) -> None: ...

class ModelChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: ModelHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[ModelHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadModelResponse(_message.Message):
    __slots__ = ("sha256", "bytes_received", "already_present")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    bytes_received: int
    already_present: bool
    def __init__(self, sha256: _Optional[str] = ..., bytes_received: _Optional[int] = ..., already_present: _Optional[bool] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("tensors",)
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class MeasureSettings(_message.Message):
    __slots__ = ("warmup_runs", "min_runs", "max_runs", "time_budget_seconds", "target_ci_relative", "threads", "input_source", "inputs", "seed")
    WARMUP_RUNS_FIELD_NUMBER: _ClassVar[int]
    MIN_RUNS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_CI_RELATIVE_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    warmup_runs: int
    min_runs: int
    max_runs: int
    time_budget_seconds: float
    target_ci_relative: float
    threads: int
    input_source: InputSource
    inputs: Sample
    seed: int
    def __init__(self, warmup_runs: _Optional[int] = ..., min_runs: _Optional[int] = ..., max_runs: _Optional[int] = ..., time_budget_seconds: _Optional[float] = ..., target_ci_relative: _Optional[float] = ..., threads: _Optional[int] = ..., input_source: _Optional[_Union[InputSource, str]] = ..., inputs: _Optional[_Union[Sample, _Mapping]] = ..., seed: _Optional[int] = ...) -> None: ...

class LatencyStats(_message.Message):
    __slots__ = ("n", "min_us", "p50_us", "p90_us", "p99_us", "max_us", "mean_us", "std_us", "cv", "median_ci95_relative", "stable", "source", "timer", "stop_reason")
    N_FIELD_NUMBER: _ClassVar[int]
    MIN_US_FIELD_NUMBER: _ClassVar[int]
    P50_US_FIELD_NUMBER: _ClassVar[int]
    P90_US_FIELD_NUMBER: _ClassVar[int]
    P99_US_FIELD_NUMBER: _ClassVar[int]
    MAX_US_FIELD_NUMBER: _ClassVar[int]
    MEAN_US_FIELD_NUMBER: _ClassVar[int]
    STD_US_FIELD_NUMBER: _ClassVar[int]
    CV_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_CI95_RELATIVE_FIELD_NUMBER: _ClassVar[int]
    STABLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIMER_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
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
    def __init__(self, n: _Optional[int] = ..., min_us: _Optional[float] = ..., p50_us: _Optional[float] = ..., p90_us: _Optional[float] = ..., p99_us: _Optional[float] = ..., max_us: _Optional[float] = ..., mean_us: _Optional[float] = ..., std_us: _Optional[float] = ..., cv: _Optional[float] = ..., median_ci95_relative: _Optional[float] = ..., stable: _Optional[bool] = ..., source: _Optional[_Union[Source, str]] = ..., timer: _Optional[str] = ..., stop_reason: _Optional[str] = ...) -> None: ...

class MemoryStats(_message.Message):
    __slots__ = ("peak_rss_bytes", "model_bytes", "arena_bytes", "baseline_rss_bytes")
    PEAK_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    ARENA_BYTES_FIELD_NUMBER: _ClassVar[int]
    BASELINE_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    peak_rss_bytes: Figure
    model_bytes: Figure
    arena_bytes: Figure
    baseline_rss_bytes: Figure
    def __init__(self, peak_rss_bytes: _Optional[_Union[Figure, _Mapping]] = ..., model_bytes: _Optional[_Union[Figure, _Mapping]] = ..., arena_bytes: _Optional[_Union[Figure, _Mapping]] = ..., baseline_rss_bytes: _Optional[_Union[Figure, _Mapping]] = ...) -> None: ...

class PowerStats(_message.Message):
    __slots__ = ("mean_power_mw", "energy_per_inference_uj", "idle_power_mw", "samples", "sensor")
    MEAN_POWER_MW_FIELD_NUMBER: _ClassVar[int]
    ENERGY_PER_INFERENCE_UJ_FIELD_NUMBER: _ClassVar[int]
    IDLE_POWER_MW_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SENSOR_FIELD_NUMBER: _ClassVar[int]
    mean_power_mw: Figure
    energy_per_inference_uj: Figure
    idle_power_mw: Figure
    samples: int
    sensor: str
    def __init__(self, mean_power_mw: _Optional[_Union[Figure, _Mapping]] = ..., energy_per_inference_uj: _Optional[_Union[Figure, _Mapping]] = ..., idle_power_mw: _Optional[_Union[Figure, _Mapping]] = ..., samples: _Optional[int] = ..., sensor: _Optional[str] = ...) -> None: ...

class MeasureRequest(_message.Message):
    __slots__ = ("sha256", "settings")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    settings: MeasureSettings
    def __init__(self, sha256: _Optional[str] = ..., settings: _Optional[_Union[MeasureSettings, _Mapping]] = ...) -> None: ...

class MeasureResponse(_message.Message):
    __slots__ = ("sha256", "latency", "memory", "power", "runtime", "started_unix", "wall_seconds", "compute_seconds", "notes", "threads")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    latency: LatencyStats
    memory: MemoryStats
    power: PowerStats
    runtime: RuntimeInfo
    started_unix: float
    wall_seconds: float
    compute_seconds: float
    notes: _containers.RepeatedScalarFieldContainer[str]
    threads: int
    def __init__(self, sha256: _Optional[str] = ..., latency: _Optional[_Union[LatencyStats, _Mapping]] = ..., memory: _Optional[_Union[MemoryStats, _Mapping]] = ..., power: _Optional[_Union[PowerStats, _Mapping]] = ..., runtime: _Optional[_Union[RuntimeInfo, _Mapping]] = ..., started_unix: _Optional[float] = ..., wall_seconds: _Optional[float] = ..., compute_seconds: _Optional[float] = ..., notes: _Optional[_Iterable[str]] = ..., threads: _Optional[int] = ...) -> None: ...

class OpTiming(_message.Message):
    __slots__ = ("index", "op", "mean_us", "p50_us", "fraction", "runs")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    MEAN_US_FIELD_NUMBER: _ClassVar[int]
    P50_US_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    index: int
    op: str
    mean_us: float
    p50_us: float
    fraction: float
    runs: int
    def __init__(self, index: _Optional[int] = ..., op: _Optional[str] = ..., mean_us: _Optional[float] = ..., p50_us: _Optional[float] = ..., fraction: _Optional[float] = ..., runs: _Optional[int] = ...) -> None: ...

class ProfileRequest(_message.Message):
    __slots__ = ("sha256", "settings")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    settings: MeasureSettings
    def __init__(self, sha256: _Optional[str] = ..., settings: _Optional[_Union[MeasureSettings, _Mapping]] = ...) -> None: ...

class ProfileResponse(_message.Message):
    __slots__ = ("sha256", "ops", "method", "whole_model_p50_us", "source", "runtime", "notes")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    WHOLE_MODEL_P50_US_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    ops: _containers.RepeatedCompositeFieldContainer[OpTiming]
    method: str
    whole_model_p50_us: float
    source: Source
    runtime: RuntimeInfo
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[str] = ..., ops: _Optional[_Iterable[_Union[OpTiming, _Mapping]]] = ..., method: _Optional[str] = ..., whole_model_p50_us: _Optional[float] = ..., source: _Optional[_Union[Source, str]] = ..., runtime: _Optional[_Union[RuntimeInfo, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class ValidateRequest(_message.Message):
    __slots__ = ("sha256", "inputs", "threads")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    inputs: _containers.RepeatedCompositeFieldContainer[Sample]
    threads: int
    def __init__(self, sha256: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., threads: _Optional[int] = ...) -> None: ...

class ValidateResponse(_message.Message):
    __slots__ = ("sha256", "outputs", "runtime")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    outputs: _containers.RepeatedCompositeFieldContainer[Sample]
    runtime: RuntimeInfo
    def __init__(self, sha256: _Optional[str] = ..., outputs: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., runtime: _Optional[_Union[RuntimeInfo, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("sequence", "uptime_seconds", "busy", "cached_models", "agent_version", "interval_seconds")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    CACHED_MODELS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    uptime_seconds: float
    busy: bool
    cached_models: int
    agent_version: str
    interval_seconds: float
    def __init__(self, sequence: _Optional[int] = ..., uptime_seconds: _Optional[float] = ..., busy: _Optional[bool] = ..., cached_models: _Optional[int] = ..., agent_version: _Optional[str] = ..., interval_seconds: _Optional[float] = ...) -> None: ...
