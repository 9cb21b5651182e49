"""The TFLM deployability gate for microcontroller devices."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("tflite_micro")

from device_agent.errors import CandidateRejected  # noqa: E402
from device_agent.mcu.boards import load_board  # noqa: E402
from host.hw.tflm_gate import check_keras, check_tflite, require_deployable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "device_agent"))
from mcu_models import model_path  # noqa: E402


def test_a_small_ecg_model_passes() -> None:
    r = check_tflite(model_path("ecg").read_bytes(), "nano33ble")
    assert r.ok and not r.reasons
    assert r.arena_bytes and r.arena_bytes <= r.arena_budget_bytes == 196608
    assert r.arena_cortex_m_estimate is not None and r.arena_cortex_m_estimate < r.arena_bytes
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in r.ops
    assert require_deployable(model_path("ecg").read_bytes()).ok


def test_each_reason_is_reported() -> None:
    r = check_tflite(model_path("leaky").read_bytes())
    assert not r.ok and r.reason_kinds == ("ops",) and r.unsupported_ops == ("LEAKY_RELU",)
    r = check_tflite(model_path("bigarena").read_bytes())
    assert r.reason_kinds == ("arena",) and r.arena_bytes and r.arena_bytes > 196608
    small_flash = load_board("nano33ble").with_limits(flash_bytes=600_000)
    r = check_tflite(model_path("fc50k").read_bytes(), small_flash)
    assert r.reason_kinds == ("flash",)
    r = check_tflite(b"not a model at all")
    assert r.reason_kinds == ("tflm",)
    with pytest.raises(CandidateRejected, match="LEAKY_RELU"):
        require_deployable(model_path("leaky").read_bytes())


@pytest.mark.slow
def test_untrained_keras_candidate_is_gated_before_training() -> None:
    bionet = pytest.importorskip("host.spaces.bionet")
    model = bionet.build_keras_model(bionet.BioNetArch(1, 1, 4), 256, 1, 2, batch_size=1, seed=0)
    assert check_keras(model, "nano33ble").ok
