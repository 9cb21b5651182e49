"""The hls-csim backend: real bit-exact outputs, estimated figures, stand-in flag."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from device_agent.backends import get_backend_class
from device_agent.fpga.reference import reference_outputs
from device_agent.types import MeasureSettings, Source
from host.export.hls.demo import build_demo_tflite

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 256, 1)).astype(np.float32)
    y = (x[:, :, 0].std(axis=1) > 1.0).astype(np.int64)
    out = tmp_path_factory.mktemp("m") / "m.tflite"
    return build_demo_tflite(out, x, y, 2, epochs=0)


def test_serves_bit_exact_outputs_and_estimated_figures(model, tmp_path):
    backend = get_backend_class("hls-csim")(board="ultra96-v2", work_dir=tmp_path)
    info = backend.describe()
    assert info.is_stand_in and info.backend == "hls-csim"
    assert info.power_sensor.source is Source.ESTIMATED
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    backend.check_model(model)
    rng = np.random.default_rng(1)
    inputs = [(rng.integers(-128, 128, size=(1, 256, 1), dtype=np.int8),) for _ in range(20)]
    outputs = backend.validate(model, sha, inputs)
    want = reference_outputs(model, np.stack([x for (x,) in inputs]))
    np.testing.assert_array_equal(np.stack([y[0] for (y,) in outputs]), want)
    m = backend.measure(model, sha, MeasureSettings(warmup_runs=0, min_runs=1, max_runs=1))
    assert m.latency.source is Source.ESTIMATED and m.latency.p50_us > 0
    assert m.power.mean_power_mw.source is Source.ESTIMATED
    assert m.power.energy_per_inference_uj.source is Source.ESTIMATED
    prof = backend.profile(model, sha, MeasureSettings())
    assert prof.source is Source.ESTIMATED and prof.ops[0].op == "dwconv"
    backend.close()
