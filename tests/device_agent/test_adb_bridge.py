"""The adb backend against the adb STAND-IN (tests/device_agent/adb_standin), not a phone.

Figures that come out of these tests are replays of recorded phone output, so every
expectation here checks that they are labelled REPLAYED, never MEASURED.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from device_agent.adb.client import AdbClient
from device_agent.adb.hygiene import Snapshot, cool_down, pin_mask
from device_agent.backends.adb import AdbBackend
from device_agent.backends.base import get_backend_class
from device_agent.errors import DeviceUnavailable, MeasurementFailed
from device_agent.power.android_battery import AndroidBatterySensor
from device_agent.types import MeasureSettings, Source

sys.path.insert(0, str(Path(__file__).parent / "adb_standin"))
sys.path.insert(0, str(Path(__file__).parent))
from mcu_models import model_path  # noqa: E402
from standin_fixture import StandIn  # noqa: E402

FAST = MeasureSettings(warmup_runs=2, min_runs=3, max_runs=10, time_budget_seconds=20)


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> StandIn:
    return StandIn(tmp_path, monkeypatch)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    # A real small int8 model: the bridge reads every model before pushing it (a damaged one
    # is refused there). The stand-in replays recordings, so Measure never runs it.
    path = tmp_path / "candidate.tflite"
    path.write_bytes(model_path("tiny").read_bytes())
    return path


def backend(standin: StandIn, **kwargs: object) -> AdbBackend:
    client = AdbClient(standin.path, kwargs.pop("serial", "standin-0001"), timeout_s=30)  # type: ignore[arg-type]
    return AdbBackend(client=client, benchmark_binary=standin.binary, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ device states
@pytest.mark.parametrize(
    ("replay", "serial", "state"),
    [
        ("A1/1", "3949363555493098", "offline"),
        ("A1/2", "3949363555493098", "authorizing"),
        ("A2", "8XV5000A20007972", "unauthorized"),
        ("A3", "10.10.176.186:7401", "unauthorized"),
    ],
)
def test_recorded_device_states(standin: StandIn, replay: str, serial: str, state: str) -> None:
    standin.update(devices_replay=replay)
    devices = AdbClient(standin.path).devices()
    assert [(d.serial, d.state) for d in devices] == [(serial, state)]
    for chosen in (serial, None):  # by serial, and as the only phone
        with pytest.raises(DeviceUnavailable, match=state):
            AdbClient(standin.path, chosen).select()
    with pytest.raises(DeviceUnavailable, match=state):
        backend(standin, serial=serial)


def test_ambiguous_absent_and_unknown(standin: StandIn) -> None:
    standin.update(devices=[["AAA111", "device"], ["BBB222", "device"]])
    with pytest.raises(DeviceUnavailable, match="2 phones are attached.*--adb-serial"):
        AdbClient(standin.path).select()
    assert AdbClient(standin.path, "BBB222").select() == "BBB222"
    with pytest.raises(DeviceUnavailable, match="no phone with serial ZZZ"):
        AdbClient(standin.path, "ZZZ").select()
    standin.update(devices=[])
    with pytest.raises(DeviceUnavailable, match="no phone is attached"):
        AdbClient(standin.path).select()


def test_missing_adb_is_a_config_error(tmp_path: Path) -> None:
    from device_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="adb executable not found"):
        AdbClient(tmp_path / "no-such-adb").devices()


# ------------------------------------------------------------------ describe / measure
def test_describe_and_measure_summary(standin: StandIn, model_file: Path) -> None:
    b = backend(standin)
    info = b.describe()
    assert info.is_stand_in and info.kind == "android" and info.backend == "adb"
    assert info.board == "hilnas adb stand-in"
    assert (info.cpu_cores, info.ram_bytes) == (8, 5832424 * 1024)
    assert info.extra["android_version"] == "13"
    assert info.runtimes[0].name == "litert-benchmark_model"
    assert b.binary_sha256[:12] in info.runtimes[0].version

    m = b.measure(model_file, "a" * 64, FAST)
    lat = m.latency
    # android_benchmark_model_7.txt: count=50 min=162744 max=163299 avg=162980 std=146
    assert (lat.n, lat.min_us, lat.max_us, lat.mean_us, lat.std_us) == (
        50, 162744.0, 163299.0, 162980.0, 146.0
    )
    assert lat.source is Source.REPLAYED
    assert all(math.isnan(v) for v in (lat.p50_us, lat.p90_us, lat.p99_us))
    assert any("p50/p90/p99 are NaN" in n for n in m.notes)
    assert m.memory.peak_rss_bytes.value == pytest.approx(10.332 * 1024 * 1024)
    assert m.memory.peak_rss_bytes.source is Source.REPLAYED
    assert m.memory.model_bytes.value == model_file.stat().st_size
    assert m.memory.arena_bytes.source is Source.UNAVAILABLE
    assert m.power.mean_power_mw.source is Source.UNAVAILABLE
    assert any(n.startswith("before: governor=schedutil") for n in m.notes)

    # The binary is pushed once (a second bridge finds it), a model once per hash.
    b2 = backend(standin)
    b2.measure(model_file, "a" * 64, FAST)
    pushes = [c for c in standin.calls() if "push" in c]
    assert sum(1 for c in pushes if "benchmark_model" in c[-1]) == 1
    assert sum(1 for c in pushes if c[-1].endswith("a" * 64 + ".tflite")) == 1
    run = next(c for c in standin.calls() if "--num_runs=3" in c[-1])
    assert "--warmup_runs=2" in run[-1] and "--num_threads=1" in run[-1]


def test_repeated_mode_gives_percentiles(standin: StandIn, model_file: Path) -> None:
    standin.update(benchmark={"measure": [
        "android_benchmark_model_7.txt", "android_benchmark_model_6.txt",
        "android_benchmark_model_3.txt",
    ]})
    m = backend(standin, latency_mode="repeated").measure(model_file, "b" * 64, FAST)
    assert m.latency.n == 3
    assert m.latency.p50_us == 162980.0  # median of the three replayed single-run times
    assert m.latency.source is Source.REPLAYED
    assert any("separate benchmark_model invocations" in n for n in m.notes)
    assert sum(1 for c in standin.calls() if "--num_runs=1" in c[-1]) == 3


def test_failed_run_is_reported(standin: StandIn, model_file: Path) -> None:
    standin.update(benchmark={"measure": ["android_benchmark_model_5.txt"]})
    with pytest.raises(MeasurementFailed, match="Benchmarking failed|NNAPI"):
        backend(standin).measure(model_file, "c" * 64, FAST)


# ------------------------------------------------------------------ profile
def test_profile(standin: StandIn, model_file: Path) -> None:
    p = backend(standin).profile(model_file, "d" * 64, FAST)
    assert len(p.ops) == 31 and p.source is Source.REPLAYED
    slow = p.slowest()
    assert (slow.index, slow.op, slow.mean_us) == (6, "CONV_2D", pytest.approx(13847.0))
    assert sum(o.fraction for o in p.ops) == pytest.approx(1.0)
    assert math.isnan(slow.p50_us) and math.isnan(p.whole_model_p50_us)
    assert any("--enable_op_profiling=true" in c[-1] for c in standin.calls())

    standin.update(benchmark={"profile": "android_benchmark_model_1.txt"})
    p1 = backend(standin).profile(model_file, "d" * 64, FAST)
    assert [o.index for o in p1.ops[:3]] == [0, 1, 2]
    assert any("run-order position" in n for n in p1.notes)

    standin.update(benchmark={"profile": "android_benchmark_model_6.txt"})
    with pytest.raises(MeasurementFailed, match="no operator table"):
        backend(standin).profile(model_file, "d" * 64, FAST)


# ------------------------------------------------------------------ power
def power_backend(standin: StandIn, unit: str = "auto") -> AdbBackend:
    client = AdbClient(standin.path, "standin-0001")
    sensor = AndroidBatterySensor(client, current_unit=unit)
    return AdbBackend(client=client, benchmark_binary=standin.binary, power_sensor=sensor)


def test_power_replayed_from_recorded_pixel_3a(standin: StandIn, model_file: Path) -> None:
    standin.update(benchmark={"run_sleep_s": 0.3})  # B1: 976 uA, 3815175 uV, Not charging
    m = power_backend(standin).measure(model_file, "e" * 64, FAST)
    assert m.power.mean_power_mw.source is Source.REPLAYED
    assert m.power.mean_power_mw.value == pytest.approx(0.976 * 3.815175)
    assert m.power.energy_per_inference_uj.value == pytest.approx(
        0.976 * 3.815175 * (50 * 162980e-6) / 50 * 1000
    )
    assert any("Not charging" in n for n in m.notes)
    assert any("--battery-current-unit mA" in n for n in m.notes)
    shells = [c[-1] for c in standin.calls() if "shell" in c]
    assert any(s.startswith("dumpsys battery unplug") for s in shells)
    assert any(s.startswith("dumpsys battery reset") for s in shells)
    assert any("--min_secs=5" in s for s in shells)  # power needs a long enough window


def test_power_unavailable_while_charging(standin: StandIn, model_file: Path) -> None:
    standin.update(battery_replay="B2")  # Xiaomi Mi 8: Charging, current_now=-326171
    m = power_backend(standin).measure(model_file, "f" * 64, FAST)
    assert m.power.mean_power_mw.source is Source.UNAVAILABLE
    assert "Charging" in m.power.mean_power_mw.note


@pytest.mark.parametrize(
    ("current", "voltage", "unit", "expected_mw"),
    [
        ("-420000", "3850000", "auto", 420 * 3.85),  # ABI: uA, negative while discharging
        ("420000", "3850000", "auto", 420 * 3.85),  # flipped sign (Pixel-5-like)
        ("-350", "3850", "mA", 350 * 3.85),  # milliamp phone, millivolt voltage
    ],
)
def test_power_units_and_sign(
    standin: StandIn, model_file: Path, current: str, voltage: str, unit: str, expected_mw: float
) -> None:
    node = "/sys/class/power_supply/battery"
    standin.update(battery_replay=None, files={  # SYNTHETIC readings, by design
        f"{node}/type": "Battery", f"{node}/status": "Discharging", f"{node}/temp": "300",
        f"{node}/current_now": current, f"{node}/voltage_now": voltage,
    })
    m = power_backend(standin, unit).measure(model_file, "0" * 64, FAST)
    assert m.power.mean_power_mw.value == pytest.approx(expected_mw)
    assert m.power.idle_power_mw.value == pytest.approx(expected_mw)
    assert not any("changed sign" in n for n in m.notes)


# ------------------------------------------------------------------ hygiene
def test_pinning_and_throttle_warnings(standin: StandIn, model_file: Path) -> None:
    cpu4 = "/sys/devices/system/cpu/cpu4/cpufreq/scaling_max_freq"
    standin.update(sequences={
        cpu4: ["2803200", "1996800"],  # SYNTHETIC: capped after the run
        "/sys/class/power_supply/battery/temp": ["313", "425"],  # 31.3 C -> 42.5 C
    })
    m = backend(standin, pin="big").measure(model_file, "1" * 64, FAST)
    assert any(c[-1].startswith("taskset f0 ") for c in standin.calls())
    assert "pinned to big cores cpu[4, 5, 6, 7] (max 2803 MHz), mask f0" in m.notes
    warnings = [n for n in m.notes if n.startswith("WARNING")]
    assert any("throttling after the run" in w and "cpu4 1996/2803 MHz" in w for w in warnings)
    assert any("phone is hot after the run (battery 42.5 C" in w for w in warnings)


def test_cool_down_waits_then_gives_up(standin: StandIn) -> None:
    standin.update(sequences={"/sys/class/power_supply/battery/temp": ["450", "420", "350"]})
    client = AdbClient(standin.path, "standin-0001")
    slept: list[float] = []
    waited, snap, warning = cool_down(
        client, "/sys/class/power_supply/battery", target_c=38.0, max_wait_s=60,
        poll_s=10, sleep=slept.append,
    )
    assert (waited, snap.battery_temp_c, warning) == (20.0, 35.0, None)
    standin.update(sequences={"/sys/class/power_supply/battery/temp": ["450"]})
    client2 = AdbClient(standin.path, "standin-0001")
    waited, _, warning = cool_down(
        client2, "/sys/class/power_supply/battery", target_c=38.0, max_wait_s=20, poll_s=10,
        sleep=slept.append,
    )
    assert waited == 20.0 and warning is not None and "did not cool down" in warning


def test_pin_mask_choices() -> None:
    snap = Snapshot(0.0, hw_max_khz={0: 1_800_000, 1: 1_800_000, 2: 2_400_000, 3: 2_400_000})
    assert pin_mask("big", snap)[0] == "c"
    assert pin_mask("little", snap)[0] == "3"
    assert pin_mask("0xf0", snap)[0] == "f0"
    assert pin_mask("none", snap)[0] is None
    assert pin_mask("big", Snapshot(0.0, hw_max_khz={0: 1, 1: 1}))[0] is None


# ------------------------------------------------------------------ validate
def sine_model() -> Path:
    pytest.importorskip("ai_edge_litert")
    tflm = pytest.importorskip("tflite_micro")
    path = Path(tflm.__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    if not path.exists():
        pytest.skip("no small .tflite model available (tflite_micro's sine_float.tflite)")
    return path


def test_validate_through_input_and_output_files(standin: StandIn) -> None:
    model = sine_model()
    from ai_edge_litert.interpreter import Interpreter

    b = backend(standin)
    xs = [(np.array([[0.5]], np.float32),), (np.array([[2.0]], np.float32),)]
    outs = b.validate(model, "2" * 64, xs)
    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    for x, out in zip(xs, outs, strict=True):
        interp.set_tensor(interp.get_input_details()[0]["index"], x[0])
        interp.invoke()
        want = interp.get_tensor(interp.get_output_details()[0]["index"])
        np.testing.assert_array_equal(out[0], want)
    run = next(c[-1] for c in standin.calls() if "--output_filepath" in c[-1])
    assert "--input_layer_value_files=" in run and "--input_layer_shape=1,1" in run


def test_validate_reports_a_binary_that_cannot(standin: StandIn, model_file: Path) -> None:
    standin.update(benchmark={"flags": ["graph", "num_threads", "input_layer_value_files"]})
    with pytest.raises(MeasurementFailed, match="cannot run Validate.*--output_filepath"):
        backend(standin).validate(model_file, "3" * 64, [(np.zeros(1, np.float32),)])


# ------------------------------------------------------------------ registry, CLI, gRPC
def test_registry_and_command_line(standin: StandIn) -> None:
    import argparse

    cls = get_backend_class("adb")
    assert cls is AdbBackend
    parser = argparse.ArgumentParser()
    parser.add_argument("--power-sensor", default="none")
    cls.add_arguments(parser)
    args = parser.parse_args([
        "--adb-serial", "standin-0001", "--adb-path", str(standin.path),
        "--benchmark-binary", str(standin.binary), "--power-sensor", "android-battery",
        "--adb-pin", "little",
    ])
    b = cls.from_args(args)
    assert isinstance(b, AdbBackend) and b.pin == "little"
    assert b.describe().power_sensor.source is Source.REPLAYED


# ------------------------------------------------------------------ real phone (opt-in)
@pytest.mark.hardware
def test_real_phone(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    import os
    import shutil

    serial = request.config.getoption("--adb-serial")
    binary = os.environ.get("HILNAS_BENCHMARK_BINARY")
    if not serial or not shutil.which("adb"):
        pytest.skip("needs --adb-serial SERIAL and the adb client on PATH")
    if not binary:
        pytest.skip("set HILNAS_BENCHMARK_BINARY to a benchmark_model built for the phone")
    model = sine_model()
    b = AdbBackend(client=AdbClient("adb", serial), benchmark_binary=binary)
    info = b.describe()
    assert not info.is_stand_in and info.cpu_cores > 0
    m = b.measure(model, "sine", MeasureSettings(warmup_runs=5, min_runs=50))
    assert m.latency.source is Source.MEASURED and m.latency.mean_us > 0
