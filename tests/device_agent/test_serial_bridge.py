"""The serial bridge over a real pseudo-terminal to the emulated board, faults, and end to end
(host -> gRPC -> bridge -> pty -> emulated board)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite_micro")
pytest.importorskip("serial")

from device_agent.backends.mcu_emulator import McuEmulatorBackend  # noqa: E402
from device_agent.backends.serial_bridge import SerialBridgeBackend  # noqa: E402
from device_agent.errors import (  # noqa: E402
    CandidateRejected,
    DeviceUnavailable,
    HilnasError,
    MeasurementFailed,
)
from device_agent.mcu import tflm_host  # noqa: E402
from device_agent.mcu.emulator import EmulatorProcess, LineFaults  # noqa: E402
from device_agent.serial_protocol import (  # noqa: E402
    BoardClient,
    BoardError,
    Cmd,
    SerialLink,
    open_port,
)
from device_agent.types import InputSource, MeasureSettings, Source  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mcu_models import model_path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
QUICK = MeasureSettings(warmup_runs=1, min_runs=5, max_runs=20, time_budget_seconds=10)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def emulated() -> McuEmulatorBackend:
    backend = McuEmulatorBackend("nano33ble")
    yield backend
    backend.close()
    assert not backend.emulator.alive


def test_describe_is_a_labelled_stand_in(emulated: McuEmulatorBackend) -> None:
    info = emulated.describe()
    assert info.is_stand_in and info.kind == "mcu" and info.backend == "mcu-emulator"
    assert info.board == "nano33ble" and info.ram_bytes == 262144
    assert info.limits.ram_budget_bytes == 196608
    assert info.extra["latency_source"] == "estimated"
    assert info.runtimes[0].name == "tflite-micro"


def test_measure_over_the_pty(emulated: McuEmulatorBackend) -> None:
    path = model_path("ecg")
    m = emulated.measure(path, sha(path), QUICK)
    assert m.latency.source is Source.ESTIMATED and "not measured" in m.latency.timer
    assert m.memory.arena_bytes.value == tflm_host.allocate(path.read_bytes(), 196608).report.total
    assert "64-bit host" in m.memory.arena_bytes.note
    assert m.power.mean_power_mw.source is Source.UNAVAILABLE
    assert m.latency.n >= QUICK.min_runs
    # the second time the board already holds the model: no upload
    m2 = emulated.measure(path, sha(path), QUICK)
    assert m2.latency.p50_us == m.latency.p50_us
    emulated._invalidate()
    emulated.measure(path, sha(path), QUICK)
    assert emulated.last_upload is not None and emulated.last_upload.skipped


def test_validate_matches_tflm_and_profile_is_estimated(emulated: McuEmulatorBackend) -> None:
    path = model_path("ecg")
    x = np.load(path.parent / "ecg_windows.npy")[:3]
    host = tflm_host.allocate(path.read_bytes(), 196608)
    d = host.inputs[0]
    scale, zp = (
        d["quantization_parameters"]["scales"][0],
        d["quantization_parameters"]["zero_points"][0],
    )
    qs = [
        np.clip(np.round(w / scale + zp), -128, 127).astype(np.int8).reshape(d["shape"]) for w in x
    ]
    got = emulated.validate(path, sha(path), [(q,) for q in qs])
    for q, out in zip(qs, got, strict=True):
        host.interpreter.reset()
        host.interpreter.set_input(q, 0)
        host.interpreter.invoke()
        np.testing.assert_array_equal(out[0], host.interpreter.get_output(0))
    prof = emulated.profile(path, sha(path), QUICK)
    assert prof.source is Source.ESTIMATED and prof.slowest().op in {
        "CONV_2D",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
    }


def test_candidates_the_board_cannot_run_are_rejected(emulated: McuEmulatorBackend) -> None:
    for name, why in (("leaky", "LEAKY_RELU"), ("bigarena", "arena")):
        path = model_path(name)
        with pytest.raises(CandidateRejected, match=why):
            emulated.measure(path, sha(path), QUICK)


def test_model_too_large_for_the_flash() -> None:
    path = model_path("fc50k")
    with EmulatorProcess(extra_args=["--flash-bytes", "600000"]) as emu:
        bridge = SerialBridgeBackend(emu.path)
        try:
            with pytest.raises(CandidateRejected, match="flash model slot"):
                bridge.measure(path, sha(path), QUICK)
            # the board refuses it too, with its own error frame
            model = path.read_bytes()
            with pytest.raises(BoardError, match="MODEL_TOO_LARGE") as info:
                bridge.client.link.request(
                    Cmd.UPLOAD_BEGIN, len(model).to_bytes(4, "little") + bytes.fromhex(sha(path))
                )
            assert isinstance(info.value.as_hilnas_error(), CandidateRejected)
        finally:
            bridge.close()


@pytest.mark.parametrize(
    "faults",
    [LineFaults(corrupt_rate=0.01, seed=1), LineFaults(drop_rate=0.01, seed=2)],
    ids=["corrupt1pct", "drop1pct"],
)
def test_noisy_line_recovers(faults: LineFaults) -> None:
    path = model_path("tiny")
    with EmulatorProcess(extra_args=faults.args()) as emu:
        link = SerialLink(open_port(emu.path), margin_s=0.15)
        client = BoardClient(link)
        try:
            client.fetch_info(first=True)
            t0 = time.monotonic()
            report = client.upload(path.read_bytes(), sha(path), deadline_s=60)
            assert not report.skipped and time.monotonic() - t0 < 60
            assert link.stats.resends + link.stats.bad_frames + link.stats.naks > 0
            alloc = client.allocate()
            assert alloc.arena_used > 0
        finally:
            link.close()


def test_noisy_line_fails_clearly_within_its_deadline() -> None:
    path = model_path("fc50k")
    with EmulatorProcess(extra_args=LineFaults(corrupt_rate=0.05, drop_rate=0.05).args()) as emu:
        link = SerialLink(open_port(emu.path), margin_s=0.1)
        client = BoardClient(link)
        try:
            t0 = time.monotonic()
            with pytest.raises((DeviceUnavailable, HilnasError)) as info:
                client.fetch_info(first=True, deadline_s=4)
                client.upload(path.read_bytes(), sha(path), deadline_s=4)
            assert time.monotonic() - t0 < 15
            assert "within" in str(info.value) or "noisy" in str(info.value)
        finally:
            link.close()


def test_board_unplugged_mid_upload() -> None:
    path = model_path("fc50k")
    with EmulatorProcess(extra_args=["--unplug-after-bytes", "8000"]) as emu:
        bridge = SerialBridgeBackend(emu.path)
        t0 = time.monotonic()
        try:
            with pytest.raises(DeviceUnavailable, match="unplugged|did not answer"):
                bridge.measure(path, sha(path), QUICK)
        finally:
            bridge.close()
        assert time.monotonic() - t0 < 10


def test_silent_board() -> None:
    with EmulatorProcess(extra_args=["--silent"]) as emu:
        t0 = time.monotonic()
        with pytest.raises(DeviceUnavailable, match="no hilnas board answers"):
            SerialBridgeBackend(emu.path)
        assert time.monotonic() - t0 < 10


def test_board_reset_during_invoke() -> None:
    path = model_path("tiny")
    with EmulatorProcess(extra_args=["--reset-on-invoke"]) as emu:
        bridge = SerialBridgeBackend(emu.path)
        try:
            with pytest.raises(DeviceUnavailable, match="reset"):
                bridge.measure(path, sha(path), QUICK)
        finally:
            bridge.close()


def test_end_to_end_host_grpc_bridge_pty_emulated_board(tmp_path: Path) -> None:
    server_mod = pytest.importorskip("device_agent.server")
    grpc_device = pytest.importorskip("host.fleet.grpc_device")
    path = model_path("ecg")
    backend = McuEmulatorBackend("nano33ble")
    with server_mod.AgentServer(backend, name="nano-emu") as server:
        dev = grpc_device.GrpcDevice(server.address)
        info = dev.describe()
        assert info.is_stand_in and info.board == "nano33ble"
        m = dev.measure(path.read_bytes(), QUICK)
        assert m.latency.source is Source.ESTIMATED
        assert (
            m.memory.arena_bytes.value == tflm_host.allocate(path.read_bytes(), 196608).report.total
        )
        settings = MeasureSettings(
            warmup_runs=0, min_runs=3, max_runs=3, input_source=InputSource.ZEROS
        )
        assert dev.measure(path.read_bytes(), settings).latency.n >= 3
        outs = dev.validate(path.read_bytes(), [(np.zeros((1, 256, 1), np.int8),)])
        assert outs[0][0].shape == (1, 2)
        hilnas = shutil.which("hilnas", path=str(Path(sys.executable).parent)) or shutil.which(
            "hilnas"
        )
        if hilnas:
            proc = subprocess.run(
                [hilnas, "measure", str(path), "--device", server.address, "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ},
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert "arena_bytes" in proc.stdout
            json.loads(proc.stdout[proc.stdout.index("{") :])


def test_agent_cli_starts_the_emulated_board(tmp_path: Path) -> None:
    import argparse

    from device_agent.backends.base import get_backend_class

    parser = argparse.ArgumentParser()
    for name in ("serial", "mcu-emulator"):
        get_backend_class(name).add_arguments(parser)
    args = parser.parse_args(["--board", "nano33ble"])
    backend = get_backend_class("mcu-emulator").from_args(args)
    try:
        assert backend.describe().is_stand_in
    finally:
        backend.close()


@pytest.mark.hardware
def test_real_board(request: pytest.FixtureRequest) -> None:
    port = request.config.getoption("--serial-port")
    if not port or not os.path.exists(port):
        pytest.skip(f"no board: pass --serial-port (got {port!r})")
    bridge = SerialBridgeBackend(port)
    try:
        info = bridge.describe()
        assert not info.is_stand_in
        path = model_path("ecg")
        m = bridge.measure(path, sha(path), QUICK)
        assert m.latency.source is Source.MEASURED and m.latency.timer.startswith("micros")
        assert (
            m.memory.arena_bytes.value
            and m.memory.arena_bytes.value <= info.limits.ram_budget_bytes
        )
        with pytest.raises(MeasurementFailed):
            bridge.profile(path, sha(path), QUICK)
    finally:
        bridge.close()
