"""Spoken-digit classification on the Free Spoken Digit Dataset (Data Aware NAS's audio task).

The input's granularity is part of the task's configuration, so that a data-aware search
(host/spaces/data_aware.py) can choose it per network: the sample rate, the window in
seconds, and the representation (raw waveform, spectrogram, mel-spectrogram or MFCC with
its deltas, host/data/audio_features.py) with its frame, hop, mel bands and MFCC count.

Where the representation is computed is `preprocessing`:

- "model" (default): the feature front end is the first, fixed layers of the network. The
  model takes raw audio; the exported `.tflite` runs the front end in float (RFFT has no
  int8 kernel) and the network in int8, so the latency and arena a device measures include
  the preprocessing. This is what a LiteRT device (a Pi, a phone) runs.
- "host": the model takes the features; a device that cannot run the front end (TFLite
  Micro has no RFFT2D) is given them, and the front end's cost is an estimate
  (`frontend_macs`, labelled so by the data-aware space).

Windows are whole recordings centred in `window_s` (host/data/fsdd.py). The default split
holds out whole speakers for validation and test, so no speaker is in both training and
test; `split = "random"` mixes speakers (an easier figure, and labelled so). With the
speaker split, `[train] cv_folds = 5` makes the quality figure leave-one-speaker-out over the
five speakers that are not the test speaker (five trainings per network).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from host.data.audio_features import REPRESENTATIONS, FeatureSpec, feature_shape
from host.data.splits import Splits, name_list
from host.errors import ConfigError
from host.spaces.base import InputSpec
from host.tasks.base import RAW_SAMPLE_BYTES, Granularity, InputCosts, register_task
from host.tasks.classification import ClassificationTask

log = logging.getLogger(__name__)

DIGITS = tuple(str(d) for d in range(10))
SPLITS = ("speaker", "random")
PREPROCESSING = ("model", "host")
ON_BAD_FILE = ("skip", "error")
CROPS = ("energy", "centre")
GAINS = ("peak", "none")


@dataclass(frozen=True)
class AudioDatasetConfig:
    """The `[data]` table of the audio task (errors name the bad key).

    - `sample_rate` (Hz, at most the recordings' 8000), `window_s` (seconds per window);
    - `representation`: "raw", "spectrogram", "mel" or "mfcc" (MFCC with its deltas when
      `deltas`), with `frame_ms`, `hop_ms`, `n_mels`, `n_mfcc`;
    - `preprocessing`: "model" or "host" (module docstring);
    - `split`: "speaker" (whole speakers `val_speakers` and `test_speakers` held out) or
      "random" (`val_fraction`, `test_fraction` of the recordings, stratified by digit);
    - `crop`: where a recording longer than the window is cut: "energy" (around its speech;
      a centred cut of some 2 s recordings keeps none of the word) or "centre";
    - `gain`: "peak" scales each window to a peak of 1 (the speakers' levels differ by up
      to 15x, so a network could tell speakers by loudness; a device does the same with
      one multiply) or "none";
    - `on_bad_file`: "skip" (named in a warning) or "error" for an unreadable WAV;
    - `data_dir`: the folder holding `fsdd/recordings` (None: `$HILNAS_DATA_DIR`, else the
      user cache, into which the recordings are downloaded on first use).
    """

    dataset: str = "fsdd"
    sample_rate: int = 8000
    window_s: float = 1.0
    representation: str = "mfcc"
    frame_ms: float = 32.0
    hop_ms: float = 16.0
    n_mels: int = 40
    n_mfcc: int = 13
    deltas: bool = True
    preprocessing: str = "model"
    split: str = "speaker"
    val_speakers: tuple[str, ...] = ("yweweler",)
    test_speakers: tuple[str, ...] = ("jackson",)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    crop: str = "energy"
    gain: str = "peak"
    on_bad_file: str = field(default="skip", compare=False)
    data_dir: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        from host.data.fsdd import NATIVE_RATE

        if self.dataset != "fsdd":
            raise ConfigError(f"dataset: unknown {self.dataset!r}; the audio task reads 'fsdd'")
        for name in ("val_speakers", "test_speakers"):
            object.__setattr__(self, name, name_list(getattr(self, name), name, "speakers"))
        if not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise ConfigError(f"sample_rate: must be a positive integer, not {self.sample_rate!r}")
        if self.sample_rate > NATIVE_RATE:
            raise ConfigError(
                f"sample_rate: {self.sample_rate} Hz is above the recordings' {NATIVE_RATE} Hz;"
                " upsampling would invent granularity"
            )
        if not isinstance(self.window_s, (int, float)) or not 0 < self.window_s <= 5:
            raise ConfigError(f"window_s: must be in (0, 5] seconds, not {self.window_s!r}")
        for name, allowed in (("preprocessing", PREPROCESSING), ("split", SPLITS),
                              ("on_bad_file", ON_BAD_FILE), ("representation", REPRESENTATIONS),
                              ("crop", CROPS), ("gain", GAINS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name}: unknown {getattr(self, name)!r}; choose one of {list(allowed)}"
                )
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 0.5:
                raise ConfigError(f"{name}: must be in (0, 0.5), not {value!r}")
        self.feature_spec()  # frame, hop, mel bands and MFCC count checked here
        feature_shape(self.feature_spec(), self.samples)  # the window holds one frame

    @property
    def samples(self) -> int:
        """Samples per window at `sample_rate`."""
        return int(round(self.window_s * self.sample_rate))

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(
            representation=self.representation,
            sample_rate=self.sample_rate,
            frame_ms=self.frame_ms,
            hop_ms=self.hop_ms,
            n_mels=self.n_mels,
            n_mfcc=self.n_mfcc,
            deltas=self.deltas,
        )


@dataclass
class AudioDataset(Splits):
    """Windows (n, samples, 1) of raw audio, or (n, frames, bins x channels) of features."""

    config: AudioDatasetConfig = field(kw_only=True)
    speakers: dict[str, list[str]] = field(default_factory=dict, kw_only=True)
    skipped: list[tuple[str, str]] = field(default_factory=list, kw_only=True)

    def metadata(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "classes": list(DIGITS),
            "split": self.split_description,
            "split_kind": cfg.split,
            "speakers": self.speakers,
            "sample_rate": cfg.sample_rate,
            "window_s": cfg.window_s,
            "preprocessing": cfg.preprocessing,
            "features": cfg.feature_spec().to_json(),
        }


@register_task("audio")
class SpokenDigits(ClassificationTask):
    """Which digit (0-9) is spoken in a window of FSDD audio."""

    config_type = AudioDatasetConfig
    config: AudioDatasetConfig

    def class_names(self) -> tuple[str, ...]:
        return DIGITS

    def default_quality(self) -> str:
        return "accuracy"

    # ------------------------------------------------------------------ input
    def feature_shape(self) -> tuple[int, int, int]:
        """(time, bins, channels) of one window's features."""
        return feature_shape(self.config.feature_spec(), self.config.samples)

    def input_spec(self) -> InputSpec:
        if self.config.preprocessing == "model":
            return InputSpec(self.config.samples, 1, len(DIGITS))
        time, bins, channels = self.feature_shape()
        return InputSpec(time, bins * channels, len(DIGITS))

    def features(self, keras: Any, window: Any) -> Any:
        """(time, bins, channels) features: the front end, or the host's features reshaped."""
        shape = self.feature_shape()
        if self.config.preprocessing == "host":
            return keras.layers.Reshape(shape, name="features")(window)
        from host.data.audio_features import frontend

        audio = keras.layers.Reshape((self.config.samples,), name="audio")(window)
        return frontend(self.config.feature_spec(), keras)(audio)

    def input_costs(self) -> InputCosts:
        """16-bit samples at the chosen rate, the float32 feature map, the front end's MACs."""
        from host.data.audio_features import frontend_cost, input_buffer_bytes

        spec, samples = self.config.feature_spec(), self.config.samples
        cost = frontend_cost(spec, samples)
        return InputCosts(input_buffer_bytes(spec, samples, sample_bytes=RAW_SAMPLE_BYTES),
                          cost.feature_buffer_bytes, cost.macs)

    def export_mode(self) -> str:
        spectral = self.config.representation != "raw"
        return "int8-float-input" if spectral and self.config.preprocessing == "model" else "int8"

    def frontend_ops(self) -> frozenset[str]:
        """TFLite operators the exported model adds for its front end (none with "host")."""
        if self.config.preprocessing == "host":
            return frozenset()
        from host.data.audio_features import frontend_ops

        return frontend_ops(self.config.feature_spec())

    # ------------------------------------------------------------------ granularity
    def native_rate(self) -> float:
        from host.data.fsdd import NATIVE_RATE

        return float(NATIVE_RATE)

    def representations(self) -> tuple[str, ...]:
        return tuple(REPRESENTATIONS)

    def granularity(self) -> Granularity:
        c = self.config
        spectral = c.representation != "raw"
        return Granularity(
            c.sample_rate, float(c.window_s), c.representation,
            frame_ms=c.frame_ms if spectral else None,
            hop_ms=c.hop_ms if spectral else None,
            n_mels=c.n_mels if c.representation in ("mel", "mfcc") else None,
            n_mfcc=c.n_mfcc if c.representation == "mfcc" else None,
        )

    def with_granularity(self, granularity: Granularity) -> SpokenDigits:
        g, c = granularity, self.config
        return SpokenDigits(dataclasses.replace(
            c,
            sample_rate=int(g.sample_rate),
            window_s=float(g.window_s),
            representation=g.representation,
            frame_ms=c.frame_ms if g.frame_ms is None else float(g.frame_ms),
            hop_ms=c.hop_ms if g.hop_ms is None else float(g.hop_ms),
            n_mels=c.n_mels if g.n_mels is None else int(g.n_mels),
            n_mfcc=c.n_mfcc if g.n_mfcc is None else int(g.n_mfcc),
        ))

    # ------------------------------------------------------------------ data
    def load(self, progress: bool = False) -> AudioDataset:
        from host.data.audio_features import featurize
        from host.data.fsdd import random_split, speaker_split

        c = self.config
        clips = _clips(recordings_dir(c.data_dir, progress), c.sample_rate, float(c.window_s),
                       c.on_bad_file, c.crop)
        audio = peak_normalize(clips.x) if c.gain == "peak" else clips.x
        if c.split == "speaker":
            train, val, test = speaker_split(clips.speakers, val_speakers=c.val_speakers,
                                             test_speakers=c.test_speakers)
            description = (f"speaker-wise: validation {', '.join(c.val_speakers)}, test "
                           f"{', '.join(c.test_speakers)}, training the other speakers")
        else:
            train, val, test = random_split(len(clips.digits), val_fraction=c.val_fraction,
                                            test_fraction=c.test_fraction, seed=c.seed,
                                            stratify=clips.digits)
            description = (f"random: {c.val_fraction:g} validation, {c.test_fraction:g} test "
                           "of the recordings (speakers on every side)")
        if c.preprocessing == "host":
            time, bins, channels = self.feature_shape()
            x = featurize(audio, c.feature_spec()).reshape(len(audio), time, bins * channels)
        else:
            x = audio[..., None]
        y = clips.digits.astype(np.int64)
        speakers = {side: sorted({str(s) for s in clips.speakers[idx]})
                    for side, idx in (("train", train), ("val", val), ("test", test))}
        by_speaker = c.split == "speaker"  # grouped cross-validation divides speakers
        return AudioDataset(
            x[train], y[train], x[val], y[val], x[test], y[test], description,
            selection=f"validation speakers {', '.join(speakers['val'])}"
            if by_speaker else "a random 15% of the recordings",
            config=c, speakers=speakers, skipped=list(clips.skipped),
            groups_train=clips.speakers[train].astype(str) if by_speaker else None,
            groups_val=clips.speakers[val].astype(str) if by_speaker else None,
            group_kind="speaker",
        )


def recordings_dir(data_dir: str | None, progress: bool = False) -> Path:
    """The folder of FSDD's WAV files, downloaded into the user cache on first use."""
    from host.data import fsdd
    from host.data.download import ensure_records

    ensure_records("fsdd", None, data_dir, progress=progress)
    return fsdd.recordings_dir(data_dir)


def peak_normalize(x: np.ndarray) -> np.ndarray:
    """Each window scaled to a peak of 1 (a silent window stays silent)."""
    peak = np.abs(x).max(axis=-1, keepdims=True)
    return (x / np.maximum(peak, 1e-4)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _clips(folder: Path, sample_rate: int, window_s: float, on_bad: str, crop: str) -> Any:
    """Clips at one rate and window (a data-aware search comes back to the same ones)."""
    from host.data.fsdd import load_clips

    clips = load_clips(folder, sample_rate=sample_rate, window_s=window_s, on_bad=on_bad,
                       crop=crop)
    if clips.cropped:
        log.info("fsdd: %d of %d recordings are longer than %g s and were centre-cropped",
                 clips.cropped, len(clips.digits), window_s)
    return clips
