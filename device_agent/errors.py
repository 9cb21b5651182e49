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


class WorkerCrashed(MeasurementFailed):
    """The child process running the request died (a signal, an exit); it will be restarted.

    `returncode` is the child's exit status (negative: killed by a signal), `signal` the
    signal's name when a signal killed it, `during` the request it was serving, and
    `output_tail` its last lines of output.
    """

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        signal: str | None = None,
        during: str = "",
        output_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.signal = signal
        self.during = during
        self.output_tail = output_tail

    @property
    def how(self) -> str:
        """'SIGSEGV', 'exit status 1', or 'unknown cause' (a rebuilt error carries no code)."""
        if self.signal:
            return self.signal
        return f"exit status {self.returncode}" if self.returncode is not None else "unknown cause"


class WorkerTimedOut(MeasurementFailed):
    """The child process did not answer before its deadline and was killed.

    `deadline_s` is the time it was given, `during` the request it was serving.
    """

    def __init__(self, message: str, *, deadline_s: float | None = None, during: str = "") -> None:
        super().__init__(message)
        self.deadline_s = deadline_s
        self.during = during


class ProtocolError(HilnasError):
    """The peer broke the contract: bad framing, a hash mismatch, an unknown version."""


# Name -> class, for errors that travel by name (gRPC trailing metadata, the worker pipe).
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
        WorkerCrashed,
        WorkerTimedOut,
        ProtocolError,
    )
}

__all__ = [
    "ERRORS_BY_NAME",
    "AuthenticationFailed",
    "CandidateRejected",
    "ConfigError",
    "DataError",
    "DeviceUnavailable",
    "HilnasError",
    "MeasurementFailed",
    "ModelNotFound",
    "ProtocolError",
    "WorkerCrashed",
    "WorkerTimedOut",
]
