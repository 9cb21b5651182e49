"""Test helper: the adb STAND-IN and its scenario, written per test (not a phone)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

STANDIN_DIR = Path(__file__).parent


class StandIn:
    """A scenario for the stand-in adb, written to a temporary directory."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp
        self.root = tmp / "phone"
        self.scenario = json.loads((STANDIN_DIR / "scenario_default.json").read_text())
        self.scenario["root"] = str(self.root)
        self.scenario_path = tmp / "scenario.json"
        self.path = tmp / "adb-standin"
        # A wrapper so the stand-in runs with this interpreter whatever is on PATH.
        self.path.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN_DIR / "adb_standin.py"}" "$@"\n'
        )
        self.path.chmod(0o755)
        self.binary = tmp / "benchmark_model"
        self.binary.write_bytes(b"SYNTHETIC stand-in for a benchmark_model build\n")
        monkeypatch.setenv("HILNAS_ADB_STANDIN_SCENARIO", str(self.scenario_path))
        self.write()

    def write(self) -> None:
        self.scenario_path.write_text(json.dumps(self.scenario))

    def update(self, **changes: Any) -> StandIn:
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(self.scenario.get(key), dict):
                self.scenario[key].update(value)
            else:
                self.scenario[key] = value
        self.write()
        return self

    def calls(self) -> list[list[str]]:
        path = self.root / ".standin_calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["argv"] for line in path.read_text().splitlines()]
