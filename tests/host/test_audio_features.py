"""The audio front end: shapes, configuration errors, saving, conversion, LiteRT vs host, TFLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from host.data.audio_features import (
    FEATURE_TOLERANCE,
    FLOAT_SCOPE,
    REPRESENTATIONS,
    TFLM_UNSUPPORTED_OPS,
    FeatureSpec,
    compute_features,
    feature_shape,
    featurize,
    frontend,
    frontend_cost,
    frontend_ops,
    input_buffer_bytes,
)
from host.errors import ConfigError, MeasurementFailed
from host.export.flatbuf import io_types, model_ops
from host.train.tfenv import import_keras, import_tf

RATE = 4000  # FSDD is 8 kHz; half of it keeps the models small and the test quick
N = RATE // 2  # 0.5 s windows
SPECS = {rep: FeatureSpec(rep, RATE) for rep in REPRESENTATIONS}


def _window(x: np.ndarray) -> np.ndarray:
    w = np.zeros(N, np.float32)
    w[: min(N, len(x))] = x[:N]
    return w


@pytest.fixture(scope="module")
def clips(data_dir: Path) -> np.ndarray:
    """40 FSDD clips (every digit, several speakers) at 4 kHz, 0.5 s each, in [-1, 1]."""
    import scipy.io.wavfile
    import scipy.signal

    files = sorted((data_dir / "fsdd" / "recordings").glob("*.wav"))
    if len(files) < 40:
        pytest.skip("the FSDD recordings are not in HILNAS_DATA_DIR")
    out = []
    for f in files[:: len(files) // 40][:40]:
        rate, x = scipy.io.wavfile.read(f)
        audio = x.astype(np.float32) / 32768.0
        out.append(_window(scipy.signal.resample_poly(audio, RATE, rate).astype(np.float32)))
    return np.stack(out)


def _model(spec: FeatureSpec, keras: Any) -> Any:
    inp = keras.Input((N,))
    x = frontend(spec, keras)(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))


@pytest.fixture(scope="module")
def converted(
    clips: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Any, bytes]]:
    """Per representation: a Keras model and its "int8-float-input" conversion.

    Custom layers go to the converter as a SavedModel (see `host.export.tflite.convert`),
    with a batch-1 signature for static shapes.
    """
    from host.export.tflite import convert

    tf, keras = import_tf(), import_keras()
    keras.utils.set_random_seed(0)
    out = {}
    for rep, spec in SPECS.items():
        model = _model(spec, keras)
        path = tmp_path_factory.mktemp(f"saved-{rep}")
        fn = tf.function(model, input_signature=[tf.TensorSpec((1, N), tf.float32)])
        tf.saved_model.save(model, str(path), signatures=fn.get_concrete_function())
        out[rep] = (model, convert(str(path), "int8-float-input", clips[:20]))
    return out


def _interpreter(buf: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=buf, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def _ops(it: Any) -> list[dict[str, Any]]:
    return [op for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]


# ---- specs, shapes, errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [*SPECS.values(), FeatureSpec("mfcc", RATE, deltas=False), FeatureSpec("mel", 8000, 25, 10)],
    ids=[*SPECS, "mfcc-no-deltas", "mel-8k-25ms"],
)
def test_feature_shape_is_the_layers_output(spec: FeatureSpec) -> None:
    keras = import_keras()
    audio = np.random.default_rng(0).uniform(-1, 1, (3, N)).astype(np.float32)
    feats = featurize(audio, spec, batch_size=2)
    assert feats.shape == (3, *feature_shape(spec, N)) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    layer = frontend(spec, keras)
    assert tuple(layer.compute_output_shape((None, N))) == (None, *feature_shape(spec, N))


def test_spec_arithmetic_and_json() -> None:
    spec = FeatureSpec("mfcc", 8000, 25.0, 10.0)
    assert (spec.frame_length, spec.frame_step, spec.fft_length) == (200, 80, 256)
    assert FeatureSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert feature_shape(spec, 8000) == (1 + (8000 - 200) // 80, 13, 3)
    assert feature_shape(SPECS["raw"], N) == (N, 1, 1)
    assert feature_shape(SPECS["spectrogram"], N) == (1 + (N - 128) // 64, 65, 1)
    assert feature_shape(SPECS["mel"], N)[1:] == (40, 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"representation": "mfccs"}, "representation: unknown 'mfccs'.*'raw', 'spectrogram'"),
        ({"frame_ms": 1.0, "sample_rate": 4000}, "frame_ms"),
        ({"frame_ms": 16.0, "hop_ms": 20.0}, "hop_ms"),
        ({"representation": "mel", "sample_rate": 4000, "n_mels": 66}, "n_mels"),
        ({"n_mels": 20, "n_mfcc": 21}, "n_mfcc"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"deltas": "yes"}, "deltas"),
    ],
)
def test_bad_specs_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FeatureSpec(**kwargs)


def test_window_shorter_than_a_frame() -> None:
    with pytest.raises(ConfigError, match="window: 100 samples are shorter than one STFT frame"):
        feature_shape(SPECS["mfcc"], 100)
    with pytest.raises(ConfigError, match="window"):
        featurize(np.zeros((1, 100), np.float32), SPECS["mel"])
    assert feature_shape(SPECS["raw"], 100) == (100, 1, 1)


def test_layer_roundtrips_through_keras_save(tmp_path: Path) -> None:
    keras = import_keras()
    spec = FeatureSpec("mfcc", RATE, 32.0, 16.0, 32, 12, True)
    inp = keras.Input((N,))
    model = keras.Model(inp, frontend(spec, keras)(inp))
    path = tmp_path / "frontend.keras"
    model.save(str(path), save_format="keras_v3")
    loaded = keras.models.load_model(str(path), compile=False)
    layer = loaded.layers[1]
    assert type(layer).__name__ == "AudioFrontend" and layer.spec == spec
    assert not layer.trainable and not layer.weights
    assert layer.get_config()["n_mels"] == 32
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (2, N)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# ---- conversion and LiteRT ----------------------------------------------------------------


@pytest.mark.parametrize("rep", REPRESENTATIONS)
def test_float_input_int8_model(rep: str, converted: dict[str, tuple[Any, bytes]]) -> None:
    _, buf = converted[rep]
    assert io_types(buf) == {"inputs": ["float32"], "outputs": ["int8"]}
    ops = set(model_ops(buf))
    if rep != "raw":
        assert {"RFFT2D", "REAL", "IMAG", "LOG"} <= ops
    it = _interpreter(buf)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    conv = [op for op in _ops(it) if op["op_name"] == "CONV_2D"]
    assert conv and all(tensors[i]["dtype"] == np.int8 for i in conv[0]["inputs"][:2])
    # The front end is float (complex inside the FFT) throughout, the network int8, and
    # exactly one QUANTIZE joins them.
    front: list[tuple[str, Any]] = []
    network: list[tuple[str, Any]] = []
    for op in _ops(it):
        out = tensors[op["outputs"][0]]
        (front if f"/{FLOAT_SCOPE}/" in out["name"] else network).append((op["op_name"], out))
    assert all(t["dtype"] in (np.float32, np.complex64) for _, t in front), front
    assert {name for name, _ in front} == frontend_ops(SPECS[rep])
    assert all(t["dtype"] == np.int8 for _, t in network)
    assert [name for name, _ in network].count("QUANTIZE") == 1


@pytest.mark.parametrize("rep", REPRESENTATIONS)
def test_host_features_match_litert_front_end(
    rep: str, clips: np.ndarray, converted: dict[str, tuple[Any, bytes]]
) -> None:
    """featurize (TF eager) vs the front end inside the converted model, on 20 real clips."""
    model, buf = converted[rep]
    spec = SPECS[rep]
    test = clips[20:]
    host = featurize(test, spec)
    it = _interpreter(buf)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    (quantize,) = [
        op for op in _ops(it)
        if op["op_name"] == "QUANTIZE" and tensors[op["inputs"][0]]["dtype"] == np.float32
    ]
    features = quantize["inputs"][0]  # the float features the int8 network is fed
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = out["quantization"]
    keras_out = model.predict(test, verbose=0)
    diffs, out_diffs = [], []
    for i, x in enumerate(test):
        it.set_tensor(inp["index"], x[None])
        it.invoke()
        diffs.append(np.abs(it.get_tensor(features).reshape(host[i].shape) - host[i]).max())
        y = (it.get_tensor(out["index"]).astype(np.float32) - zero) * scale
        out_diffs.append(np.abs(y - keras_out[i]).max())
    assert max(diffs) <= FEATURE_TOLERANCE, (rep, max(diffs))
    assert max(out_diffs) <= 4 * scale, (rep, max(out_diffs), scale)


def test_float_input_mode_without_a_front_end_is_full_int8(clips: np.ndarray) -> None:
    from host.export.tflite import convert

    keras = import_keras()
    inp = keras.Input((64, 1))
    x = keras.layers.Conv1D(4, 5, activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    rep = clips[:20, :64, None]
    buf = convert(model, "int8-float-input", rep)
    assert io_types(buf) == {"inputs": ["float32"], "outputs": ["int8"]}
    assert set(model_ops(buf)) <= {"QUANTIZE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED",
                                   "EXPAND_DIMS"}
    with pytest.raises(ConfigError, match="representative"):
        convert(model, "int8-float-input")


def test_fresh_converter_loads_a_keras_model_with_the_front_end(
    clips: np.ndarray, tmp_path: Path
) -> None:
    """The converter's own entry point, in a new process (a warm one may already know it)."""
    model = _model(SPECS["mel"], import_keras())
    model.save(str(tmp_path / "m.keras"), save_format="keras_v3")
    np.savez(tmp_path / "rep.npz", clips[:4])
    out = tmp_path / "m.tflite"
    (tmp_path / "req.json").write_text(json.dumps({
        "model": str(tmp_path / "m.keras"), "modes": {"int8-float-input": str(out)},
        "representative": str(tmp_path / "rep.npz"), "metadata": None, "batch_size": 1,
    }))
    proc = subprocess.run(
        [sys.executable, "-m", "host.export.tflite", str(tmp_path / "req.json")],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "RFFT2D" in model_ops(out.read_bytes())


def test_frontend_ops_table_matches_float_conversions() -> None:
    """Every variant, mfcc without deltas included, converted on its own (float32)."""
    tf = import_tf()
    variants = [*SPECS.values(), FeatureSpec("mfcc", RATE, deltas=False)]
    for spec in variants:
        fn = tf.function(
            lambda x, spec=spec: compute_features(tf, spec, x),
            input_signature=[tf.TensorSpec((1, N), tf.float32)],
        )
        conv = tf.lite.TFLiteConverter.from_concrete_functions(
            [fn.get_concrete_function()], tf.Module()
        )
        assert set(model_ops(bytes(conv.convert()))) == frontend_ops(spec), spec


# ---- TFLite Micro -------------------------------------------------------------------------

_TFLM_PROBE = """
import json, sys
from device_agent.errors import CandidateRejected
from device_agent.mcu import tflm_host
out = {}
for path in sys.argv[1:]:
    try:
        tflm_host.allocate(open(path, "rb").read(), 16 * 1024 * 1024)
        out[path] = "ok"
    except CandidateRejected as exc:
        out[path] = str(exc)
print(json.dumps(out))
"""


def test_tflm_refuses_the_front_end(
    converted: dict[str, tuple[Any, bytes]], clips: np.ndarray, tmp_path: Path
) -> None:
    from host.compress.tflm_run import run_tflm

    # The whole converted model, through the project's TFLM runner (a child process).
    with pytest.raises(MeasurementFailed, match="registration from op code RFFT2D"):
        run_tflm([(converted["mfcc"][1], 0)], clips[:1], timing_runs=1)
    # Which operators exactly: one-operator models for the complex ones, and the rest of the
    # front end (framing and window; mel, log, DCT, deltas) as two models without them.
    tf = import_tf()
    spec = SPECS["mfcc"]

    def after_fft(p: Any) -> Any:
        mel = tf.signal.linear_to_mel_weight_matrix(40, 65, RATE, 125.0, RATE / 2)
        from host.data import audio_features as af

        log_mel = tf.math.log(tf.tensordot(p * p + p, mel, 1) + af.LOG_FLOOR)
        c = tf.tensordot(log_mel, tf.constant(af.dct_matrix(40, 13)), 1)
        d1 = af._deltas(tf, c)
        return tf.stack([c, d1, af._deltas(tf, d1)], -1)

    probes = {
        "RFFT2D": (tf.signal.rfft2d, tf.TensorSpec((1, 8, 16), tf.float32)),
        "REAL": (tf.math.real, tf.TensorSpec((1, 8, 9), tf.complex64)),
        "IMAG": (tf.math.imag, tf.TensorSpec((1, 8, 9), tf.complex64)),
        "framing": (
            lambda x: tf.signal.frame(x, spec.frame_length, spec.frame_step)
            * tf.signal.hann_window(spec.frame_length),
            tf.TensorSpec((1, N), tf.float32),
        ),
        "after_fft": (after_fft, tf.TensorSpec((1, 30, 65), tf.float32)),
    }
    paths, covered = {}, set()
    for name, (fn, sig) in probes.items():
        cf = tf.function(fn, input_signature=[sig]).get_concrete_function()
        buf = bytes(tf.lite.TFLiteConverter.from_concrete_functions([cf], tf.Module()).convert())
        covered |= set(model_ops(buf))
        paths[name] = tmp_path / f"{name}.tflite"
        paths[name].write_bytes(buf)
    assert covered == frontend_ops(spec)  # every operator of the front end is probed
    proc = subprocess.run(
        [sys.executable, "-c", _TFLM_PROBE, *map(str, paths.values())],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = {name: json.loads(proc.stdout)[str(p)] for name, p in paths.items()}
    for op in ("RFFT2D", "REAL", "IMAG"):
        assert f"registration from op code {op}" in result[op], result[op]
    assert result["framing"] == "ok" and result["after_fft"] == "ok", result
    refused = {op for op in ("RFFT2D", "REAL", "IMAG") if result[op] != "ok"}
    assert refused == TFLM_UNSUPPORTED_OPS
    assert TFLM_UNSUPPORTED_OPS <= frontend_ops(SPECS["spectrogram"])
    assert not TFLM_UNSUPPORTED_OPS & frontend_ops(SPECS["raw"])


# ---- costs --------------------------------------------------------------------------------


def test_frontend_cost_grows_with_frames_and_mels() -> None:
    mel = SPECS["mel"]
    short, long = frontend_cost(mel, N), frontend_cost(mel, 2 * N)
    assert long.macs > short.macs and long.feature_buffer_bytes > short.feature_buffer_bytes
    wide = frontend_cost(FeatureSpec("mel", RATE, n_mels=64), N)
    assert wide.macs > short.macs
    assert short.feature_buffer_bytes == 4 * int(np.prod(feature_shape(mel, N)))
    assert short.source.startswith("estimated")
    mfcc = frontend_cost(SPECS["mfcc"], N)
    assert mfcc.macs > frontend_cost(FeatureSpec("mfcc", RATE, deltas=False), N).macs
    assert mfcc.macs > short.macs  # the DCT and deltas on top of the same mel bank
    # the spectrogram's bins per frame: window, FFT 2 N log2 N, power, log
    frames = feature_shape(SPECS["spectrogram"], N)[0]
    assert frontend_cost(SPECS["spectrogram"], N).macs == frames * (128 + 2 * 128 * 7 + 3 * 65)
    raw = frontend_cost(SPECS["raw"], N)
    assert (raw.macs, raw.feature_buffer_bytes) == (0, 0)
    assert input_buffer_bytes(SPECS["raw"], N) == 2 * N
    assert input_buffer_bytes(mel, N) == 2 * N + short.feature_buffer_bytes
    assert input_buffer_bytes(mel, N, sample_bytes=4) == 4 * N + short.feature_buffer_bytes
