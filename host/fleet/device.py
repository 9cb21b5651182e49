"""The host's view of a device: one interface for every kind of target.

The search engine measures candidates through `Device` and never sees gRPC or protobuf.
Implementations: `GrpcDevice` (any agent: a Pi, a phone bridge, a serial bridge, an FPGA
board) and `LocalDevice` (an agent started on this machine on a free loopback port).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from device_agent.types import DeviceInfo, Measurement, MeasureSettings, OpProfile, Sample


@dataclass(frozen=True)
class ModelBlob:
    """A model's bytes with its content address."""

    data: bytes
    sha256: str
    name: str = ""

    @classmethod
    def of(cls, model: bytes | str | Path | ModelBlob) -> ModelBlob:
        if isinstance(model, ModelBlob):
            return model
        if isinstance(model, (str, Path)):
            path = Path(model)
            data = path.read_bytes()
            return cls(data, hashlib.sha256(data).hexdigest(), path.name)
        return cls(bytes(model), hashlib.sha256(model).hexdigest())


class Device(abc.ABC):
    """A target that measures models. Thread-safe: the Fleet calls devices concurrently."""

    name: str

    @abc.abstractmethod
    def describe(self) -> DeviceInfo: ...

    @abc.abstractmethod
    def ensure_model(self, model: bytes | str | Path | ModelBlob) -> str:
        """Make sure the device holds the model (uploading only if needed); its SHA-256."""

    @abc.abstractmethod
    def measure(
        self, model: bytes | str | Path | ModelBlob, settings: MeasureSettings | None = None
    ) -> Measurement: ...

    @abc.abstractmethod
    def profile(
        self, model: bytes | str | Path | ModelBlob, settings: MeasureSettings | None = None
    ) -> OpProfile: ...

    @abc.abstractmethod
    def validate(
        self, model: bytes | str | Path | ModelBlob, inputs: Sequence[Sample], threads: int = 1
    ) -> list[Sample]: ...

    @abc.abstractmethod
    def heartbeat(self) -> dict[str, object]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (and, for a local device, the agent)."""

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
