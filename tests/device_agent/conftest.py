"""Fixtures for the device contract: real models, real agents on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from device_agent.backends.litert import LiteRTBackend  # noqa: E402
from device_agent.server import AgentServer  # noqa: E402
from host.fleet import reference_models as tflite_models  # noqa: E402
from host.fleet.grpc_device import GrpcDevice, RetryPolicy  # noqa: E402

TOKEN = "test-token-6f1c"


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three reference models (int8 Conv1D, int8 Conv+LSTM, float ~1 MB), converted once."""
    return tflite_models.build_all(tmp_path_factory.mktemp("models"))


@pytest.fixture()
def agent(tmp_path: Path) -> Iterator[AgentServer]:
    """A LiteRT agent with a token on a free loopback port."""
    backend = LiteRTBackend(name="test-device")
    server = AgentServer(backend, name="test-device", token=TOKEN, cache_dir=tmp_path / "cache")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def device(agent: AgentServer) -> Iterator[GrpcDevice]:
    dev = GrpcDevice(
        agent.address,
        token=TOKEN,
        timeout_s=10,
        retry=RetryPolicy(attempts=3, initial_backoff_s=0.05),
    )
    yield dev
    dev.close()
