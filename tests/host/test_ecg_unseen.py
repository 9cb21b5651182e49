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
from host.data.beats import (
    RR_FEATURES,
    RR_FEATURES_V1,
    detect_beats,
    match_beats,
    rr_features,
)
from host.data.classes import resolve_scheme
from host.data.windows import make_beat_windows, normalize, running_stats, subtract_template
from host.errors import ConfigError
from host.train.augment import Augmentation
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


def test_rr_irregularity_tells_fibrillation_from_an_isolated_premature_beat() -> None:
    fs = 100.0
    rng = np.random.default_rng(0)
    regular = np.arange(0, 6000, 100)
    premature = regular.copy()
    premature[30] -= 40
    # Atrial fibrillation: every interval drawn anew, 0.5-1.1 s.
    fibrillation = np.cumsum(rng.integers(50, 110, 60))
    col = RR_FEATURES.index("rr_irregularity")
    assert np.allclose(rr_features(regular, fs)[:, col], 0.0)
    f_pre = rr_features(premature, fs)[:, col]
    f_af = rr_features(fibrillation, fs)[:, col]
    # The premature beat's own prematurity shows, but far below a fibrillating rhythm's,
    # and ten beats later it has left the local window.
    assert 0.0 < f_pre[30] < 0.1 < np.median(f_af[10:])
    assert f_pre[45] == pytest.approx(0.0)
    # Causal: a beat's irregularity does not depend on the beats after it.
    assert rr_features(fibrillation[:40], fs)[:, col] == pytest.approx(f_af[:40])


def test_rr_feature_names_pick_and_order_columns() -> None:
    beats = np.cumsum(np.random.default_rng(1).integers(60, 120, 50))
    full = rr_features(beats, 100.0)
    names = ("rr_irregularity", "rr_prev_s")
    picked = rr_features(beats, 100.0, names)
    np.testing.assert_array_equal(picked[:, 0], full[:, RR_FEATURES.index("rr_irregularity")])
    np.testing.assert_array_equal(picked[:, 1], full[:, 0])
    np.testing.assert_array_equal(rr_features(beats, 100.0, RR_FEATURES_V1), full[:, :8])
    with pytest.raises(ConfigError, match="rr_jitter"):
        rr_features(beats, 100.0, ("rr_prev_s", "rr_jitter"))


def test_old_models_get_the_rr_features_they_were_trained_with() -> None:
    from host.export.evaluate import config_from_metadata

    new = EcgDatasetConfig(alignment="beat", rr_features=True)
    old = EcgDatasetConfig(alignment="beat", rr_features=True, rr_feature_names=RR_FEATURES_V1)
    assert (new.n_aux_features, old.n_aux_features) == (9, 8)
    # Different inputs, different cached arrays.
    assert new.key_fields()["rr_feature_names"] != old.key_fields()["rr_feature_names"]
    meta = {"alignment": "beat", "preset": "normal-vs-ectopic", "window": 128,
            "rr_features": list(RR_FEATURES_V1)}
    assert config_from_metadata(dict(meta)).n_aux_features == 8
    assert config_from_metadata({**meta, "rr_features": list(RR_FEATURES)}).n_aux_features == 9


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


def test_beat_template_is_the_median_of_the_previous_beats() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16)).astype(np.float32)
    out = subtract_template(x, 5)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out[0], 0)  # no beat before the first: no template
    for i in range(1, len(x)):
        template = np.median(x[max(0, i - 5):i], axis=0)
        np.testing.assert_allclose(out[i], x[i] - template, rtol=0, atol=1e-6)
    # Causal: changing a later beat changes nothing before it.
    later = x.copy()
    later[30:] += 100
    np.testing.assert_array_equal(subtract_template(later, 5)[:30], out[:30])
    # A patient's steady beat vanishes, an odd beat among them stands out.
    steady = np.tile(np.sin(np.linspace(0, 3, 16, dtype=np.float32)), (12, 1))
    steady[8] *= 3
    diff = subtract_template(steady, 4)
    assert np.abs(diff[[1, 2, 7, 9, 11]]).max() < 1e-6 and np.abs(diff[8]).max() > 1
    np.testing.assert_array_equal(subtract_template(x, 0), x)


def test_template_runs_over_unlabelled_beats_too(data_dir: Path) -> None:
    from host.data.beats import annotated_beats

    rec = load_record("208")
    scheme = resolve_scheme("normal-vs-ectopic")
    raw, y, _, pos = make_beat_windows(rec, scheme, 64, "running", 90.0)
    diff, y2, _, pos2 = make_beat_windows(rec, scheme, 64, "running", 90.0, template_beats=20)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(pos, pos2)
    # Far into the record, every window is its raw window minus a template of real beats.
    assert not np.allclose(diff[100:], raw[100:])
    assert np.abs(diff[100:]).mean() < np.abs(raw[100:]).mean()
    # 208 has unclassifiable (Q) beats, unlabelled here: the template includes them, as a
    # device's would, so it is not the template of the labelled windows alone.
    assert len(y) < len(annotated_beats(rec.ann_samples, rec.ann_symbols)[0])
    assert not np.allclose(diff, subtract_template(raw, 20))


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


def test_template_setting_travels_with_the_model(data_dir: Path, tmp_path: Path) -> None:
    from host.export.evaluate import config_from_metadata

    cfg = EcgDatasetConfig(cache_dir=str(tmp_path), **{**BEAT_DATA, "template_beats": 20})
    ds = load_ecg_dataset(cfg)
    plain = load_ecg_dataset(EcgDatasetConfig(cache_dir=str(tmp_path), **BEAT_DATA))
    # Its own cache entry: the same records and beats, other windows.
    assert ds.y_test.tolist() == plain.y_test.tolist()
    assert not np.allclose(ds.x_test, plain.x_test)
    meta = json.loads(json.dumps(ds.metadata()))
    assert meta["template_beats"] == 20
    # `hilnas evaluate` rebuilds the windows the model was trained on from its metadata.
    assert config_from_metadata(meta, data_dir=str(data_dir)).template_beats == 20
    assert config_from_metadata({**meta, "template_beats": None}).template_beats == 0


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"rr_features": True}, "alignment = 'beat'"),
        ({"alignment": "beat", "stride": 10}, "stride"),
        ({"alignment": "beats"}, "alignment"),
        ({"val_fraction": 0.6}, "val_fraction"),
        ({"alignment": "beat", "preset": "ventricular"}, "beat-code preset"),
        ({"normalization": "patient"}, "normalization"),
        ({"template_beats": 20}, "alignment = 'beat'"),
        ({"alignment": "beat", "template_beats": -1}, "template_beats"),
        ({"alignment": "beat", "template_beats": 500}, "template_beats"),
        ({"alignment": "beat", "template_beats": 2.5}, "template_beats"),
        ({"alignment": "beat", "rr_feature_names": ("rr_prev_s",)}, "rr_features = true"),
        ({"alignment": "beat", "rr_features": True, "rr_feature_names": ("rr_jitter",)},
         "rr_jitter"),
        ({"alignment": "beat", "rr_features": True, "rr_feature_names": "rr_prev_s"},
         "not one string"),
        ({"alignment": "beat", "rr_features": True,
          "rr_feature_names": ("rr_prev_s", "rr_prev_s")}, "each feature once"),
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
    # The RR branch: k features -> 8 ReLU units, and its own logits (8 x 2 + 2) added to
    # the LSTM's.
    k = len(RR_FEATURES)
    assert space.costs(arch).params - plain.params == k * 8 + 8 + 8 * 2 + 2
    assert space.costs(arch).input_buffer_bytes == 128 + k


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


# --------------------------------------------------------------------------- rhythm first
def _bionet_on_beats(tmp_path: Path, **data: Any) -> tuple[Any, Any, Any]:
    """The beat dataset (BEAT_DATA with `data`), its ECG task and the bionet space for it."""
    from host.spaces.base import get_space
    from host.tasks.ecg import EcgClassification

    cfg = EcgDatasetConfig(cache_dir=str(tmp_path), **{**BEAT_DATA, **data})
    task = EcgClassification(cfg)
    return load_ecg_dataset(cfg), task, get_space("bionet", task.input_spec(), max_params=None)


def test_rhythm_branch_is_trained_first_then_held(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tf_keras")
    from host.spaces.bionet import rhythm_branch
    from host.train import TrainConfig, train_candidate

    ds, task, space = _bionet_on_beats(tmp_path)
    result = train_candidate(space, space.from_key("bionet-b0-x1-l16"), task, ds,
                             TrainConfig(epochs=2, aux_first_epochs=4, patience=None))
    assert len(result.history["aux_first_loss"]) == 4 and len(result.history["loss"]) == 2
    # The RR branch was frozen while the rest trained: on its own it still scores the
    # validation loss of its last epoch of the first stage.
    stage = rhythm_branch(result.model, task.output_activation)
    assert stage is not None
    branch, layers = stage
    assert {layer.name for layer in layers} == {"rr_dense", "out_rr"}
    branch.compile(loss="sparse_categorical_crossentropy")
    loss = branch.evaluate(ds.aux_val, ds.y_val, verbose=0)
    assert loss == pytest.approx(result.history["aux_first_val_loss"][-1], rel=1e-4)
    # ... and the freeze does not outlive the training.
    assert all(layer.trainable for layer in result.model.layers)

    ds1, task1, space1 = _bionet_on_beats(tmp_path, rr_features=False)
    with pytest.raises(ConfigError, match="aux_first_epochs: the dataset gives one input"):
        train_candidate(space1, space1.from_key("bionet-b0-x1-l16"), task1, ds1,
                        TrainConfig(epochs=1, aux_first_epochs=2))
    with pytest.raises(ConfigError, match="aux_first_epochs"):
        TrainConfig(aux_first_epochs=-1)


# --------------------------------------------------------------------------- grouped CV
def test_grouped_folds_validate_each_patient_once(data_dir: Path, tmp_path: Path) -> None:
    from host.data.dataset import _window_patients

    ds = load_ecg_dataset(EcgDatasetConfig(cache_dir=str(tmp_path), **BEAT_DATA))
    assert ds.groups_train is not None and ds.groups_val is not None
    assert len(ds.groups_train) == len(ds.y_train) and len(ds.groups_val) == len(ds.y_val)
    assert set(ds.groups_train.tolist()) | set(ds.groups_val.tolist()) == set(
        ds.records["train"] + ds.records["val"])
    # Records 201 and 202 are one patient: one group, which a fold never divides.
    assert _window_patients(["202", "100", "201"], {"100": 2, "201": 1, "202": 3}).tolist() == [
        "201+202"] * 3 + ["100"] * 2 + ["201+202"]
    folds = ds.grouped_folds(3, seed=0)
    assert len(folds) == 3 and folds[0] is ds
    validated: list[str] = []

    def windows_with_rr(split: Any) -> set[tuple[bytes, bytes]]:
        x = np.concatenate([split.x_train, split.x_val])
        aux = np.concatenate([split.aux_train, split.aux_val])
        return {(w.tobytes(), a.tobytes()) for w, a in zip(x, aux, strict=True)}

    pairs = windows_with_rr(ds)
    for fold in folds:
        val, train = set(fold.groups_val.tolist()), set(fold.groups_train.tolist())
        assert val and train and not val & train
        validated += sorted(val)
        # The same windows, each with its own RR features, only dealt differently...
        assert len(fold.y_train) + len(fold.y_val) == len(ds.y_train) + len(ds.y_val)
        assert windows_with_rr(fold) == pairs
        # ... and the test patients never take part.
        assert fold.x_test is ds.x_test and fold.y_test is ds.y_test
    assert sorted(validated) == sorted(set(validated))
    assert set(validated) == set(ds.groups_train.tolist()) | set(ds.groups_val.tolist())
    with pytest.raises(ConfigError, match="cv_folds: 9 folds need at least 8 training groups"):
        ds.grouped_folds(9)
    # A cache entry from before windows carried their patient is rebuilt, not refused.
    entry = tmp_path / f"{ds.config_hash}.json"
    meta = json.loads(entry.read_text())
    del meta["windows_per_record"]
    entry.write_text(json.dumps(meta))
    again = load_ecg_dataset(EcgDatasetConfig(cache_dir=str(tmp_path), **BEAT_DATA))
    assert again.groups_train is not None
    np.testing.assert_array_equal(again.groups_train, ds.groups_train)
    assert "windows_per_record" in json.loads(entry.read_text())
    shuffled = load_ecg_dataset(EcgDatasetConfig(cache_dir=str(tmp_path),
                                                 **{**BEAT_DATA, "split": "random"}))
    with pytest.raises(ConfigError, match="which patient or speaker each window comes from"):
        shuffled.grouped_folds(3)


def test_cross_validated_quality_is_the_folds_mean(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tf_keras")
    from host.train import TrainConfig, train_candidate

    ds, task, space = _bionet_on_beats(tmp_path)
    arch = space.from_key("bionet-b0-x1-l16")
    plain = train_candidate(space, arch, task, ds, TrainConfig(epochs=1, patience=None))
    cv = train_candidate(space, arch, task, ds, TrainConfig(epochs=1, patience=None, cv_folds=2))
    folds = cv.val_metrics["folds"]
    assert cv.val_metrics["cv_folds"] == 2 and len(folds) == 2
    assert cv.val_metrics["balanced_accuracy"] == pytest.approx(
        np.mean([f["balanced_accuracy"] for f in folds]))
    # Fold 1 is the configured split, trained exactly as without cross-validation: the
    # network kept, its test figure and its fold's validation figure are that training's.
    assert folds[0]["balanced_accuracy"] == pytest.approx(plain.val_metrics["balanced_accuracy"])
    assert cv.test_metrics["balanced_accuracy"] == pytest.approx(
        plain.test_metrics["balanced_accuracy"])
    assert "2-fold grouped cross-validation" in cv.selection
    assert folds[1]["selection"].startswith("cross-validation fold 2 of 2")
    with pytest.raises(ConfigError, match="cv_folds"):
        TrainConfig(cv_folds=11)


def test_refit_trains_on_validation_patients_for_the_chosen_epochs(
    data_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tf_keras")
    from host.train import TrainConfig, refit_network, train_candidate
    from host.train.trainer import best_epoch

    ds, task, space = _bionet_on_beats(tmp_path)
    arch = space.from_key("bionet-b0-x1-l16")
    base = {"epochs": 4, "patience": 1, "aux_first_epochs": 3, "cv_folds": 2}
    cv = train_candidate(space, arch, task, ds, TrainConfig(**base))
    refit = train_candidate(space, arch, task, ds, TrainConfig(**base, refit=True))
    # The epochs are those the configured split's early stopping kept, for each phase...
    chosen = best_epoch(cv.history, "val_loss")
    chosen_aux = best_epoch(cv.history, "aux_first_val_loss")
    assert refit.epochs_run == chosen
    assert len(refit.history["aux_first_loss"]) == chosen_aux
    assert refit.history["before_refit_val_loss"] == cv.history["val_loss"]
    # ... the quality figure is still the cross-validation mean of held-out patients...
    assert refit.val_metrics["balanced_accuracy"] == pytest.approx(
        cv.val_metrics["balanced_accuracy"])
    assert "refitted on training and validation together" in refit.selection
    # ... and the network is another one: same seed, trained on the validation windows too.
    x_val = ds.inputs("val")
    assert not np.allclose(refit.model.predict(x_val, verbose=0),
                           cv.model.predict(x_val, verbose=0), atol=1e-4)
    assert refit.config.refit and refit.test_metrics["n"] == len(ds.y_test)
    # Without cross-validation (a search's chosen network refitted for deployment, as
    # benchmarks/data_aware.py --refit does), the quality figure is the one measured before.
    plain_cfg = TrainConfig(epochs=4, patience=1)
    plain = train_candidate(space, arch, task, ds, plain_cfg)
    deployed = refit_network(space, arch, task, ds, plain_cfg, plain)
    assert deployed.epochs_run == best_epoch(plain.history, "val_loss")
    assert deployed.val_metrics == plain.val_metrics
    assert "the validation figure of the same network before the refit" in deployed.selection
    with pytest.raises(ConfigError, match="refit: needs cv_folds >= 2"):
        TrainConfig(refit=True)
    with pytest.raises(ConfigError, match="refit: must be true or false"):
        TrainConfig(refit="yes", cv_folds=2)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- augmentation
def test_augmentation_never_touches_validation_or_test(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tf_keras")
    from host.spaces.base import get_space
    from host.tasks.ecg import EcgClassification
    from host.train import TrainConfig, train_candidate

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


def test_a_shift_as_a_share_of_the_window_holds_at_every_rate() -> None:
    """shift_fraction moves a window by up to that share of its length, whatever the rate."""
    for length in (500, 8000):
        x = np.zeros((64, length, 1), np.float32)
        x[:, length // 2] = 1.0  # one impulse in the middle of each window
        out = Augmentation(shift_fraction=0.1).apply(x, np.random.default_rng(0))
        moved = np.abs(np.argmax(out[:, :, 0], axis=1) - length // 2)
        assert moved.max() <= int(0.1 * length) and moved.max() > 0.05 * length
    with pytest.raises(ConfigError, match="not both"):
        Augmentation(shift=3, shift_fraction=0.1)
    with pytest.raises(ConfigError, match="shift_fraction"):
        Augmentation(shift_fraction=0.7)


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
    assert shapes == [(1, len(RR_FEATURES)), (1, 128, 1)]
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


def test_ecg_task_scores_normal_against_anomalous_for_the_search() -> None:
    from host.tasks.ecg import EcgClassification

    task = EcgClassification(EcgDatasetConfig(
        preset="custom", custom={"N": "N", "S": "A", "V": "V", "F": "F"}))
    assert "normal_vs_anomalous_balanced_accuracy" in {m.name for m in task.metrics()}
    y = np.array([0, 0, 1, 2, 3])
    predicted = np.array([0, 1, 2, 1, 0])  # S called V still counts as anomalous
    m = task.score(y, np.eye(4)[predicted])
    # normal recall 1/2, anomalous recall 2/3
    assert m["normal_vs_anomalous_balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["normal_vs_anomalous_balanced_accuracy"] == pytest.approx(
        inter_patient_metrics(y, predicted, ("N", "S", "V", "F"))[
            "normal_vs_anomalous_balanced_accuracy"])
