"""The TROIKA reader on the real files (and on broken files written to tmp_path)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from host.data.troika import (
    FS,
    N_FFT,
    STEP,
    WINDOW,
    TroikaRecording,
    bandpass,
    list_recordings,
    load_all,
    load_recording,
    parse_name,
    spectral_bins_bpm,
    spectral_features,
    subject_split,
    window_count,
    windows,
)
from host.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def root() -> Path:
    env = os.environ.get("HILNAS_DATA_DIR")
    folder = Path(env) / "troika" if env else None
    if folder is None or not (folder / "training_data").is_dir():
        pytest.skip("TROIKA not found under $HILNAS_DATA_DIR/troika")
    return folder


@pytest.fixture(scope="module")
def recs(root: Path) -> list[TroikaRecording]:
    return load_all(data_dir=root.parent)


def _by_name(recs: list[TroikaRecording], name: str) -> TroikaRecording:
    return next(r for r in recs if r.name == name)


# ---- the real files ---------------------------------------------------------------------


def test_counts_per_part_and_subjects(root: Path, recs: list[TroikaRecording]) -> None:
    data_dir = root.parent
    assert len(list_recordings(data_dir, ("train",))) == 12
    assert list_recordings(data_dir, ("extra",)) == ["DATA_S04_T01"]
    assert len(list_recordings(data_dir, ("test",))) == 10
    assert [r.name for r in recs] == list_recordings(data_dir)
    train = [r for r in recs if r.part == "train"]
    test = [r for r in recs if r.part == "test"]
    assert sorted({r.subject for r in train}) == [f"train{i:02d}" for i in range(1, 13)]
    assert sorted({r.subject for r in test}) == [f"testS{i:02d}" for i in range(1, 9)]
    assert {r.activity for r in train} == {"TYPE01", "TYPE02"}
    assert {r.activity for r in test} == {"T01", "T02"}
    # The extra record is test subject S04's arm-exercise session (its T02 is in test).
    extra = _by_name(recs, "DATA_S04_T01")
    assert (extra.part, extra.subject, extra.activity) == ("extra", "testS04", "T01")
    assert _by_name(recs, "TEST_S04_T02").subject == "testS04"
    assert "TEST_S04_T01" not in {r.name for r in recs}


def test_shapes_rows_and_window_counts(root: Path, recs: list[TroikaRecording]) -> None:
    for r in recs:
        n = r.n_samples
        assert r.ppg.shape == (2, n) and r.accel.shape == (3, n)
        assert r.ppg.dtype == r.accel.dtype == r.bpm.dtype == np.float32
        assert 200 * FS < n < 330 * FS, r.name
        assert r.n_windows == (n - 1000) // 250 + 1 == window_count(n), r.name
        assert not r.ppg.flags.writeable and not r.bpm.flags.writeable
    # Rows are taken from the right places: ECG skipped in training, not in test.
    sig = loadmat(root / "training_data" / "DATA_03_TYPE02.mat")["sig"]
    rec = _by_name(recs, "DATA_03_TYPE02")
    np.testing.assert_array_equal(rec.ppg, sig[1:3].astype(np.float32))
    np.testing.assert_array_equal(rec.accel, sig[3:6].astype(np.float32))
    sig = loadmat(root / "test_data" / "TEST_S02_T02.mat")["sig"]
    rec = _by_name(recs, "TEST_S02_T02")
    np.testing.assert_array_equal(rec.ppg, sig[0:2].astype(np.float32))
    np.testing.assert_array_equal(rec.accel, sig[2:5].astype(np.float32))
    # Accelerometer in g (about 1 g of gravity), PPG in much larger counts.
    assert 0.3 < float(np.linalg.norm(rec.accel.mean(axis=1))) < 2.0
    assert float(rec.ppg.std()) > 10 * float(rec.accel.std())


def test_reference_bpm_ranges(recs: list[TroikaRecording]) -> None:
    train = np.concatenate([r.bpm for r in recs if r.part == "train"])
    assert 68.0 <= train.min() < 70.0 and 175.0 < train.max() <= 177.0  # README: 68.7-176.7
    test = np.concatenate([r.bpm for r in recs if r.part == "test"])
    assert 55.0 < test.min() and test.max() < 180.0
    for r in recs:  # a heart rate moves a few BPM per 2 s step, never jumps
        assert np.abs(np.diff(r.bpm)).max() < 12.0, r.name


def test_windows_align_with_reference(recs: list[TroikaRecording]) -> None:
    rec = _by_name(recs, "DATA_01_TYPE01")
    raw = np.concatenate([rec.ppg, rec.accel])
    w, bpm = windows(rec, filtered=False)
    assert w.shape == (rec.n_windows, 5, WINDOW) and w.dtype == np.float32
    np.testing.assert_array_equal(bpm, rec.bpm)
    for k in (0, 1, 7, rec.n_windows - 1):
        np.testing.assert_array_equal(w[k], raw[:, STEP * k : STEP * k + WINDOW])
    assert STEP * (rec.n_windows - 1) + WINDOW <= rec.n_samples < STEP * rec.n_windows + WINDOW
    # Filtered windows are cut from the recording filtered as a whole (no per-window edges).
    wf, _ = windows(rec)
    full = bandpass(raw)
    np.testing.assert_allclose(wf[5], full[:, 1250:2250], rtol=1e-5, atol=1e-3)
    assert not np.allclose(wf[5], w[5])


def test_spectral_peak_matches_reference_at_rest(recs: list[TroikaRecording]) -> None:
    # Units check, not an estimator: the first 30 s of DATA_01 are rest.
    rec = _by_name(recs, "DATA_01_TYPE01")
    w, bpm = windows(rec)
    feats = spectral_features(w[:10])
    bins = spectral_bins_bpm()
    peak = bins[(feats[:, 0] + feats[:, 1]).argmax(axis=-1)]
    assert int(np.sum(np.abs(peak - bpm[:10]) < 10.0)) >= 7, (peak, bpm[:10])


# ---- filter and spectra (synthetic) -------------------------------------------------------


def test_bandpass_keeps_2hz_removes_03_and_6hz() -> None:
    t = np.arange(60 * FS) / FS
    x = np.stack([np.sin(2 * np.pi * f * t) for f in (0.3, 2.0, 6.0)]).astype(np.float32)
    y = bandpass(x)
    assert y.shape == x.shape and y.dtype == np.float32
    mid = slice(10 * FS, 50 * FS)  # away from the ends
    gain = y[:, mid].std(axis=1) / x[:, mid].std(axis=1)
    assert gain[0] < 0.1 and gain[1] > 0.9 and gain[2] < 0.1, gain
    # Zero phase: the kept sine is not delayed.
    assert np.max(np.abs(y[1, mid] - x[1, mid])) < 0.05
    assert bandpass(x[1].astype(np.float64)).dtype == np.float64


def test_bandpass_rejects_bad_bands() -> None:
    x = np.zeros(2000)
    with pytest.raises(ConfigError, match="Nyquist"):
        bandpass(x, high_bpm=4000)
    with pytest.raises(ConfigError):
        bandpass(x, low_bpm=200, high_bpm=100)


def test_spectral_features_bins_and_units() -> None:
    bins = spectral_bins_bpm()
    assert len(bins) == 401 and bins[0] == pytest.approx(40.0) and bins[-1] == pytest.approx(240.0)
    np.testing.assert_allclose(np.diff(bins), 0.5)
    assert N_FFT * 0.5 == FS * 60
    t = np.arange(WINDOW) / FS
    w = np.zeros((2, 5, WINDOW), np.float32)
    for c, hz in enumerate((1.5, 2.0, 2.5, 3.0)):
        w[0, c] = 300 * np.sin(2 * np.pi * hz * t) + 50  # scale and offset do not matter
    w[1] = np.sin(2 * np.pi * 1.0 * t)
    f = spectral_features(w)
    assert f.shape == (2, 5, 401) and f.dtype == np.float32
    np.testing.assert_allclose(bins[f[0, :4].argmax(-1)], [90, 120, 150, 180], atol=0.5)
    assert not f[0, 4].any()  # a flat channel gives a zero spectrum, not NaN
    # z-scored sine has amplitude sqrt(2); the scaling makes the peak about that.
    assert f[1, 0].max() == pytest.approx(np.sqrt(2), rel=0.05)
    with pytest.raises(ConfigError):
        spectral_features(w, n_fft=500)


# ---- broken files ------------------------------------------------------------------------


def _tree(tmp_path: Path, n: int = 2000, rows: int = 6, bpm_count: int | None = None) -> Path:
    folder = tmp_path / "troika" / "training_data"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    savemat(folder / "DATA_01_TYPE01.mat", {"sig": rng.normal(size=(rows, n))})
    count = window_count(n) if bpm_count is None else bpm_count
    savemat(folder / "DATA_01_TYPE01_BPMtrace.mat", {"BPM0": np.full((count, 1), 80.0)})
    return tmp_path


def test_synthetic_tree_loads(tmp_path: Path) -> None:
    rec = load_recording("DATA_01_TYPE01", _tree(tmp_path, n=2000))
    assert rec.n_windows == 5 and rec.bpm.tolist() == [80.0] * 5
    assert list_recordings(tmp_path, ("train",)) == ["DATA_01_TYPE01"]
    with pytest.raises(DataError, match="extra_training_data"):
        list_recordings(tmp_path, ("train", "extra"))


def test_sig_with_missing_rows_names_channels(tmp_path: Path) -> None:
    data_dir = _tree(tmp_path, rows=4)
    with pytest.raises(DataError) as err:
        load_recording("DATA_01_TYPE01", data_dir)
    msg = str(err.value)
    assert "DATA_01_TYPE01.mat" in msg and "4 rows" in msg and "expected 6" in msg
    assert "accel y, accel z" in msg


def test_reference_with_wrong_count_names_both(tmp_path: Path) -> None:
    data_dir = _tree(tmp_path, n=2000, bpm_count=7)
    with pytest.raises(DataError) as err:
        load_recording("DATA_01_TYPE01", data_dir)
    msg = str(err.value)
    assert "DATA_01_TYPE01_BPMtrace.mat" in msg and "7 values" in msg and "5 windows" in msg


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    data_dir = _tree(tmp_path)
    folder = tmp_path / "troika" / "training_data"
    (folder / "DATA_01_TYPE01.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match=r"cannot read signal file .*DATA_01_TYPE01\.mat"):
        load_recording("DATA_01_TYPE01", data_dir)
    savemat(folder / "DATA_01_TYPE01.mat", {"x": np.zeros((6, 2000))})
    with pytest.raises(DataError, match=r"no variable 'sig' \(variables: x\)"):
        load_recording("DATA_01_TYPE01", data_dir)
    savemat(folder / "DATA_01_TYPE01.mat", {"sig": np.zeros((6, 2000))})
    (folder / "DATA_01_TYPE01_BPMtrace.mat").unlink()
    with pytest.raises(
        DataError, match=r"reference file .*DATA_01_TYPE01_BPMtrace\.mat is missing"
    ):
        load_recording("DATA_01_TYPE01", data_dir)
    with pytest.raises(DataError, match=r"DATA_02_TYPE02\.mat is missing"):
        load_recording("DATA_02_TYPE02", data_dir)
    with pytest.raises(DataError) as err:  # no dataset there: where to get it, where to put it
        load_recording("DATA_01_TYPE01", tmp_path / "elsewhere")
    assert str(tmp_path / "elsewhere" / "troika") in str(err.value)


def test_bad_names_and_parts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        parse_name("DATA_1_TYPE01")
    assert parse_name("TEST_S08_T01") == ("test", "testS08", "T01")
    with pytest.raises(ConfigError, match="unknown"):
        list_recordings(_tree(tmp_path), ("training",))
    with pytest.raises(ConfigError, match="sequence"):
        list_recordings(tmp_path, "train")


def test_recording_is_frozen_and_consistent() -> None:
    n = 1500
    rec = TroikaRecording(
        "DATA_01_TYPE01",
        "train01",
        "TYPE01",
        "train",
        np.zeros((2, n), np.float32),
        np.zeros((3, n), np.float32),
        np.zeros(3, np.float32),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        rec.ppg[0, 0] = 1.0
    with pytest.raises(DataError, match="3 windows"):
        dataclasses.replace(rec, bpm=np.zeros(4, np.float32))


# ---- subject split -----------------------------------------------------------------------


def test_subject_split_is_disjoint(recs: list[TroikaRecording]) -> None:
    dev = [r for r in recs if r.part in ("train", "extra")]
    train, val, test = subject_split(
        dev, val_subjects=["train01", "train07"], test_subjects=["testS04"]
    )
    sides = [{r.subject for r in side} for side in (train, val, test)]
    assert sides[1] == {"train01", "train07"} and sides[2] == {"testS04"}
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sorted(r.name for r in train + val + test) == sorted(r.name for r in dev)
    assert len(train) == 10 and [r.name for r in test] == ["DATA_S04_T01"]
    # Both sessions of S04 land on the same side.
    _, _, t = subject_split(recs, val_subjects=["train02"], test_subjects=["testS04"])
    assert {r.name for r in t} == {"DATA_S04_T01", "TEST_S04_T02"}


def test_subject_split_errors(recs: list[TroikaRecording]) -> None:
    with pytest.raises(ConfigError, match="train13"):
        subject_split(recs, val_subjects=["train13"], test_subjects=[])
    with pytest.raises(ConfigError, match="both"):
        subject_split(recs, val_subjects=["train01"], test_subjects=["train01"])
    with pytest.raises(ConfigError, match="sequence"):
        subject_split(recs, val_subjects="train01", test_subjects=[])
    everyone = sorted({r.subject for r in recs})
    with pytest.raises(ConfigError, match="no subject left"):
        subject_split(recs, val_subjects=everyone[:3], test_subjects=everyone[3:])
