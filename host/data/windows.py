"""Cut a record into fixed-length windows and label each from the annotations inside it."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from host.data.classes import ClassScheme
from host.data.mitdb import EcgRecord
from host.errors import ConfigError

NORMALIZATIONS = ("zscore", "minmax", "record", "none")


def resample(record: EcgRecord, fs: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Return the signal and annotation positions at `fs` (unchanged when None or equal)."""
    if fs is None or abs(fs - record.fs) < 1e-9:
        return record.signal, record.ann_samples, record.fs
    from scipy.signal import resample_poly

    ratio = Fraction(fs / record.fs).limit_denominator(1000)
    sig = resample_poly(record.signal, ratio.numerator, ratio.denominator).astype(np.float32)
    ann = np.round(record.ann_samples * float(ratio)).astype(np.int64)
    return sig, ann, float(fs)


def normalize(x: np.ndarray, method: str, record_signal: np.ndarray | None = None) -> np.ndarray:
    """Normalize windows `x` (n, window) in place of a copy; see NORMALIZATIONS."""
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
    if method == "none":
        return x.astype(np.float32)
    raise ConfigError(f"normalization: unknown {method!r}; choose one of {list(NORMALIZATIONS)}")


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
    x = normalize(signal[idx], normalization, signal)
    return x, labels
