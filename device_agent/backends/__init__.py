"""Device backends (one per kind of device) and their registry."""

from device_agent.backends.base import (
    BUILTIN_BACKENDS,
    Backend,
    available_backend_names,
    get_backend_class,
    register_backend,
)

__all__ = [
    "BUILTIN_BACKENDS",
    "Backend",
    "available_backend_names",
    "get_backend_class",
    "register_backend",
]
