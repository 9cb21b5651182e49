"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_reference_models(directory: Path, extra: dict[str, str] | None = None) -> dict[str, Path]:
    """Convert the reference models in a child process (TensorFlow never shares a process
    with LiteRT, see TOOLCHAIN notes in docs/decisions.md)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys; from pathlib import Path; from host.fleet import reference_models as r\n"
        f"d = Path({str(directory)!r}); r.build_all(d)\n"
    )
    for name, call in (extra or {}).items():
        script += f"p = d / '{name}.tflite'\nif not p.exists(): p.write_bytes(r.{call})\n"
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )
    return {p.stem: p for p in directory.glob("*.tflite")}


def machine_line() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}, load average {load:.2f}"
    )


def run_search(config: Path, out: Path) -> Path:
    """Run `hilnas search CONFIG --out OUT` and return the new run's folder."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    cmd = [sys.executable, "-m", "host.cli", "search", str(config), "--out", str(out)]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    runs = sorted(p for p in set(out.iterdir()) - before if (p / "front.json").exists())
    if not runs:
        raise SystemExit(f"no run with a front.json appeared in {out}")
    return runs[-1]


def run_hilnas(args: list[str], log: Path) -> float:
    """Run `hilnas ARGS` in a child process, its output into `log`; return its seconds.

    A failure stops the benchmark with the command and the log's last lines.
    """
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "host.cli", *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if rc:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"failed ({rc}): {' '.join(cmd)}\nlog {log}:\n{tail}")
    return time.perf_counter() - t0
