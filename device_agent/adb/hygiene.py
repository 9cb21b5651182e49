"""Measurement hygiene on a phone: governors, frequencies, battery temperature, throttling.

Phone latency drifts with heat: when the SoC warms up, the kernel's thermal framework
lowers the CPU policies' `scaling_max_freq` below `cpuinfo_max_freq`, and the same model
runs slower. So before each run the bridge can wait for the phone to cool down, it records
the governors, frequencies and battery temperature before and after the run, and it warns
when a core was capped or the phone got hot. All of it is read from sysfs with one `adb
shell` per snapshot (sysfs files readable by the shell user on stock Android).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from device_agent.adb.client import AdbClient

CPU_GLOB = "/sys/devices/system/cpu/cpu[0-9]*/cpufreq"
POWER_SUPPLY = "/sys/class/power_supply"
_CPU_PATH = re.compile(r"/cpu(\d+)/cpufreq/(\w+)$")


@dataclass(frozen=True)
class Snapshot:
    """CPU policy state and battery temperature at one moment."""

    t_unix: float
    governors: dict[int, str] = field(default_factory=dict)
    cur_khz: dict[int, int] = field(default_factory=dict)
    max_khz: dict[int, int] = field(default_factory=dict)  # scaling_max_freq (policy cap)
    hw_max_khz: dict[int, int] = field(default_factory=dict)  # cpuinfo_max_freq (silicon)
    battery_temp_c: float | None = None

    def capped(self) -> dict[int, tuple[int, int]]:
        """Cores whose policy maximum is below the hardware maximum: cpu -> (cap, hw max)."""
        return {
            cpu: (self.max_khz[cpu], hw)
            for cpu, hw in self.hw_max_khz.items()
            if cpu in self.max_khz and self.max_khz[cpu] < hw
        }

    def describe(self) -> str:
        govs = sorted(set(self.governors.values())) or ["?"]
        freqs = " ".join(f"{self.cur_khz[c] // 1000}" for c in sorted(self.cur_khz)) or "?"
        temp = f"{self.battery_temp_c:.1f} C" if self.battery_temp_c is not None else "?"
        return f"governor={'/'.join(govs)}; cur MHz per cpu=[{freqs}]; battery {temp}"


def find_battery_node(client: AdbClient) -> str | None:
    """Return the power_supply directory of the battery (not always named "battery")."""
    out = client.shell(f"grep -H . {POWER_SUPPLY}/*/type 2>/dev/null", check=False)
    batteries = []
    for line in out.splitlines():
        path, _, value = line.partition(":")
        if value.strip() == "Battery" and path.endswith("/type"):
            batteries.append(path[: -len("/type")])
    if not batteries:
        return None
    for node in batteries:
        if node.rsplit("/", 1)[-1] == "battery":
            return node
    return sorted(batteries)[0]


def snapshot(client: AdbClient, battery_node: str | None) -> Snapshot:
    """Read governors, current/maximum frequencies and the battery temperature at once."""
    paths = [
        f"{CPU_GLOB}/scaling_governor",
        f"{CPU_GLOB}/scaling_cur_freq",
        f"{CPU_GLOB}/scaling_max_freq",
        f"{CPU_GLOB}/cpuinfo_max_freq",
    ]
    if battery_node:
        paths.append(f"{battery_node}/temp")
    # Offline cores have no cpufreq files: grep skips them (status 2), which is fine.
    out = client.shell(f"grep -H . {' '.join(paths)} 2>/dev/null", check=False)
    snap = Snapshot(t_unix=time.time())
    temp: float | None = None
    for line in out.splitlines():
        path, _, value = line.partition(":")
        value = value.strip()
        m = _CPU_PATH.search(path)
        if m:
            cpu, name = int(m.group(1)), m.group(2)
            if name == "scaling_governor":
                snap.governors[cpu] = value
            elif value.lstrip("-").isdigit():
                target = {
                    "scaling_cur_freq": snap.cur_khz,
                    "scaling_max_freq": snap.max_khz,
                    "cpuinfo_max_freq": snap.hw_max_khz,
                }.get(name)
                if target is not None:
                    target[cpu] = int(value)
        elif path.endswith("/temp") and value.lstrip("-").isdigit():
            temp = int(value) / 10.0  # power_supply ABI: tenths of a degree Celsius
    return Snapshot(
        snap.t_unix, snap.governors, snap.cur_khz, snap.max_khz, snap.hw_max_khz, temp
    )


def throttle_warnings(before: Snapshot, after: Snapshot, *, hot_c: float) -> list[str]:
    """Warnings about heat and frequency capping over one run."""
    warnings = []
    for label, snap in (("before", before), ("after", after)):
        capped = snap.capped()
        if capped:
            cores = ", ".join(
                f"cpu{c} {cap // 1000}/{hw // 1000} MHz" for c, (cap, hw) in sorted(capped.items())
            )
            warnings.append(
                f"throttling {label} the run: policy maximum below the hardware maximum on "
                f"{cores} (thermal capping, or a user limit); latency is not comparable"
            )
    if after.battery_temp_c is not None and after.battery_temp_c >= hot_c:
        warnings.append(
            f"phone is hot after the run (battery {after.battery_temp_c:.1f} C >= {hot_c:.1f} C):"
            " expect thermal throttling and drifting latency"
        )
    if before.battery_temp_c is not None and after.battery_temp_c is not None:
        rise = after.battery_temp_c - before.battery_temp_c
        if rise >= 2.0:
            warnings.append(f"battery temperature rose {rise:.1f} C during the run")
    return warnings


def cool_down(
    client: AdbClient,
    battery_node: str | None,
    *,
    target_c: float,
    max_wait_s: float,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[float, Snapshot, str | None]:
    """Wait until the battery is below `target_c` and no core is capped, or give up.

    Returns the seconds waited, the last snapshot, and a warning when it gave up.
    """
    waited = 0.0
    while True:
        snap = snapshot(client, battery_node)
        hot = snap.battery_temp_c is not None and snap.battery_temp_c > target_c
        if not hot and not snap.capped():
            return waited, snap, None
        if waited >= max_wait_s:
            why = (
                f"battery {snap.battery_temp_c:.1f} C > {target_c:.1f} C"
                if hot
                else f"cores still capped: {sorted(snap.capped())}"
            )
            return waited, snap, f"did not cool down within {max_wait_s:.0f} s ({why})"
        step = min(poll_s, max_wait_s - waited) if max_wait_s > waited else poll_s
        sleep(step)
        waited += step


def pin_mask(choice: str, snap: Snapshot) -> tuple[str | None, str]:
    """`taskset` mask for "big", "little", or a hex mask given as is; with an explanation.

    Big and little cores are told apart by `cpuinfo_max_freq`: on big.LITTLE (and DynamIQ)
    phones the clusters have different maximum frequencies. The mask is hexadecimal, the
    form Android's toybox `taskset` takes ("f0" is cpu4-7).
    """
    if choice in ("", "none"):
        return None, "not pinned"
    if choice not in ("big", "little"):
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]+", choice):
            raise ValueError(f"pin must be none, big, little or a hex mask, got {choice!r}")
        return choice.removeprefix("0x"), f"pinned to mask {choice}"
    if not snap.hw_max_khz:
        return None, f"not pinned: the phone exposes no cpufreq limits to find {choice} cores"
    freqs = sorted(set(snap.hw_max_khz.values()))
    if len(freqs) == 1:
        return None, f"not pinned: all cores have the same maximum ({freqs[0] // 1000} MHz)"
    want = freqs[-1] if choice == "big" else freqs[0]
    cpus = [c for c, f in snap.hw_max_khz.items() if f == want]
    mask = sum(1 << c for c in cpus)
    how = f"pinned to {choice} cores cpu{cpus} (max {want // 1000} MHz), mask {mask:x}"
    return f"{mask:x}", how
