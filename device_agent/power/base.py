"""The PowerSensor interface, its registry, and the arithmetic from samples to energy.

A sensor is sampled in a background thread while a backend runs the timed inferences:
`start()` before the first timed run, `stop()` after the last. The resulting `PowerTrace`
turns into mean power and energy per inference, labelled with the sensor's source
(measured for a real sensor, replayed for a recorded trace, never confused).
"""

from __future__ import annotations

import abc
import argparse
import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from device_agent.errors import ConfigError
from device_agent.types import Figure, PowerSensorInfo, PowerStats, Source


@dataclass(frozen=True)
class PowerTrace:
    """Timestamped power samples (seconds since an arbitrary origin, milliwatts)."""

    t_s: np.ndarray
    power_mw: np.ndarray

    def mean_power_mw(self) -> float:
        if self.power_mw.size == 0:
            raise ValueError("empty power trace")
        if self.power_mw.size == 1:
            return float(self.power_mw[0])
        # Time-weighted mean (trapezoid rule), robust to uneven sampling intervals.
        duration = float(self.t_s[-1] - self.t_s[0])
        if duration <= 0:
            return float(self.power_mw.mean())
        return float(np.trapezoid(self.power_mw, self.t_s) / duration)


class PowerSensor(abc.ABC):
    """A source of instantaneous power readings."""

    name: str = ""
    #: sampling period the background thread aims for
    period_s: float = 0.002

    @abc.abstractmethod
    def info(self) -> PowerSensorInfo: ...

    @abc.abstractmethod
    def read_mw(self) -> float:
        """One instantaneous power reading in milliwatts."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the bus or file behind the sensor."""

    # ------------------------------------------------------------------ sampling
    def start(self) -> None:
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"power-{self.name}", daemon=True)
        self._t0 = time.perf_counter()
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._samples.append((time.perf_counter() - self._t0, self.read_mw()))
                self._stop.wait(self.period_s)
        except BaseException as exc:  # reported by stop(); the measurement goes on without power
            self._error = exc

    def stop(self) -> PowerTrace:
        self._stop.set()
        self._thread.join(timeout=5)
        # One more reading, so even a run shorter than the period has two samples.
        if self._error is None:
            self._samples.append((time.perf_counter() - self._t0, self.read_mw()))
        if self._error is not None:
            raise RuntimeError(f"power sensor {self.name} failed: {self._error}")
        arr = np.asarray(self._samples, dtype=np.float64).reshape(-1, 2)
        return PowerTrace(arr[:, 0], arr[:, 1])

    # ------------------------------------------------------------ command line
    @classmethod  # noqa: B027 - optional hook, not abstract
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add sensor-specific options to `hilnas-agent serve`."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PowerSensor:
        return cls()


def sensor_info(
    sensor: PowerSensor | None, missing: str = "no power sensor configured"
) -> PowerSensorInfo:
    """What Describe says about power: the sensor's own description, or none and why."""
    if sensor is not None:
        return sensor.info()
    return PowerSensorInfo("none", (), Source.UNAVAILABLE, missing)


def power_stats(
    sensor: PowerSensor | None,
    trace: PowerTrace | None,
    *,
    inferences: int,
    compute_seconds: float,
    idle_mw: float | None = None,
    failure: str = "",
) -> PowerStats:
    """Mean power and energy per inference from a trace, labelled with the sensor's source."""
    if sensor is None:
        return PowerStats.unavailable("no power sensor on this device")
    info = sensor.info()
    if trace is None or trace.power_mw.size == 0 or inferences <= 0:
        return PowerStats.unavailable(failure or "no power samples were taken", info.name)
    mean_mw = trace.mean_power_mw()
    # mW * s = mJ; per inference, in microjoules.
    energy_uj = mean_mw * compute_seconds / inferences * 1000.0
    note = f"{info.name}: {trace.power_mw.size} samples over {compute_seconds:.3f} s"
    idle = (
        Figure(idle_mw, info.source, f"{info.name}, before the runs")
        if idle_mw is not None
        else Figure.unavailable("idle power was not sampled")
    )
    return PowerStats(
        mean_power_mw=Figure(mean_mw, info.source, note),
        energy_per_inference_uj=Figure(energy_uj, info.source, "mean power x mean run time"),
        idle_power_mw=idle,
        samples=int(trace.power_mw.size),
        sensor=info.name,
    )


_REGISTRY: dict[str, type[PowerSensor]] = {}
BUILTIN_SENSORS: dict[str, str] = {
    "none": "device_agent.power.base",
    "ina219": "device_agent.power.ina2xx",
    "ina260": "device_agent.power.ina2xx",
    "replay": "device_agent.power.replay",
    "android-battery": "device_agent.power.android_battery",
    "pmbus": "device_agent.power.pmbus",
}


def register_sensor(name: str) -> Callable[[type[PowerSensor]], type[PowerSensor]]:
    def decorator(cls: type[PowerSensor]) -> type[PowerSensor]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"power sensor {name!r} is registered twice")
        cls.name = cls.name or name
        _REGISTRY[name] = cls
        return cls

    return decorator


def get_sensor_class(name: str) -> type[PowerSensor] | None:
    """The sensor class for `name`; None for "none"."""
    if name == "none":
        return None
    if name not in _REGISTRY and name in BUILTIN_SENSORS:
        importlib.import_module(BUILTIN_SENSORS[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_SENSORS))
        raise ConfigError(f"unknown power sensor {name!r}; known sensors: {known}") from None


__all__ = [
    "BUILTIN_SENSORS",
    "PowerSensor",
    "PowerTrace",
    "Source",
    "get_sensor_class",
    "power_stats",
    "register_sensor",
]
