"""One device-contract suite, run over every backend that can run on this machine.

Each backend is served by a real `AgentServer` on a free loopback port and driven by a real
`GrpcDevice` client, and every test asserts the same contract: Describe, upload once then
a cache hit, Measure (every figure with its source, exactly the sources this backend can
honestly give), Profile, Validate (output shape and dtype, deterministic), a corrupt model
refused with CandidateRejected, and Heartbeat.

Adding a backend is one `Case` in `CASES`: how to build it, which model it runs, and what it
legitimately reports. The models come from `mcu_models` (built once per machine): an
ordinary int8 Conv1D + Dense model, and for the FPGA stand-in a HALF-style
depthwise-separable one (the same family as host.export.hls.demo's, without training).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device_agent.backends.base import Backend, get_backend_class
from device_agent.errors import CandidateRejected, HilnasError
from device_agent.server import AgentServer
from device_agent.types import Figure, MeasureSettings, Source
from device_agent.versions import AGENT_VERSION, PROTOCOL_MAJOR, PROTOCOL_MINOR
from host.fleet.grpc_device import GrpcDevice, RetryPolicy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "adb_standin"))
from mcu_models import model_path  # noqa: E402

pytest.importorskip("ai_edge_litert")

TOKEN = "contract-token-3b9d"
QUICK = MeasureSettings(warmup_runs=1, min_runs=5, max_runs=20, time_budget_seconds=5)
M, E, R, U = Source.MEASURED, Source.ESTIMATED, Source.REPLAYED, Source.UNAVAILABLE
MEMORY = ("peak_rss_bytes", "model_bytes", "arena_bytes", "baseline_rss_bytes")


@dataclass(frozen=True)
class Case:
    """One backend in the suite, and what it legitimately reports."""

    backend: str  # registry name, and what Describe says
    kind: str
    model: str  # an mcu_models name
    stand_in: bool
    make: Callable[[Path], Backend]  # a fresh backend, given a scratch directory
    latency: Source
    memory: tuple[Source, Source, Source, Source]  # in the order of MEMORY
    power: Source  # mean power and energy per inference
    sensor: Source  # Describe's power sensor
    profile: Source | type[HilnasError]  # the profile's source, or the error it raises
    needs: tuple[str, ...] = ()  # optional modules; the case is skipped without them
    needs_data: bool = False  # reads $HILNAS_DATA_DIR (recorded device output)


def _litert(tmp: Path) -> Backend:
    return get_backend_class("litert")(name="contract-litert")


def _mcu_emulator(tmp: Path) -> Backend:
    return get_backend_class("mcu-emulator")("nano33ble")


def _hls_csim(tmp: Path) -> Backend:
    return get_backend_class("hls-csim")(board="pynq-z1", work_dir=tmp / "hls")


def _adb_standin(tmp: Path) -> Backend:
    from standin_fixture import StandIn

    from device_agent.adb.client import AdbClient

    standin = StandIn(tmp, _ENV)  # the stand-in reads its scenario from the environment
    client = AdbClient(standin.path, "standin-0001", timeout_s=30)
    return get_backend_class("adb")(client=client, benchmark_binary=standin.binary)


CASES = [
    # LiteRT on this machine: it really runs and times the model here.
    Case("litert", "linux", "conv1d", False, _litert,
         latency=M, memory=(M, M, U, M), power=U, sensor=U, profile=M),
    # The real TFLite Micro interpreter behind the serial protocol: latency from the cycle
    # model, but the arena is TFLM's real allocation on this host and the model's bytes are
    # counted, so those two are measured.
    Case("mcu-emulator", "mcu", "conv1d", True, _mcu_emulator,
         latency=E, memory=(U, M, M, U), power=U, sensor=U, profile=E,
         needs=("tflite_micro", "serial")),
    # A generated HLS project in g++ C simulation: outputs are real, every figure is HALF's
    # analytic model.
    Case("hls-csim", "fpga", "separable", True, _hls_csim,
         latency=E, memory=(U, E, U, U), power=E, sensor=E, profile=E),
    # The adb stand-in replays recorded phone output; only the file size is counted here.
    Case("adb", "android", "conv1d", True, _adb_standin,
         latency=R, memory=(R, M, U, R), power=U, sensor=U, profile=R, needs_data=True),
]


# Environment changes (the adb stand-in's scenario) that live as long as one agent.
_ENV = pytest.MonkeyPatch()


@dataclass
class Agent:
    case: Case
    server: AgentServer
    device: GrpcDevice
    model: bytes
    inputs: list[dict[str, Any]]  # LiteRT's input details of the model
    outputs: list[dict[str, Any]]

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.model).hexdigest()

    def samples(self, n: int, seed: int) -> list[tuple[np.ndarray, ...]]:
        rng = np.random.default_rng(seed)
        return [
            tuple(rng.integers(-128, 128, size=tuple(d["shape"]), dtype=np.int8)
                  for d in self.inputs)
            for _ in range(n)
        ]


@pytest.fixture(scope="module", params=CASES, ids=[c.backend for c in CASES])
def agent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Agent]:
    case: Case = request.param
    for module in case.needs:
        pytest.importorskip(module)
    if case.needs_data:
        request.getfixturevalue("data_dir")  # skips when the recordings are absent
    from ai_edge_litert.interpreter import Interpreter

    model = model_path(case.model).read_bytes()
    interp = Interpreter(model_content=model)
    tmp = tmp_path_factory.mktemp(case.backend)
    backend = case.make(tmp)
    server = AgentServer(backend, name=f"contract-{case.backend}", token=TOKEN,
                         cache_dir=tmp / "cache")
    server.start()
    device = GrpcDevice(server.address, token=TOKEN, timeout_s=30,
                        retry=RetryPolicy(attempts=2, initial_backoff_s=0.05))
    try:
        yield Agent(case, server, device, model, interp.get_input_details(),
                    interp.get_output_details())
    finally:
        device.close()
        server.stop()
        _ENV.undo()


def test_describe(agent: Agent) -> None:
    info = agent.device.describe()
    case = agent.case
    assert info.name == f"contract-{case.backend}"
    assert (info.backend, info.kind) == (case.backend, case.kind)
    assert info.is_stand_in is case.stand_in
    assert (info.protocol_major, info.protocol_minor) == (PROTOCOL_MAJOR, PROTOCOL_MINOR)
    assert info.agent_version == AGENT_VERSION
    assert info.limits.max_model_bytes > 0 and info.limits.max_request_seconds > 0
    assert info.limits.max_runs > 0
    assert info.runtimes and all(r.name and r.version for r in info.runtimes)
    assert info.power_sensor.source is case.sensor


def test_upload_once_then_cache_hit(agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    uploads: list[str] = []
    real_upload = GrpcDevice.upload

    def counting_upload(self: GrpcDevice, blob: Any) -> None:
        uploads.append(blob.sha256)
        real_upload(self, blob)

    monkeypatch.setattr(GrpcDevice, "upload", counting_upload)
    assert not agent.device.has_model(agent.sha)
    assert agent.device.ensure_model(agent.model) == agent.sha
    assert agent.device.has_model(agent.sha) and agent.server.cache.has(agent.sha)
    # A second client that knows nothing of the first still skips the upload.
    other = GrpcDevice(agent.server.address, token=TOKEN, timeout_s=30)
    try:
        assert other.ensure_model(agent.model) == agent.sha
    finally:
        other.close()
    assert uploads == [agent.sha]


def _figures(m: Any) -> list[Figure]:
    return [getattr(m.memory, k) for k in MEMORY] + [
        m.power.mean_power_mw, m.power.energy_per_inference_uj, m.power.idle_power_mw]


def test_measure(agent: Agent) -> None:
    case = agent.case
    m = agent.device.measure(agent.model, QUICK)
    assert m.sha256 == agent.sha and m.latency.n >= 1
    assert m.latency.mean_us > 0 and m.latency.min_us > 0
    # Percentiles are NaN where a device reports none (benchmark_model's summary).
    assert math.isnan(m.latency.p50_us) or m.latency.p50_us > 0
    assert m.latency.source is case.latency
    assert tuple(getattr(m.memory, k).source for k in MEMORY) == case.memory
    assert m.power.mean_power_mw.source is case.power
    assert m.power.energy_per_inference_uj.source is case.power
    for figure in _figures(m):
        assert isinstance(figure.source, Source)
        assert (figure.value is None) == (figure.source is U), figure
    if case.stand_in:  # a stand-in times nothing real: its latency is never "measured"
        assert m.latency.source is not M
    assert m.runtime.name


def test_profile(agent: Agent) -> None:
    case = agent.case
    if not isinstance(case.profile, Source):
        with pytest.raises(case.profile):
            agent.device.profile(agent.model, QUICK)
        return
    p = agent.device.profile(agent.model, QUICK)
    assert p.source is case.profile and p.ops
    assert all(op.op and op.mean_us >= 0 for op in p.ops)
    assert sum(op.fraction for op in p.ops) == pytest.approx(1.0)


def test_validate(agent: Agent) -> None:
    samples = agent.samples(4, seed=1)
    first = agent.device.validate(agent.model, samples)
    again = agent.device.validate(agent.model, samples)
    assert len(first) == len(samples)
    for outs, outs_again in zip(first, again, strict=True):
        assert len(outs) == len(agent.outputs)
        for out, out_again, detail in zip(outs, outs_again, agent.outputs, strict=True):
            assert out.shape == tuple(detail["shape"])
            assert out.dtype == np.dtype(detail["dtype"])
            np.testing.assert_array_equal(out, out_again)  # deterministic
    assert len({outs[0].tobytes() for outs in first}) > 1  # the inputs reached the model


def test_corrupt_model_is_refused(agent: Agent) -> None:
    with pytest.raises(CandidateRejected):
        agent.device.ensure_model(os.urandom(4096))
    truncated = agent.model[: len(agent.model) // 2]  # the TFL3 identifier survives
    with pytest.raises(CandidateRejected):
        agent.device.ensure_model(truncated)
    assert not agent.server.cache.has(hashlib.sha256(truncated).hexdigest())
    assert agent.device.measure(agent.model, QUICK).latency.n >= 1  # the agent is unharmed


def test_heartbeat(agent: Agent) -> None:
    beat = agent.device.heartbeat(sequence=7)
    assert beat["sequence"] == 7 and beat["busy"] is False
    assert beat["agent_version"] == AGENT_VERSION
    assert beat["interval_seconds"] > 0 and beat["uptime_seconds"] > 0
    assert beat["cached_models"] == len(agent.server.cache)
