"""The board installer stages the unit, env file and token (--root: no system changes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "install_agent.sh"


def test_staged_install_renders_the_unit(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--root",
            str(tmp_path),
            "--skip-install",
            "--port",
            "50077",
            "--power-sensor",
            "ina219",
            "--name",
            "pi4-bench",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    unit = (tmp_path / "etc/systemd/system/hilnas-agent.service").read_text()
    assert "ExecStart=/opt/hilnas-agent/bin/hilnas-agent serve $HILNAS_AGENT_ARGS" in unit
    assert "--token-file /etc/hilnas-agent/token" in unit and "%%" not in unit
    env = (tmp_path / "etc/hilnas-agent/agent.env").read_text()
    assert "--port 50077" in env and "--power-sensor ina219" in env and "--name pi4-bench" in env
    token = tmp_path / "etc/hilnas-agent/token"
    assert len(token.read_text().strip()) >= 32 and oct(token.stat().st_mode)[-3:] == "600"
    # A second run keeps the token the host already has.
    first = token.read_text()
    subprocess.run(
        ["bash", str(SCRIPT), "--root", str(tmp_path), "--skip-install"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert token.read_text() == first


def test_bad_port_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        ["bash", str(SCRIPT), "--root", str(tmp_path), "--port", "http"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--port must be a number" in out.stderr
