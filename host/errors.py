"""Host-side view of the shared exception hierarchy (re-exported from the agent package)."""

from device_agent.errors import (
    ERRORS_BY_NAME,
    AuthenticationFailed,
    CandidateRejected,
    ConfigError,
    DataError,
    DeviceUnavailable,
    HilnasError,
    MeasurementFailed,
    ModelNotFound,
    ProtocolError,
)

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
]
