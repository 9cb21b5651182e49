"""What a Linux device is: board, CPU, cores, RAM and storage, read from /proc and /sys."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path


def board_name() -> str:
    """The board's model (Raspberry Pi and other device-tree boards), else the machine type."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            return Path(path).read_text().strip("\x00\n ")
        except OSError:
            continue
    try:
        product = Path("/sys/class/dmi/id/product_name").read_text().strip()
        if product:
            return product
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.machine()


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def storage_bytes(path: str | Path) -> int:
    try:
        return shutil.disk_usage(path).total
    except OSError:
        return 0
