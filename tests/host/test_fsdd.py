"""The FSDD loader on the real recordings (and on broken files written next to copies of them)."""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from host.data.fsdd import (
    DEFAULT_TEST_SPEAKERS,
    DEFAULT_VAL_SPEAKERS,
    NATIVE_RATE,
    SPEAKERS,
    AudioClips,
    list_recordings,
    load_clips,
    parse_name,
    random_split,
    read_wav,
    speaker_split,
)
from host.errors import ConfigError, DataError

SUBSET = ("0_george_0", "3_jackson_7", "5_lucas_12", "7_nicolas_30", "9_theo_49", "1_yweweler_3")


@pytest.fixture(scope="module")
def recordings() -> Path:
    root = os.environ.get("HILNAS_DATA_DIR")
    folder = Path(root) / "fsdd" / "recordings" if root else None
    if folder is None or not folder.is_dir():
        pytest.skip("FSDD recordings not found under $HILNAS_DATA_DIR/fsdd/recordings")
    return folder


@pytest.fixture(scope="module")
def all_clips(recordings: Path) -> AudioClips:
    """Every recording once, at 4 kHz (the lowest rate the tests need, so the quickest)."""
    return load_clips(recordings, sample_rate=4000)


@pytest.fixture()
def subset(recordings: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    for stem in SUBSET:
        shutil.copy(recordings / f"{stem}.wav", folder)
    return folder


def _write(path: Path, rate: int, data: np.ndarray) -> Path:
    wavfile.write(path, rate, data)
    return path


# ---- names and listing ----------------------------------------------------------------------


def test_parse_name() -> None:
    rec = parse_name(Path("/x/7_theo_12.wav"))
    assert rec is not None
    assert (rec.digit, rec.speaker, rec.index, rec.name) == (7, "theo", 12, "7_theo_12.wav")
    for bad in ("README.md", "7_theo.wav", "12_theo_1.wav", "x_theo_1.wav", "7_theo_1.mp3"):
        assert parse_name(Path(bad)) is None, bad


def test_list_recordings_counts(recordings: Path) -> None:
    recs = list_recordings(recordings)
    assert len(recs) == 3000
    assert Counter(r.digit for r in recs) == {d: 300 for d in range(10)}
    assert Counter(r.speaker for r in recs) == {s: 500 for s in SPEAKERS}
    assert {r.index for r in recs} == set(range(50))
    keys = [(r.speaker, r.digit, r.index) for r in recs]
    assert keys == sorted(keys)
    # The dataset folder (with recordings/ below it) is accepted too.
    assert [r.name for r in list_recordings(recordings.parent)] == [r.name for r in recs]


def test_list_recordings_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        list_recordings(missing)
    (tmp_path / "README.md").write_text("not audio")
    (tmp_path / "notes.wav").write_bytes(b"")
    with pytest.raises(DataError, match=str(tmp_path)):
        list_recordings(tmp_path)


# ---- reading one file -----------------------------------------------------------------------


def test_read_wav_real(recordings: Path) -> None:
    path = recordings / "0_george_0.wav"
    x, rate = read_wav(path, expect_rate=NATIVE_RATE)
    _, raw = wavfile.read(path)
    assert rate == 8000 and x.dtype == np.float32 and x.ndim == 1
    assert -1.0 <= x.min() < 0 < x.max() <= 1.0
    np.testing.assert_array_equal(x, raw.astype(np.float32) / 32768)


def test_read_wav_formats(tmp_path: Path) -> None:
    x, _ = read_wav(_write(tmp_path / "u8.wav", 8000, np.array([0, 128, 255], np.uint8)))
    np.testing.assert_allclose(x, [-1.0, 0.0, 127 / 128])
    x, _ = read_wav(_write(tmp_path / "i32.wav", 8000, np.array([-(2**31), 0, 2**30], np.int32)))
    np.testing.assert_allclose(x, [-1.0, 0.0, 0.5])
    x, _ = read_wav(_write(tmp_path / "f.wav", 8000, np.array([0.25, -0.5], np.float32)))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [0.25, -0.5])


def test_read_wav_bad_files(tmp_path: Path, recordings: Path) -> None:
    stereo = _write(tmp_path / "stereo.wav", 8000, np.zeros((100, 2), np.int16))
    with pytest.raises(DataError, match=r"stereo\.wav: stereo \(2 channels\); hilnas expects mono"):
        read_wav(stereo)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not a RIFF file" * 20)
    with pytest.raises(DataError, match="garbage.wav"):
        read_wav(garbage)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.wav"):
        read_wav(empty)
    silent = _write(tmp_path / "nosamples.wav", 8000, np.zeros(0, np.int16))
    with pytest.raises(DataError, match="nosamples.wav: .*no samples"):
        read_wav(silent)
    body = (recordings / "0_george_0.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(body[: len(body) // 2])
    with pytest.raises(DataError, match="cut.wav: .*truncated"):
        read_wav(cut)
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(body[:30])
    with pytest.raises(DataError, match="header.wav"):
        read_wav(header_only)


def test_read_wav_wrong_rate(tmp_path: Path) -> None:
    path = _write(tmp_path / "fast.wav", 16000, np.ones(160, np.int16))
    x, rate = read_wav(path)
    assert rate == 16000 and len(x) == 160
    with pytest.raises(DataError, match=r"fast\.wav: 8000 Hz expected, file is 16000 Hz"):
        read_wav(path, expect_rate=8000)


# ---- clips ----------------------------------------------------------------------------------


def test_load_clips_centres_and_pads(subset: Path) -> None:
    clips = load_clips(subset)
    assert clips.x.shape == (len(SUBSET), 8000) and clips.x.dtype == np.float32
    assert clips.digits.dtype == np.int64 and clips.sample_rate == 8000
    assert clips.skipped == [] and clips.cropped == 0
    # Sorted by (speaker, digit, index), labels from the names.
    assert clips.names == [f"{s}.wav" for s in SUBSET]
    assert clips.digits.tolist() == [0, 3, 5, 7, 9, 1]
    assert clips.speakers.tolist() == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    for row, name in zip(clips.x, clips.names, strict=True):
        raw, _ = read_wav(subset / name)
        left = (8000 - len(raw)) // 2
        right = 8000 - len(raw) - left
        assert abs(left - right) <= 1
        np.testing.assert_array_equal(row[left : left + len(raw)], raw)
        assert not row[:left].any() and not row[left + len(raw) :].any()


def test_load_clips_bad_file(subset: Path, caplog: pytest.LogCaptureFixture) -> None:
    (subset / "4_george_99.wav").write_bytes(b"\x00garbage" * 50)
    _write(subset / "4_george_98.wav", 16000, np.ones(1600, np.int16))
    with caplog.at_level(logging.WARNING, logger="host.data.fsdd"):
        clips = load_clips(subset)
    assert len(clips.names) == len(SUBSET) and clips.x.shape[0] == len(SUBSET)
    assert [name for name, _ in clips.skipped] == ["4_george_98.wav", "4_george_99.wav"]
    assert "8000 Hz expected, file is 16000 Hz" in clips.skipped[0][1]
    assert "4_george_99.wav" in caplog.text and "4_george_98.wav" in caplog.text
    with pytest.raises(DataError, match="4_george_98.wav"):
        load_clips(subset, on_bad="error")
    with pytest.raises(ConfigError, match="on_bad"):
        load_clips(subset, on_bad="ignore")


def test_load_clips_config_errors(subset: Path) -> None:
    with pytest.raises(ConfigError, match="upsampling"):
        load_clips(subset, sample_rate=16000)
    for rate in (0, -8000):
        with pytest.raises(ConfigError, match="sample_rate"):
            load_clips(subset, sample_rate=rate)
    for window in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="window_s"):
            load_clips(subset, window_s=window)


def test_resampling_keeps_band_and_removes_aliases(tmp_path: Path) -> None:
    t = np.arange(NATIVE_RATE) / NATIVE_RATE  # 1 s, exactly the window: no padding
    tone = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.4 * np.sin(2 * np.pi * 3000 * t)
    _write(tmp_path / "1_george_0.wav", NATIVE_RATE, np.round(tone * 32767).astype(np.int16))
    clips = load_clips(tmp_path, sample_rate=4000, window_s=1.0)
    assert clips.x.shape == (1, 4000) and clips.sample_rate == 4000
    spectrum = np.abs(np.fft.rfft(clips.x[0]))
    freqs = np.fft.rfftfreq(4000, 1 / 4000)
    assert freqs[np.argmax(spectrum)] == pytest.approx(440, abs=1)
    # 3 kHz is above the new Nyquist (2 kHz); decimating without a filter folds it to 1 kHz.
    alias = spectrum[np.abs(freqs - 1000) <= 2].max()
    assert alias < 1e-3 * spectrum.max()
    # A window that is not a whole number of samples rounds.
    assert load_clips(tmp_path, sample_rate=3000, window_s=0.5).x.shape == (1, 1500)


def test_resampling_before_padding(subset: Path) -> None:
    from scipy.signal import resample_poly

    clips = load_clips(subset, sample_rate=4000, window_s=0.75)
    assert clips.x.shape == (len(SUBSET), 3000)
    for row, name in zip(clips.x, clips.names, strict=True):
        raw, _ = read_wav(subset / name)
        down = resample_poly(raw, 1, 2)  # the clip alone, then centred: the zeros stay zeros
        left = (3000 - len(down)) // 2
        np.testing.assert_allclose(row[left : left + len(down)], down, atol=1e-6)
        assert not row[:left].any() and not row[left + len(down) :].any()


def test_crop_long_clips(recordings: Path, tmp_path: Path) -> None:
    # 9_theo_16 lasts 2.28 s and the word is in its first half second.
    for stem in ("9_theo_16", "7_theo_36", "0_george_0"):
        shutil.copy(recordings / f"{stem}.wav", tmp_path)
    centre = load_clips(tmp_path)
    energy = load_clips(tmp_path, crop="energy")
    assert centre.cropped == energy.cropped == 2
    np.testing.assert_array_equal(centre.x[0], energy.x[0])  # 0_george_0: padded, not cropped
    for i in (1, 2):
        raw, _ = read_wav(tmp_path / centre.names[i])
        total = float(np.sum(raw.astype(np.float64) ** 2))
        kept_centre = float(np.sum(centre.x[i].astype(np.float64) ** 2)) / total
        kept_energy = float(np.sum(energy.x[i].astype(np.float64) ** 2)) / total
        assert kept_centre < 0.05 < 0.9 < kept_energy, (centre.names[i], kept_centre, kept_energy)


# ---- the whole dataset ----------------------------------------------------------------------


def test_all_clips(all_clips: AudioClips) -> None:
    assert all_clips.x.shape == (3000, 4000) and all_clips.x.dtype == np.float32
    assert all_clips.skipped == []
    assert all_clips.cropped == 20  # files over 1 s: 16 of lucas, 4 of theo
    assert np.abs(all_clips.x).max() <= 1.0
    assert Counter(all_clips.digits.tolist()) == {d: 300 for d in range(10)}
    assert not (all_clips.x == 0).all(axis=1).any()


def test_speaker_split(all_clips: AudioClips) -> None:
    train, val, test = speaker_split(all_clips.speakers)
    sp = all_clips.speakers
    assert set(sp[test]) == set(DEFAULT_TEST_SPEAKERS) and set(sp[val]) == set(DEFAULT_VAL_SPEAKERS)
    assert set(sp[train]) == set(SPEAKERS) - {"jackson", "yweweler"}
    assert (len(train), len(val), len(test)) == (2000, 500, 500)
    assert not (set(sp[train]) & set(sp[val]) or set(sp[train]) & set(sp[test]))
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(3000))
    # Every digit on every side (each speaker says each one).
    for side in (train, val, test):
        assert set(all_clips.digits[side].tolist()) == set(range(10))

    train, val, test = speaker_split(sp, val_speakers=(), test_speakers=("theo", "lucas"))
    assert len(val) == 0 and set(sp[test]) == {"theo", "lucas"} and len(train) == 2000
    with pytest.raises(ConfigError, match="jakson"):
        speaker_split(sp, test_speakers=("jakson",))
    with pytest.raises(ConfigError, match="both"):
        speaker_split(sp, val_speakers=("theo",), test_speakers=("theo",))
    with pytest.raises(ConfigError, match="training"):
        speaker_split(sp, val_speakers=SPEAKERS[:3], test_speakers=SPEAKERS[3:])


def test_random_split_stratified() -> None:
    labels = np.repeat(np.arange(10), 300)
    train, val, test = random_split(3000, stratify=labels, seed=1)
    assert (len(train), len(val), len(test)) == (2100, 450, 450)
    for side, per_class in ((train, 210), (val, 45), (test, 45)):
        assert Counter(labels[side].tolist()) == {d: per_class for d in range(10)}
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(3000))
    again = random_split(3000, stratify=labels, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(test, random_split(3000, stratify=labels, seed=2)[2])

    train, val, test = random_split(100, val_fraction=0.1, test_fraction=0.2)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    with pytest.raises(ConfigError):
        random_split(100, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="stratify"):
        random_split(100, stratify=labels)
