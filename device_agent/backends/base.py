"""The Backend interface that every kind of device implements, and the backend registry.

A backend runs models on one device. The agent's server (device_agent.server) owns the
gRPC contract, the model cache, authentication and limits; a backend only needs to:

- `describe()`   what the device is (board, CPU, RAM, runtimes, limits);
- `measure()`    run a model repeatedly and return latency, memory and power, each figure
                 with its source (a stand-in labels its figures estimated or replayed);
- `profile()`    per-operator latency;
- `validate()`   run a model on given inputs and return the outputs.

Models arrive as paths of verified files in the agent's cache. A backend raises the shared
exceptions (`CandidateRejected` for a model it will not run, `MeasurementFailed` when a run
fails, `DeviceUnavailable` when the hardware is gone); the server maps them to gRPC codes.

Backends register themselves by name with `@register_backend("name")`. Modules listed in
`BUILTIN_BACKENDS` are imported lazily, so a board never imports what it cannot run.
"""

from __future__ import annotations

import abc
import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from device_agent.registry import Registry
from device_agent.types import DeviceInfo, Measurement, MeasureSettings, OpProfile, Sample
from device_agent.versions import AGENT_VERSION, PROTOCOL_MAJOR, PROTOCOL_MINOR


class Backend(abc.ABC):
    """Runs models on one device.

    Implementations are called from one thread at a time: the server serialises calls,
    because concurrent runs would disturb each other's timing.
    """

    #: registry name, set by @register_backend
    name: str = ""

    @abc.abstractmethod
    def describe(self) -> DeviceInfo: ...

    @abc.abstractmethod
    def measure(self, model_path: Path, sha256: str, settings: MeasureSettings) -> Measurement: ...

    @abc.abstractmethod
    def profile(self, model_path: Path, sha256: str, settings: MeasureSettings) -> OpProfile: ...

    @abc.abstractmethod
    def validate(
        self, model_path: Path, sha256: str, inputs: Sequence[Sample], threads: int = 1
    ) -> list[Sample]: ...

    def device_info(self, **fields: Any) -> DeviceInfo:
        """A DeviceInfo for `describe()`: this backend's name and this agent's versions filled.

        The backend gives what only it knows (name, kind, board, CPU, RAM, runtimes, sensor,
        limits, `is_stand_in`, extra); the protocol and agent versions are the package's.
        """
        fields.setdefault("backend", self.name)
        return DeviceInfo(agent_version=AGENT_VERSION, protocol_major=PROTOCOL_MAJOR,
                          protocol_minor=PROTOCOL_MINOR, **fields)

    def check_model(self, model_path: Path) -> None:  # noqa: B027 - optional hook
        """Reject a model this device cannot run (raise CandidateRejected). Default: accept."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device (worker processes, serial ports, ...)."""

    # ------------------------------------------------------------ command-line integration
    @classmethod  # noqa: B027 - optional hook, not abstract
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add backend-specific options to `hilnas-agent serve` (prefix them with the name)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        """Build the backend from parsed `hilnas-agent serve` arguments."""
        raise NotImplementedError(f"backend {cls.name!r} cannot be built from the command line")


BackendFactory = type[Backend]

# name -> module that registers it; imported only when that backend is asked for.
BUILTIN_BACKENDS: dict[str, str] = {
    "litert": "device_agent.backends.litert",
    "serial": "device_agent.backends.serial_bridge",
    "mcu-emulator": "device_agent.backends.mcu_emulator",
    "adb": "device_agent.backends.adb",
    "pynq": "device_agent.backends.pynq",
    "hls-csim": "device_agent.backends.hls_csim",
}
BACKENDS: Registry[BackendFactory] = Registry("backend", modules=BUILTIN_BACKENDS)

#: Class decorator: make a Backend available under `name`. A duplicate is an error.
register_backend = BACKENDS.register
#: The Backend class registered as `name`, importing its module on first use.
get_backend_class = BACKENDS.get
available_backend_names = BACKENDS.names
