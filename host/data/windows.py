"""Cut a record into fixed-length windows and label each from the annotations inside it."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from host.data.classes import ClassScheme
from host.data.mitdb import EcgRecord
from host.errors import ConfigError

NORMALIZATIONS = ("zscore", "minmax", "record", "running", "none")
#: seconds of signal before a window's end that "running" normalization takes its mean and
#: standard deviation from: what a device can keep in a ring buffer, and long enough (about
#: ten beats) that one ectopic beat does not move the scale.
RUNNING_SECONDS = 10.0


def resample(record: EcgRecord, fs: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Return the signal and annotation positions at `fs` (unchanged when None or equal)."""
    if fs is None or abs(fs - record.fs) < 1e-9:
        return record.signal, record.ann_samples, record.fs
    from scipy.signal import resample_poly

    ratio = Fraction(fs / record.fs).limit_denominator(1000)
    sig = resample_poly(record.signal, ratio.numerator, ratio.denominator).astype(np.float32)
    ann = np.round(record.ann_samples * float(ratio)).astype(np.int64)
    return sig, ann, float(fs)


def normalize(
    x: np.ndarray,
    method: str,
    record_signal: np.ndarray | None = None,
    starts: np.ndarray | None = None,
    fs: float | None = None,
) -> np.ndarray:
    """Normalize windows `x` (n, window) into a copy.

    - "zscore" and "minmax": each window by its own statistics (the morphology only; a
      beat's amplitude relative to its neighbours is lost);
    - "record": by the whole record's mean and standard deviation (the patient's scale;
      offline only, the whole record must be known);
    - "running": by the mean and standard deviation of the `RUNNING_SECONDS` of the record
      that end where each window ends (the patient's scale as a device sees it: causal,
      from a ring buffer); needs `record_signal`, the windows' `starts` and `fs`;
    - "none": unchanged.
    """
    eps = np.float32(1e-6)
    if method == "zscore":
        mu = x.mean(axis=1, keepdims=True)
        sd = x.std(axis=1, keepdims=True)
        return ((x - mu) / (sd + eps)).astype(np.float32)
    if method == "minmax":
        lo = x.min(axis=1, keepdims=True)
        hi = x.max(axis=1, keepdims=True)
        return ((x - lo) / (hi - lo + eps)).astype(np.float32)
    if method == "record":
        if record_signal is None:
            raise ValueError("record normalization needs the record's signal")
        return ((x - record_signal.mean()) / (record_signal.std() + eps)).astype(np.float32)
    if method == "running":
        if record_signal is None or starts is None or fs is None:
            raise ValueError("running normalization needs the record's signal, starts and fs")
        mu, sd = running_stats(record_signal, np.asarray(starts) + x.shape[1], fs)
        return ((x - mu[:, None]) / (sd[:, None] + eps)).astype(np.float32)
    if method == "none":
        return x.astype(np.float32)
    raise ConfigError(f"normalization: unknown {method!r}; choose one of {list(NORMALIZATIONS)}")


def running_stats(
    signal: np.ndarray, ends: np.ndarray, fs: float, seconds: float = RUNNING_SECONDS
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of `signal[end - seconds * fs : end]` for each end."""
    sig = np.asarray(signal, np.float64)
    c1 = np.concatenate([[0.0], np.cumsum(sig)])
    c2 = np.concatenate([[0.0], np.cumsum(sig * sig)])
    hi = np.clip(np.asarray(ends, np.int64), 1, len(sig))
    lo = np.maximum(0, hi - int(round(seconds * fs)))
    n = (hi - lo).astype(np.float64)
    mu = (c1[hi] - c1[lo]) / n
    var = np.maximum((c2[hi] - c2[lo]) / n - mu * mu, 0.0)
    return mu.astype(np.float32), np.sqrt(var).astype(np.float32)


def subtract_template(x: np.ndarray, n_beats: int) -> np.ndarray:
    """Each beat window minus the median of the `n_beats` beat windows before it.

    The median of a patient's recent beats is that patient's usual beat (robust to the odd
    ectopic beat among them); what remains after subtracting it is how this beat differs
    from it, which carries across patients where the raw shape does not (a bundle branch
    block patient's normal beat is wide, and so is the template). Causal: a device keeps the
    last `n_beats` windows. The first beat of a record has no template and becomes zeros;
    the next ones use the beats there are. `x` is (n, window) in beat order.
    """
    x = np.asarray(x, np.float32)
    n = len(x)
    if n_beats < 1 or n == 0:
        return x.copy()
    out = np.zeros_like(x)
    for i in range(1, min(n, n_beats + 1)):
        out[i] = x[i] - np.median(x[:i], axis=0)
    if n > n_beats:
        # Windows i-n_beats .. i-1 for every i >= n_beats, at once: (n - n_beats, window, n_beats)
        previous = np.lib.stride_tricks.sliding_window_view(x[:-1], n_beats, axis=0)
        out[n_beats:] = x[n_beats:] - np.median(previous, axis=2)
    return out


def window_labels(
    ann_samples: np.ndarray,
    ann_symbols: tuple[str, ...],
    rhythm: np.ndarray,
    starts: np.ndarray,
    window: int,
    scheme: ClassScheme,
) -> np.ndarray:
    """Class index of each window starting at `starts`, or -1 when nothing maps.

    Beat schemes: among the annotations whose sample lies in [start, start + window), the
    class with the highest priority wins. Rhythm schemes: the rhythm in effect at the
    window's centre sample.
    """
    code_idx = scheme.code_to_index()
    if scheme.source == "rhythm":
        centre = starts + window // 2
        pos = np.searchsorted(ann_samples, centre, side="right") - 1
        labels = np.full(len(starts), -1, dtype=np.int64)
        ok = pos >= 0
        labels[ok] = [code_idx.get(str(r), -1) for r in rhythm[pos[ok]]]
        return labels
    rank_of = scheme.priority_rank()
    cls = np.array([code_idx.get(s, -1) for s in ann_symbols], dtype=np.int64)
    keep = cls >= 0
    samples, cls = ann_samples[keep], cls[keep]
    labels = np.full(len(starts), -1, dtype=np.int64)
    if len(cls) == 0:
        return labels
    ranks = np.array([rank_of[c] for c in cls], dtype=np.int64)
    lo = np.searchsorted(samples, starts, side="left")
    hi = np.searchsorted(samples, starts + window, side="left")
    by_rank = {r: c for c, r in rank_of.items()}
    # Walk ranks from lowest priority to highest so the highest present one is written last;
    # a cumulative count per rank answers "is rank r inside [lo, hi)" for all windows at once.
    for r in sorted(by_rank, reverse=True):
        counts = np.concatenate([[0], np.cumsum(ranks == r)])
        present = counts[hi] - counts[lo] > 0
        labels[present] = by_rank[r]
    return labels


def make_windows(
    record: EcgRecord,
    scheme: ClassScheme,
    window: int = 256,
    stride: int | None = None,
    normalization: str = "zscore",
    fs: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled windows of one record: x (n, window) float32 and y (n,) int64."""
    if window < 8:
        raise ConfigError(f"window: must be at least 8 samples, not {window}")
    stride = stride or window
    if stride < 1:
        raise ConfigError(f"stride: must be positive, not {stride}")
    signal, ann_samples, _ = resample(record, fs)
    n = (len(signal) - window) // stride + 1
    if n <= 0:
        return np.zeros((0, window), np.float32), np.zeros((0,), np.int64)
    starts = np.arange(n, dtype=np.int64) * stride
    labels = window_labels(ann_samples, record.ann_symbols, record.rhythm, starts, window, scheme)
    keep = labels >= 0
    starts, labels = starts[keep], labels[keep]
    idx = starts[:, None] + np.arange(window)[None, :]
    x = normalize(signal[idx], normalization, signal, starts, record.fs if fs is None else fs)
    return x, labels


def make_beat_windows(
    record: EcgRecord,
    scheme: ClassScheme,
    window: int = 256,
    normalization: str = "running",
    fs: float | None = None,
    beats: np.ndarray | None = None,
    template_beats: int = 0,
    rr_names: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows centred on each beat: x (n, window), y (n,), RR features (n, k), positions (n,).

    The RR features are `rr_names` (None: host.data.beats.RR_FEATURES, k = 9).

    `template_beats` > 0 subtracts from each (normalized) window the median of the windows
    of the `template_beats` beats before it (`subtract_template`). The template runs over
    every beat with a whole window, labelled or not, as a device sees the beats.

    `beats` None uses the reference annotations' beats (training). Given beat positions
    (at the output rate, e.g. from `host.data.beats.detect_beats`), each takes the class of
    the reference beat it matches within 150 ms, and -1 (dropped) when it matches none;
    the RR features come from the given beats, as they would on a device.
    """
    from host.data.beats import (
        RR_FEATURES,
        annotated_beats,
        beat_window_starts,
        match_beats,
        rr_features,
    )

    if scheme.source != "beat":
        raise ConfigError(
            f"alignment: 'beat' windows need a beat-code preset, not the rhythm preset "
            f"{scheme.name!r}; use alignment = 'fixed'"
        )
    if window < 8:
        raise ConfigError(f"window: must be at least 8 samples, not {window}")
    signal, ann_samples, fs_out = resample(record, fs)
    ref_pos, ref_sym = annotated_beats(ann_samples, record.ann_symbols)
    code_idx = scheme.code_to_index()
    ref_label = np.array([code_idx.get(str(s), -1) for s in ref_sym], dtype=np.int64)
    if beats is None:
        positions, labels = ref_pos, ref_label
    else:
        positions = np.asarray(beats, np.int64)
        match = match_beats(ref_pos, positions, fs_out)
        labels = np.full(len(positions), -1, np.int64)
        hit = match.detection_of_reference >= 0
        labels[match.detection_of_reference[hit]] = ref_label[hit]
    rr = rr_features(positions, fs_out, rr_names or RR_FEATURES)
    starts, whole = beat_window_starts(positions, window, len(signal))
    starts, labels, rr, positions = starts[whole], labels[whole], rr[whole], positions[whole]
    idx = starts[:, None] + np.arange(window)[None, :]
    x = normalize(signal[idx], normalization, signal, starts, fs_out)
    if template_beats:
        x = subtract_template(x, template_beats)
    keep = labels >= 0
    return x[keep], labels[keep], rr[keep], positions[keep]
