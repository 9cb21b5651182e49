"""A small wrapper around the `adb` executable: device selection, shell, push and pull.

Every call is a real subprocess with a timeout. A phone that adb lists as offline,
unauthorized, still authorizing or without permissions, several phones without a serial,
or no phone at all become `DeviceUnavailable` with a message that names the state and what
to do about it; a command that fails on the phone becomes `AdbCommandFailed`.

`adb shell` only propagates the remote exit status with the shell protocol (Android 7+ and
a recent adb). To be correct on older phones too, every shell command ends with
`; echo __HILNAS_RC=$?` and the status is read from that marker, not from adb's own exit
code. A missing marker means the connection dropped mid-command.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from device_agent.errors import ConfigError, DeviceUnavailable, MeasurementFailed

RC_MARKER = "__HILNAS_RC="
_RC_RE = re.compile(r"^__HILNAS_RC=(\d+)\s*$")

# What to tell the user for each state `adb devices` can print that is not "device".
STATE_HINTS: dict[str, str] = {
    "offline": "adb sees the phone but cannot talk to it; replug the cable or run "
    "`adb kill-server`, and unlock the phone",
    "unauthorized": "the phone has not accepted this computer's RSA key; unlock it and "
    "accept the 'Allow USB debugging?' prompt",
    "authorizing": "the phone is still processing the RSA key; wait a few seconds",
    "no permissions": "the adb server cannot open the USB device; add a udev rule or put "
    "the user in the plugdev group",
    "connecting": "adb is still connecting to the phone (adb over TCP)",
    "recovery": "the phone is in recovery mode, not booted into Android",
    "sideload": "the phone is in sideload mode, not booted into Android",
    "bootloader": "the phone is in the bootloader, not booted into Android",
}


class AdbCommandFailed(MeasurementFailed):
    """A command run through adb failed on the phone (non-zero exit status)."""

    def __init__(self, command: str, returncode: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-8:])
        super().__init__(f"`{command}` failed on the phone with exit status {returncode}: {tail}")
        self.command = command
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True)
class AdbDevice:
    """One line of `adb devices`: the serial and its state ("device" when usable)."""

    serial: str
    state: str
    detail: str = ""


def parse_devices(text: str) -> list[AdbDevice]:
    """Parse `adb devices` (or `adb devices -l`) output.

    adb separates serial and state with a tab; copies of its output often turn that into
    spaces, so any whitespace is accepted. Daemon start-up chatter ("* daemon started
    successfully") and the header are skipped. "no permissions (...)" is a two-word state.
    """
    devices: list[AdbDevice] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        serial, rest = parts
        if rest.startswith("no permissions"):
            devices.append(AdbDevice(serial, "no permissions", rest))
            continue
        state, _, detail = rest.partition(" ")
        devices.append(AdbDevice(serial, state, detail.strip()))
    return devices


def state_error(serial: str, state: str) -> DeviceUnavailable:
    hint = STATE_HINTS.get(state, "only phones in state 'device' can be used")
    return DeviceUnavailable(f"phone {serial} is {state!r}: {hint}")


class AdbClient:
    """Runs adb against one phone, chosen by serial number."""

    def __init__(
        self, adb_path: str | Path = "adb", serial: str | None = None, *, timeout_s: float = 30.0
    ) -> None:
        self.adb_path = str(adb_path)
        self.serial = serial
        self.timeout_s = timeout_s

    # ------------------------------------------------------------------ plumbing
    def _run(
        self, args: Sequence[str], *, timeout_s: float | None = None, select: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.adb_path]
        if select and self.serial:
            argv += ["-s", self.serial]
        argv += list(args)
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, errors="replace", timeout=timeout
            )
        except FileNotFoundError:
            raise ConfigError(
                f"adb executable not found at {self.adb_path!r}; install the Debian package "
                "'adb' or pass --adb-path"
            ) from None
        except subprocess.TimeoutExpired:
            raise DeviceUnavailable(
                f"`adb {' '.join(args)[:120]}` did not finish within {timeout:.0f} s "
                f"(phone {self.serial or '?'})"
            ) from None
        if proc.returncode != 0:
            self._raise_for_adb_error(proc, args)
        return proc

    def _raise_for_adb_error(
        self, proc: subprocess.CompletedProcess[str], args: Sequence[str]
    ) -> None:
        """Turn adb's own failures (not the remote command's) into precise errors."""
        err = (proc.stderr or "") + (proc.stdout or "")
        low = err.lower()
        who = self.serial or "(no serial given)"
        if "unauthorized" in low:
            raise state_error(who, "unauthorized")
        if "authorizing" in low:
            raise state_error(who, "authorizing")
        if "offline" in low:
            raise state_error(who, "offline")
        if "more than one device" in low:
            raise DeviceUnavailable(
                "several phones are attached and no serial was given; pass --adb-serial"
            )
        if "no devices" in low or "not found" in low:
            raise DeviceUnavailable(f"phone {who} is not attached (adb: {err.strip()[:200]})")
        if "no permissions" in low or "insufficient permissions" in low:
            raise state_error(who, "no permissions")
        raise AdbCommandFailed(f"adb {' '.join(args)[:200]}", proc.returncode, err)

    # ------------------------------------------------------------------ devices
    def devices(self) -> list[AdbDevice]:
        return parse_devices(self._run(["devices"], select=False).stdout)

    def select(self) -> str:
        """Check that the chosen phone is usable and pin its serial for later calls."""
        listed = self.devices()
        summary = ", ".join(f"{d.serial} ({d.state})" for d in listed) or "none"
        if self.serial:
            match = [d for d in listed if d.serial == self.serial]
            if not match:
                raise DeviceUnavailable(
                    f"no phone with serial {self.serial} is attached; adb sees: {summary}"
                )
            if match[0].state != "device":
                raise state_error(self.serial, match[0].state)
            return self.serial
        if not listed:
            raise DeviceUnavailable("no phone is attached (adb devices lists none)")
        if len(listed) > 1:
            raise DeviceUnavailable(
                f"{len(listed)} phones are attached ({summary}); choose one with --adb-serial"
            )
        if listed[0].state != "device":
            raise state_error(listed[0].serial, listed[0].state)
        self.serial = listed[0].serial
        return self.serial

    # ------------------------------------------------------------------ commands
    def shell(self, command: str, *, timeout_s: float | None = None, check: bool = True) -> str:
        """Run `command` with the phone's sh; return its stdout (stderr is adb's/ours)."""
        proc = self._run(["shell", f"{command}; echo {RC_MARKER}$?"], timeout_s=timeout_s)
        lines = proc.stdout.replace("\r\n", "\n").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        match = _RC_RE.match(lines[-1].strip()) if lines else None
        if match is None:
            raise DeviceUnavailable(
                f"`{command[:120]}` ended without its exit status; the adb connection to "
                f"{self.serial} was probably lost"
            )
        output = "\n".join(lines[:-1])
        rc = int(match.group(1))
        if check and rc != 0:
            raise AdbCommandFailed(command, rc, output + (proc.stderr or ""))
        return output + ("\n" if output else "")

    def shell_argv(
        self, argv: Sequence[str], *, timeout_s: float | None = None, check: bool = True
    ) -> str:
        """Run a command given as arguments; each is quoted for the phone's sh."""
        return self.shell(" ".join(shlex.quote(a) for a in argv), timeout_s=timeout_s, check=check)

    def push(self, local: str | Path, remote: str, *, timeout_s: float | None = None) -> None:
        self._run(["push", str(local), remote], timeout_s=timeout_s)

    def pull(self, remote: str, local: str | Path, *, timeout_s: float | None = None) -> None:
        self._run(["pull", remote, str(local)], timeout_s=timeout_s)

    def getprops(self) -> dict[str, str]:
        """All system properties (`getprop` prints `[key]: [value]` lines)."""
        props: dict[str, str] = {}
        for line in self.shell("getprop").splitlines():
            m = re.match(r"^\[(.+?)\]: \[(.*)\]\s*$", line)
            if m:
                props[m.group(1)] = m.group(2)
        return props

    def version(self) -> str:
        """Return the adb client's own version line ("Android Debug Bridge version 1.0.41")."""
        out = self._run(["version"], select=False).stdout
        return out.splitlines()[0].strip() if out else "unknown"
