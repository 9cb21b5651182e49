"""ECG models for unseen patients (issue 18): beat-aligned windows, RR features as a second
input, per-patient normalization, augmentation, inter-patient metrics, and a two-input
int8 model through LiteRT, the local agent's Validate and the emulated Nano 33 BLE.

Everything runs on real MIT-BIH records; the two-input model is built and trained in a
child process (TensorFlow stays out of the test process) and cached in the temp dir.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from child_models import build_once  # type: ignore[import-not-found]

from host.data import EcgDatasetConfig, load_ecg_dataset, load_record
from host.data.beats import RR_FEATURES, detect_beats, match_beats, rr_features
from host.data.classes import resolve_scheme
from host.data.windows import make_beat_windows, normalize, running_stats
from host.errors import ConfigError
from host.train.metrics import inter_patient_metrics

BEAT_DATA: dict[str, Any] = {
    "records": ("100", "119", "201", "203", "208", "213", "223", "106"),
    "preset": "normal-vs-ectopic",
    "alignment": "beat",
    "rr_features": True,
    "normalization": "running",
    "sample_rate": 180.0,
    "window": 128,
    "max_windows_per_record": 80,
    "val_fraction": 0.25,
}


# --------------------------------------------------------------------------- RR features
def test_rr_features_of_a_premature_beat() -> None:
    fs = 100.0
    beats = np.arange(0, 3000, 100)  # one beat a second
    beats[15] -= 40  # beat 15 comes 0.4 s early: a short RR before, a long one after
    f = rr_features(beats, fs)
    assert f.shape == (len(beats), len(RR_FEATURES))
    names = {n: i for i, n in enumerate(RR_FEATURES)}
    assert f[15, names["rr_prev_s"]] == pytest.approx(0.6)
    assert f[15, names["rr_next_s"]] == pytest.approx(1.4)
    # The log ratios are centred on 0 for regular beats and negative for a premature one.
    assert abs(f[5, names["log_rr_prev_over_average"]]) < 0.05
    assert f[15, names["log_rr_prev_over_average"]] < np.log(0.7)
    assert f[15, names["log_rr_prev_over_next"]] == pytest.approx(np.log(0.6 / 1.4), abs=1e-4)
    # Edges take their neighbour's interval rather than a zero.
    assert f[0, names["rr_prev_s"]] == pytest.approx(1.0)
    assert np.isfinite(rr_features(np.array([50]), fs)).all()


def test_running_normalization_uses_only_the_past() -> None:
    rng = np.random.default_rng(0)
    sig = rng.normal(size=5000).astype(np.float32)
    starts = np.array([1000, 2000])
    windows = sig[starts[:, None] + np.arange(100)]
    a = normalize(windows, "running", sig, starts, fs=100.0)
    later = sig.copy()
    later[2200:] *= 50  # everything after the second window ends
    b = normalize(windows, "running", later, starts, fs=100.0)
    np.testing.assert_array_equal(a, b)
    mu, sd = running_stats(sig, np.array([2100]), 100.0)
    np.testing.assert_allclose([mu[0], sd[0]], [sig[1100:2100].mean(), sig[1100:2100].std()],
                               rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- beats on records
def test_beat_windows_are_centred_on_the_r_peak(data_dir: Path) -> None:
    rec = load_record("100")
    scheme = resolve_scheme("normal-vs-ectopic")
    x, y, rr, pos = make_beat_windows(rec, scheme, 128, "running", 180.0)
    assert x.shape[1] == 128 and len(x) == len(y) == len(rr) == len(pos) > 2000
    # Record 100: its 33 A beats and its one V beat are ectopic, the rest normal.
    assert int((y == 1).sum()) == 34
    peak = np.abs(x - np.median(x, axis=1, keepdims=True)).argmax(axis=1)
    assert np.mean(np.abs(peak - 64) <= 5) > 0.95


def test_xqrs_finds_the_annotated_beats(data_dir: Path) -> None:
    from host.data.beats import annotated_beats
    from host.data.windows import resample

    rec = load_record("100")
    sig, ann, fs = resample(rec, 180.0)
    ref, _ = annotated_beats(ann, rec.ann_symbols)
    det = detect_beats(sig, fs)
    match = match_beats(ref, det, fs)
    assert match.sensitivity > 0.99 and match.positive_predictivity > 0.99
    # A detector shifted by 200 ms matches nothing within AAMI's 150 ms window.
    assert match_beats(ref, det + int(0.2 * fs), fs).sensitivity < 0.05


def test_beat_dataset_has_two_inputs_and_patient_sides(data_dir: Path, tmp_path: Path) -> None:
    ds = load_ecg_dataset(EcgDatasetConfig(cache_dir=str(tmp_path), **BEAT_DATA))
    assert ds.aux_train is not None and ds.aux_val is not None and ds.aux_test is not None
    assert ds.aux_train.shape == (len(ds.y_train), len(RR_FEATURES))
    val = ds.inputs("val")
    assert isinstance(val, list) and val[0] is ds.x_val and val[1] is ds.aux_val
    assert set(ds.records["train"]).isdisjoint(ds.records["val"] + ds.records["test"])
    assert "held-out patient records" in ds.selection
    meta = ds.metadata()
    assert meta["alignment"] == "beat" and meta["rr_features"] == list(RR_FEATURES)
    # The cache keeps the second input.
    again = load_ecg_dataset(EcgDatasetConfig(cache_dir=str(tmp_path), **BEAT_DATA))
    np.testing.assert_array_equal(again.aux_test, ds.aux_test)


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"rr_features": True}, "alignment = 'beat'"),
        ({"alignment": "beat", "stride": 10}, "stride"),
        ({"alignment": "beats"}, "alignment"),
        ({"val_fraction": 0.6}, "val_fraction"),
        ({"alignment": "beat", "preset": "ventricular"}, "beat-code preset"),
        ({"normalization": "patient"}, "normalization"),
    ],
)
def test_bad_beat_options_name_themselves(bad: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        EcgDatasetConfig(**bad)


def test_half_space_says_it_takes_one_input() -> None:
    from host.spaces.base import InputSpec, get_space

    with pytest.raises(ConfigError, match="rr_features"):
        get_space("half", InputSpec(128, 1, 2, aux_features=len(RR_FEATURES)))
    space = get_space("bionet", InputSpec(128, 1, 2, aux_features=len(RR_FEATURES)),
                      max_params=None)
    arch = space.from_key("bionet-b0-x1-l16")
    plain = get_space("bionet", InputSpec(128, 1, 2), max_params=None).costs(arch)
    # The RR branch: 8 -> 8 ReLU units, and its own logits (8 x 2 + 2) added to the LSTM's.
    assert space.costs(arch).params - plain.params == 8 * 8 + 8 + 8 * 2 + 2
    assert space.costs(arch).input_buffer_bytes == 128 + 8


# --------------------------------------------------------------------------- metrics
def test_inter_patient_metrics() -> None:
    names = ["N", "S", "V", "F", "Q"]
    y = np.array([0] * 8 + [1] * 4 + [2] * 4)
    p = np.array([0] * 6 + [1, 2] + [1, 1, 0, 0] + [2, 2, 2, 0])
    m = inter_patient_metrics(y, p, names)
    assert m["per_class"]["S"]["sensitivity"] == pytest.approx(0.5)
    assert m["per_class"]["S"]["positive_predictivity"] == pytest.approx(2 / 3)
    assert m["per_class"]["V"]["sensitivity"] == pytest.approx(0.75)
    assert m["per_class"]["V"]["positive_predictivity"] == pytest.approx(0.75)
    assert m["j_index"] == pytest.approx((0.5 + 0.75 + 2 / 3 + 0.75) / 4)
    # Normal vs anomalous: 6 of 8 normal kept; 5 of 8 anomalous called anomalous.
    assert m["normal_vs_anomalous_balanced_accuracy"] == pytest.approx((6 / 8 + 5 / 8) / 2)


# --------------------------------------------------------------------------- augmentation
def test_augmentation_never_touches_validation_or_test(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tf_keras")
    from host.spaces.base import get_space
    from host.tasks.ecg import EcgClassification
    from host.train import TrainConfig, train_candidate
    from host.train.augment import Augmentation

    cfg = EcgDatasetConfig(cache_dir=str(tmp_path), **BEAT_DATA)
    ds = load_ecg_dataset(cfg)
    before = {k: getattr(ds, k).copy() for k in ("x_val", "x_test", "aux_val", "aux_test")}
    seen: list[np.ndarray] = []
    original = Augmentation.apply

    def spy(self: Augmentation, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen.append(np.array(x, copy=True))
        out = original(self, x, rng)
        assert not np.array_equal(out, x)  # it does perturb what it is given
        return out

    task = EcgClassification(cfg)
    space = get_space("bionet", task.input_spec(), max_params=None)
    augment = {"amplitude": 0.1, "baseline": 0.1, "noise": 0.02, "shift": 3}
    try:
        Augmentation.apply = spy  # type: ignore[method-assign]
        train_candidate(space, space.from_key("bionet-b0-x1-l16"), task, ds,
                        TrainConfig(epochs=1, augment=augment))
    finally:
        Augmentation.apply = original  # type: ignore[method-assign]
    assert seen, "augmentation was never applied"
    batches = np.concatenate(seen)
    # Every augmented window is a training window (Keras may draw a batch twice to learn its
    # shapes), every training window was augmented, and none is a validation or test window.
    train_rows = {r.tobytes() for r in ds.x_train}
    assert {r.tobytes() for r in batches} == train_rows
    other = {r.tobytes() for r in np.concatenate([ds.x_val, ds.x_test])}
    assert not any(r.tobytes() in other for r in batches)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(ds, k), v)
    with pytest.raises(ConfigError, match="augment"):
        TrainConfig(augment={"gain": 0.1})


# --------------------------------------------------------------------------- a two-input model
_BUILD = r"""
import json, sys
import numpy as np
from host.data import EcgDatasetConfig, load_ecg_dataset
from host.export.tflite import convert_many
from host.spaces.base import get_space
from host.tasks.ecg import EcgClassification
from host.train import TrainConfig, train_candidate
out, cache, data = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
cfg = EcgDatasetConfig(cache_dir=cache, **{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in data.items()})
ds = load_ecg_dataset(cfg)
task = EcgClassification(cfg)
space = get_space("bionet", task.input_spec(), max_params=None)
arch = space.from_key("bionet-b0-x1-l16")
result = train_candidate(space, arch, task, ds, TrainConfig(epochs=8, patience=None))
export = space.export_model(result.model, arch, task)
models = convert_many(export, ["float32", "int8"], task.representative(ds),
                      metadata=ds.metadata())
for mode, buf in models.items():
    open(f"{out}/m.{mode}", "wb").write(buf)
keras_out = result.model.predict(ds.inputs("test"), verbose=0)
np.save(f"{out}/m.keras.npy", keras_out)
"""


@pytest.fixture(scope="module")
def beat_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("beat-model")
    final = build_once("hilnas-beat-model", _BUILD, [str(tmp), json.dumps(BEAT_DATA)], tmp,
                       timeout=900)
    ds = load_ecg_dataset(EcgDatasetConfig(cache_dir=str(tmp), **BEAT_DATA))
    return {
        "int8": (final / "m.int8").read_bytes(),
        "float32": (final / "m.float32").read_bytes(),
        "keras": np.load(final / "m.keras.npy"),
        "ds": ds,
        "tmp": tmp,
    }


def test_two_input_model_runs_in_litert_with_its_inputs_paired(beat_model: dict[str, Any]) -> None:
    from host.export.evaluate import evaluate_tflite, tflite_outputs
    from host.export.flatbuf import io_tensors

    ds = beat_model["ds"]
    io = io_tensors(beat_model["int8"])
    shapes = sorted(tuple(t["shape"]) for t in io["inputs"])
    assert shapes == [(1, 8), (1, 128, 1)]
    assert all(t["dtype"] == "int8" for t in io["inputs"])
    # The float model reproduces Keras: the window and the RR features reach the right inputs.
    out = tflite_outputs(beat_model["float32"], ds.inputs("test"))
    np.testing.assert_allclose(out, beat_model["keras"], atol=1e-4)
    # Swapping the two arrays is caught by shape, not silently fed.
    with pytest.raises(ConfigError, match="do not fit"):
        tflite_outputs(beat_model["float32"], [ds.x_test[:, :64], ds.aux_test])
    q = evaluate_tflite(beat_model["int8"], ds, side="test", isolate=True)
    f = evaluate_tflite(beat_model["float32"], ds, side="test", isolate=False)
    assert q["n"] == len(ds.y_test)
    assert "normal_vs_anomalous_balanced_accuracy" in q["inter_patient"]
    # int8 follows Keras wherever Keras is not on the fence (an LSTM's int8 outputs move a
    # few hundredths; a beat scored 0.5 +- 0.1 can flip, and says nothing about pairing).
    keras_out = beat_model["keras"]
    confident = np.abs(keras_out[:, 1] - 0.5) > 0.2
    assert confident.sum() > 20
    agree = np.mean(tflite_outputs(beat_model["int8"], ds.inputs("test")).argmax(1)[confident]
                    == keras_out.argmax(1)[confident])
    assert agree > 0.9, f"int8 agrees with Keras on {agree:.1%} of confident beats"
    assert abs(q["balanced_accuracy"] - f["balanced_accuracy"]) < 0.1


def test_two_input_model_validates_on_the_local_agent_and_the_emulated_board(
    beat_model: dict[str, Any],
) -> None:
    from host.fleet import open_device
    from host.fleet.validation import validate_on_device
    from host.tasks.ecg import EcgClassification

    ds = beat_model["ds"]
    task = EcgClassification(ds.config)
    x = [ds.x_test[:40], ds.aux_test[:40]]
    y = ds.y_test[:40]
    with open_device("local") as device:
        local = validate_on_device(device, beat_model["int8"], x, y, task)
    assert local.n_windows == 40
    assert local.identical_windows == 40  # the agent's LiteRT, same inputs: bit for bit
    with open_device("local:mcu-emulator?board=nano33ble") as board:
        mcu = validate_on_device(board, beat_model["int8"], x, y, task)
    assert mcu.n_windows == 40 and mcu.reference_kernels is not None
    assert mcu.reference_kernels["same_prediction_share"] >= 0.95


def test_evaluate_cli_on_detected_beats(beat_model: dict[str, Any], tmp_path: Path) -> None:
    from host.cli import main

    path = tmp_path / "beat.tflite"
    path.write_bytes(beat_model["int8"])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["evaluate", str(path), "--records", "100,119", "--detect", "--json"])
    assert rc == 0
    metrics = json.loads(buf.getvalue())
    det = metrics["detection"]
    assert det["detector"] == "wfdb.processing.XQRS"
    assert det["sensitivity"] > 0.98
    # Only detections that match a labelled reference beat (with a whole window) are scored.
    assert 0.95 * det["matched_beats"] < metrics["n"] <= det["matched_beats"]
    assert set(metrics["per_record"]) == {"100", "119"}


def test_unseen_records_leave_out_training_validation_and_paced(beat_model: dict[str, Any]) -> None:
    from host.cli.evaluate import PACED_RECORDS, unseen_records

    meta = beat_model["ds"].metadata()
    unseen = unseen_records(meta, None)
    seen = set(meta["records"]["train"]) | set(meta["records"]["val"])
    assert unseen and seen.isdisjoint(unseen) and set(PACED_RECORDS).isdisjoint(unseen)
    assert set(meta["records"]["test"]) <= set(unseen)


def test_hls_generator_says_it_has_no_second_input(beat_model: dict[str, Any]) -> None:
    from device_agent.errors import CandidateRejected
    from device_agent.fpga.parser import parse_tflite

    with pytest.raises(CandidateRejected, match="2 inputs .* no port in the HLS"):
        parse_tflite(beat_model["int8"])
