#!/usr/bin/env python3
"""STAND-IN for the `adb` executable, for tests: it is not adb and there is no phone.

It replays recorded real phone behaviour, read at run time from
`$HILNAS_DATA_DIR/reference/` (never copied into the repository):

- `adb devices` listings from android_adb_examples.txt (examples A1-A3: offline,
  authorizing, unauthorized), with the reporters' Markdown bold markers and shell prompts
  removed;
- battery sysfs values from the recorded uevent dumps (examples B1, B2);
- `benchmark_model` output from android_benchmark_model_*.txt (header lines dropped).

Everything else is synthetic and labelled so in the scenario: system properties (which
include `ro.hilnas.adb_stand_in=1`, the marker the backend reads to know it is talking to
a stand-in), CPU frequencies, /proc/meminfo, and the `--help` text. adb's own error
messages ("adb: device unauthorized." ...) follow the real client's wording.

The phone's file system is a directory (`root` in the scenario) so that push, pull, ls and
cat behave like files. The scenario is a JSON file named by $HILNAS_ADB_STANDIN_SCENARIO;
see scenario_default.json next to this file. Every call is appended to
`<root>/.standin_calls.jsonl` so tests can check what the backend asked for.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "; echo __HILNAS_RC=$?"
DEFAULT_PROPS = {
    # Synthetic properties of the stand-in (not a recording of any phone).
    "ro.hilnas.adb_stand_in": "1",
    "ro.product.manufacturer": "hilnas",
    "ro.product.model": "adb stand-in",
    "ro.build.version.release": "13",
    "ro.build.version.sdk": "33",
    "ro.soc.manufacturer": "stand-in",
    "ro.soc.model": "replay",
    "ro.product.cpu.abi": "arm64-v8a",
}


def reference_dir() -> Path:
    data = os.environ.get("HILNAS_DATA_DIR")
    if not data:
        sys.exit("adb stand-in: HILNAS_DATA_DIR is not set (needed to replay recordings)")
    return Path(data) / "reference"


def recorded_text(name: str) -> str:
    """A recorded benchmark_model output without its '# ' provenance header."""
    lines = (reference_dir() / name).read_text().splitlines()
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(lines) + "\n"


def example_blocks(example: str) -> list[list[str]]:
    """The recorded blocks of one example (e.g. "A1") of android_adb_examples.txt."""
    text = (reference_dir() / "android_adb_examples.txt").read_text().splitlines()
    blocks: list[list[str]] = []
    inside = False
    current: list[str] = []
    for line in text:
        if line.startswith("# ===== EXAMPLE "):
            inside = line.startswith(f"# ===== EXAMPLE {example}:")
            continue
        if not inside:
            continue
        if line.startswith("#"):
            if current:
                blocks.append(current)
                current = []
            continue
        current.append(line)
    if current:
        blocks.append(current)
    return blocks


def recorded_listing(spec: str) -> str:
    """`adb devices` output of example "A1" (block 1) or "A1/2" (block 2)."""
    example, _, block = spec.partition("/")
    lines = example_blocks(example)[int(block or 1) - 1]
    start = next(i for i, s in enumerate(lines) if s.startswith("List of devices attached"))
    out = [s.replace("**", "").rstrip() for s in lines[start:]]
    return "\n".join(out) + "\n\n"


def recorded_uevent(example: str) -> dict[str, str]:
    values = {}
    for line in example_blocks(example)[0]:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


class StandIn:
    def __init__(self, scenario: dict) -> None:
        self.sc = scenario
        self.root = Path(scenario["root"])
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = open(self.root / ".standin_lock", "w")  # noqa: SIM115

    # ----------------------------------------------------------------- state
    def _locked_state(self, update: Callable[[dict], Any]) -> Any:
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            path = self.root / ".standin_state.json"
            state = json.loads(path.read_text()) if path.exists() else {}
            if not state.get("initialised"):
                self.materialise()
                state["initialised"] = True
            result = update(state)
            path.write_text(json.dumps(state))
            return result
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)

    def log(self, argv: list[str]) -> None:
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            with open(self.root / ".standin_calls.jsonl", "a") as fh:
                fh.write(json.dumps({"t": time.time(), "argv": argv}) + "\n")
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)

    def local(self, remote: str) -> Path:
        return self.root / remote.lstrip("/")

    def materialise(self) -> None:
        files: dict[str, str] = dict(self.sc.get("files", {}))
        battery = self.sc.get("battery_replay")
        if battery:
            ue = recorded_uevent(battery)
            node = "/sys/class/power_supply/battery"
            files.setdefault(f"{node}/type", "Battery")
            for key in ("CURRENT_NOW", "VOLTAGE_NOW", "TEMP", "STATUS", "CAPACITY"):
                if key in ue:
                    files.setdefault(f"{node}/{key.lower()}", ue[key])
        for remote, content in files.items():
            path = self.local(remote)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(content) + "\n")

    def read(self, remote: str) -> str | None:
        """A file's content; a path with a sequence gives its next value on each read."""
        seq = self.sc.get("sequences", {}).get(remote)
        if seq:
            def step(state: dict) -> str:
                i = state.setdefault("seq", {}).get(remote, 0)
                state["seq"][remote] = i + 1
                return str(seq[min(i, len(seq) - 1)])

            return self._locked_state(step) + "\n"
        self._locked_state(lambda state: None)
        path = self.local(remote)
        return path.read_text() if path.is_file() else None

    # ----------------------------------------------------------------- adb commands
    def devices(self) -> list[tuple[str, str]]:
        if "devices_replay" in self.sc:
            text = recorded_listing(self.sc["devices_replay"])
            rows = [line.split() for line in text.splitlines()[1:] if line.split()]
            return [(r[0], r[1]) for r in rows]
        return [(d[0], d[1]) for d in self.sc.get("devices", [["standin-0001", "device"]])]

    def main(self, argv: list[str]) -> int:
        self.log(argv)
        self._locked_state(lambda state: None)  # the phone's files exist from the first call
        serial = None
        while argv and argv[0] in ("-s", "-P", "-H"):
            if argv[0] == "-s":
                serial = argv[1]
            argv = argv[2:]
        if not argv:
            print("adb stand-in: no command", file=sys.stderr)
            return 1
        cmd, rest = argv[0], argv[1:]
        if cmd == "version":
            print("Android Debug Bridge version 1.0.41 (hilnas adb STAND-IN, not adb)")
            return 0
        if cmd == "devices":
            if "devices_replay" in self.sc:
                sys.stdout.write(recorded_listing(self.sc["devices_replay"]))
            else:
                print("List of devices attached")
                for s, state in self.devices():
                    print(f"{s}\t{state}")
                print()
            return 0
        rc = self.check_target(serial)
        if rc:
            return rc
        if cmd == "shell":
            return self.shell(" ".join(rest))
        if cmd == "push":
            dest = self.local(rest[1])
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rest[0], dest)
            print(f"{rest[0]}: 1 file pushed. (stand-in)")
            return 0
        if cmd == "pull":
            src = self.local(rest[0])
            if not src.is_file():
                print(f"adb: error: failed to stat remote object '{rest[0]}': No such file "
                      "or directory", file=sys.stderr)
                return 1
            shutil.copyfile(src, rest[1])
            return 0
        print(f"adb stand-in: unsupported command {cmd}", file=sys.stderr)
        return 1

    def check_target(self, serial: str | None) -> int:
        listed = self.devices()
        if serial is None:
            if not listed:
                print("adb: no devices/emulators found", file=sys.stderr)
                return 1
            if len(listed) > 1:
                print("adb: more than one device/emulator", file=sys.stderr)
                return 1
            state = listed[0][1]
        else:
            match = [st for s, st in listed if s == serial]
            if not match:
                print(f"adb: device '{serial}' not found", file=sys.stderr)
                return 1
            state = match[0]
        if state == "unauthorized":
            print("adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                  "Try 'adb kill-server' if that seems wrong.\nOtherwise check for a "
                  "confirmation dialog on your device.", file=sys.stderr)
            return 1
        if state == "offline":
            print("adb: device offline", file=sys.stderr)
            return 1
        if state == "authorizing":
            print("adb: device still authorizing", file=sys.stderr)
            return 1
        return 0

    # ----------------------------------------------------------------- phone shell
    def shell(self, line: str) -> int:
        marker = line.endswith(MARKER)
        if marker:
            line = line[: -len(MARKER)]
        rc = self.run_line(line)
        sys.stdout.flush()
        if marker:
            print(f"__HILNAS_RC={rc}")
        return 0 if marker else rc

    def run_line(self, line: str) -> int:
        tokens = shlex.split(line)
        quiet_err = False
        merge = False
        while tokens and tokens[-1] in ("2>/dev/null", "2>&1"):
            quiet_err |= tokens[-1] == "2>/dev/null"
            merge |= tokens[-1] == "2>&1"
            tokens.pop()
        return self.run(tokens, quiet_err=quiet_err)

    def run(self, tokens: list[str], *, quiet_err: bool) -> int:
        if not tokens:
            return 0
        prog, args = tokens[0], tokens[1:]
        if prog == "getprop":
            props = {**DEFAULT_PROPS, **self.sc.get("props", {})}
            if args:
                print(props.get(args[0], ""))
            else:
                for k, v in sorted(props.items()):
                    print(f"[{k}]: [{v}]")
            return 0
        if prog == "cat":
            rc = 0
            for p in args:
                text = self.read(p)
                if text is None:
                    if not quiet_err:
                        print(f"cat: {p}: No such file or directory", file=sys.stderr)
                    rc = 1
                else:
                    sys.stdout.write(text)
            return rc
        if prog == "grep" and args[:2] == ["-H", "."]:
            found = False
            for pattern in args[2:]:
                for path in sorted(glob.glob(str(self.root) + pattern)):
                    remote = "/" + os.path.relpath(path, self.root)
                    text = self.read(remote) or ""
                    for value in text.splitlines():
                        if value:
                            print(f"{remote}:{value}")
                            found = True
            return 0 if found else 1
        if prog == "ls":
            where = self.local(args[-1])
            if not where.is_dir():
                return 1
            for name in sorted(os.listdir(where)):
                if not name.startswith(".standin"):
                    print(name)
            return 0
        if prog == "mkdir":
            for d in args:
                if d != "-p":
                    self.local(d).mkdir(parents=True, exist_ok=True)
            return 0
        if prog in ("chmod", "rm"):
            return 0
        if prog == "df":
            print("Filesystem     1K-blocks    Used Available Use% Mounted on")
            print("/dev/block/dm-5 115028608 52310312 62587912  46% /data")  # synthetic
            return 0
        if prog == "dumpsys" and args[:1] == ["battery"]:
            if args[1:] and not self.sc.get("dumpsys_battery_allowed", True):
                print("Permission Denial: can't dump Battery service from pid=1, uid=2000")
                return 0
            if not args[1:]:
                status = (self.read("/sys/class/power_supply/battery/status") or "?").strip()
                print(f"Current Battery Service state:\n  status: {status}")
            return 0
        if prog == "taskset":
            return self.run(args[1:], quiet_err=quiet_err)
        if Path(prog).name.startswith("benchmark_model") and self.local(prog).is_file():
            return self.benchmark(args)
        print(f"/system/bin/sh: {prog}: not found (adb stand-in)", file=sys.stderr)
        return 127

    # ----------------------------------------------------------------- benchmark_model
    def benchmark(self, args: list[str]) -> int:
        bench = self.sc.get("benchmark", {})
        flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
        if "--help" in args:
            # Synthetic usage text: only the flag names matter to the backend.
            if bench.get("version"):
                print(f"INFO: Tensorflow Version : {bench['version']}")
            print("usage: benchmark_model (hilnas adb STAND-IN; synthetic help)\nFlags:")
            for name in bench.get("flags", ["graph", "num_threads", "enable_op_profiling"]):
                print(f"\t--{name}=\tstring\toptional")
            return 0
        graph = flags.get("graph", "")
        if not self.local(graph).is_file():
            print(f"ERROR: Failed to mmap model {graph}\nBenchmarking failed.")
            return 1
        if flags.get("enable_op_profiling") == "true":
            names = [bench.get("profile", "android_benchmark_model_7.txt")]
        else:
            names = bench.get("measure", ["android_benchmark_model_7.txt"])
            if isinstance(names, str):
                names = [names]

        def step(state: dict) -> int:
            i = state.get("bench_calls", 0)
            state["bench_calls"] = i + 1
            return i

        name = names[self._locked_state(step) % len(names)]
        text = recorded_text(name)
        time.sleep(float(bench.get("run_sleep_s", 0.0)))
        if "output_filepath" in flags:
            self.compute_outputs(flags)
        sys.stdout.write(text)
        return 1 if "Benchmarking failed" in text else 0

    def compute_outputs(self, flags: dict[str, str]) -> None:
        """Validate: run the model with LiteRT on this machine (not a phone) and write the
        outputs the way benchmark_model's --output_filepath does (raw, in output order)."""
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(self.local(flags["graph"])))
        interp.allocate_tensors()
        files = {}
        for item in re.split(r",", flags.get("input_layer_value_files", "")):
            if item:
                name, _, path = item.replace("::", "\0").partition(":")
                files[name.replace("\0", ":")] = path
        for det in interp.get_input_details():
            raw = self.local(files[det["name"]]).read_bytes()
            interp.set_tensor(det["index"], np.frombuffer(raw, det["dtype"]).reshape(det["shape"]))
        interp.invoke()
        with open(self.local(flags["output_filepath"]), "wb") as fh:
            for det in interp.get_output_details():
                fh.write(interp.get_tensor(det["index"]).tobytes())


def main() -> int:
    path = os.environ.get("HILNAS_ADB_STANDIN_SCENARIO")
    if not path:
        path = str(Path(__file__).with_name("scenario_default.json"))
    scenario = json.loads(Path(path).read_text())
    # Without a root, the fake phone lives in the temp directory, never in the repository.
    scenario.setdefault("root", str(Path(tempfile.gettempdir()) / "hilnas-adb-standin-phone"))
    return StandIn(scenario).main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
