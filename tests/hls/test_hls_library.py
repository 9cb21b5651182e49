"""The HLS layer library's C-simulation unit tests (g++), run through its Makefile."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HLS = Path(__file__).resolve().parents[2] / "hls"


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None,
                    reason="needs g++ and make")
def test_make_test_passes():
    r = subprocess.run(["make", "-C", str(HLS), "test", f"PYTHON={sys.executable}"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "layer tests passed" in r.stdout
    assert "FAIL" not in r.stdout
