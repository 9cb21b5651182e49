"""A phone's own battery gauge as a power sensor: `current_now` x `voltage_now` over adb.

The kernel ABI says microamps and microvolts, negative current while discharging. Real
phones differ (see docs/decisions-android.md): some report milliamps, and some flip the
sign. So:

- voltage units are unambiguous in practice (a Li-ion cell is 3-4.5 V) and are inferred
  from the magnitude (uV, mV or V);
- current units follow the ABI (uA) unless the user says `--battery-current-unit mA`; in
  auto mode a reading of 20,000 or more is certainly uA, and small magnitudes get a note
  that the phone may be one of the milliamp ones;
- power is |I| x V; a trace whose current changes sign (charging and discharging mixed)
  gets a note, because the mean then means little.

A charging phone's battery current is the charger's, not the phone's consumption. Before
the timed runs the sensor asks the framework to behave as unplugged (`dumpsys battery
unplug`, reset afterwards), reads the gauge's `status`, and refuses to report a figure
while the status is "Charging" or "Full". `dumpsys battery unplug` changes what Android
reports, not necessarily the charger hardware: the reliable set-ups are adb over Wi-Fi with
the cable out, or a charging switch (root), as docs/android.md explains.

Each reading is one `adb shell cat` (a few tens of milliseconds), and gauges update at
about 1 Hz or slower, so the figure needs timed runs of seconds, not milliseconds.
"""

from __future__ import annotations

import argparse
import time

from device_agent.adb.client import AdbClient
from device_agent.adb.hygiene import find_battery_node
from device_agent.errors import MeasurementFailed
from device_agent.power.base import PowerSensor, PowerTrace, register_sensor
from device_agent.types import PowerSensorInfo, Source

#: |current| at or above this is certainly microamps (20 A would be absurd for a phone).
CERTAINLY_UA = 20_000


def voltage_volts(raw: float) -> float:
    """Convert a voltage_now reading to volts, whatever unit the driver used."""
    mag = abs(raw)
    if mag >= 100_000:  # microvolts: 3,800,000
        return raw / 1e6
    if mag >= 100:  # millivolts: 3,800
        return raw / 1e3
    return raw


def current_milliamps(raw: float, unit: str) -> float:
    """Convert a current_now reading to mA, for unit "uA", "mA" or "auto" (ABI: uA)."""
    if unit == "mA":
        return raw
    return raw / 1000.0


@register_sensor("android-battery")
class AndroidBatterySensor(PowerSensor):
    """Samples the battery's current and voltage through `adb shell`."""

    name = "android-battery"
    period_s = 0.05  # adb's round trip sets the real rate; no point asking for more

    def __init__(
        self,
        client: AdbClient,
        *,
        current_unit: str = "auto",
        pause_charging: bool = True,
        stand_in: bool = False,
        battery_node: str | None = None,
    ) -> None:
        if current_unit not in ("auto", "uA", "mA"):
            raise ValueError(f"current unit must be auto, uA or mA, got {current_unit!r}")
        self.client = client
        self.current_unit = current_unit
        self.pause_charging = pause_charging
        self.stand_in = stand_in
        self._node = battery_node
        self.raw: list[tuple[float, float, float]] = []  # (t, current raw, voltage raw)
        self.session_notes: list[str] = []
        self.status_before = ""
        self.charging_paused = False

    # ------------------------------------------------------------------ PowerSensor
    @property
    def node(self) -> str:
        if self._node is None:
            node = find_battery_node(self.client)
            if node is None:
                raise MeasurementFailed("the phone exposes no battery in /sys/class/power_supply")
            self._node = node
        return self._node

    def info(self) -> PowerSensorInfo:
        return PowerSensorInfo(
            name=self.name,
            quantities=("power_mw", "current_ma", "voltage_v"),
            source=Source.REPLAYED if self.stand_in else Source.MEASURED,
            detail=(
                f"{self._node or '/sys/class/power_supply/<battery>'}/current_now and "
                f"voltage_now over adb; current unit {self.current_unit}"
                + ("; adb stand-in replaying recorded readings" if self.stand_in else "")
            ),
        )

    def read_pair(self) -> tuple[float, float]:
        out = self.client.shell(f"cat {self.node}/current_now {self.node}/voltage_now")
        values = out.split()
        if len(values) < 2:
            raise MeasurementFailed(f"unexpected battery reading {out.strip()!r}")
        return float(values[0]), float(values[1])

    def read_mw(self) -> float:
        current, voltage = self.read_pair()
        self.raw.append((time.perf_counter(), current, voltage))
        return abs(current_milliamps(current, self.current_unit)) * voltage_volts(voltage)

    def start(self) -> None:
        self.raw = []
        super().start()

    # ------------------------------------------------------------------ session
    def status(self) -> str:
        return self.client.shell(f"cat {self.node}/status", check=False).strip()

    def begin(self) -> None:
        """Before the timed runs: pause charging where allowed, record the gauge's status."""
        self.session_notes = []
        self.charging_paused = False
        if self.pause_charging:
            out = self.client.shell("dumpsys battery unplug", check=False)
            if "denial" in out.lower() or "permission" in out.lower():
                self.session_notes.append(
                    "`dumpsys battery unplug` was refused; charging was not paused"
                )
            else:
                self.charging_paused = True
        self.status_before = self.status()

    def end(self) -> None:
        if self.charging_paused:
            self.client.shell("dumpsys battery reset", check=False)
            self.charging_paused = False

    def idle_mw(self, samples: int = 3) -> float | None:
        values = []
        for _ in range(samples):
            current, voltage = self.read_pair()
            milliamps = abs(current_milliamps(current, self.current_unit))
            values.append(milliamps * voltage_volts(voltage))
        return sum(values) / len(values) if values else None

    def verdict(self, trace: PowerTrace | None) -> tuple[str, list[str]]:
        """Why the figure cannot be used ("" when it can) and the caveats that go with it."""
        notes = list(self.session_notes)
        status = self.status_before
        notes.append(
            "battery gauge: mean of |current_now| x voltage_now sampled over the whole "
            "benchmark_model invocation (start-up, warm-up and timed runs); the gauge "
            "updates slowly and may average, so short runs are poorly resolved"
        )
        if status in ("Charging", "Full"):
            return (
                f"the battery status was {status!r}: its current is the charger's, not the "
                "phone's consumption; unplug the cable (adb over Wi-Fi) or disable charging",
                notes,
            )
        if status == "Not charging":
            notes.append(
                "status 'Not charging' (plugged in, charging disabled): the phone may run "
                "partly from USB power, so battery power can understate consumption"
            )
        currents = [c for _, c, _ in self.raw]
        if currents:
            if min(currents) < 0 < max(currents):
                notes.append("current_now changed sign during the run: the mean is unreliable")
            peak = max(abs(c) for c in currents)
            if self.current_unit == "auto" and peak < CERTAINLY_UA:
                notes.append(
                    f"current magnitudes were small ({peak:.0f}); read as microamps (kernel "
                    "ABI); if this phone reports milliamps pass --battery-current-unit mA"
                )
        if trace is None or trace.power_mw.size == 0:
            return "no battery samples were taken", notes
        return "", notes

    # ------------------------------------------------------------------ command line
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add nothing: the adb backend owns the phone's options (unit included)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PowerSensor:
        client = AdbClient(getattr(args, "adb_path", "adb"), getattr(args, "adb_serial", None))
        return cls(client, current_unit=getattr(args, "battery_current_unit", "auto"))
