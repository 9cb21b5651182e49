"""Read the TROIKA wrist-PPG heart-rate dataset (IEEE Signal Processing Cup 2015).

The data. Wrist PPG (two green-LED channels 2 cm apart) and a 3-axis wrist accelerometer,
recorded during running and arm exercise, all at 125 Hz; the reference heart rate comes
from a chest ECG, one value per 8 s window. Under `<data root>/troika` (`dataset_dir`):

- `training_data/DATA_NN_TYPE0T.mat` (12): `sig`, 6 x N, rows ECG, PPG1, PPG2, accel x/y/z;
  `DATA_NN_TYPE0T_BPMtrace.mat`: `BPM0`, the reference. Twelve treadmill runs (TYPE01:
  rest, 8/15/8/15 km/h, rest; TYPE02 the same at 6/12 km/h), one per subject: `train01`..
- `extra_training_data/DATA_S04_T01.mat` + `BPM_S04_T01.mat`: one more record in the
  training format (with ECG), shipped as `Extra_TrainingData.zip`. Its `Readme.txt` says
  only that the format is the training one. Its name follows the test naming (`S04` =
  subject, `T01` = arm-exercise protocol; its 66-107 BPM fits T01, not the treadmill runs),
  and the test set has `TEST_S04_T02` but no `TEST_S04_T01`: we read it as the missing T01
  session of test subject S04 (an inference from the names; no readme says so). We therefore
  give it subject `testS04`, the subject of `TEST_S04_T02`, so a subject split never trains
  on S04's arm exercise while scoring S04's boxing. (If it were a different person, the
  only cost is that it moves together with `TEST_S04_T02`.)
- `test_data/TEST_Sxx_Tyy.mat` (10): `sig`, 5 x N, rows PPG1, PPG2, accel x/y/z (no ECG);
  `test_true_bpm/True_Sxx_Tyy.mat`: `BPM0`, released after the contest. Eight subjects
  (`testS01`..`testS08`), described as a group of their own (aged 19-58, one a woman with
  an abnormal heart rhythm; the runners are 12 men aged 18-35); nothing links a test subject
  to a runner, so they are treated as different people. T01: arm exercise, running and
  jumps; T02: intensive forearm movement (boxing). This is the final test set: keep it
  for final figures only and never choose a model, a feature or a threshold on it
  (validate on held-out training subjects instead).

The windows. `BPM0[k]` is the heart rate over samples 250k .. 250k+999 (zero-based; the
dataset's readme: 1-based 250k+1 .. 250k+1000), 8 s windows advancing by 2 s, so a record of
N samples has floor((N - 1000) / 250) + 1 of them; `load_recording` checks that count
against every reference, and `windows` cuts exactly these windows, nothing re-centred.

The filter. As in the Grassroots Operator Search paper's TROIKA preprocessing (PPG and each
accelerometer axis band-passed to 40-240 BPM; its "0.66 Hz and 40 Hz" is a typo: 240 BPM is
4 Hz), `bandpass` is a Butterworth band-pass, run forward and backward (`sosfiltfilt`) over
the whole recording before it is cut into windows. Forward-backward is zero phase: the
waveform is not delayed, so a window's PPG and accelerometer stay aligned with each other
and with the reference window, and no filter transient sits at a window's start. It is
non-causal (each output sample depends on future input) and offline: a device filters
causally (one pass as the samples arrive: the same filter delays 120-240 BPM by about
0.2 s and 40 BPM by about 1.2 s, and starts with a transient), so what is computed here
differs somewhat from what a device sees. This is a known, accepted difference.

The spectra. `spectral_features` gives, per window and channel, the magnitude spectrum of
the z-scored, Hann-windowed window, restricted to 40-240 BPM (the paper's features are the
dominant frequencies of PPG and accelerometer in these spectra). Zero-padded to 15000 points
at 125 Hz the bins fall exactly every 0.5 BPM (40.0, 40.5, ..., 240.0: 401 bins); that is
interpolation, the true resolution of an 8 s window is 1/8 Hz = 7.5 BPM.

Licence. The dataset is copyrighted; its readme allows free use for the Signal Processing Cup
and one's own academic research, provided Z. Zhang, Z. Pi, B. Liu, IEEE TBME 62(2):522-531,
2015 (DOI 10.1109/TBME.2014.2359372) is cited. Treat it as research/test data: it is never
downloaded by hilnas (`host.data.download.troika_error` says where to get it) and never
copied into this repository. No package reads it; this is a thin `scipy.io.loadmat` reader.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from host.data.splits import check_holdout
from host.errors import ConfigError, DataError

FS = 125
WINDOW_S = 8.0
STEP_S = 2.0
WINDOW = int(round(WINDOW_S * FS))  # 1000 samples
STEP = int(round(STEP_S * FS))  # 250 samples

LOW_BPM = 40.0
HIGH_BPM = 240.0
# At 125 Hz, 15000 FFT points put a bin every 125 * 60 / 15000 = 0.5 BPM, on round values.
N_FFT = 15000

PARTS = ("train", "extra", "test")
CHANNELS = ("ppg1", "ppg2", "accel_x", "accel_y", "accel_z")  # the rows `windows` returns

# The rows of `sig` in each part, in file order.
_SIG_ROWS: dict[str, tuple[str, ...]] = {
    "train": ("ECG", "PPG1", "PPG2", "accel x", "accel y", "accel z"),
    "extra": ("ECG", "PPG1", "PPG2", "accel x", "accel y", "accel z"),
    "test": ("PPG1", "PPG2", "accel x", "accel y", "accel z"),
}
_FOLDERS = {"train": "training_data", "extra": "extra_training_data", "test": "test_data"}

_TRAIN = re.compile(r"^DATA_(?P<num>[0-9]{2})_(?P<act>TYPE0[0-9])$")
_EXTRA = re.compile(r"^DATA_S(?P<num>[0-9]{2})_(?P<act>T[0-9]{2})$")
_TEST = re.compile(r"^TEST_S(?P<num>[0-9]{2})_(?P<act>T[0-9]{2})$")


@dataclass(frozen=True, eq=False)
class TroikaRecording:
    """One record: both PPG channels, the accelerometer and the reference BPM per window.

    The arrays are read-only (the record is frozen all the way down); `windows` copies.
    The chest ECG of the training records is not kept: only the reference derived from it.
    """

    name: str  # file stem: "DATA_01_TYPE01", "DATA_S04_T01", "TEST_S01_T01"
    subject: str  # "train01".."train12", "testS01".."testS08" (the extra record: "testS04")
    activity: str  # "TYPE01"/"TYPE02" (treadmill protocols), "T01"/"T02" (arm exercise)
    part: str  # "train", "extra", "test"
    ppg: np.ndarray  # float32 (2, N)
    accel: np.ndarray  # float32 (3, N)
    bpm: np.ndarray  # float32 (n_windows,), reference BPM of window k (samples 250k..+999)

    def __post_init__(self) -> None:
        if self.ppg.ndim != 2 or self.ppg.shape[0] != 2:
            raise DataError(f"{self.name}: ppg must be (2, N), not {self.ppg.shape}")
        if self.accel.ndim != 2 or self.accel.shape[0] != 3:
            raise DataError(f"{self.name}: accel must be (3, N), not {self.accel.shape}")
        if self.accel.shape[1] != self.ppg.shape[1]:
            raise DataError(
                f"{self.name}: ppg has {self.ppg.shape[1]} samples, accel {self.accel.shape[1]}"
            )
        expected = window_count(self.ppg.shape[1])
        if self.bpm.shape != (expected,):
            raise DataError(
                f"{self.name}: {self.ppg.shape[1]} samples make {expected} windows, but the "
                f"reference has shape {self.bpm.shape}"
            )
        for arr in (self.ppg, self.accel, self.bpm):
            arr.setflags(write=False)

    @property
    def n_samples(self) -> int:
        return int(self.ppg.shape[1])

    @property
    def n_windows(self) -> int:
        return int(self.bpm.shape[0])


def window_count(n_samples: int) -> int:
    """Windows of 1000 samples every 250 in `n_samples`: floor((N - 1000) / 250) + 1, or 0."""
    if n_samples < WINDOW:
        return 0
    return (n_samples - WINDOW) // STEP + 1


def parse_name(name: str) -> tuple[str, str, str]:
    """Return (part, subject, activity) of a record name; ConfigError if it is not TROIKA's."""
    m = _TRAIN.match(name)
    if m:
        return "train", f"train{m['num']}", m["act"]
    m = _EXTRA.match(name)
    if m:
        # The extra record is test subject S<num>'s other session (module docstring).
        return "extra", f"testS{m['num']}", m["act"]
    m = _TEST.match(name)
    if m:
        return "test", f"testS{m['num']}", m["act"]
    raise ConfigError(
        f"troika: {name!r} is not a record name (DATA_NN_TYPE0T, DATA_Snn_Tnn or TEST_Snn_Tnn)"
    )


def _paths(name: str, part: str, root: Path) -> tuple[Path, Path]:
    """The `.mat` holding `sig` and the one holding its `BPM0` reference."""
    folder = root / _FOLDERS[part]
    if part == "train":
        return folder / f"{name}.mat", folder / f"{name}_BPMtrace.mat"
    suffix = name.split("_", 1)[1]  # "S04_T01"
    if part == "extra":
        return folder / f"{name}.mat", folder / f"BPM_{suffix}.mat"
    return folder / f"{name}.mat", root / "test_true_bpm" / f"True_{suffix}.mat"


def _root(data_dir: str | os.PathLike[str] | None) -> Path:
    from host.data.download import troika_dir

    return troika_dir(data_dir)  # the licence error (where to get it) if the folder is absent


def _check_parts(parts: Sequence[str]) -> tuple[str, ...]:
    if isinstance(parts, str):
        raise ConfigError(f"parts: give a sequence of parts, e.g. ({parts!r},), not one string")
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ConfigError(f"parts: unknown {', '.join(map(repr, unknown))}; known: {PARTS}")
    return tuple(dict.fromkeys(parts))


def list_recordings(
    data_dir: str | os.PathLike[str] | None = None,
    parts: Sequence[str] = PARTS,
) -> list[str]:
    """Return the record names present in `parts`, in part order, then by name.

    A record is listed when its signal file is there (a missing reference is reported by
    `load_recording`, naming the file). A part whose folder is missing is a DataError:
    silently training on less data than asked for is worse than stopping.
    """
    parts = _check_parts(parts)
    root = _root(data_dir)
    names: list[str] = []
    for part in parts:
        folder = root / _FOLDERS[part]
        if not folder.is_dir():
            raise DataError(f"troika: folder {folder} ({part} part) does not exist")
        found = []
        for p in folder.glob("*.mat"):
            try:
                is_part = parse_name(p.stem)[0] == part
            except ConfigError:
                is_part = False  # references (…_BPMtrace, BPM_…) and stray files
            if is_part:
                found.append(p.stem)
        if not found:
            raise DataError(f"troika: folder {folder} holds no {part} record")
        names.extend(sorted(found))
    return names


def _loadmat(path: Path, what: str) -> dict[str, Any]:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"troika: {what} file {path} is missing")
    try:
        return dict(loadmat(path))
    except Exception as exc:  # scipy raises ValueError, MatReadError, OSError, ... on bad files
        raise DataError(f"troika: cannot read {what} file {path} as a .mat file ({exc})") from exc


def _variables(mat: dict[str, Any]) -> str:
    return ", ".join(k for k in mat if not k.startswith("__")) or "none"


def _read_sig(path: Path, part: str) -> np.ndarray:
    mat = _loadmat(path, "signal")
    if "sig" not in mat:
        raise DataError(f"troika: {path} has no variable 'sig' (variables: {_variables(mat)})")
    sig = np.asarray(mat["sig"])
    rows = _SIG_ROWS[part]
    if sig.ndim != 2 or not np.issubdtype(sig.dtype, np.number):
        raise DataError(
            f"troika: {path}: 'sig' must be a numeric matrix, not {sig.shape} {sig.dtype}"
        )
    if sig.shape[0] != len(rows):
        if sig.shape[1] == len(rows) and sig.shape[0] > sig.shape[1]:
            raise DataError(
                f"troika: {path}: 'sig' is {sig.shape}, it looks transposed; expected "
                f"{len(rows)} rows ({', '.join(rows)}) by samples"
            )
        if sig.shape[0] < len(rows):
            missing = rows[sig.shape[0] :]
            raise DataError(
                f"troika: {path}: 'sig' has {sig.shape[0]} rows, expected {len(rows)} "
                f"({', '.join(rows)}); missing channel(s), taking rows in that order: "
                f"{', '.join(missing)}"
            )
        raise DataError(
            f"troika: {path}: 'sig' has {sig.shape[0]} rows, expected {len(rows)} "
            f"({', '.join(rows)})"
        )
    bad = int(np.count_nonzero(~np.isfinite(sig)))
    if bad:
        raise DataError(f"troika: {path}: 'sig' holds {bad} non-finite value(s)")
    if sig.shape[1] < WINDOW:
        raise DataError(
            f"troika: {path}: {sig.shape[1]} samples, shorter than one {WINDOW}-sample window"
        )
    return sig


def _read_bpm(path: Path, n_samples: int, sig_path: Path) -> np.ndarray:
    mat = _loadmat(path, "reference")
    if "BPM0" not in mat:
        raise DataError(f"troika: {path} has no variable 'BPM0' (variables: {_variables(mat)})")
    raw = np.asarray(mat["BPM0"])
    if raw.ndim > 2 or (raw.ndim == 2 and min(raw.shape) != 1):
        raise DataError(f"troika: {path}: 'BPM0' must be a vector, not {raw.shape}")
    bpm = raw.reshape(-1)
    expected = window_count(n_samples)
    if bpm.size != expected:
        raise DataError(
            f"troika: {path}: 'BPM0' has {bpm.size} values, but {sig_path.name} has "
            f"{n_samples} samples, i.e. {expected} windows of {WINDOW} every {STEP} "
            f"(floor((N - {WINDOW}) / {STEP}) + 1)"
        )
    if not np.issubdtype(bpm.dtype, np.number) or not np.all(np.isfinite(bpm)):
        raise DataError(f"troika: {path}: 'BPM0' holds non-numeric or non-finite values")
    return bpm.astype(np.float32)


def load_recording(name: str, data_dir: str | os.PathLike[str] | None = None) -> TroikaRecording:
    """Read one record (by file stem, e.g. "DATA_01_TYPE01") with its reference BPM.

    Every problem is a DataError naming the file: a missing or unreadable `.mat`, no `sig`
    or the wrong number of rows in it (naming the channels that are missing), a missing
    reference, or a reference whose length is not the record's window count.
    """
    part, subject, activity = parse_name(name)
    root = _root(data_dir)
    sig_path, bpm_path = _paths(name, part, root)
    sig = _read_sig(sig_path, part)
    bpm = _read_bpm(bpm_path, sig.shape[1], sig_path)
    first = 1 if part in ("train", "extra") else 0  # skip the ECG row
    return TroikaRecording(
        name=name,
        subject=subject,
        activity=activity,
        part=part,
        ppg=np.ascontiguousarray(sig[first : first + 2], np.float32),
        accel=np.ascontiguousarray(sig[first + 2 : first + 5], np.float32),
        bpm=bpm,
    )


def load_all(
    parts: Sequence[str] = PARTS,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[TroikaRecording]:
    """Read every record of `parts` (order of `list_recordings`)."""
    return [load_recording(n, data_dir) for n in list_recordings(data_dir, parts)]


def bandpass(
    x: np.ndarray,
    fs: float = FS,
    low_bpm: float = LOW_BPM,
    high_bpm: float = HIGH_BPM,
    order: int = 4,
) -> np.ndarray:
    """Band-pass `x` along its last axis to [low_bpm, high_bpm] (zero phase, offline).

    A Butterworth band-pass as second-order sections (`butter(..., output="sos")`, stable at
    these low normalised frequencies where the transfer-function form loses precision), run
    forward and backward by `sosfiltfilt`: zero phase, so peaks stay where they were and PPG
    and accelerometer stay aligned with each other and with the reference windows; the
    magnitude response is squared (-6 dB at the cut-offs). It is non-causal: a device would
    filter causally (module docstring). float32 in gives float32 out, else float64.
    """
    from scipy.signal import butter, sosfiltfilt

    nyquist_bpm = fs * 30.0
    if not (0 < low_bpm < high_bpm < nyquist_bpm):
        raise ConfigError(
            f"bandpass: need 0 < low_bpm < high_bpm < Nyquist ({nyquist_bpm:g} BPM at {fs:g} Hz), "
            f"not {low_bpm:g}..{high_bpm:g}"
        )
    if order < 1:
        raise ConfigError(f"bandpass: order must be >= 1, not {order}")
    x = np.asarray(x)
    sos = butter(order, [low_bpm / 60.0, high_bpm / 60.0], btype="bandpass", fs=fs, output="sos")
    try:
        y = sosfiltfilt(sos, x, axis=-1)
    except ValueError as exc:  # shorter than the padding sosfiltfilt needs
        raise ConfigError(f"bandpass: cannot filter {x.shape[-1]} samples ({exc})") from exc
    return y.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)


def windows(rec: TroikaRecording, *, filtered: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Cut `rec` into its reference windows: ((n_windows, 5, 1000) float32, (n_windows,) BPM).

    Channels are `CHANNELS` (ppg1, ppg2, accel x, y, z); window k is samples
    250k .. 250k+999, the window `rec.bpm[k]` describes. With `filtered`, the whole recording
    is band-passed (40-240 BPM, `bandpass`) first and then cut, so no window carries a filter
    start-up transient; without, the windows are the raw samples.
    """
    x = np.concatenate([rec.ppg, rec.accel], axis=0)
    if filtered:
        x = bandpass(x)
    from numpy.lib.stride_tricks import sliding_window_view

    w = sliding_window_view(x, WINDOW, axis=-1)[:, ::STEP]  # (5, n, 1000), a view
    if w.shape[1] != rec.n_windows:  # __post_init__ guarantees it; a guard against edits
        raise DataError(f"{rec.name}: cut {w.shape[1]} windows, reference has {rec.n_windows}")
    out = np.ascontiguousarray(w.transpose(1, 0, 2), dtype=np.float32)
    return out, np.array(rec.bpm, dtype=np.float32)


def spectral_bins_bpm(
    fs: float = FS,
    n_fft: int = N_FFT,
    low_bpm: float = LOW_BPM,
    high_bpm: float = HIGH_BPM,
) -> np.ndarray:
    """The BPM of each bin `spectral_features` keeps (the rfft bins in [low, high], inclusive)."""
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / fs) * 60.0
    tol = 1e-6 * fs * 60.0 / n_fft  # a bin on the edge is kept despite rounding
    keep = (freqs >= low_bpm - tol) & (freqs <= high_bpm + tol)
    return freqs[keep]


def spectral_features(
    w: np.ndarray,
    fs: float = FS,
    n_fft: int = N_FFT,
    low_bpm: float = LOW_BPM,
    high_bpm: float = HIGH_BPM,
) -> np.ndarray:
    """Magnitude spectra in [low_bpm, high_bpm] of each window and channel: (n, c, n_bins).

    Each window/channel is z-scored (so PPG counts and accelerometer g compare; a flat one
    stays zero), Hann-windowed, and zero-padded to `n_fft` points (`scipy.fft.rfft`). The
    magnitude is scaled by 2 / sum(hann), so a sine of amplitude A peaks at about A. With
    the defaults (125 Hz, 15000 points) the bins are 40.0, 40.5, ..., 240.0 BPM (401;
    `spectral_bins_bpm` gives them); the resolution of an 8 s window is still 7.5 BPM.
    """
    from scipy import fft
    from scipy.signal import get_window

    w = np.asarray(w)
    if w.ndim != 3:
        raise ConfigError(
            f"spectral_features: windows must be (n, channels, samples), not {w.shape}"
        )
    length = w.shape[-1]
    if n_fft < length:
        raise ConfigError(f"spectral_features: n_fft {n_fft} is shorter than a window ({length})")
    if not (0 <= low_bpm < high_bpm <= fs * 30.0):
        raise ConfigError(
            f"spectral_features: need 0 <= low_bpm < high_bpm <= Nyquist, not {low_bpm}..{high_bpm}"
        )
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / fs) * 60.0
    tol = 1e-6 * fs * 60.0 / n_fft
    keep = np.flatnonzero((freqs >= low_bpm - tol) & (freqs <= high_bpm + tol))
    lo, hi = int(keep[0]), int(keep[-1]) + 1
    hann = get_window("hann", length).astype(np.float64)
    scale = 2.0 / hann.sum()
    out = np.empty((w.shape[0], w.shape[1], hi - lo), np.float32)
    chunk = max(1, 4096 // max(1, w.shape[1]))  # bounds the complex spectra held at once
    for start in range(0, w.shape[0], chunk):
        x = w[start : start + chunk].astype(np.float64)
        x = x - x.mean(axis=-1, keepdims=True)
        sd = x.std(axis=-1, keepdims=True)
        x = np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)
        spec = fft.rfft(x * hann, n=n_fft, axis=-1)[..., lo:hi]
        out[start : start + chunk] = np.abs(spec) * scale
    return out


def subject_split(
    recs: Sequence[TroikaRecording],
    *,
    val_subjects: Sequence[str],
    test_subjects: Sequence[str],
) -> tuple[list[TroikaRecording], list[TroikaRecording], list[TroikaRecording]]:
    """Split records by subject (train, val, test): every record of a subject on one side.

    Leave-subjects-out, so validation and test measure people the model never saw (a PPG
    model can otherwise lean on one wrist's waveform and skin). A named subject not among
    `recs`, one named for both val and test, or no subject left for training is a
    ConfigError (a typo would otherwise hold out nobody).
    """
    present = {r.subject for r in recs}
    val, test = check_holdout(present, val_subjects, test_subjects, "subject")
    train = [r for r in recs if r.subject not in val and r.subject not in test]
    return train, [r for r in recs if r.subject in val], [r for r in recs if r.subject in test]
