"""TFLite export: fused int8 LSTM, metadata inside the file, crashes as errors, C arrays."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device_agent.errors import WorkerCrashed, WorkerTimedOut
from host.errors import ConfigError, HilnasError
from host.export import tflite as tflite_mod
from host.export.carray import c_array_source, write_c_array
from host.export.evaluate import predict_tflite, tflite_outputs
from host.export.tflite import ConversionError, convert_many, io_types, model_ops, read_metadata
from host.spaces import BioNetArch, build_keras_model

META = {"preset": "aami5", "classes": ["N", "S", "V", "F", "Q"], "window": 64, "lead": "MLII"}


@pytest.fixture(scope="module")
def converted() -> tuple[object, dict[str, bytes], np.ndarray]:
    model = build_keras_model(BioNetArch(1, 1, 4), 64, 1, 5, seed=0)
    rep = np.random.default_rng(0).standard_normal((40, 64, 1)).astype(np.float32)
    models = convert_many(model, ["float32", "dynamic", "int8"], rep, metadata=META)
    return model, models, rep


def test_int8_has_fused_lstm_and_int8_io(
    converted: tuple[object, dict[str, bytes], np.ndarray],
) -> None:
    _, models, _ = converted
    ops = model_ops(models["int8"])
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops
    assert "WHILE" not in ops
    assert io_types(models["int8"]) == {"inputs": ["int8"], "outputs": ["int8"]}
    assert io_types(models["float32"]) == {"inputs": ["float32"], "outputs": ["float32"]}
    assert len(models["int8"]) < len(models["dynamic"]) < len(models["float32"])


def test_metadata_roundtrip(converted: tuple[object, dict[str, bytes], np.ndarray]) -> None:
    _, models, _ = converted
    for mode, buf in models.items():
        meta = read_metadata(buf)
        assert meta["classes"] == META["classes"] and meta["window"] == 64
        assert meta["quantization"] == mode


def test_int8_predictions_follow_float(
    converted: tuple[object, dict[str, bytes], np.ndarray],
) -> None:
    model, models, rep = converted
    keras_out = np.asarray(model.predict(rep, verbose=0))  # type: ignore[attr-defined]
    float_out = tflite_outputs(models["float32"], rep)
    int8_out = tflite_outputs(models["int8"], rep)
    assert np.abs(float_out - keras_out).max() < 1e-4
    assert (predict_tflite(models["float32"], rep) == keras_out.argmax(axis=1)).all()
    # an untrained model's softmax is nearly flat, so compare scores, not argmax: int8
    # outputs step by 1/256, and quantization error accumulates through an untrained
    # network (weights unseeded here, so allow a few tens of output steps at worst)
    assert np.abs(int8_out - float_out).mean() < 0.03
    assert np.abs(int8_out - float_out).max() < 0.1
    assert np.allclose(int8_out.sum(axis=1), 1.0, atol=0.05)


def test_bad_requests_and_crashes_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_keras_model(BioNetArch(0, 1, 4), 32, 1, 2)
    with pytest.raises(ConfigError, match="representative"):
        tflite_mod.convert(model, "int8")
    with pytest.raises(ConfigError, match="mode: unknown 'int4'"):
        tflite_mod.convert(model, "int4")
    # A converter that dies by a signal (as the Keras 3 LSTM int8 path does) is reported.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nkill -SEGV $$\n")
    fake.chmod(0o755)
    monkeypatch.setattr(tflite_mod.sys, "executable", str(fake))
    with pytest.raises(ConversionError, match="crashed \\(SIGSEGV\\)") as info:
        tflite_mod.convert(model, "float32")
    assert isinstance(info.value, HilnasError)


@pytest.mark.parametrize(
    ("sig", "cause", "message"),
    [
        ("SIGSEGV", WorkerCrashed, r"the TFLite converter crashed \(SIGSEGV\)"),
        ("SIGSTOP", WorkerTimedOut, r"did not finish within 5 s and was killed"),
    ],
)
def test_converter_crash_or_hang_is_a_conversion_error_by_type(
    tmp_path: Path, sig: str, cause: type[Exception], message: str
) -> None:
    """A real converter process dies (or stops) in the middle of a request."""
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"_test_signal": sig}))  # run_request's test hook
    converter = tflite_mod._converter()
    restarts = converter.restarts
    with pytest.raises(ConversionError, match=message) as info:
        tflite_mod._run_child(request, 5.0)
    # The worker raised its typed error, and _run_child turned that type into this one.
    assert isinstance(info.value.__context__, cause)
    if sig == "SIGSEGV":
        assert info.value.__context__.signal == "SIGSEGV"  # type: ignore[attr-defined]
    else:
        assert info.value.__context__.deadline_s == 5.0  # type: ignore[attr-defined]
    assert converter.restarts == restarts + 1


def test_garbage_model_file_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConversionError, match="failed"):
        tflite_mod.convert(bad, "float32", timeout=120)


def test_c_array_header(tmp_path: Path) -> None:
    payload = bytes(range(40))
    path = write_c_array(payload, tmp_path / "m.h", "ecg_model")
    text = path.read_text()
    assert "HILNAS_ALIGNAS(16) const unsigned char ecg_model[]" in text
    assert "const unsigned int ecg_model_len = 40;" in text
    assert text.count("0x") == 40
    with pytest.raises(ConfigError, match="C identifier"):
        c_array_source(payload, "1bad")
    compiler = shutil.which("g++")
    if compiler:
        main = tmp_path / "main.cc"
        main.write_text(
            '#include "m.h"\n#include <cstdint>\n'
            "int main() { return (ecg_model_len == 40 && ecg_model[39] == 39 && "
            "(reinterpret_cast<std::uintptr_t>(ecg_model) % 16) == 0) ? 0 : 1; }\n"
        )
        subprocess.run([compiler, "-std=c++17", "-o", str(tmp_path / "a"), str(main)], check=True)
        assert subprocess.run([str(tmp_path / "a")]).returncode == 0
    assert sys.platform  # the header itself was checked above either way
