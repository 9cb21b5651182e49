"""A real search: MIT-BIH windows, tf-keras training, int8 export, the local LiteRT agent.

One small run exercises the whole loop and the commands around it: a second device that
is not there (the run goes on and records what it missed), the run store's caches (a second
run trains nothing), `hilnas runs`, `hilnas report` and `hilnas export RUN --front`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from search_fixtures import config_doc  # type: ignore[import-not-found]

from host.search.config import parse_config
from host.search.runner import STORE_NAME, run_search
from host.store.sqlite import RunStore

HOST = [sys.executable, "-m", "host.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("search")
    doc = config_doc(
        tmp,
        data={"records": ["100", "101", "103", "106", "118", "119", "208", "213"],
              "max_windows_per_record": 40, "split": "patient"},
        space={"name": "bionet", "max_blocks": 1, "max_lstm_cells": 16},
        train={"epochs": 1, "patience": None},
        strategy={"name": "nsga2", "population": 3, "generations": 1},
        objectives=[{"metric": "f1_macro"}, {"metric": "storage_int8_bytes"},
                    {"metric": "latency_p50_us", "device": "local"}],
        devices=[{"name": "local", "address": "local"},
                 {"name": "gone", "address": f"grpc://127.0.0.1:{_free_port()}",
                  "timeout_s": 1.0}],
        measure={"warmup_runs": 2, "min_runs": 10, "max_runs": 30, "time_budget_seconds": 2},
        budget={"device_retry_seconds": 1.0},
    )
    cfg = parse_config(doc)
    result = run_search(cfg, progress=False)
    return tmp, cfg, result


def test_real_search_trains_exports_and_measures(finished_run) -> None:  # type: ignore[no-untyped-def]
    tmp, cfg, result = finished_run
    store = RunStore(tmp / "runs" / STORE_NAME)
    assert result.trainings >= 1 and result.front
    evs = [e for e in store.evaluations(result.run_id) if e["arch_key"]]
    assert evs and all(e["train_key"] and e["sha256"] for e in evs)
    for entry in result.front:
        latency = entry["figures"]["latency_p50_us@local"]
        assert latency["source"] == "measured" and latency["value"] > 0
        assert entry["figures"]["storage_int8_bytes"]["source"] == "analytic"
        assert Path(entry["files"]["tflite"]).read_bytes()[4:8] == b"TFL3"
        assert "g_model_" in Path(entry["files"]["c_header"]).read_text()
    doc = json.loads((result.run_dir / "front.json").read_text())
    assert [e["arch"] for e in doc["front"]] == [e["arch"] for e in result.front]
    assert (result.run_dir / "report.html").read_text().count("<img") >= 2


def test_stages_are_timed_and_overlap_as_designed(finished_run) -> None:  # type: ignore[no-untyped-def]
    """Every pipeline stage is timed; a candidate's export runs while the next one trains;
    a conversion never runs beside a measurement on this machine's local device."""
    tmp, cfg, result = finished_run
    store = RunStore(tmp / "runs" / STORE_NAME)
    timings = store.timings(result.run_id)
    phases = {t["phase"] for t in timings}
    assert {"screen", "train", "export", "measure:local", "score"} <= phases

    def spans(phase: str) -> list[tuple[float, float]]:
        return [(t["start"], t["start"] + t["seconds"]) for t in timings if t["phase"] == phase]

    trains, exports, measures = spans("train"), spans("export"), spans("measure:local")
    assert len(trains) >= 2
    assert any(e0 < t1 and t0 < e1 for e0, e1 in exports for t0, t1 in trains), \
        "no export overlapped a training"
    assert not any(e0 < m1 and m0 < e1 for e0, e1 in exports for m0, m1 in measures), \
        "a conversion ran beside a local measurement"
    evs = store.evaluations(result.run_id)
    assert {e["stage"] for e in evs if e["arch_key"]} == {"measure"}
    out = subprocess.run(HOST + ["runs", "--out", str(tmp / "runs"), "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    (row,) = [r for r in json.loads(out.stdout) if r["run"] == result.run_id]
    assert row["status"] == "done" and row["trainings"] == result.trainings
    assert row["front_size"] == len(result.front)


def test_missing_device_is_recorded_not_fatal(finished_run) -> None:  # type: ignore[no-untyped-def]
    tmp, cfg, result = finished_run
    store = RunStore(tmp / "runs" / STORE_NAME)
    missing = store.missing(result.run_id)
    assert missing and {m["device"] for m in missing} == {"gone"}
    run = store.run(result.run_id)
    assert run is not None and run.status == "done" and "missing" in run.message


def test_second_run_reuses_trainings_and_measurements(finished_run) -> None:  # type: ignore[no-untyped-def]
    tmp, cfg, result = finished_run
    store = RunStore(tmp / "runs" / STORE_NAME)
    trainings, measurements = store.count_trainings(), store.count_measurements()
    again = run_search(cfg, progress=False, report=False)
    assert store.count_trainings() == trainings and store.count_measurements() == measurements
    assert not [t for t in store.timings(again.run_id) if t["phase"] == "train"]


def test_run_commands(finished_run) -> None:  # type: ignore[no-untyped-def]
    tmp, cfg, result = finished_run
    runs_dir = tmp / "runs"
    out = subprocess.run(HOST + ["runs", "--out", str(runs_dir), "--json"], capture_output=True,
                         text=True, timeout=60, check=True)
    assert result.run_id in {r["run"] for r in json.loads(out.stdout)}
    out = subprocess.run(HOST + ["report", result.run_id, "--out", str(runs_dir)],
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().endswith("report.html")
    dest = tmp / "exported"
    out = subprocess.run(HOST + ["export", result.run_id, "--front", "--runs-dir", str(runs_dir),
                                 "--out", str(dest)], capture_output=True, text=True, timeout=60,
                         check=True)
    exported = json.loads((dest / "front.json").read_text())
    assert len(list(dest.glob("*.tflite"))) == len(exported["front"]) >= 1
    bad = subprocess.run(HOST + ["export", "no-such-run", "--front", "--runs-dir",
                                 str(runs_dir)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no run 'no-such-run'" in bad.stderr


def test_search_command_rejects_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[strategy]\nname = "hillclimb"\n')
    out = subprocess.run(HOST + ["search", str(config)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "strategy.name = 'hillclimb' is not one of" in out.stderr
    assert "Traceback" not in out.stderr
