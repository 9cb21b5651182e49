"""Training-time augmentation of windows: amplitude, baseline wander, noise, time shift.

A model that meets a new patient meets a new electrode placement (gain), new breathing
(baseline wander), new noise and a detector that centres beats a few samples differently.
Each is one seeded, per-window transformation here. A spoken digit meets a new speaker who
starts the word earlier or later in the window: `shift_fraction` says the shift as a share
of the window, so one setting holds for every sample rate of a data-aware search.
Augmentation is applied by `AugmentedBatches`, which feeds `model.fit` the training side
only: validation and test windows never pass through it (tests/host/test_ecg_unseen.py checks that).

Two masks act on the features, not the window: `time_mask` and `bin_mask` drop whole frames
or whole frequency bins of a spectral feature map while training (SpecAugment's time and
frequency masking, as dropout with a noise shape: random frames and bins rather than
contiguous bands). They are layers of the model (`BuildOptions`), since the features are
computed inside it; Keras runs dropout in training only, so the exported model has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from host.errors import ConfigError


@dataclass(frozen=True)
class Augmentation:
    """How to perturb each training window (all off at 0).

    - `amplitude`: standard deviation of a per-window gain, x * (1 + N(0, amplitude));
    - `baseline`: peak amplitude (in input units) of an added low-frequency sinusoid
      (0.1-0.5 cycles per window, random phase): baseline wander;
    - `noise`: standard deviation of added white Gaussian noise (input units);
    - `shift`: largest shift in samples, either way; the edge sample fills the gap;
    - `shift_fraction`: the same as a share of the window's length (0.1: up to a tenth of
      the window either way), for inputs whose rate differs between networks; give
      `shift` or `shift_fraction`, not both.

    - `time_mask`, `bin_mask`: the share of a feature map's frames (time steps) and of its
      frequency bins dropped while training (module docstring); spaces whose networks
      compute a spectral feature map (data_aware) take them, others refuse them.

    Only the first model input (the window) is augmented; a second input (RR features)
    describes the rhythm, which these do not change.
    """

    amplitude: float = 0.0
    baseline: float = 0.0
    noise: float = 0.0
    shift: int = 0
    shift_fraction: float = 0.0
    # added after runs were stored: at 0 they leave a training's hash as it was
    time_mask: float = field(default=0.0, metadata={"omit_at_default": True})
    bin_mask: float = field(default=0.0, metadata={"omit_at_default": True})

    def __post_init__(self) -> None:
        for name in ("amplitude", "baseline", "noise"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"augment.{name}: must be a number >= 0, not {value!r}")
        if not isinstance(self.shift, int) or isinstance(self.shift, bool) or self.shift < 0:
            raise ConfigError(f"augment.shift: must be an integer >= 0, not {self.shift!r}")
        fraction = self.shift_fraction
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not (
                0 <= fraction < 0.5):
            raise ConfigError(f"augment.shift_fraction: must be in [0, 0.5), not {fraction!r}")
        if self.shift and fraction:
            raise ConfigError("augment: give shift (samples) or shift_fraction, not both")
        for name in ("time_mask", "bin_mask"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
                    0 <= value < 0.5):
                raise ConfigError(f"augment.{name}: must be a share in [0, 0.5), not {value!r}")

    @classmethod
    def from_any(cls, value: Augmentation | Mapping[str, Any] | None) -> Augmentation | None:
        if value is None or isinstance(value, Augmentation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"augment: must be a table, not {value!r}")
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ConfigError(
                f"augment: unknown key {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            )
        return cls(**value)

    @property
    def enabled(self) -> bool:
        return self.perturbs_windows or self.masks_features

    @property
    def perturbs_windows(self) -> bool:
        """Whether training windows are changed before the model (`apply`)."""
        return bool(self.amplitude or self.baseline or self.noise or self.shift
                    or self.shift_fraction)

    @property
    def masks_features(self) -> bool:
        """Whether the model drops feature frames or bins while training."""
        return bool(self.time_mask or self.bin_mask)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A perturbed copy of windows `x` (n, length, channels); `x` is not changed."""
        out = np.array(x, dtype=np.float32, copy=True)
        n, length = int(out.shape[0]), int(out.shape[1])
        shift = self.shift or int(self.shift_fraction * length)
        if shift:
            offsets = rng.integers(-shift, shift + 1, size=n)
            src = np.clip(np.arange(length)[None, :] - offsets[:, None], 0, length - 1)
            out = np.take_along_axis(out, src[..., None].repeat(out.shape[2], axis=2), axis=1)
        if self.amplitude:
            out *= (1.0 + rng.normal(0.0, self.amplitude, size=(n, 1, 1))).astype(np.float32)
        if self.baseline:
            cycles = rng.uniform(0.1, 0.5, size=(n, 1, 1))
            phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
            t = np.arange(length, dtype=np.float32)[None, :, None] / length
            wander = rng.uniform(0, self.baseline, size=(n, 1, 1))
            out += (wander * np.sin(2 * np.pi * cycles * t + phase)).astype(np.float32)
        if self.noise:
            out += rng.normal(0.0, self.noise, size=out.shape).astype(np.float32)
        return out


def augmented_batches(
    keras: Any,
    inputs: np.ndarray | list[np.ndarray],
    y: np.ndarray,
    augmentation: Augmentation,
    batch_size: int,
    seed: int,
    class_weight: Mapping[int, float] | None = None,
) -> Any:
    """A `keras.utils.Sequence` of shuffled, augmented training batches (new draws each epoch).

    Class weights become per-window sample weights, since `fit` takes no `class_weight`
    with some generators.
    """

    class AugmentedBatches(keras.utils.Sequence):  # keras is untyped here (Any)
        def __init__(self) -> None:
            super().__init__()
            self.arrays = inputs if isinstance(inputs, list) else [inputs]
            self.epoch = 0
            self.order = np.arange(len(y))
            self.weights = (
                np.array([class_weight.get(int(c), 1.0) for c in y], np.float32)
                if class_weight
                else None
            )
            self.on_epoch_end()

        def __len__(self) -> int:
            return max(1, int(np.ceil(len(y) / batch_size)))

        def __getitem__(self, i: int) -> Any:
            idx = self.order[i * batch_size : (i + 1) * batch_size]
            rng = np.random.default_rng([seed, self.epoch, i])
            first = augmentation.apply(self.arrays[0][idx], rng)
            xs = [first, *(a[idx] for a in self.arrays[1:])]
            batch_x = xs[0] if len(xs) == 1 else xs
            if self.weights is None:
                return batch_x, y[idx]
            return batch_x, y[idx], self.weights[idx]

        def on_epoch_end(self) -> None:
            self.order = np.random.default_rng([seed, self.epoch, 1 << 20]).permutation(len(y))
            self.epoch += 1

    return AugmentedBatches()
