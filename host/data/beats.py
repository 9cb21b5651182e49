"""Beat-aligned ECG inputs: windows centred on each beat, RR-interval features, QRS detection.

The inter-patient ECG literature (de Chazal et al. 2004; Mondéjar-Guerra et al. 2019; Farag
2023) shares three ingredients that fixed windows lack: one input per beat, centred on its
R peak; the rhythm around the beat as RR-interval features; and a normalization that
follows the patient. This module gives the first two; `host.data.windows` the third.

- Training uses the reference annotations' beat positions (`annotated_beats`).
- Inference on a raw record finds the beats with wfdb's XQRS detector (`detect_beats`), a
  maintained implementation, and `match_beats` pairs detections with the reference within
  150 ms (the AAMI EC57 matching window) so a detector's own sensitivity is reported.

RR features (`rr_features`, all in seconds or ratios, `RR_FEATURES` names the default
set, `RR_FEATURE_CATALOG` every one that can be asked for): previous and next RR, the local
RR (mean of the 10 intervals before the beat) and the average RR (mean over the 5 minutes
centred on the beat, as de Chazal), the natural logarithms of the ratios previous/average,
next/average, local/average and previous/next, and the local irregularity (the mean
|change of log RR| over the 10 intervals before the beat). The irregularity tells an
irregular rhythm, where every beat is early or late against the average (atrial
fibrillation: records 201, 202, 203, 219, 221, 222), from a regular one with an isolated
premature beat; in 5-fold grouped cross-validation over DS1 it raised normal-vs-anomalous
balanced accuracy by 0.36 points on average, in 4 of 6 paired seeds: a small effect
(docs/decisions.md, issue 18). Models
trained before it list the first 8 names in their metadata (`RR_FEATURES_V1`), and
`hilnas evaluate` gives them exactly those.
The ratios are what carry across patients: a premature beat is one whose previous RR is
short *for this patient*. Their logarithms are centred on 0 and symmetric (a beat 20%
early and one 20% late sit equally far from normal); on the raw ratios, whose spread is
a tenth of their mean, a small network trained for a few epochs learned far less: an
RR-only MLP reached balanced accuracy 0.76 on unseen patients with raw ratios and 0.91
with their logarithms (docs/decisions.md, issue 18).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host.data.mitdb import BEAT_CODES
from host.errors import ConfigError

#: every RR feature `rr_features` can compute, in the order of its columns
RR_FEATURE_CATALOG: tuple[str, ...] = (
    "rr_prev_s",
    "rr_next_s",
    "rr_local_s",
    "rr_average_s",
    "log_rr_prev_over_average",
    "log_rr_next_over_average",
    "log_rr_local_over_average",
    "log_rr_prev_over_next",
    "rr_irregularity",
)
#: the set of the first beat-aligned models (2026-12-01 to 2026-12-02)
RR_FEATURES_V1: tuple[str, ...] = RR_FEATURE_CATALOG[:8]
#: the default set: what `data.rr_features = true` gives a new model
RR_FEATURES: tuple[str, ...] = RR_FEATURE_CATALOG
#: beats before the current one that the local RR averages over
LOCAL_BEATS = 10
#: seconds, centred on the beat, that the average RR covers (de Chazal's 5 minutes)
AVERAGE_SECONDS = 300.0
#: AAMI EC57's matching window between a detected and a reference beat, in seconds
MATCH_TOLERANCE_S = 0.15


def annotated_beats(
    ann_samples: np.ndarray, ann_symbols: tuple[str, ...] | list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The reference beats of a record: sample positions and symbols (non-beat codes dropped)."""
    keep = np.fromiter((s in BEAT_CODES for s in ann_symbols), bool, len(ann_symbols))
    return np.asarray(ann_samples, np.int64)[keep], np.asarray(ann_symbols, dtype=object)[keep]


def check_rr_feature_names(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Return `names` as a tuple; a ConfigError names any unknown or repeated one."""
    names = tuple(str(n) for n in names)
    unknown = [n for n in names if n not in RR_FEATURE_CATALOG]
    if unknown:
        raise ConfigError(
            f"rr_feature_names: unknown {unknown}; known: {list(RR_FEATURE_CATALOG)}"
        )
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"rr_feature_names: give each feature once, at least one: {list(names)}")
    return names


def rr_features(
    beats: np.ndarray, fs: float, names: tuple[str, ...] | list[str] = RR_FEATURES
) -> np.ndarray:
    """RR-interval features (n_beats, len(names)) float32 of beat positions `beats`.

    `beats` are sorted sample positions; `names` picks and orders the columns (a subset of
    `RR_FEATURE_CATALOG`). The first beat has no previous interval and the last no next
    one: each takes its neighbour's interval, so every beat gets a feature row. A record
    with one beat gets the average human RR (0.8 s) and a regular rhythm everywhere rather
    than a division by zero.
    """
    names = check_rr_feature_names(names)
    beats = np.asarray(beats, np.int64)
    n = len(beats)
    columns: dict[str, np.ndarray]
    if n < 2:
        columns = {name: np.full(n, 0.8 if name.endswith("_s") else 0.0)
                   for name in RR_FEATURE_CATALOG}  # logs of a ratio of 1; no irregularity
        return np.stack([columns[name] for name in names], axis=1).astype(np.float32)
    rr = np.diff(beats).astype(np.float64) / fs  # rr[i] = beat i+1 - beat i
    prev = np.concatenate([[rr[0]], rr])
    nxt = np.concatenate([rr, [rr[-1]]])
    # Local: mean of the LOCAL_BEATS previous intervals (fewer at the start of the record).
    csum = np.concatenate([[0.0], np.cumsum(prev)])
    idx = np.arange(n)
    lo = np.maximum(0, idx + 1 - LOCAL_BEATS)
    local = (csum[idx + 1] - csum[lo]) / (idx + 1 - lo)
    # Average: mean of the intervals whose beat lies within +-150 s of this one.
    t = beats / fs
    half = AVERAGE_SECONDS / 2
    a = np.searchsorted(t, t - half, side="left")
    b = np.searchsorted(t, t + half, side="right")
    average = (csum[b] - csum[a]) / np.maximum(b - a, 1)
    eps = 1e-6

    def log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.log((a + eps) / (b + eps))

    # Irregularity: mean |log prev[j] - log prev[j-1]| over the LOCAL_BEATS changes that end
    # at this beat (causal, what a device keeps; the first beat has none: 0).
    change = np.abs(np.diff(np.log(prev + eps), prepend=np.log(prev[0] + eps)))
    csum_change = np.concatenate([[0.0], np.cumsum(change)])
    lo_change = np.maximum(1, idx + 1 - LOCAL_BEATS)
    n_changes = np.maximum(idx + 1 - lo_change, 1)
    irregularity = np.where(idx > 0, (csum_change[idx + 1] - csum_change[lo_change]) / n_changes,
                            0.0)
    columns = {
        "rr_prev_s": prev,
        "rr_next_s": nxt,
        "rr_local_s": local,
        "rr_average_s": average,
        "log_rr_prev_over_average": log_ratio(prev, average),
        "log_rr_next_over_average": log_ratio(nxt, average),
        "log_rr_local_over_average": log_ratio(local, average),
        "log_rr_prev_over_next": log_ratio(prev, nxt),
        "rr_irregularity": irregularity,
    }
    return np.stack([columns[name] for name in names], axis=1).astype(np.float32)


def beat_window_starts(
    beats: np.ndarray, window: int, n_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Start sample of a `window` centred on each beat, and which beats have a whole window.

    The beat sits at sample `window // 2` of its window (a little before the middle for an
    even window), so the QRS complex and the T wave after it are both inside.
    """
    starts = np.asarray(beats, np.int64) - window // 2
    ok = (starts >= 0) & (starts + window <= n_samples)
    return starts, ok


@dataclass(frozen=True)
class BeatMatch:
    """Detected beats paired with reference beats (AAMI matching within 150 ms)."""

    #: for each reference beat, the index of its detection, or -1 when it was missed
    detection_of_reference: np.ndarray
    n_reference: int
    n_detected: int

    @property
    def matched(self) -> int:
        return int((self.detection_of_reference >= 0).sum())

    @property
    def sensitivity(self) -> float:
        return self.matched / self.n_reference if self.n_reference else float("nan")

    @property
    def positive_predictivity(self) -> float:
        return self.matched / self.n_detected if self.n_detected else float("nan")

    def to_json(self) -> dict[str, float | int]:
        return {
            "reference_beats": self.n_reference,
            "detected_beats": self.n_detected,
            "matched_beats": self.matched,
            "sensitivity": self.sensitivity,
            "positive_predictivity": self.positive_predictivity,
            "tolerance_s": MATCH_TOLERANCE_S,
        }


def detect_beats(signal: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample positions found by wfdb's XQRS detector (sorted, unique)."""
    from wfdb import processing

    xqrs = processing.XQRS(sig=np.asarray(signal, np.float64), fs=fs)
    xqrs.detect(verbose=False)
    peaks = np.asarray(xqrs.qrs_inds, np.int64)
    if len(peaks) == 0:
        return peaks
    # XQRS marks the QRS onset region; the annotations mark the R peak. Move each detection
    # to the largest absolute deflection within 60 ms so windows are centred the same way.
    radius = max(1, int(round(0.06 * fs)))
    sig = np.asarray(signal, np.float64)
    out = np.empty_like(peaks)
    for i, p in enumerate(peaks):
        lo, hi = max(0, p - radius), min(len(sig), p + radius + 1)
        seg = sig[lo:hi] - np.median(sig[lo:hi])
        out[i] = lo + int(np.argmax(np.abs(seg)))
    return np.unique(out)


def match_beats(
    reference: np.ndarray, detected: np.ndarray, fs: float, tolerance_s: float = MATCH_TOLERANCE_S
) -> BeatMatch:
    """Pair detections with reference beats with wfdb's `compare_annotations` (one-to-one)."""
    from wfdb import processing

    reference = np.asarray(reference, np.int64)
    detected = np.asarray(detected, np.int64)
    of_ref = np.full(len(reference), -1, np.int64)
    if len(reference) and len(detected):
        cmp = processing.compare_annotations(
            reference, detected, int(round(tolerance_s * fs))
        )
        matched_ref = np.asarray(cmp.matched_ref_inds, np.int64)
        matched_test = np.asarray(cmp.matched_test_inds, np.int64)
        of_ref[matched_ref] = matched_test
    return BeatMatch(of_ref, len(reference), len(detected))
