"""PMBus power rails of Zynq UltraScale+ boards (Ultra96, ZCU10x), read through pynq.

`pynq.get_rails()` exposes the board's voltage regulators (hwmon/PMBus); each rail has a
`power` sensor in watts. The sensor sums the chosen rails (default: every rail with a power
reading), so its figure is the measured power of the FPGA and PS supplies, not the wall.
`pynq` is imported lazily; without it, or without rails, a clear DeviceUnavailable.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from device_agent.errors import DeviceUnavailable
from device_agent.power.base import PowerSensor, register_sensor
from device_agent.types import PowerSensorInfo, Source


def _rails() -> dict[str, Any]:
    try:
        import pynq
    except ImportError as exc:
        raise DeviceUnavailable(
            "no PYNQ device: the pynq package is not installed (PMBus rails need it)"
        ) from exc
    try:
        rails = pynq.get_rails()
    except Exception as exc:  # pynq raises plain RuntimeError/OSError off-board
        raise DeviceUnavailable(f"no PYNQ device: cannot read PMBus rails ({exc})") from exc
    return {name: r for name, r in rails.items() if getattr(r, "power", None) is not None}


@register_sensor("pmbus")
class PmbusSensor(PowerSensor):
    """Sum of the selected PMBus rails' power (measured)."""

    period_s = 0.01  # the regulators update at ~100 Hz at best

    def __init__(self, rails: Sequence[str] | None = None) -> None:
        available = _rails()
        if not available:
            raise DeviceUnavailable("no PYNQ device with PMBus power rails found")
        names = list(rails) if rails else sorted(available)
        missing = [n for n in names if n not in available]
        if missing:
            raise DeviceUnavailable(
                f"PMBus rails {missing} not found; present: {sorted(available)}"
            )
        self._rails = {n: available[n] for n in names}

    def info(self) -> PowerSensorInfo:
        return PowerSensorInfo("pmbus", ("power",), Source.MEASURED,
                               "PMBus rails: " + ", ".join(self._rails))

    def read_mw(self) -> float:
        return 1000.0 * sum(float(r.power.value) for r in self._rails.values())

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pmbus-rails", default="",
                            help="comma-separated PMBus rails to sum (default: all with power)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PowerSensor:
        rails = [r for r in getattr(args, "pmbus_rails", "").split(",") if r]
        return cls(rails or None)
