"""A stand-in power sensor that replays a recorded or synthetic trace.

For tests and demos on machines without a sensor. Its figures are labelled `replayed`,
never `measured`: they say what a trace recorded elsewhere looked like, not what this
device drew. The trace is a CSV of `seconds,milliwatts` rows (a header line is allowed);
playback loops over it in real time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.errors import ConfigError
from device_agent.power.base import PowerSensor, register_sensor
from device_agent.types import PowerSensorInfo, Source


def load_trace(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.genfromtxt(path, delimiter=",", comments="#", names=None, skip_header=0)
    except OSError as exc:
        raise ConfigError(f"cannot read power trace {path}: {exc}") from exc
    data = np.atleast_2d(data)
    data = data[~np.isnan(data).any(axis=1)]  # drops a header row parsed as NaN
    if data.shape[0] < 2 or data.shape[1] < 2:
        raise ConfigError(f"power trace {path} needs at least two `seconds,milliwatts` rows")
    t, p = data[:, 0], data[:, 1]
    if np.any(np.diff(t) <= 0):
        raise ConfigError(f"power trace {path}: time stamps must increase")
    return t - t[0], p


@register_sensor("replay")
class ReplayPowerSensor(PowerSensor):
    """Plays back a trace; `read_mw()` interpolates it at the time since construction."""

    def __init__(self, trace: Path | None = None, *, t_s: Any = None, power_mw: Any = None) -> None:
        if trace is not None:
            self._t, self._p = load_trace(Path(trace))
            self._detail = str(trace)
        elif t_s is not None and power_mw is not None:
            self._t = np.asarray(t_s, dtype=np.float64)
            self._p = np.asarray(power_mw, dtype=np.float64)
            self._detail = f"synthetic trace of {self._t.size} points"
        else:
            raise ConfigError("the replay power sensor needs --power-trace FILE")
        self._period = float(self._t[-1]) or 1.0
        self._origin = time.perf_counter()

    def info(self) -> PowerSensorInfo:
        return PowerSensorInfo("replay", ("power_mw",), Source.REPLAYED, self._detail)

    def read_mw(self) -> float:
        phase = (time.perf_counter() - self._origin) % self._period
        return float(np.interp(phase, self._t, self._p))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--power-trace", type=Path, help="replay sensor: CSV of seconds,milliwatts rows"
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PowerSensor:
        return cls(getattr(args, "power_trace", None))
