"""`hilnas[agent]` resolves for a Raspberry Pi (aarch64, CPython 3.11 and 3.13), without
TensorFlow, from wheels only: pip's own resolver, asked for the Pi's platform tags.

Needs the package index; skipped when it cannot be reached.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
# Raspberry Pi OS bookworm (glibc 2.36) and trixie (2.41): every manylinux tag up to 2.36.
PI_TAGS = [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)] + ["manylinux2014_aarch64"]


def _index_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


def _agent_requirements(python: str) -> list[str]:
    """The base and `agent` requirements that apply on a Pi running `python`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = {**default_environment(), "platform_machine": "aarch64", "sys_platform": "linux",
           "platform_system": "Linux", "python_version": python,
           "python_full_version": f"{python}.0", "implementation_name": "cpython"}
    wanted = []
    for text in [*project["dependencies"], *project["optional-dependencies"]["agent"]]:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            wanted.append(str(req))
    return wanted


@pytest.mark.skipif(not _index_reachable(), reason="the package index is not reachable")
@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_agent_extra_resolves_for_a_raspberry_pi_without_tensorflow(
    python: str, tmp_path: Path
) -> None:
    requirements = _agent_requirements(python)
    assert any(r.startswith("ai-edge-litert") for r in requirements)  # the marker applies
    report = tmp_path / "report.json"
    platforms = [arg for tag in PI_TAGS for arg in ("--platform", tag)]
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--report", str(report), "--target", str(tmp_path / "target"), "--only-binary=:all:",
         "--python-version", python, *platforms, *requirements],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert "ai-edge-litert" in resolved and "grpcio" in resolved and "protobuf" in resolved
    assert not {name for name in resolved if name.startswith(("tensorflow", "tf-keras"))}
    for item in json.loads(report.read_text())["install"]:
        wheel = item["download_info"]["url"].rsplit("/", 1)[-1]
        assert wheel.endswith(".whl"), wheel
        assert "x86_64" not in wheel and "win" not in wheel.split("-")[-1], wheel
