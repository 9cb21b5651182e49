"""Clients for device agents: the Device interface, gRPC and local devices, and the Fleet."""

from __future__ import annotations

from device_agent.auth import load_token
from device_agent.errors import ConfigError
from host.fleet.device import Device, ModelBlob
from host.fleet.fleet import Fleet, FleetResult
from host.fleet.grpc_device import GrpcDevice, RetryPolicy


def open_device(
    spec: str, *, token: str | None = None, name: str | None = None, timeout_s: float = 10.0
) -> Device:
    """A device from a command-line spec: `local`, `grpc://HOST:PORT` or `grpcs://HOST:PORT`.

    The token defaults to $HILNAS_AGENT_TOKEN.
    """
    if spec == "local":
        from host.fleet.local import LocalDevice

        return LocalDevice(name=name or "local", timeout_s=timeout_s)
    if spec.startswith(("grpc://", "grpcs://")):
        return GrpcDevice(spec, token=token or load_token(), name=name, timeout_s=timeout_s)
    raise ConfigError(f"unknown device {spec!r}: use `local` or grpc://HOST:PORT")


__all__ = [
    "Device",
    "Fleet",
    "FleetResult",
    "GrpcDevice",
    "ModelBlob",
    "RetryPolicy",
    "open_device",
]
