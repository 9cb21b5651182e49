"""The pulse-rate task on TROIKA: configuration, leave-subjects-out data, a real search with
a regression head, and the final figure on TROIKA's held-back test set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from host.errors import ConfigError
from host.search.config import parse_config
from host.tasks.ppg import PpgDatasetConfig, PulseRate, PulseTracker, regression_metrics

HOST = [sys.executable, "-m", "host.cli"]


def _troika(data_dir: Path) -> None:
    if not (data_dir / "troika" / "training_data").is_dir():
        pytest.skip("TROIKA is not under HILNAS_DATA_DIR")


def test_bad_configuration_names_the_problem() -> None:
    with pytest.raises(ConfigError, match="TROIKA's test subjects are kept"):
        PpgDatasetConfig(test_subjects=("testS01",))
    with pytest.raises(ConfigError, match="upsampling would invent"):
        PpgDatasetConfig(input="raw", sample_rate=250)
    with pytest.raises(ConfigError, match="input: unknown 'ecg'"):
        PpgDatasetConfig(input="ecg")
    with pytest.raises(ConfigError, match="unknown key data.window"):
        PulseRate.from_table({"window": 256}, seed=0)


def test_regression_metrics() -> None:
    y = np.array([60.0, 100.0, 150.0, 90.0])
    out = np.array([[62.0], [100.0], [147.0], [94.0]])
    m = regression_metrics(y, out, np.array(["T01", "T01", "T02", "T02"]))
    assert m["aae_bpm"] == pytest.approx(2.25)
    assert m["rmse_bpm"] == pytest.approx(np.sqrt((4 + 0 + 9 + 16) / 4))
    assert m["per_activity"] == {"T01": pytest.approx(1.0), "T02": pytest.approx(3.5)}


def test_the_tracker_follows_the_pulse_through_outliers() -> None:
    rng = np.random.default_rng(0)
    true = 90 + 40 * np.sin(np.linspace(0, 3, 150))  # a run: up to 130 BPM and back
    est = true + rng.normal(0, 2, len(true))
    wrong = rng.random(len(true)) < 0.2  # a fifth of the windows read a motion peak
    est[wrong] = rng.uniform(40, 240, wrong.sum())
    tracked = PulseTracker().track(est)
    assert np.abs(est - true).mean() > 8
    assert np.abs(tracked[5:] - true[5:]).mean() < 2.5  # after a few windows to lock on
    # causal: a window's tracked value ignores every later window
    np.testing.assert_array_equal(PulseTracker().track(est[:60]), tracked[:60])
    # each recording starts afresh, and its windows must be contiguous
    names = np.array(["a"] * 75 + ["b"] * 75)
    both = PulseTracker().track_recordings(est, names)
    np.testing.assert_array_equal(both[75:], PulseTracker().track(est[75:]))
    with pytest.raises(ValueError, match="not contiguous"):
        PulseTracker().track_recordings(est, np.array(["a", "b"] * 75))
    m = regression_metrics(true, est, recordings=names, tracker=PulseTracker())
    assert m["tracked"]["aae_bpm"] < m["aae_bpm"] and m["tracked"]["n"] == 150
    with pytest.raises(ConfigError, match="track_outlier: must be in"):
        PpgDatasetConfig(track_outlier=1.5)
    with pytest.raises(ConfigError, match="track_step_bpm"):
        PpgDatasetConfig(track_step_bpm=0)


def test_calibration_windows_reach_every_heart_rate() -> None:
    from host.tasks.ppg import rate_shifted

    # a spectrum with its peak at 100 BPM (bin 60 at 1 BPM per bin), moved to 200 and 60 BPM
    cfg = PpgDatasetConfig(input="spectral")
    w = np.zeros((201, 5), np.float32)
    w[60, :2] = 1.0
    assert rate_shifted(w, 100.0, 200.0, cfg)[:, 0].argmax() == 160
    assert rate_shifted(w, 100.0, 60.0, cfg)[:, 0].argmax() == 20
    assert rate_shifted(w, 100.0, 300.0, cfg).sum() == 0  # moved out of the band
    # a raw window's pulse replayed faster: 1.2 Hz (72 BPM) becomes 2.4 Hz (144 BPM)
    raw = PpgDatasetConfig(input="raw")
    t = np.arange(200) / 25.0
    x = np.repeat(np.sin(2 * np.pi * 1.2 * t)[:, None], 5, axis=1).astype(np.float32)
    fast = rate_shifted(x, 72.0, 144.0, raw)[:, 0]
    peak_hz = np.fft.rfftfreq(200, 1 / 25.0)[np.abs(np.fft.rfft(fast)).argmax()]
    assert peak_hz == pytest.approx(2.4, abs=0.13)


def test_leave_subjects_out_windows(data_dir: Path) -> None:
    _troika(data_dir)
    task = PulseRate(PpgDatasetConfig(input="raw"))
    data = task.load()
    assert data.x_train.shape[1:] == (200, 5) == (task.input_spec().length, 5)
    assert set(data.subjects["val"]) == {"train11", "train12"}
    assert set(data.subjects["test"]) == {"train09", "train10"}
    assert not set(data.subjects["train"]) & {"train09", "train10", "train11", "train12"}
    # each window's recording, contiguous and in the order of the windows
    names = data.recordings["val"]
    assert len(names) == len(data.y_val) and list(dict.fromkeys(names)) == [
        "DATA_11_TYPE02", "DATA_12_TYPE02"]
    assert 60 < data.y_train.min() and data.y_train.max() < 180
    np.testing.assert_allclose(data.x_train.mean(axis=1), 0, atol=1e-4)  # z-scored windows
    rep = task.representative(data, n=40)
    assert rep.shape == (40, 200, 5) and np.isfinite(rep).all()
    np.testing.assert_array_equal(rep[:20], task.representative(data, n=40)[:20])


@pytest.fixture(scope="module")
def ppg_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    from host.search.runner import run_search

    _troika(data_dir)
    tmp = tmp_path_factory.mktemp("ppg")
    cfg = parse_config({
        "run": {"name": "ppg-test", "seed": 0, "out_dir": str(tmp / "runs")},
        "data": {"task": "ppg", "input": "spectral", "resolution_bpm": 2.0},
        "space": {"name": "half", "kernels": [3], "strides": [2], "multipliers": [1],
                  "filters": [4], "pool_strides": [2], "max_depth": 3},
        "train": {"epochs": 3, "patience": None},
        "strategy": {"name": "nsga2", "encoding": "integer", "population": 2,
                     "generations": 1},
        "objectives": [{"metric": "aae_bpm"}, {"metric": "storage_int8_bytes"}],
        "devices": [{"name": "local", "address": "local"}],
        "measure": {"warmup_runs": 1, "min_runs": 5, "max_runs": 10,
                    "time_budget_seconds": 1},
    })
    result = run_search(cfg, progress=False, report=False)
    return {"tmp": tmp, "result": result}


def test_a_search_minimises_the_heart_rate_error(ppg_run: dict[str, Any]) -> None:
    front = ppg_run["result"].front
    assert front
    for entry in front:
        aae = entry["objectives"]["aae_bpm"]
        assert 0 < aae < 100  # BPM, from the validation subjects
        assert entry["figures"]["aae_bpm"]["source"] == "validation set"


def test_evaluate_scores_the_troika_test_set(ppg_run: dict[str, Any]) -> None:
    path = ppg_run["result"].front[0]["files"]["tflite"]
    out = subprocess.run([*HOST, "evaluate", path, "--task", "ppg", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert len(m["per_recording"]) == 10 and set(m["per_activity"]) == {"T01", "T02"}
    assert m["n"] == sum(r["n"] for r in m["per_recording"].values())
    assert m["tracked"]["n"] == m["n"] and all("tracked" in r for r in m["per_recording"].values())
    assert 0 < m["aae_bpm"] < 200
    wrong = subprocess.run([*HOST, "evaluate", path, "--task", "ecg"], capture_output=True,
                           text=True, timeout=120)
    assert wrong.returncode != 0 and "is a 'ppg' model" in wrong.stderr
