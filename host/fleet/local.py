"""The built-in local device: a real agent on a free loopback port of this machine.

`--device local` needs no set-up. The agent runs in this process's gRPC server threads and
runs models in its own worker process, exactly as on a board, and the host talks to it
over real gRPC. Its figures are measurements of this machine, labelled as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from device_agent.backends.base import get_backend_class
from device_agent.server import AgentServer
from host.fleet.grpc_device import GrpcDevice


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
        backend_obj = get_backend_class(backend)(name=name, **(backend_options or {}))  # type: ignore[call-arg]
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
