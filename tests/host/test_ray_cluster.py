"""The cluster path for real: a two-node Ray cluster on this machine runs a search's trainings.

The cluster is started with the `ray` command (a head and a second node, one CPU each, in
their own temp dir) and stopped by killing exactly its own processes (found by a token in
their environment; `ray stop` would stop every Ray of this user). Its nodes see an empty
HILNAS_DATA_DIR and dataset cache, so a training can only get its data from the object store.

What is compared with the in-process run of the same configuration and seed: for every
architecture, the stored training's `val` and `test` metrics, `epochs_run` and split,
exactly (float equality), and the trained weights.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from search_fixtures import config_doc  # type: ignore[import-not-found]

from host.search.config import SearchConfig, parse_config
from host.search.runner import STORE_NAME, RunResult, run_search
from host.store.sqlite import RunStore

pytest.importorskip("ray")

RAY = Path(sys.executable).parent / "ray"
REPO = Path(__file__).resolve().parents[2]
RECORDS = ["100", "106", "119", "208"]
# After a job's marker (data and TensorFlow ready), building these networks takes 0.8-1.5 s
# and fitting them 2.5-8 s here: a kill this long after the marker lands in the fit.
FIT_DELAY_S = 2.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """A head and one more node, started with `ray start`, stopped by killing their pids."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = uuid.uuid4().hex
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.markers = root / "markers"  # HILNAS_TRAIN_MARKER_DIR of every worker
        self.no_data = root / "no-data"  # the workers' HILNAS_DATA_DIR: empty
        self.markers.mkdir()
        self.no_data.mkdir()
        self.env = {
            **os.environ,
            "HILNAS_RAY_TEST_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
            "HILNAS_DATA_DIR": str(self.no_data),
            "HILNAS_CACHE_DIR": str(self.no_data),  # nor a cache of prepared datasets
            "HILNAS_TRAIN_MARKER_DIR": str(self.markers),
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": str(REPO),
        }

    def _node_ports(self) -> list[str]:
        return [
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
        ]

    def _ray_start(self, *args: str) -> None:
        cmd = [str(RAY), "start", "--num-cpus=1", "--disable-usage-stats",
               f"--temp-dir={self.root / 'ray'}", *self._node_ports(), *args]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")

    def start(self) -> None:
        self._ray_start("--head", f"--port={self.port}", "--include-dashboard=false",
                        f"--ray-client-server-port={_free_port()}")
        self._ray_start(f"--address={self.address}")

    def pids(self) -> list[int]:
        """The processes of this cluster: those whose environment holds its token."""
        needle = f"HILNAS_RAY_TEST_TOKEN={self.token}".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if needle in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue  # gone, or not ours
        return found

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline:
                time.sleep(0.1)
                pids = self.pids()
            if not pids:
                return

    def started_trainings(self) -> list[tuple[str, int]]:
        """(train_key, pid) of every training started so far, in order of start."""
        files = sorted(self.markers.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [(f.stem, int(f.suffix[1:])) for f in files]


@pytest.fixture(scope="module")
def cluster(data_dir: Path) -> Iterator[LocalCluster]:
    import ray

    # A short root: Ray's Unix sockets live under --temp-dir (at most 107 characters).
    root = Path(tempfile.mkdtemp(prefix="hilnas-ray-", dir="/tmp"))
    local = LocalCluster(root)
    try:
        local.start()
        yield local
    finally:
        if ray.is_initialized():
            ray.shutdown()
        local.stop()
        shutil.rmtree(root, ignore_errors=True)


def _doc(tmp: Path, train: dict[str, Any] | None = None, **executor: Any) -> dict[str, Any]:
    return config_doc(
        tmp,
        data={"records": RECORDS, "max_windows_per_record": 40, "split": "random",
              "sample_rate": 180, "window": 64},
        space={"name": "bionet", "max_blocks": 1, "max_lstm_cells": 16},
        train=train or {"epochs": 2, "batch_size": 32},
        strategy={"name": "exhaustive", "population": 8},  # one batch: 2 networks at once
        objectives=[{"metric": "f1_macro"}, {"metric": "storage_int8_bytes"}],
        budget={"export_int8": False},
        executor={"kind": "inprocess", **executor},
    )


def _config(tmp: Path, train: dict[str, Any] | None = None, **executor: Any) -> SearchConfig:
    return parse_config(_doc(tmp, train, **executor))


def _trainings(out: Path, result: RunResult) -> dict[str, dict[str, Any]]:
    """arch key -> the stored training (its metrics and key) of a run's evaluations."""
    store = RunStore(out / STORE_NAME)
    found = {}
    for ev in store.evaluations(result.run_id):
        if ev["arch_key"] and ev["train_key"]:
            row = store.training(ev["train_key"])
            if row is not None:
                found[ev["arch_key"]] = {**row, "train_key": ev["train_key"]}
    return found


def _weights(models_dir: Path, arch_key: str) -> bytes:
    (path,) = models_dir.glob(f"{arch_key}-*.keras")
    with zipfile.ZipFile(path) as z:
        return z.read("model.weights.h5")


COMPARED = ("val", "test", "epochs_run", "split")


def test_ray_search_matches_the_in_process_search(cluster: LocalCluster, tmp_path: Path) -> None:
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    local = run_search(_config(local_out), progress=False, report=False)
    ray_cfg = _config(ray_out, kind="ray", ray_address=cluster.address)
    on_ray = run_search(ray_cfg, progress=False, report=False)
    local_runs = _trainings(local_out / "runs", local)
    ray_runs = _trainings(ray_out / "runs", on_ray)
    assert len(local_runs) == 2 and set(ray_runs) == set(local_runs)

    nodes = set()
    for arch, row in ray_runs.items():
        worker = row["metrics"]["worker"]
        assert worker["pid"] != os.getpid() and worker.get("ray_node"), worker
        nodes.add(worker["ray_node"])
        assert local_runs[arch]["metrics"]["worker"]["pid"] == os.getpid()
        for key in COMPARED:
            assert row["metrics"][key] == local_runs[arch]["metrics"][key], (arch, key)
        assert _weights(ray_out / "runs" / "models", arch) == \
            _weights(local_out / "runs" / "models", arch), arch
    # Two trainings at once on two one-CPU nodes: one ran on the node that does not hold
    # the driver's objects, so the dataset crossed between object stores.
    assert len(nodes) == 2
    started = cluster.started_trainings()
    assert sorted(k for k, _ in started) == sorted(r["train_key"] for r in ray_runs.values())

    # Stored trainings are never trained again: a second run starts no Ray task.
    store = RunStore(ray_out / "runs" / STORE_NAME)
    count = store.count_trainings()
    run_search(ray_cfg, progress=False, report=False)
    assert store.count_trainings() == count and cluster.started_trainings() == started


def test_a_killed_worker_is_retried_then_recorded_failed(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """SIGKILL mid-training: the first network's worker once (retried, then stored), the
    second's on every attempt (recorded as failed with the reason); the search finishes."""
    for old in cluster.markers.iterdir():
        old.unlink()
    # Long enough that every attempt is still fitting FIT_DELAY_S after its marker: with 2
    # epochs a training could end first, and the kill then hit the idle Ray worker instead.
    cfg = _config(tmp_path, {"epochs": 60, "patience": 60, "batch_size": 32}, kind="ray",
                  ray_address=cluster.address, max_retries=1)
    outcome: dict[str, Any] = {}

    def search() -> None:
        try:
            outcome["result"] = run_search(cfg, progress=False, report=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            outcome["error"] = exc

    thread = threading.Thread(target=search, name="search")
    thread.start()
    killed: list[tuple[str, int]] = []
    seen: dict[tuple[str, int], float] = {}  # a training's start -> when it was seen
    retried_key: str | None = None
    deadline = time.monotonic() + 240
    while thread.is_alive() and time.monotonic() < deadline:
        now = time.monotonic()
        for started in cluster.started_trainings():
            seen.setdefault(started, now)
        for (key, pid), since in seen.items():
            if (key, pid) in killed or now < since + FIT_DELAY_S:
                continue
            if retried_key is None:
                retried_key = key  # kill its first attempt only
            elif key == retried_key:
                continue  # its retry runs to the end
            os.kill(pid, signal.SIGKILL)
            killed.append((key, pid))
        time.sleep(0.05)
    thread.join(timeout=5)
    assert not thread.is_alive(), "the search did not finish"
    assert "error" not in outcome, outcome.get("error")
    result: RunResult = outcome["result"]

    started = cluster.started_trainings()
    keys = {k for k, _ in started}
    assert len(keys) == 2 and retried_key in keys
    (failed_key,) = keys - {retried_key}
    # The retried network: killed once, started once more, stored once, by the second pid.
    retried_pids = [p for k, p in started if k == retried_key]
    assert len(retried_pids) == 2 and (retried_key, retried_pids[0]) in killed
    store = RunStore(tmp_path / "runs" / STORE_NAME)
    row = store.training(retried_key)
    assert row is not None and row["metrics"]["worker"]["pid"] == retried_pids[1]
    # The other: killed on both attempts (1 + max_retries), recorded as a failed training.
    assert [p for k, p in started if k == failed_key] == [p for k, p in killed if k == failed_key]
    assert len([k for k, _ in killed if k == failed_key]) == 2
    assert store.training(failed_key) is None
    assert store.count_trainings() == 1
    evs = {e["train_key"]: e for e in store.evaluations(result.run_id) if e["train_key"]}
    assert evs[retried_key]["status"] == "ok"
    assert evs[failed_key]["status"] == "failed"
    assert "TrainingWorkerDied" in evs[failed_key]["detail"]
    assert "died on each of 2 attempts" in evs[failed_key]["detail"]
    assert "executor.max_retries = 1" in evs[failed_key]["detail"]
    run = store.run(result.run_id)
    assert run is not None and run.status == "done"


def test_an_unreachable_ray_address_is_a_config_error(data_dir: Path, tmp_path: Path) -> None:
    """`hilnas search --executor ray --ray-address DEAD` fails in seconds, naming it."""
    from test_search_matrix import _toml  # type: ignore[import-not-found]

    config = tmp_path / "search.toml"
    config.write_text(_toml(_doc(tmp_path)))
    dead = f"127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "host.cli", "search", str(config), "--executor", "ray",
         "--ray-address", dead, "--no-progress", "--no-report"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert f"cannot reach the Ray cluster at {dead}" in out.stderr
    assert "Traceback" not in out.stderr
    assert time.monotonic() - t0 < 60


def test_a_port_that_is_not_ray_is_a_config_error() -> None:
    from device_agent.errors import ConfigError
    from host.executors import check_ray_address

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=f"at {address}: no Ray GCS answered within 2 s"):
            check_ray_address(address, timeout_s=2.0)
        assert time.monotonic() - t0 < 10
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        check_ray_address("head-without-port")
