"""Clients for device agents: the Device interface, gRPC and local devices, and the Fleet."""

from __future__ import annotations

from device_agent.auth import load_token
from device_agent.errors import ConfigError
from host.fleet.device import Device, ModelBlob
from host.fleet.fleet import Fleet, FleetResult
from host.fleet.grpc_device import GrpcDevice, RetryPolicy

SPEC_FORMS = (
    "local (a LiteRT agent on this machine), local:BACKEND[?KEY=VALUE&...] (an agent with "
    "another backend on this machine, e.g. local:mcu-emulator?board=nano33ble or "
    "local:hls-csim?board=pynq-z1), grpc://HOST:PORT or grpcs://HOST:PORT"
)


def parse_local_spec(spec: str) -> tuple[str, dict[str, str]]:
    """(backend, options) of a `local` or `local:BACKEND?KEY=VALUE&...` device spec."""
    from urllib.parse import parse_qsl

    if spec == "local":
        return "litert", {}
    body = spec.removeprefix("local:")
    backend, _, query = body.partition("?")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise ConfigError(f"device {spec!r}: options must be KEY=VALUE joined by '&'") from None
    return backend, options


def check_device_spec(spec: str) -> None:
    """Raise ConfigError naming the accepted forms when `spec` is not a device address."""
    if spec.startswith(("grpc://", "grpcs://")):
        return
    if spec == "local" or spec.startswith("local:"):
        from device_agent.backends.base import get_backend_class

        backend, _ = parse_local_spec(spec)
        get_backend_class(backend)  # ConfigError listing the known backends
        return
    raise ConfigError(f"unknown device {spec!r}; use {SPEC_FORMS}")


def open_device(
    spec: str, *, token: str | None = None, name: str | None = None, timeout_s: float = 10.0
) -> Device:
    """A device from a spec (`SPEC_FORMS`); the token defaults to $HILNAS_AGENT_TOKEN."""
    check_device_spec(spec)
    if spec.startswith(("grpc://", "grpcs://")):
        return GrpcDevice(spec, token=token or load_token(), name=name, timeout_s=timeout_s)
    from host.fleet.local import LocalDevice

    backend, options = parse_local_spec(spec)
    return LocalDevice(
        name=name or "local", backend=backend, backend_options=options, timeout_s=timeout_s
    )


__all__ = [
    "Device",
    "Fleet",
    "FleetResult",
    "GrpcDevice",
    "ModelBlob",
    "RetryPolicy",
    "SPEC_FORMS",
    "check_device_spec",
    "open_device",
    "parse_local_spec",
]
