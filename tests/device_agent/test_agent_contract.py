"""The device contract end to end: real LiteRT agents on loopback ports, real gRPC clients."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TOKEN  # type: ignore[import-not-found]

from device_agent.backends.litert import LiteRTBackend
from device_agent.errors import (
    AuthenticationFailed,
    CandidateRejected,
    ConfigError,
    DeviceUnavailable,
    MeasurementFailed,
    WorkerCrashed,
    WorkerTimedOut,
)
from device_agent.power.replay import ReplayPowerSensor
from device_agent.server import AgentServer
from device_agent.types import InputSource, MeasureSettings, Source
from host.fleet import Fleet
from host.fleet.grpc_device import GrpcDevice, RetryPolicy

QUICK = MeasureSettings(warmup_runs=3, min_runs=10, max_runs=50, time_budget_seconds=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_describe_reports_runtime_limits_and_version(device: GrpcDevice) -> None:
    info = device.describe()
    assert info.name == "test-device"
    assert info.kind == "linux" and info.backend == "litert"
    assert info.runtimes[0].name == "ai_edge_litert" and info.runtimes[0].version
    assert info.cpu_cores >= 1 and info.ram_bytes > 0
    assert info.protocol_major == 1
    assert info.limits.max_model_bytes == 64 * 1024 * 1024
    assert info.power_sensor.source is Source.UNAVAILABLE
    assert not info.is_stand_in


def test_measure_reports_latency_memory_and_sources(
    device: GrpcDevice, models: dict[str, Path]
) -> None:
    path = models["int8_conv_lstm"]
    m = device.measure(path, MeasureSettings(warmup_runs=5, min_runs=20, max_runs=200))
    lat = m.latency
    assert lat.source is Source.MEASURED
    assert lat.n >= 20 or lat.stop_reason == "time_budget"
    assert lat.min_us <= lat.p50_us <= lat.p90_us <= lat.p99_us <= lat.max_us
    assert 10 < lat.p50_us < 1_000_000
    assert lat.stop_reason in {"stable", "max_runs", "time_budget"}
    assert m.memory.model_bytes.value == path.stat().st_size
    assert m.memory.peak_rss_bytes.source is Source.MEASURED
    assert m.memory.peak_rss_bytes.value and m.memory.peak_rss_bytes.value > 10_000_000
    assert m.memory.arena_bytes.source is Source.UNAVAILABLE and m.memory.arena_bytes.value is None
    assert m.power.mean_power_mw.source is Source.UNAVAILABLE
    assert m.runtime.name == "ai_edge_litert"
    assert m.compute_seconds == pytest.approx(lat.mean_us * lat.n / 1e6, rel=1e-6)


def test_profile_times_every_operator(device: GrpcDevice, models: dict[str, Path]) -> None:
    profile = device.profile(models["int8_conv_lstm"], QUICK)
    names = [op.op for op in profile.ops]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in names and "CONV_2D" in names
    assert profile.slowest().op == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    assert sum(op.fraction for op in profile.ops) == pytest.approx(1.0)
    assert [op.index for op in profile.ops] == sorted(op.index for op in profile.ops)
    assert profile.source is Source.MEASURED and profile.whole_model_p50_us > 0


def test_validate_returns_the_runtime_outputs(device: GrpcDevice, models: dict[str, Path]) -> None:
    rng = np.random.default_rng(0)
    inputs = [(rng.integers(-128, 127, (1, 256, 1), dtype=np.int8),) for _ in range(8)]
    outputs = device.validate(models["int8_conv1d"], inputs)
    assert len(outputs) == 8
    assert all(o[0].dtype == np.int8 and o[0].shape == (1, 2) for o in outputs)
    # The reference: TensorFlow's own TFLite interpreter in this process.
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(models["int8_conv1d"]))
    interp.allocate_tensors()
    for (x,), (y,) in zip(inputs, outputs, strict=True):
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        expected = interp.get_tensor(interp.get_output_details()[0]["index"])
        assert np.abs(expected.astype(int) - y.astype(int)).max() <= 1
    assert len({o[0].tobytes() for o in outputs}) > 1


def test_validate_rejects_wrong_input_shape(device: GrpcDevice, models: dict[str, Path]) -> None:
    with pytest.raises(CandidateRejected, match="wants int8"):
        device.validate(models["int8_conv1d"], [(np.zeros((1, 128, 1), np.int8),)])


def test_missing_or_wrong_token_is_refused(agent: AgentServer, models: dict[str, Path]) -> None:
    for token in (None, "wrong"):
        client = GrpcDevice(agent.address, token=token)
        try:
            with pytest.raises(AuthenticationFailed):
                client.describe()
            with pytest.raises(AuthenticationFailed):
                client.measure(models["int8_conv1d"], QUICK)
        finally:
            client.close()


def test_unreachable_agent_fails_within_the_deadline() -> None:
    client = GrpcDevice(
        f"grpc://127.0.0.1:{free_port()}",
        timeout_s=2.0,
        retry=RetryPolicy(attempts=3, initial_backoff_s=0.1),
    )
    t0 = time.monotonic()
    try:
        with pytest.raises(DeviceUnavailable, match="unreachable|deadline"):
            client.describe()
    finally:
        client.close()
    assert time.monotonic() - t0 < 8.0


def test_model_over_the_size_limit_is_rejected(tmp_path: Path, models: dict[str, Path]) -> None:
    server = AgentServer(LiteRTBackend(), cache_dir=tmp_path, max_model_bytes=100_000)
    server.start()
    client = GrpcDevice(server.address)
    try:
        with pytest.raises(CandidateRejected, match="exceeds"):
            client.measure(models["float_1mb"], QUICK)
    finally:
        client.close()
        server.stop()


def test_settings_beyond_device_limits_are_refused(
    device: GrpcDevice, models: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError, match="time_budget_seconds"):
        device.measure(models["int8_conv1d"], MeasureSettings(time_budget_seconds=1000))


def _long_settings() -> MeasureSettings:
    return MeasureSettings(
        warmup_runs=0, min_runs=1, max_runs=10_000, time_budget_seconds=20, target_ci_relative=0
    )


def test_crash_in_the_runtime_spares_the_agent(
    agent: AgentServer, device: GrpcDevice, models: dict[str, Path]
) -> None:
    """A segfault of the runtime (delivered to the worker mid-run) fails only that request."""
    backend = agent.backend
    assert isinstance(backend, LiteRTBackend)
    device.ensure_model(models["int8_conv_lstm"])
    pid = backend.worker.pid
    assert pid is not None
    errors: list[Exception] = []

    def run() -> None:
        try:
            device.measure(models["int8_conv_lstm"], _long_settings())
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)
    os.kill(pid, signal.SIGSEGV)
    thread.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], MeasurementFailed)
    # The typed error crosses the wire by name: the client raises WorkerCrashed too.
    assert isinstance(errors[0], WorkerCrashed) and "SIGSEGV" in str(errors[0])
    # The next request is served by a fresh worker.
    m = device.measure(models["int8_conv_lstm"], QUICK)
    assert m.latency.n >= 1 and backend.worker.pid != pid
    assert device.heartbeat()["busy"] is False


def test_hung_runtime_is_killed_at_its_deadline(tmp_path: Path, models: dict[str, Path]) -> None:
    backend = LiteRTBackend(deadline_slack_s=2.0)
    server = AgentServer(backend, cache_dir=tmp_path)
    server.start()
    client = GrpcDevice(server.address)
    try:
        client.ensure_model(models["int8_conv1d"])
        pid = backend.worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the runtime stops answering, as in a hang
        t0 = time.monotonic()
        with pytest.raises(WorkerTimedOut, match="deadline"):
            client.measure(models["int8_conv1d"], MeasureSettings(time_budget_seconds=1))
        assert time.monotonic() - t0 < 10
        assert client.measure(models["int8_conv1d"], QUICK).latency.n >= 1
    finally:
        client.close()
        server.stop()


def test_model_exhausting_memory_fails_cleanly(tmp_path: Path) -> None:
    from host.fleet import reference_models as tflite_models

    model = tflite_models.huge_intermediate(elements=400_000_000)  # 1.6 GB float tensor
    backend = LiteRTBackend(memory_limit_bytes=256 * 1024 * 1024)
    server = AgentServer(backend, cache_dir=tmp_path)
    server.start()
    client = GrpcDevice(server.address)
    try:
        with pytest.raises(MeasurementFailed, match="memory|alloc"):
            client.measure(model, QUICK)
        assert client.heartbeat()["agent_version"]
    finally:
        client.close()
        server.stop()


def test_concurrent_measurements_from_two_clients_are_serialised(
    agent: AgentServer, models: dict[str, Path]
) -> None:
    clients = [GrpcDevice(agent.address, token=TOKEN, name=f"c{i}") for i in range(2)]
    results: dict[int, object] = {}

    def run(i: int) -> None:
        try:
            results[i] = clients[i].measure(models["int8_conv_lstm"], QUICK)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in clients:
        c.close()
    ms = [results[0], results[1]]
    assert all(hasattr(m, "latency") for m in ms), ms
    # The device ran one measurement at a time: their time windows do not overlap.
    windows = sorted((m.started_unix, m.started_unix + m.wall_seconds) for m in ms)  # type: ignore[attr-defined]
    assert windows[0][1] <= windows[1][0] + 0.005


def test_client_recovers_after_an_agent_restart(tmp_path: Path, models: dict[str, Path]) -> None:
    port = free_port()
    first = AgentServer(LiteRTBackend(), port=port, cache_dir=tmp_path / "a")
    first.start()
    client = GrpcDevice(
        f"grpc://127.0.0.1:{port}",
        retry=RetryPolicy(attempts=8, initial_backoff_s=0.1, max_backoff_s=1.0),
    )
    try:
        client.measure(models["int8_conv1d"], QUICK)
        first.stop()
        # A new agent on the same port with an empty cache: the client reconnects and
        # uploads again.
        second = AgentServer(LiteRTBackend(), port=port, cache_dir=tmp_path / "b")
        second.start()
        try:
            m = client.measure(models["int8_conv1d"], QUICK)
            assert m.latency.n >= 1 and len(second.cache) == 1
        finally:
            second.stop()
    finally:
        client.close()


def test_replayed_power_is_labelled_replayed(tmp_path: Path, models: dict[str, Path]) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("seconds,milliwatts\n0,1000\n0.5,3000\n1.0,1000\n")
    backend = LiteRTBackend(power_sensor=ReplayPowerSensor(trace))
    server = AgentServer(backend, cache_dir=tmp_path / "cache")
    server.start()
    client = GrpcDevice(server.address)
    try:
        info = client.describe()
        assert info.power_sensor.name == "replay" and info.power_sensor.source is Source.REPLAYED
        m = client.measure(
            models["int8_conv_lstm"],
            MeasureSettings(warmup_runs=2, min_runs=100, max_runs=100, target_ci_relative=0),
        )
        p = m.power
        assert p.mean_power_mw.source is Source.REPLAYED
        assert p.energy_per_inference_uj.source is Source.REPLAYED
        assert p.mean_power_mw.value is not None and 1000 <= p.mean_power_mw.value <= 3000
        assert p.samples >= 2
        expected_uj = p.mean_power_mw.value * m.compute_seconds / m.latency.n * 1000
        assert p.energy_per_inference_uj.value == pytest.approx(expected_uj)
    finally:
        client.close()
        server.stop()


def test_provided_inputs_travel_to_the_device(device: GrpcDevice, models: dict[str, Path]) -> None:
    x = np.full((1, 256, 1), 7, np.int8)
    m = device.measure(
        models["int8_conv1d"],
        MeasureSettings(
            warmup_runs=1, min_runs=5, max_runs=5, input_source=InputSource.PROVIDED, inputs=(x,)
        ),
    )
    assert m.latency.n == 5


def test_fleet_measures_on_several_devices_at_once(tmp_path: Path, models: dict[str, Path]) -> None:
    servers = [
        AgentServer(LiteRTBackend(), name=f"dev{i}", cache_dir=tmp_path / str(i)) for i in range(2)
    ]
    for s in servers:
        s.start()
    dead = GrpcDevice(
        f"grpc://127.0.0.1:{free_port()}", name="gone", timeout_s=1, retry=RetryPolicy(attempts=1)
    )
    devices = [GrpcDevice(s.address, name=f"dev{i}") for i, s in enumerate(servers)] + [dead]
    try:
        with Fleet(devices) as fleet:
            result = fleet.measure(models["int8_conv1d"], QUICK)
        assert set(result.measurements) == {"dev0", "dev1"}
        assert set(result.errors) == {"gone"} and not result.complete
        assert isinstance(result.errors["gone"], DeviceUnavailable)
        assert all(m.device == name for name, m in result.measurements.items())
    finally:
        for s in servers:
            s.stop()
