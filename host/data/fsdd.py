"""Read the Free Spoken Digit Dataset (FSDD): fixed-length clips, speaker-wise splits.

The data. `recordings/<digit>_<speaker>_<index>.wav`, e.g. `7_theo_12.wav`: the digit
spoken (0-9, the label), who spoke it, and the take (0-49). 3000 files, 6 speakers, each
saying each digit 50 times; mono int16 at 8 kHz, trimmed close to the speech, so lengths
vary (0.14-2.28 s). `host.data.download.download_fsdd` fetches them into
`<data root>/fsdd/recordings` (docs/data.md); `recordings_dir` says where that is.

The split. The default (`speaker_split`) holds out whole speakers: jackson for test,
yweweler for validation, the other four for training, so no voice heard in training is
heard in test and the test figure says how the model does on a new speaker, which is what a
keyword spotter on a device meets. The dataset's own suggested split (takes 0-4 for test,
5-49 for training) puts every speaker on both sides; a model can then lean on the voice,
the microphone and the room, and that figure is easier than the one we want.
`random_split` is there for comparisons and says nothing about new speakers either.

The window. Models take a fixed number of samples, `round(window_s * sample_rate)`. A
shorter clip is centred and zero-padded on both sides (the word sits mid-window whatever its
length, so position carries no information about the digit); a longer one is cropped
around its centre (the default `crop="centre"`). Twenty files exceed one second; in two of
them (7_theo_36, 9_theo_16) the word is in the first 0.5 s of a 2.2 s file, so a centred 1 s
crop holds only silence. `crop="energy"` centres the crop on the clip's energy instead.

Resampling. Lower rates (4 kHz: a quarter of the multiply-adds of the first layer) are made
with `scipy.signal.resample_poly`: up/down by integers, through a polyphase FIR low-pass
(Kaiser window) that removes what lies above the new Nyquist frequency before decimating,
so energy above it does not fold back into the band as aliases; it works on each clip in
the time domain, with no assumption that the clip is periodic (the FFT method,
`scipy.signal.resample`, makes one and rings at the edges of short clips). Clips are
resampled before they are padded, so the filter never smears the zeros into the word and the
padded length is exact. Upsampling is refused: it would invent granularity the recording
never had.

Levels are left as recorded (int16 / 32768). They differ a lot between speakers (theo and
yweweler peak about ten times lower than the others, nicolas has a DC offset of about
-240/32768), so loudness alone identifies a speaker; normalise per clip if that matters.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from host.data.splits import check_holdout
from host.errors import ConfigError, DataError

log = logging.getLogger(__name__)

NATIVE_RATE = 8000
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
DEFAULT_TEST_SPEAKERS = ("jackson",)
DEFAULT_VAL_SPEAKERS = ("yweweler",)

ON_BAD = ("skip", "error")
CROPS = ("centre", "energy")

# `<digit>_<speaker>_<index>.wav`; an underscore separates the fields, so none is in a name.
_NAME = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z][A-Za-z0-9-]*)_(?P<index>[0-9]+)\.wav$")


@dataclass(frozen=True)
class Recording:
    """One file, with what its name says: the digit (label), the speaker and the take."""

    path: Path
    digit: int
    speaker: str
    index: int

    @property
    def name(self) -> str:
        return self.path.name


def parse_name(path: Path) -> Recording | None:
    """Return the Recording a file name describes, or None if it is not FSDD's pattern."""
    path = Path(path)
    m = _NAME.match(path.name)
    if m is None:
        return None
    return Recording(path, int(m["digit"]), m["speaker"], int(m["index"]))


def recordings_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return `<data root>/fsdd/recordings`, where `download_fsdd` puts the files."""
    from host.data.download import dataset_dir

    return dataset_dir("fsdd", data_dir) / "recordings"


def _download_hint(folder: Path) -> str:
    root = folder.parent.parent if folder.name == "recordings" else folder.parent
    return (
        f"`hilnas data download --database fsdd --data-dir {root}` fetches the recordings "
        "(needs internet; docs/data.md)"
    )


def list_recordings(folder: str | Path) -> list[Recording]:
    """Return the recordings in `folder`, sorted by (speaker, digit, index).

    `folder` holds the `.wav` files; a dataset folder with a `recordings/` below it (and no
    `.wav` of its own) is accepted too. Files whose names do not parse are ignored (logged
    at debug level): a README or a stray file next to the data is not an error.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"fsdd: folder {folder} does not exist; {_download_hint(folder)}")
    wavs = [p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file()]
    if not wavs and (folder / "recordings").is_dir():
        folder = folder / "recordings"
        wavs = [p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file()]
    found: list[Recording] = []
    for p in wavs:
        rec = parse_name(p)
        if rec is None:
            log.debug("fsdd: ignoring %s (not <digit>_<speaker>_<index>.wav)", p)
            continue
        found.append(rec)
    if not found:
        raise DataError(
            f"fsdd: folder {folder} holds no <digit>_<speaker>_<index>.wav file; "
            f"{_download_hint(folder)}"
        )
    found.sort(key=lambda r: (r.speaker, r.digit, r.index))
    return found


def read_wav(path: Path, *, expect_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a mono WAV file: float32 samples in [-1, 1] and the file's sample rate.

    Integer PCM is scaled by its full scale (int16 / 32768, int32 / 2**31, as 24-bit files
    come from scipy left-aligned in int32; uint8 is centred on 128); float files are kept.
    Every problem is a DataError that names the file, so a bad file among thousands is
    found at once.
    """
    from scipy.io import wavfile

    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError, IndexError, struct.error) as exc:
        raise DataError(f"{path}: cannot read it as a WAV file ({exc})") from exc
    for w in caught:
        # scipy reads a cut file up to where it ends, with a warning; a partial word under
        # its full label is worse than no sample, so it is an error here.
        if "EOF" in str(w.message):
            raise DataError(f"{path}: the WAV file is truncated ({w.message})")
        log.debug("%s: %s", path, w.message)
    if data.ndim == 2:
        channels = data.shape[1]
        if channels != 1:
            what = "stereo" if channels == 2 else "multichannel"
            raise DataError(f"{path}: {what} ({channels} channels); hilnas expects mono")
        data = data[:, 0]
    if data.size == 0:
        raise DataError(f"{path}: the WAV file holds no samples")
    if expect_rate is not None and rate != expect_rate:
        raise DataError(f"{path}: {expect_rate} Hz expected, file is {rate} Hz")
    kind = data.dtype.kind
    if kind == "f":
        x = data.astype(np.float32)
    elif kind == "u":  # 8-bit WAV is unsigned, centred on 128
        half = float(2 ** (8 * data.dtype.itemsize - 1))
        x = ((data.astype(np.float64) - half) / half).astype(np.float32)
    elif kind == "i":
        x = (data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))).astype(np.float32)
    else:
        raise DataError(f"{path}: unsupported sample type {data.dtype}")
    return x, int(rate)


@dataclass
class AudioClips:
    """Fixed-length clips of every readable recording of a folder, with labels and names."""

    x: np.ndarray  # float32 (n, samples) in [-1, 1] at sample_rate, centred in the window
    digits: np.ndarray  # int64 (n,)
    speakers: np.ndarray  # str (n,)
    names: list[str]  # file names, in the order of x
    sample_rate: int
    window_s: float
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    cropped: int = 0  # clips longer than the window (cut to it)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def samples(self) -> int:
        """The window's length in samples."""
        return int(self.x.shape[1])


def _fit(x: np.ndarray, length: int, crop: str) -> tuple[np.ndarray, bool]:
    """Centre `x` in `length` samples: pad both sides, or crop (at the centre or energy)."""
    n = len(x)
    if n <= length:
        out = np.zeros(length, np.float32)
        left = (length - n) // 2
        out[left : left + n] = x
        return out, False
    if crop == "energy":
        e = x.astype(np.float64) ** 2
        total = e.sum()
        centre = float((e * np.arange(n)).sum() / total) if total > 0 else n / 2
        start = int(round(centre - length / 2))
        start = min(max(start, 0), n - length)
    else:
        start = (n - length) // 2
    return np.ascontiguousarray(x[start : start + length], np.float32), True


def load_clips(
    folder: str | Path,
    *,
    sample_rate: int = NATIVE_RATE,
    window_s: float = 1.0,
    on_bad: str = "skip",
    native_rate: int = NATIVE_RATE,
    crop: str = "centre",
) -> AudioClips:
    """Read every recording of `folder` into fixed windows of `window_s` at `sample_rate`.

    Each file must be at `native_rate`; it is resampled (resample_poly, see the module
    docstring), clipped to [-1, 1] (the filter overshoots a little on clipped speech) and
    then centred in `round(window_s * sample_rate)` samples. A file that
    cannot be used (unreadable, not mono, another rate) is skipped with a warning and listed
    in `skipped` (`on_bad="skip"`), or raises its DataError (`on_bad="error"`).
    """
    if on_bad not in ON_BAD:
        raise ConfigError(f"on_bad: {on_bad!r} is not one of {', '.join(ON_BAD)}")
    if crop not in CROPS:
        raise ConfigError(f"crop: {crop!r} is not one of {', '.join(CROPS)}")
    if not isinstance(native_rate, int | np.integer) or native_rate <= 0:
        raise ConfigError(f"native_rate: must be a positive integer (Hz), not {native_rate!r}")
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ConfigError(f"sample_rate: must be a positive integer (Hz), not {sample_rate!r}")
    if sample_rate > native_rate:
        raise ConfigError(
            f"sample_rate: {sample_rate} Hz is above the recordings' {native_rate} Hz; "
            "upsampling would invent granularity the recordings do not have"
        )
    if not window_s > 0 or not math.isfinite(window_s):
        raise ConfigError(f"window_s: must be a positive number of seconds, not {window_s!r}")
    length = int(round(window_s * sample_rate))
    if length < 1:
        raise ConfigError(f"window_s: {window_s} s at {sample_rate} Hz is less than one sample")
    g = math.gcd(int(sample_rate), int(native_rate))
    up, down = int(sample_rate) // g, int(native_rate) // g

    from scipy.signal import resample_poly

    recordings = list_recordings(folder)
    rows: list[np.ndarray] = []
    digits: list[int] = []
    speakers: list[str] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    cropped = 0
    for rec in recordings:
        try:
            x, _ = read_wav(rec.path, expect_rate=native_rate)
        except DataError as exc:
            if on_bad == "error":
                raise
            reason = str(exc).removeprefix(f"{rec.path}: ")
            log.warning("fsdd: skipping %s: %s", rec.name, reason)
            skipped.append((rec.name, reason))
            continue
        if up != down:
            # The low-pass overshoots on clipped speech (five jackson files reach full scale:
            # up to 1.02 at 4 kHz); clip so every clip stays in [-1, 1] like the files.
            x = np.clip(resample_poly(x, up, down), -1.0, 1.0).astype(np.float32)
        clip, was_cropped = _fit(x, length, crop)
        cropped += was_cropped
        rows.append(clip)
        digits.append(rec.digit)
        speakers.append(rec.speaker)
        names.append(rec.name)
    if not rows:
        raise DataError(
            f"fsdd: none of the {len(recordings)} recordings in {folder} could be read "
            f"(first: {skipped[0][0]}: {skipped[0][1]})"
        )
    return AudioClips(
        x=np.stack(rows),
        digits=np.asarray(digits, np.int64),
        speakers=np.asarray(speakers, dtype=str),
        names=names,
        sample_rate=int(sample_rate),
        window_s=float(window_s),
        skipped=skipped,
        cropped=cropped,
    )


def speaker_split(
    speakers: np.ndarray,
    *,
    val_speakers: Sequence[str] = DEFAULT_VAL_SPEAKERS,
    test_speakers: Sequence[str] = DEFAULT_TEST_SPEAKERS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return index arrays (train, val, test): the named speakers held out, the rest trained on.

    Whole speakers go to one side each, so test measures a voice the model never heard.
    A name not in `speakers` is a ConfigError (a typo would otherwise hold out nobody).
    """
    speakers = np.asarray(speakers).astype(str)
    present = set(np.unique(speakers).tolist())
    val, test = check_holdout(present, val_speakers, test_speakers, "speaker")
    in_val = np.isin(speakers, sorted(val))
    in_test = np.isin(speakers, sorted(test))
    train = np.flatnonzero(~in_val & ~in_test)
    return train, np.flatnonzero(in_val), np.flatnonzero(in_test)


def random_split(
    n: int,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    stratify: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return seeded index arrays (train, val, test) of `range(n)`, sorted.

    With `stratify` (one label per item) each label is split on its own, so every side
    holds the labels in the proportions of the whole (up to rounding, per label). Plain
    numpy, not scikit-learn (an optional extra): one seed gives one split on every install.
    Speakers land on all sides: use `speaker_split` for a figure on new speakers.
    """
    if n < 0:
        raise ConfigError(f"random_split: n must be >= 0, not {n}")
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ConfigError(f"{name}: must be in [0, 1), not {f}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction} leaves no training data"
        )
    labels = np.zeros(n, np.int64) if stratify is None else np.asarray(stratify)
    if labels.shape != (n,):
        raise ConfigError(f"stratify: {labels.shape[0] if labels.ndim else 0} labels for n={n}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * len(idx)))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    train, val, test = (
        np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts
    )
    return train, val, test
