"""Builds and runs the firmware core's g++ unit tests (`make -C firmware test`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


@pytest.mark.skipif(
    shutil.which("g++") is None or shutil.which("make") is None, reason="needs g++ and make"
)
def test_firmware_core_unit_tests_pass() -> None:
    proc = subprocess.run(
        ["make", "-C", str(FIRMWARE), "test"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "0 failures" in proc.stdout
    assert "FAIL" not in proc.stdout
