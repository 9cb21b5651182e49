"""INA219 and INA260 current/power monitors over I2C (smbus2): the usual bench sensor on a Pi.

The sensor sits in series with the board's supply. Readings are real measurements, so the
figures are labelled `measured`. Register maps follow the TI datasheets (SBOS448G for the
INA219, SBOSA69B for the INA260); all registers are 16-bit big-endian.
"""

from __future__ import annotations

import argparse
from typing import Any

from device_agent.errors import ConfigError, DeviceUnavailable
from device_agent.power.base import PowerSensor, register_sensor
from device_agent.types import PowerSensorInfo, Source

# INA219: calibration makes the current register count in `current_lsb` amps.
INA219_CONFIG, INA219_BUS_V, INA219_POWER, INA219_CURRENT, INA219_CALIBRATION = (
    0x00,
    0x02,
    0x03,
    0x04,
    0x05,
)
# 32 V range, 320 mV shunt range, 12-bit, 128-sample averaging on both ADCs, continuous.
INA219_CONFIG_VALUE = 0x3FFF
# INA260: integrated 2 mOhm shunt; fixed LSBs: 1.25 mA, 1.25 mV, 10 mW.
INA260_CURRENT, INA260_BUS_V, INA260_POWER = 0x01, 0x02, 0x03


def _read_u16(bus: Any, address: int, register: int) -> int:
    raw = bus.read_word_data(address, register)
    return ((raw & 0xFF) << 8) | (raw >> 8)  # SMBus is little-endian, the INA is big-endian


def _write_u16(bus: Any, address: int, register: int, value: int) -> None:
    bus.write_word_data(address, register, ((value & 0xFF) << 8) | (value >> 8))


class _Ina(PowerSensor):
    chip = ""

    def __init__(
        self,
        bus: int = 1,
        address: int = 0x40,
        shunt_ohms: float = 0.1,
        max_current_a: float = 3.2,
        smbus: Any = None,
    ) -> None:
        self.bus_number, self.address = bus, address
        self.shunt_ohms, self.max_current_a = shunt_ohms, max_current_a
        if smbus is None:
            try:
                from smbus2 import SMBus
            except ImportError as exc:
                raise ConfigError("the INA sensors need smbus2 (pip install smbus2)") from exc
            try:
                smbus = SMBus(bus)
            except OSError as exc:
                raise DeviceUnavailable(f"cannot open I2C bus {bus}: {exc}") from exc
        self.bus = smbus
        try:
            self._configure()
        except OSError as exc:
            raise DeviceUnavailable(
                f"no {self.chip} answers at I2C bus {bus} address {address:#04x}: {exc}"
            ) from exc

    def _configure(self) -> None:  # noqa: B027 - INA260 needs none
        pass

    def info(self) -> PowerSensorInfo:
        return PowerSensorInfo(
            self.chip,
            ("power_mw", "current_ma", "voltage_v"),
            Source.MEASURED,
            f"I2C bus {self.bus_number} address {self.address:#04x}",
        )

    def close(self) -> None:
        close = getattr(self.bus, "close", None)
        if close:
            close()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        if any(a.dest == "i2c_bus" for a in parser._actions):
            return  # shared by both INA sensors
        parser.add_argument("--i2c-bus", type=int, default=1, help="INA219/INA260 I2C bus")
        parser.add_argument(
            "--i2c-address",
            type=lambda s: int(s, 0),
            default=0x40,
            help="INA219/INA260 I2C address (default 0x40)",
        )
        parser.add_argument("--shunt-ohms", type=float, default=0.1, help="INA219 shunt resistor")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PowerSensor:
        return cls(bus=args.i2c_bus, address=args.i2c_address, shunt_ohms=args.shunt_ohms)


@register_sensor("ina219")
class Ina219(_Ina):
    chip = "ina219"

    def _configure(self) -> None:
        # Datasheet eq. 1-2: Current_LSB = max_current / 2^15; Cal = 0.04096 / (LSB * Rshunt).
        self.current_lsb = self.max_current_a / 32768
        calibration = int(0.04096 / (self.current_lsb * self.shunt_ohms))
        self.power_lsb = 20 * self.current_lsb
        _write_u16(self.bus, self.address, INA219_CONFIG, INA219_CONFIG_VALUE)
        _write_u16(self.bus, self.address, INA219_CALIBRATION, calibration)

    def read_mw(self) -> float:
        return _read_u16(self.bus, self.address, INA219_POWER) * self.power_lsb * 1000.0


@register_sensor("ina260")
class Ina260(_Ina):
    chip = "ina260"

    def read_mw(self) -> float:
        return _read_u16(self.bus, self.address, INA260_POWER) * 10.0
