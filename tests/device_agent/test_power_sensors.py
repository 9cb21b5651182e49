"""Power sensors: register arithmetic of the INA chips and the replay trace format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_agent.errors import ConfigError, DeviceUnavailable
from device_agent.power.base import PowerTrace, get_sensor_class, power_stats
from device_agent.power.ina2xx import Ina219, Ina260
from device_agent.power.replay import ReplayPowerSensor, load_trace
from device_agent.types import Source


class RegisterBus:
    """An I2C bus that holds register values the way the INA chips expose them (big-endian),
    for checking the conversion arithmetic; not a model of the chip."""

    def __init__(self, registers: dict[int, int], fail: bool = False) -> None:
        self.registers = dict(registers)
        self.writes: dict[int, int] = {}
        self.fail = fail

    def read_word_data(self, address: int, register: int) -> int:
        value = self.registers[register]
        return ((value & 0xFF) << 8) | (value >> 8)

    def write_word_data(self, address: int, register: int, value: int) -> None:
        if self.fail:
            raise OSError(121, "Remote I/O error")
        self.writes[register] = ((value & 0xFF) << 8) | (value >> 8)


def test_ina260_power_lsb_is_10_mw() -> None:
    sensor = Ina260(smbus=RegisterBus({0x03: 250}))
    assert sensor.read_mw() == pytest.approx(2500.0)
    assert sensor.info().source is Source.MEASURED


def test_ina219_calibration_and_power() -> None:
    bus = RegisterBus({0x03: 1000})
    sensor = Ina219(smbus=bus, shunt_ohms=0.1, max_current_a=3.2)
    # Current_LSB = 3.2 A / 32768; calibration = 0.04096 / (LSB * 0.1 ohm) = 4194.
    assert bus.writes[0x05] == 4194
    # Power LSB = 20 x current LSB: 1000 counts = 1.953 W.
    assert sensor.read_mw() == pytest.approx(1000 * 20 * 3.2 / 32768 * 1000)


def test_absent_ina_chip_is_a_clear_error() -> None:
    with pytest.raises(DeviceUnavailable, match="no ina219 answers"):
        Ina219(smbus=RegisterBus({}, fail=True))


def test_replay_trace_parsing(tmp_path: Path) -> None:
    good = tmp_path / "t.csv"
    good.write_text("seconds,milliwatts\n0,100\n1,300\n")
    t, p = load_trace(good)
    assert list(t) == [0, 1] and list(p) == [100, 300]
    bad = tmp_path / "bad.csv"
    bad.write_text("0,100\n0,200\n")
    with pytest.raises(ConfigError, match="increase"):
        load_trace(bad)
    with pytest.raises(ConfigError, match="power-trace"):
        ReplayPowerSensor()


def test_energy_is_mean_power_times_time_per_inference() -> None:
    sensor = ReplayPowerSensor(t_s=[0, 1], power_mw=[500, 500])
    trace = PowerTrace(np.array([0.0, 0.5, 1.0]), np.array([400.0, 600.0, 400.0]))
    stats = power_stats(sensor, trace, inferences=100, compute_seconds=0.2)
    assert stats.mean_power_mw.value == pytest.approx(500.0)  # trapezoid mean
    assert stats.energy_per_inference_uj.value == pytest.approx(500 * 0.2 / 100 * 1000)
    assert stats.mean_power_mw.source is Source.REPLAYED


def test_sensor_registry() -> None:
    assert get_sensor_class("none") is None
    assert get_sensor_class("ina260") is Ina260
    with pytest.raises(ConfigError, match="unknown power sensor"):
        get_sensor_class("ina999")
