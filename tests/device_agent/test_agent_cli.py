"""The commands as a user runs them: hilnas-agent serve, hilnas devices, hilnas measure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

AGENT = [sys.executable, "-m", "device_agent.cli"]
HOST = [sys.executable, "-m", "host.cli"]


@pytest.fixture()
def served_agent(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        AGENT
        + [
            "serve",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--name",
            "bench-pi",
            "--token-file",
            str(token_file),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text().strip():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "agent did not start"
        time.sleep(0.1)
    address = f"grpc://127.0.0.1:{port_file.read_text().strip()}"
    env = dict(os.environ, HILNAS_AGENT_TOKEN="s3cret")
    yield address, env
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def host_json(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> Any:
    """Run `hilnas ARGV` (which must succeed) and parse what it printed as JSON."""
    out = subprocess.run(HOST + argv, env=env, capture_output=True, text=True, timeout=timeout,
                         check=True)
    return json.loads(out.stdout)


def test_describe_and_measure_through_the_commands(
    served_agent: tuple[str, dict[str, str]], models: dict[str, Path]
) -> None:
    address, env = served_agent
    info = host_json(["devices", "describe", address, "--json"], env=env, timeout=60)
    assert info["name"] == "bench-pi" and info["runtimes"][0]["name"] == "ai_edge_litert"
    model = str(models["int8_conv1d"])
    measure = ["measure", model, "--device", address, "--runs", "40", "--json"]
    result = host_json(measure, env=env, timeout=120)
    assert result["latency"]["source"] == "measured"
    assert 0 < result["p50_us"] <= result["p90_us"] <= result["p99_us"]
    assert result["latency"]["p50_us"] == result["p50_us"]
    assert result["latency"]["n"] <= 40
    assert result["arena_bytes"] is None and result["arena_source"] == "unavailable"
    assert result["memory"]["model_bytes"]["value"] == models["int8_conv1d"].stat().st_size


def test_wrong_token_gives_a_clear_error(served_agent: tuple[str, dict[str, str]]) -> None:
    address, env = served_agent
    env = dict(env, HILNAS_AGENT_TOKEN="nope")
    out = subprocess.run(
        HOST + ["devices", "describe", address], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "AuthenticationFailed" in out.stderr and "token" in out.stderr
    assert "Traceback" not in out.stderr


def test_measure_on_the_local_device(models: dict[str, Path]) -> None:
    result = host_json(["measure", str(models["int8_conv_lstm"]), "--json", "--profile"],
                       timeout=180)
    assert result["device"] == "local" and result["p50_us"] > 0
    assert any(op["op"] == "UNIDIRECTIONAL_SEQUENCE_LSTM" for op in result["profile"]["ops"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["measure", "/nonexistent.tflite"], "does not exist"),
        (["measure", "{model}", "--device", "tcp://x:1"], "unknown device"),
        (
            ["measure", "{model}", "--device", "grpc://127.0.0.1:1", "--timeout", "2"],
            "DeviceUnavailable",
        ),
        (
            ["measure", "{model}", "--runs", "5", "--min-runs", "10", "--warmup", "-1"],
            "warmup_runs",
        ),
    ],
)
def test_bad_input_names_the_problem(
    argv: list[str], message: str, models: dict[str, Path]
) -> None:
    argv = [a.replace("{model}", str(models["int8_conv1d"])) for a in argv]
    t0 = time.monotonic()
    out = subprocess.run(HOST + argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert time.monotonic() - t0 < 45


def test_agent_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HILNAS_AGENT_TOKEN"}
    out = subprocess.run(
        AGENT + ["serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "without a token" in out.stderr
