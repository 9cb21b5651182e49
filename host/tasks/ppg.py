"""Pulse rate from wrist PPG on TROIKA (Grassroots Operator Search's task): a regression in BPM.

Each example is one of TROIKA's 8 s windows (2 s step) of the two PPG channels and the three
accelerometer axes, band-passed to 40-240 BPM (host/data/troika.py), with the reference
heart rate of that window as the target. The network's input is either

- `input = "spectral"` (default, as GOS describes its features): per channel the magnitude
  spectrum of the window between 40 and 240 BPM, `resolution_bpm` per bin, as a
  (bins, 5) window; or
- `input = "raw"`: the filtered signals resampled to `sample_rate` (8 s x 25 Hz = 200
  samples by default), each channel z-scored per window, as a (samples, 5) window.

The output is one value in BPM: a linear unit rescaled around 120 BPM (a multiply-add that
int8 keeps), trained with the mean absolute error. Quality is the average absolute error
(AAE) in BPM, overall and per activity.

Tracking. Each window is scored alone, as the network sees it. A wearable also knows the
pulse it reported 2 s earlier and that a heart rate moves a few BPM per step, which is what
TROIKA's classical methods (TROIKA, JOSS) lean on. `PulseTracker` is that knowledge as a
causal filter over a recording's per-window estimates (a grid Bayes filter: Gaussian steps,
a Gaussian likelihood around each estimate with a floor for outliers). It is not part of
the exported model: it runs after it, on the host here (a device would run the same filter,
a 401-point matrix-vector product per window, after each inference). Every AAE is reported
per window (the model alone) and tracked, side by side, never one for the other.

Evaluation is leave-subjects-out on the 12 training recordings (one subject each):
`val_subjects` choose the model, `test_subjects` give the search's test figure, the rest
train. TROIKA's own test set (`test_data`, references in `test_true_bpm`, 8 other subjects)
is never loaded by a search: `hilnas evaluate MODEL` scores a model on it once, for the
final figure (host/export/evaluate_ppg.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from host.data.splits import Splits, name_list
from host.errors import ConfigError
from host.metrics import MetricKind, MetricSpec
from host.spaces.base import InputSpec
from host.tasks.base import Task, register_task

INPUTS = ("spectral", "raw")
#: the output's linear unit is rescaled to BPM around this centre and by this scale, so
#: the trained unit works near 0 (a bias of 120 would take many steps to learn)
BPM_CENTRE, BPM_SCALE = 120.0, 60.0
TRAIN_SUBJECTS = tuple(f"train{i:02d}" for i in range(1, 13))
#: the heart rates int8 calibration shows a model (the band-pass's 40-240 BPM)
LOW_CALIBRATION_BPM, HIGH_CALIBRATION_BPM = 40.0, 240.0


def _bpm(name: str, description: str) -> MetricSpec:
    return MetricSpec(name, False, MetricKind.QUALITY, "BPM", description)


PPG_METRICS: tuple[MetricSpec, ...] = (
    _bpm("aae_bpm", "average absolute error of the heart rate"),
    _bpm("rmse_bpm", "root mean squared error of the heart rate"),
)


@dataclass(frozen=True)
class PpgDatasetConfig:
    """The `[data]` table of the ppg task (errors name the bad key; module docstring)."""

    input: str = "spectral"
    resolution_bpm: float = 1.0
    sample_rate: int = 25
    val_subjects: tuple[str, ...] = ("train11", "train12")
    test_subjects: tuple[str, ...] = ("train09", "train10")
    seed: int = 0
    #: the tracker (PulseTracker): sd of the heart rate's change per 2 s step, sd of a
    #: window's estimate around the true rate, and the share of estimates that are outliers
    track_step_bpm: float = field(default=4.0, compare=False)
    track_width_bpm: float = field(default=3.0, compare=False)
    track_outlier: float = field(default=0.1, compare=False)
    data_dir: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        from host.data.troika import FS

        self.tracker()  # ConfigError on a bad track_* value

        if self.input not in INPUTS:
            raise ConfigError(f"input: unknown {self.input!r}; choose one of {list(INPUTS)}")
        for name in ("val_subjects", "test_subjects"):
            object.__setattr__(self, name, name_list(getattr(self, name), name, "subjects"))
            unknown = [s for s in getattr(self, name) if s not in TRAIN_SUBJECTS]
            if unknown:
                raise ConfigError(
                    f"{name}: {unknown} are not training subjects ({TRAIN_SUBJECTS[0]}.."
                    f"{TRAIN_SUBJECTS[-1]}); TROIKA's test subjects are kept for the final "
                    "figure (hilnas evaluate)"
                )
        res = self.resolution_bpm
        if not isinstance(res, (int, float)) or not 0.1 <= res <= 10:
            raise ConfigError(f"resolution_bpm: must be in [0.1, 10], not {self.resolution_bpm!r}")
        if not isinstance(self.sample_rate, int) or not 10 <= self.sample_rate <= FS:
            raise ConfigError(
                f"sample_rate: must be an integer in [10, {FS}] Hz (the recordings' rate is "
                f"{FS} Hz; upsampling would invent granularity), not {self.sample_rate!r}"
            )

    def tracker(self) -> PulseTracker:
        return PulseTracker(self.track_step_bpm, self.track_width_bpm, self.track_outlier)

    @property
    def n_fft(self) -> int:
        """FFT points that put a bin every `resolution_bpm` at 125 Hz."""
        from host.data.troika import FS

        return int(round(60.0 * FS / self.resolution_bpm))

    def shape(self) -> tuple[int, int]:
        """(length, channels) of one window as the network takes it."""
        from host.data.troika import CHANNELS, HIGH_BPM, LOW_BPM, WINDOW_S

        if self.input == "spectral":
            bins = int(np.floor((HIGH_BPM - LOW_BPM) / self.resolution_bpm + 1e-9)) + 1
            return bins, len(CHANNELS)
        return int(round(WINDOW_S * self.sample_rate)), len(CHANNELS)


@dataclass
class PpgDataset(Splits):
    """Windows (n, length, 5) and reference BPM (n,) float32, with each window's origin."""

    config: PpgDatasetConfig = field(kw_only=True)
    activities: dict[str, np.ndarray] = field(default_factory=dict, kw_only=True)
    subjects: dict[str, list[str]] = field(default_factory=dict, kw_only=True)
    #: each window's recording, per side (a recording's windows are contiguous, in time order)
    recordings: dict[str, np.ndarray] = field(default_factory=dict, kw_only=True)

    def score(self, side: str, outputs: np.ndarray) -> dict[str, Any]:
        """Per-window and tracked AAE of `outputs` on `side` ("train", "val", "test")."""
        return regression_metrics(getattr(self, f"y_{side}"), outputs,
                                  self.activities.get(side), self.recordings.get(side),
                                  self.config.tracker())

    def metadata(self) -> dict[str, Any]:
        c = self.config
        return {"split": self.split_description, "input": c.input,
                "resolution_bpm": c.resolution_bpm, "sample_rate": c.sample_rate,
                "subjects": self.subjects, "target": "heart rate (BPM)"}


def prepare(recordings: list[Any], config: PpgDatasetConfig) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """(x, bpm, activity) of every window of `recordings`, as the network takes them.

    The windows of each recording are contiguous and in time order (`recording_of` names
    them), which the tracker relies on.
    """
    from host.data.troika import spectral_features, windows

    xs, ys, acts = [], [], []
    for rec in recordings:
        w, bpm = windows(rec, filtered=True)
        if config.input == "spectral":
            x = spectral_features(w, n_fft=config.n_fft).transpose(0, 2, 1)
            x = x[:, : config.shape()[0], :]
        else:
            x = _raw(w, config.sample_rate)
        xs.append(x.astype(np.float32))
        ys.append(bpm.astype(np.float32))
        acts.append(np.full(len(bpm), rec.activity))
    if not xs:
        return (np.zeros((0, *config.shape()), np.float32), np.zeros(0, np.float32),
                np.zeros(0, str))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(acts)


def rate_shifted(window: np.ndarray, bpm: float, target_bpm: float,
                 config: PpgDatasetConfig) -> np.ndarray:
    """One window (length, 5) as it would look with the pulse at `target_bpm` (calibration).

    Spectral input: every channel's spectrum moved by the rate difference in bins (what
    enters at the edge is zero). Raw input: the window replayed `target / bpm` times faster
    (or slower), read periodically, so the pulse and the motion move together. Neither is
    a recording; they only show int8 calibration the rates a wearer can reach.
    """
    w = np.asarray(window, np.float32)
    if config.input == "spectral":
        k = int(round((target_bpm - bpm) / config.resolution_bpm))
        out = np.zeros_like(w)
        if k >= 0:
            out[k:] = w[: len(w) - k] if k < len(w) else 0
        else:
            out[:k] = w[-k:]
        return out
    n = len(w)
    pos = (np.arange(n) * target_bpm / max(bpm, 1.0)) % n
    return np.stack([np.interp(pos, np.arange(n), w[:, c], period=n)
                     for c in range(w.shape[1])], axis=1).astype(np.float32)


def recording_of(recordings: list[Any]) -> np.ndarray:
    """The recording name of every window `prepare` gives for `recordings`, in its order."""
    if not recordings:
        return np.zeros(0, str)
    return np.concatenate([np.full(rec.n_windows, rec.name) for rec in recordings])


def _raw(w: np.ndarray, rate: int) -> np.ndarray:
    """Filtered windows (n, 5, 1000) resampled to `rate`, z-scored per window and channel."""
    from math import gcd

    from scipy.signal import resample_poly

    from host.data.troika import FS

    g = gcd(rate, FS)
    x = resample_poly(w, rate // g, FS // g, axis=-1) if rate != FS else w
    x = (x - x.mean(axis=-1, keepdims=True)) / np.maximum(x.std(axis=-1, keepdims=True), 1e-6)
    return np.asarray(x.transpose(0, 2, 1), np.float32)


@functools.lru_cache(maxsize=2)
def _recordings(data_dir: str | None, part: str) -> tuple[Any, ...]:
    from host.data.troika import load_all

    return tuple(load_all(parts=(part,), data_dir=data_dir))


@register_task("ppg")
class PulseRate(Task):
    """Heart rate in BPM from a window of wrist PPG and accelerometer."""

    config_type = PpgDatasetConfig
    config: PpgDatasetConfig
    output_activation = None

    def input_spec(self) -> InputSpec:
        length, channels = self.config.shape()
        return InputSpec(length, channels, 1)

    def metrics(self) -> tuple[MetricSpec, ...]:
        return PPG_METRICS

    def representative(self, data: Any, n: int = 200) -> np.ndarray:
        """Calibration windows whose heart rates span 40-240 BPM, not only the training's.

        int8 calibration sets the output tensor's range from the outputs it sees. TROIKA's
        training references stop at 167 BPM, so a model calibrated on training windows
        alone saturates its int8 output there (measured: every window above 166 BPM came
        out as 166.04; docs/decisions.md). Half of the windows here are training windows;
        the other half are training windows moved to a rate drawn evenly from 40-240 BPM
        (`rate_shifted`), so a model that follows the pulse there keeps its output in range.
        """
        base = super().representative(data, n - n // 2)
        assert isinstance(base, np.ndarray)  # one input: the window
        rng = np.random.default_rng(1)
        idx = rng.integers(0, len(data.y_train), n // 2)
        targets = np.linspace(LOW_CALIBRATION_BPM, HIGH_CALIBRATION_BPM, n // 2)
        moved = [rate_shifted(data.x_train[i], float(data.y_train[i]), t, self.config)
                 for i, t in zip(idx, targets, strict=True)]
        return np.concatenate([base, np.asarray(moved, np.float32).reshape(-1, *base.shape[1:])])

    def default_quality(self) -> str:
        return "aae_bpm"

    def load(self, progress: bool = False) -> PpgDataset:
        from host.data.troika import subject_split

        c = self.config
        recs = list(_recordings(c.data_dir, "train"))
        train, val, test = subject_split(recs, val_subjects=c.val_subjects,
                                         test_subjects=c.test_subjects)
        sides = {side: prepare(list(r), c) for side, r in
                 (("train", train), ("val", val), ("test", test))}
        subjects = {side: sorted({r.subject for r in rs}) for side, rs in
                    (("train", train), ("val", val), ("test", test))}
        return PpgDataset(
            sides["train"][0], sides["train"][1], sides["val"][0], sides["val"][1],
            sides["test"][0], sides["test"][1],
            f"leave-subjects-out on TROIKA's training recordings: validation "
            f"{', '.join(c.val_subjects)}, test {', '.join(c.test_subjects)}",
            selection=f"validation subjects {', '.join(c.val_subjects)}",
            config=c, activities={side: v[2] for side, v in sides.items()},
            subjects=subjects,
            recordings={side: recording_of(list(r)) for side, r in
                        (("train", train), ("val", val), ("test", test))},
        )

    # ------------------------------------------------------------------ model side
    def head(self, keras: Any, features: Any, *, logits: bool = False, name: str = "out",
             **layer_options: Any) -> Any:
        """One linear unit, rescaled to BPM (`logits` does not apply to a regression)."""
        unit = keras.layers.Dense(1, name=f"{name}_unit", **layer_options)(features)
        return keras.layers.Rescaling(BPM_SCALE, offset=BPM_CENTRE, name=name)(unit)

    def loss(self, keras: Any, *, logits: bool = False) -> Any:
        return keras.losses.MeanAbsoluteError()

    def score(self, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        return regression_metrics(y_true, outputs)

    def score_side(self, data: Any, side: str, outputs: np.ndarray) -> dict[str, Any]:
        """Per window and, where the dataset says which recording each window is, tracked."""
        names = getattr(data, "recordings", {}).get(side)
        if names is None or len(names) != len(getattr(data, f"y_{side}")):
            return super().score_side(data, side, outputs)
        return data.score(side, outputs)

    def restart_value(self, val_metrics: dict[str, Any]) -> float:
        """Minus the tracked validation AAE: what a wearable running the tracker reports.

        The per-window AAE when there is no tracked figure. Tracked, because the product
        reports the tracked rate and `ppg_spectral`'s grid was ranked by it (docs/ppg.md).
        """
        tracked = val_metrics.get("tracked", {}).get("aae_bpm")
        return -float(tracked if tracked is not None else val_metrics["aae_bpm"])


def regression_metrics(y_true: np.ndarray, outputs: np.ndarray,
                       activities: np.ndarray | None = None,
                       recordings: np.ndarray | None = None,
                       tracker: PulseTracker | None = None) -> dict[str, Any]:
    """AAE and RMSE in BPM; with `activities`, the AAE of each.

    With `recordings` (each window's recording, contiguous and in time order) and a
    `tracker`, also `tracked`: the same figures after tracking each recording's estimates.
    """
    y = np.asarray(y_true, np.float64).reshape(-1)
    p = np.asarray(outputs, np.float64).reshape(len(y), -1)[:, 0]
    out = _errors(y, p, activities)
    if tracker is not None and recordings is not None and len(y):
        out["tracked"] = {**_errors(y, tracker.track_recordings(p, recordings), activities),
                          "tracker": tracker.to_json()}
    return out


def _errors(y: np.ndarray, p: np.ndarray, activities: np.ndarray | None) -> dict[str, Any]:
    err = np.abs(p - y)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "aae_bpm": float(err.mean()) if len(y) else float("nan"),
        "rmse_bpm": float(np.sqrt((err**2).mean())) if len(y) else float("nan"),
    }
    if activities is not None and len(y):
        out["per_activity"] = {str(a): float(err[activities == a].mean())
                               for a in sorted(set(activities))}
    return out


@dataclass(frozen=True)
class PulseTracker:
    """A causal grid Bayes filter over one recording's per-window heart-rate estimates.

    The state is the heart rate on a 0.5 BPM grid over 40-240 BPM. Between windows (2 s)
    it moves by a Gaussian step of sd `step_bpm`; a window's estimate is the true rate plus
    Gaussian noise of sd `width_bpm`, except that a share `outlier` of estimates is
    anywhere (a motion peak taken for the pulse). The tracked rate is the posterior's mode
    after each window, so it uses only the present and past windows, as a device would.
    The first window starts from a flat prior. Defaults chosen on the validation subjects
    (docs/ppg.md).
    """

    step_bpm: float = 4.0
    width_bpm: float = 3.0
    outlier: float = 0.1

    def __post_init__(self) -> None:
        for name in ("step_bpm", "width_bpm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.1 <= v <= 100:
                raise ConfigError(f"track_{name}: must be in [0.1, 100] BPM, not {v!r}")
        o = self.outlier
        if isinstance(o, bool) or not isinstance(o, (int, float)) or not 0 < o < 1:
            raise ConfigError(f"track_outlier: must be in (0, 1), not {o!r}")

    def to_json(self) -> dict[str, float]:
        return {"step_bpm": float(self.step_bpm), "width_bpm": float(self.width_bpm),
                "outlier": float(self.outlier)}

    @functools.cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        from host.data.troika import HIGH_BPM, LOW_BPM

        grid = np.arange(LOW_BPM, HIGH_BPM + 0.25, 0.5)
        step = np.exp(-0.5 * ((grid[:, None] - grid[None, :]) / self.step_bpm) ** 2)
        return grid, step / step.sum(axis=0, keepdims=True)  # column j: from grid[j]

    def track(self, estimates: np.ndarray) -> np.ndarray:
        """The tracked rate after each window of one recording (same length, BPM)."""
        grid, step = self._grid
        belief = np.full(len(grid), 1.0 / len(grid))
        out = np.empty(len(estimates))
        for k, e in enumerate(np.asarray(estimates, np.float64).reshape(-1)):
            like = (1 - self.outlier) * np.exp(-0.5 * ((grid - e) / self.width_bpm) ** 2)
            belief = (step @ belief) * (like + self.outlier)
            belief /= belief.sum()
            out[k] = grid[int(np.argmax(belief))]
        return out

    def track_recordings(self, estimates: np.ndarray, recordings: np.ndarray) -> np.ndarray:
        """`track` run on each recording's run of windows (a new recording starts afresh)."""
        p = np.asarray(estimates, np.float64).reshape(-1)
        names = np.asarray(recordings)
        if len(names) != len(p):
            raise ValueError(f"{len(p)} estimates but {len(names)} recording names")
        out = np.empty_like(p)
        starts = [0, *np.flatnonzero(names[1:] != names[:-1]) + 1, len(p)]
        seen: set[str] = set()
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            if str(names[a]) in seen:
                raise ValueError(f"recording {names[a]!r}'s windows are not contiguous")
            seen.add(str(names[a]))
            out[a:b] = self.track(p[a:b])
        return out
