"""The exception hierarchy shared by the agent and the host.

Every failure that crosses the device contract is one of these. The agent maps each to a
gRPC status code (and names the class in trailing metadata); the host client maps it back,
so a caller sees the same type on both sides of the wire.
"""

from __future__ import annotations


class HilnasError(Exception):
    """Root of every error hilnas raises on purpose."""


class ConfigError(HilnasError):
    """A configuration value or command-line option is wrong; the message names it."""


class DataError(HilnasError):
    """A dataset is missing, incomplete or cannot produce what was asked for."""


class DeviceUnavailable(HilnasError):
    """The device cannot be reached, or did not answer within its deadline."""


class AuthenticationFailed(HilnasError):
    """The agent refused the call: missing or wrong token, or a rejected certificate."""


class CandidateRejected(HilnasError):
    """The device will not run this model: too big, corrupt, or an unsupported operator."""


class ModelNotFound(HilnasError):
    """The agent does not hold a model with this hash (never uploaded, or evicted)."""


class MeasurementFailed(HilnasError):
    """The model was accepted but running it failed (crash, hang, out of memory)."""


class ProtocolError(HilnasError):
    """The peer broke the contract: bad framing, a hash mismatch, an unknown version."""


# Name <-> class, for errors that travel by name (gRPC trailing metadata, the worker pipe).
ERRORS_BY_NAME: dict[str, type[HilnasError]] = {
    cls.__name__: cls
    for cls in (
        HilnasError,
        ConfigError,
        DataError,
        DeviceUnavailable,
        AuthenticationFailed,
        CandidateRejected,
        ModelNotFound,
        MeasurementFailed,
        ProtocolError,
    )
}
