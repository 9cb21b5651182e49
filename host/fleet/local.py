"""The built-in local device: a real agent on a free loopback port of this machine.

`--device local` needs no set-up. The agent runs in this process's gRPC server threads and
runs models in its own worker process, exactly as on a board, and the host talks to it
over real gRPC. Its figures are measurements of this machine, labelled as such.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from device_agent.backends.base import get_backend_class
from device_agent.errors import ConfigError
from device_agent.server import AgentServer
from host.fleet.grpc_device import GrpcDevice


def _typed_options(cls: type, backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """Backend options from a device spec's text, typed like the constructor's defaults."""
    params = {
        n: p for n, p in inspect.signature(cls).parameters.items()
        if n != "name" and p.kind is not p.VAR_KEYWORD
    }
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in params:
            raise ConfigError(
                f"backend {backend!r} has no option {key!r}; options: {', '.join(sorted(params))}"
            )
        default = params[key].default
        if default is None:  # no type to follow: a number if it reads as one
            out[key] = _number(value)
            continue
        if not isinstance(value, str) or isinstance(default, str):
            out[key] = value
            continue
        try:
            if isinstance(default, bool):
                out[key] = value.lower() in ("1", "true", "yes", "on")
            else:
                out[key] = type(default)(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"backend {backend!r}: option {key}={value!r} is not a {type(default).__name__}"
            ) from None
    return out


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class LocalDevice(GrpcDevice):
    """A GrpcDevice whose agent this object starts, owns and stops."""

    def __init__(
        self,
        *,
        name: str = "local",
        backend: str = "litert",
        backend_options: dict[str, Any] | None = None,
        cache_dir: Path | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        cls = get_backend_class(backend)
        backend_obj = cls(name=name, **_typed_options(cls, backend, backend_options or {}))  # type: ignore[call-arg]
        self.server = AgentServer(
            backend_obj, name=name, host="127.0.0.1", port=0, cache_dir=cache_dir
        )
        try:
            self.server.start()
        except BaseException:
            backend_obj.close()
            raise
        super().__init__(self.server.address, name=name, timeout_s=timeout_s)

    def close(self) -> None:
        super().close()
        self.server.stop()
