"""The online latency predictor (host/predictor) and `hilnas predictor`.

Small int8 Conv1D + Dense networks of growing width are built once per machine in a child
process (TensorFlow stays out of the test process), cached in the temp dir; the predictor
learns from their real measurements and profiles on the local device.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from device_agent.types import MeasureSettings, OpProfile, OpTiming, RuntimeInfo, Source
from host.predictor import LatencyPredictor, audit, op_features
from host.predictor.store import predictor_path

REPO = Path(__file__).resolve().parents[2]
WIDTHS = (4, 8, 12, 16, 24, 32, 48, 64, 96)
LENGTH = 1024  # latencies of 0.1-10 ms: tens of microseconds are mostly timer noise

_SCRIPT = r"""
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
import tf_keras as k
out, length = sys.argv[1], int(sys.argv[2])
widths = [int(w) for w in sys.argv[3].split(",")]
rep = np.random.default_rng(0).standard_normal((16, length, 1)).astype(np.float32)

def int8(model):
    def gen():
        for x in rep:
            yield [x[None]]
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = gen
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c.convert()

for w in widths:
    k.utils.set_random_seed(w)
    i = k.Input((length, 1), batch_size=1)
    x = k.layers.Conv1D(w, 5, activation="relu")(i)
    x = k.layers.Conv1D(w, 3, activation="relu")(x)
    x = k.layers.Dense(8)(k.layers.Flatten()(x))
    o = k.layers.Dense(3, activation="softmax")(x)
    with open(os.path.join(out, f"w{w}.tflite"), "wb") as f:
        f.write(int8(k.Model(i, o)))
"""


@pytest.fixture(scope="module")
def models() -> dict[int, bytes]:
    key = hashlib.sha256(f"{_SCRIPT}{WIDTHS}{LENGTH}".encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"hilnas-predictor-test-models-{key}"
    if not (folder / f"w{WIDTHS[-1]}.tflite").exists():
        work = Path(tempfile.mkdtemp(prefix="hilnas-predictor-models-"))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(work), str(LENGTH),
             ",".join(map(str, WIDTHS))],
            check=True, timeout=600, env=env, cwd=REPO,
        )
        try:
            work.rename(folder)
        except OSError:  # another process won the race
            folder = work if not folder.exists() else folder
    return {w: (folder / f"w{w}.tflite").read_bytes() for w in WIDTHS}


@pytest.fixture(scope="module")
def measured(models: dict[int, bytes]) -> dict[int, tuple[float, OpProfile]]:
    """Every model's Measure p50 and Profile on the local device."""
    from host.fleet.local import LocalDevice

    settings = MeasureSettings(warmup_runs=5, min_runs=30, max_runs=200,
                               time_budget_seconds=2.0, target_ci_relative=0.02)
    out = {}
    with LocalDevice(name="predictor-test") as device:
        for w, data in models.items():
            m = device.measure(data, settings)
            p = device.profile(data, settings)
            out[w] = (m.latency.p50_us, p)
    return out


def test_features_count_macs_and_bytes(models: dict[int, bytes]) -> None:
    w = 16
    feats = op_features(models[w])
    by_op: dict[str, list] = {}
    for f in feats:
        by_op.setdefault(f.op, []).append(f)
    assert [f.index for f in feats] == list(range(len(feats)))
    convs = by_op["CONV_2D"]
    assert len(convs) == 2
    # Conv1D(w, 5) on 128x1 (valid): 124 outputs x w filters x 5 taps x 1 channel.
    assert convs[0].macs == (LENGTH - 4) * w * 5 * 1
    assert convs[1].macs == (LENGTH - 6) * w * 3 * w
    assert convs[0].kernel_area == 5
    fcs = by_op["FULLY_CONNECTED"]
    assert fcs[0].macs == (LENGTH - 6) * w * 8 and fcs[1].macs == 8 * 3
    # Bytes at their types: int8 weights [w, 1, 5, 1] and an int32 bias [w].
    assert convs[0].weight_shapes == ((w, 1, 5, 1), (w,))
    assert convs[0].weight_bytes == w * 5 + w * 4 and convs[0].params == w * 5 + w
    assert fcs[0].weight_shapes[0] == (8, (LENGTH - 6) * w)
    assert fcs[0].weight_bytes >= 8 * (LENGTH - 6) * w
    assert fcs[0].in_bytes == (LENGTH - 6) * w and fcs[0].out_bytes == 8
    assert fcs[0].dtype == "int8"
    assert "SOFTMAX" in by_op


def _fit(measured: dict[int, tuple[float, OpProfile]], models: dict[int, bytes],
         widths: tuple[int, ...], *, profiles: bool = True, kind: str | None = None
         ) -> LatencyPredictor:
    pred = LatencyPredictor("local", **({"kind": kind} if kind else {}))
    for w in widths:
        p50, profile = measured[w]
        if profiles:
            pred.observe_profile(models[w], profile)
        pred.observe_measure(models[w], p50, runtime="litert-test")
    return pred.fit()


def test_predicts_unseen_network_better_than_a_constant(
    models: dict[int, bytes], measured: dict[int, tuple[float, OpProfile]]
) -> None:
    """Held out: one network inside the learned range and the largest (extrapolation).

    Latencies of these small networks (0.05-1 ms) move by tens of percent between runs on a
    shared machine, so the check is on the pair: a predictor that learned nothing (the
    training networks' median) is far off on the largest network and fails it.
    """
    held_out = (32, 96)
    train = tuple(w for w in WIDTHS if w not in held_out)
    pred = _fit(measured, models, train)
    assert pred.per_kernel and pred.networks == len(train)
    baseline = float(np.median([measured[w][0] for w in train]))
    errors, base_errors = [], []
    for w in held_out:
        truth = measured[w][0]
        p = pred.predict(models[w])
        assert p.source == f"predicted ({len(train)} networks, per-kernel)"
        assert p.low_us <= p.p50_us <= p.high_us
        errors.append(abs(p.p50_us - truth) / truth)
        base_errors.append(abs(baseline - truth) / truth)
    assert np.mean(errors) < 0.5 and np.mean(errors) < np.mean(base_errors), (
        errors, base_errors)
    # The audit: a measurement after a prediction is compared with it.
    entry = pred.observe_measure(models[96], measured[96][0])
    assert entry is not None and entry.measured_us == measured[96][0]
    assert pred.audit_log == [entry]


def test_whole_model_only_without_profiles(
    models: dict[int, bytes], measured: dict[int, tuple[float, OpProfile]]
) -> None:
    train = tuple(w for w in WIDTHS if w != 32)
    pred = _fit(measured, models, train, profiles=False)
    assert not pred.per_kernel
    p = pred.predict(models[32])
    assert p.source == f"predicted ({len(train)} networks, whole-model only)"
    assert not p.per_kernel and p.p50_us > 0
    truth = measured[32][0]
    assert abs(p.p50_us - truth) / truth < 1.0


def test_save_load_round_trip(
    tmp_path: Path, models: dict[int, bytes], measured: dict[int, tuple[float, OpProfile]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pred = _fit(measured, models, WIDTHS[:-1])
    before = pred.predict(models[WIDTHS[-1]])
    path = pred.save(tmp_path / "p.json")
    saved = json.loads(path.read_text())
    assert saved["device"] == "local" and saved["runtime"]
    assert len(saved["networks"]) == len(WIDTHS) - 1
    again = LatencyPredictor.load(path)
    after = again.predict(models[WIDTHS[-1]])
    assert after == before
    assert again.op_types() == pred.op_types()
    with caplog.at_level("WARNING"):
        LatencyPredictor.load(path, runtime="litert 99.0")
    assert "learned under runtime" in caplog.text


def test_synthetic_profile_indices_and_bad_input() -> None:
    """Profile timings are matched to operators by index; a mismatched op name is ignored."""
    from host.predictor.model import LatencyPredictor as LP

    pred = LP("x")
    with pytest.raises(Exception, match="no measurements"):
        pred.fit()
    with pytest.raises(ValueError):
        pred.observe_measure(b"", -1.0)
    stats = audit([(110.0, 100.0), (95.0, 100.0), (150.0, 100.0)])
    assert stats.n == 3 and stats.within_10pct == pytest.approx(2 / 3)
    assert stats.mean_abs_pct_error == pytest.approx((10 + 5 + 50) / 3)
    # (an OpProfile can be built by hand, as a backend does)
    OpProfile("s", (OpTiming(0, "CONV_2D", 1.0, 1.0, 1.0, 1),), "m", 1.0, Source.MEASURED,
              RuntimeInfo("r", "1"))


def test_cli_fit_show_export(
    tmp_path: Path, models: dict[int, bytes], measured: dict[int, tuple[float, OpProfile]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from host.cli import main
    from host.store.sqlite import RunStore

    runs = tmp_path / "runs"
    store = RunStore(runs / "store.sqlite")
    for w in WIDTHS:
        data = models[w]
        sha = hashlib.sha256(data).hexdigest()
        path = runs / "models" / f"w{w}.tflite"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        store.add_training(f"t{w}", f"a{w}", "d", "t", {}, 0.0, "trained")
        store.add_model(sha, f"t{w}", "int8", str(path), len(data), 0.0)
        result = {"latency": {"p50_us": measured[w][0]}, "runtime": {"name": "litert"}}
        store.add_measurement(sha, "local", "litert 1", "s", result, 0.1)
    store.close()

    assert main(["predictor", "fit", "local", "--out", str(runs)]) == 0
    out = capsys.readouterr().out
    assert f"{len(WIDTHS)} networks" in out
    saved = predictor_path(runs, "local")
    assert saved.is_file()

    assert main(["predictor", "show", "local", "--out", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "whole-model only" in out and "CONV_2D" in out and "within +/-10%" in out

    export = tmp_path / "export.json"
    assert main(["predictor", "export", "local", "--out", str(runs), "--to", str(export)]) == 0
    capsys.readouterr()
    assert json.loads(export.read_text())["device"] == "local"

    # A second runs directory starts calibrated from the export (profiles included).
    other = _fit(measured, models, WIDTHS[:3])
    other_file = other.save(tmp_path / "other.json")
    assert main(["predictor", "fit", "local", "--out", str(runs), "--from",
                 str(other_file)]) == 0
    assert "per-kernel" in capsys.readouterr().out

    assert main(["predictor", "show", "nowhere", "--out", str(runs)]) != 0
    err = capsys.readouterr().err
    assert "local" in err  # names the devices the store knows
