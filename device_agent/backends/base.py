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
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

from device_agent.errors import ConfigError
from device_agent.types import DeviceInfo, Measurement, MeasureSettings, OpProfile, Sample


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
_REGISTRY: dict[str, BackendFactory] = {}

# name -> module that registers it; imported only when that backend is asked for.
BUILTIN_BACKENDS: dict[str, str] = {
    "litert": "device_agent.backends.litert",
    "serial": "device_agent.backends.serial_bridge",
    "mcu-emulator": "device_agent.backends.mcu_emulator",
    "adb": "device_agent.backends.adb",
    "pynq": "device_agent.backends.pynq",
    "hls-csim": "device_agent.backends.hls_csim",
}


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    """Class decorator: make a Backend available under `name`. A duplicate is an error."""

    def decorator(cls: BackendFactory) -> BackendFactory:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"backend {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def get_backend_class(name: str) -> BackendFactory:
    """The Backend class registered as `name`, importing its module on first use."""
    if name not in _REGISTRY and name in BUILTIN_BACKENDS:
        importlib.import_module(BUILTIN_BACKENDS[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(set(BUILTIN_BACKENDS) | set(_REGISTRY)))
        raise ConfigError(f"unknown backend {name!r}; known backends: {known}") from None


def available_backend_names() -> list[str]:
    return sorted(set(BUILTIN_BACKENDS) | set(_REGISTRY))
