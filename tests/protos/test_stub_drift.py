"""The committed gRPC stubs match what protoc generates from protos/ today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _check() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "tools/gen_protos.py", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_committed_stubs_match_the_proto() -> None:
    result = _check()
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_is_detected() -> None:
    """Editing a stub by hand makes the check fail (so the test above can fail)."""
    stub = REPO / "device_agent" / "proto" / "agent_pb2_grpc.py"
    original = stub.read_text()
    try:
        stub.write_text(original + "\n# hand edit\n")
        result = _check()
        assert result.returncode == 1 and "drifted" in result.stdout
    finally:
        stub.write_text(original)
