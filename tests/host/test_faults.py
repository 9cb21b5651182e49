"""Faults a long search meets, for real: an agent killed mid-search and restarted, the store
on a full disk, and a report interrupted half-way.

`benchmarks/search_resume.py` adds SIGKILLs of the search itself at moments chosen from the
store's progress (after trainings, during export, measurement and the report).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from search_fixtures import config_doc, synthetic_table  # type: ignore[import-not-found]

from host.search.config import parse_config
from host.search.runner import STORE_NAME, run_search
from host.store.sqlite import RunStore

HERE = Path(__file__).resolve().parent
AGENT = [sys.executable, "-m", "device_agent.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_agent(port: int, cache: Path, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*AGENT, "-v", "serve", "--no-auth", "--port", str(port), "--cache-dir", str(cache),
         "--name", "bench-pi"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise AssertionError(f"agent exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("agent did not start listening")


def test_agent_killed_mid_search_is_restarted_and_the_run_goes_on(
    data_dir: Path, tmp_path: Path
) -> None:
    """The agent dies (SIGKILL) after the first measurement and comes back 2 s later with
    an empty model cache: the search retries, uploads the models again, and finishes with
    every candidate measured and nothing recorded as missing."""
    port = _free_port()
    caches = [tmp_path / "cache-1", tmp_path / "cache-2"]
    log = tmp_path / "agent.log"
    agent = _start_agent(port, caches[0], log)
    doc = config_doc(
        tmp_path,
        data={"records": ["100", "106", "119", "208"], "max_windows_per_record": 30},
        space={"name": "bionet", "max_blocks": 1, "max_lstm_cells": 16},
        train={"epochs": 1, "patience": None},
        strategy={"name": "nsga2", "population": 4, "generations": 1},
        objectives=[{"metric": "f1_macro"}, {"metric": "latency_p50_us", "device": "pi"}],
        devices=[{"name": "pi", "address": f"grpc://127.0.0.1:{port}", "timeout_s": 5.0}],
        measure={"warmup_runs": 2, "min_runs": 5, "max_runs": 10, "time_budget_seconds": 1},
        budget={"device_retry_seconds": 60.0},
    )
    cfg = parse_config(doc)
    store_path = tmp_path / "runs" / STORE_NAME
    restarted: dict[str, object] = {}

    def kill_after_first_measurement() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if store_path.exists() and RunStore(store_path).count_measurements() >= 1:
                break
            time.sleep(0.1)
        agent.kill()  # SIGKILL: no goodbye to the host
        agent.wait()
        restarted["measured_before"] = RunStore(store_path).count_measurements()
        time.sleep(2.0)
        restarted["agent"] = _start_agent(port, caches[1], log)

    watcher = threading.Thread(target=kill_after_first_measurement, daemon=True)
    watcher.start()
    try:
        result = run_search(cfg, progress=False, report=False)
    finally:
        watcher.join(timeout=60)
        for proc in (agent, restarted.get("agent")):
            if isinstance(proc, subprocess.Popen) and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "agent" in restarted, "the agent was never killed: the search measured nothing"
    store = RunStore(store_path)
    evs = [e for e in store.evaluations(result.run_id) if e["arch_key"]]
    assert evs and all(e["runs_on"] == {"pi": "ok"} for e in evs), [e["detail"] for e in evs]
    assert all(e["figures"]["sources"]["latency_p50_us@pi"] == "measured" for e in evs)
    assert store.missing(result.run_id) == []
    distinct_models = {e["sha256"] for e in evs}
    assert store.count_measurements() == len(distinct_models)
    assert int(str(restarted["measured_before"])) < len(distinct_models), (
        "every model was measured before the kill; the restart was not exercised"
    )
    # The restarted agent started with an empty cache: what it measured was uploaded again.
    uploaded_again = {p.stem for p in caches[1].glob("*.tflite")}
    assert uploaded_again and uploaded_again <= distinct_models


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` (user namespaces)")
def test_store_on_a_full_disk_says_so_keeps_what_was_committed_and_resumes(
    tmp_path: Path,
) -> None:
    """A real ENOSPC: a 512 KB tmpfs in a private mount namespace, filled to the last byte."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    script = (
        f"mount -t tmpfs -o size=512k tmpfs {mount} && "
        f"exec {sys.executable} {HERE / 'full_disk_worker.py'} {mount}"
    )
    out = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                         text=True, timeout=120, cwd=HERE.parent.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["store_error"].startswith(f"cannot write the run store {mount}/store.sqlite")
    assert "the disk is full" in result["store_error"] and "--resume" in result["store_error"]
    assert "the disk is full" in result["file_error"]
    assert result["leftovers"] == []  # no half-written model file
    assert result["survived"] == result["committed"] >= 5  # nothing committed lost
    assert result["after_space_returns"] == result["committed"] + 1
    assert result["model_bytes"] == 200_000


def test_report_interrupted_half_way_is_rebuilt_by_hilnas_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill during report writing leaves the previous report (or none), never half of one;
    `hilnas report RUN` builds it again from the store."""
    import host.report as report
    from host.cli import main

    table = synthetic_table(tmp_path / "table.json")
    doc = config_doc(tmp_path, tabular=str(table),
                     strategy={"name": "nsga2", "population": 4, "generations": 1})
    result = run_search(parse_config(doc), progress=False, report=False)
    runs = tmp_path / "runs"
    page = result.run_dir / "report.html"
    assert not page.exists()  # as after a kill before the report was written

    assert main(["report", result.run_id, "--out", str(runs)]) == 0
    first = page.read_text()
    assert "<html" in first.lower() and result.run_id in first

    def dies_half_way(*args: object, **kwargs: object) -> str:
        raise KeyboardInterrupt  # what a SIGINT during the page's assembly raises

    monkeypatch.setattr(report, "_page", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        report.build_report(RunStore(runs / STORE_NAME), result.run_id, result.run_dir)
    assert page.read_text() == first  # the previous report is intact
    assert not list(result.run_dir.glob("*.part"))
