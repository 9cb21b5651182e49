"""Classification quality: accuracy, balanced accuracy, F1, detection rates, confusion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Return counts[i, j] of windows of true class i predicted as j."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def detection_rates(
    y_true: np.ndarray, y_pred: np.ndarray, positive: Sequence[int] | int = 1
) -> tuple[float, float]:
    """Return (detection rate, false-alarm rate) of a detector.

    Detection = TP / (TP + FN) over windows whose true class is positive; false alarm =
    FP / (FP + TN) over the negative windows (HALF's acceptance figures). `positive` is the
    class index, or indices (every anomalous class of a multi-class scheme), that counts as
    a detection. NaN where a side has no windows.
    """
    pos = np.atleast_1d(np.asarray(positive))
    t = np.isin(np.asarray(y_true), pos)
    p = np.isin(np.asarray(y_pred), pos)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    detection = float((t & p).sum() / n_pos) if n_pos else float("nan")
    false_alarm = float((~t & p).sum() / n_neg) if n_neg else float("nan")
    return detection, false_alarm


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Return the quality of predictions `y_pred` against `y_true` (class indices).

    Macro precision, recall and F1 average over the classes that occur in `y_true` or
    `y_pred` (as scikit-learn does); a class with no predictions has precision 0. Balanced
    accuracy is the mean recall over classes present in `y_true`. Detection and false-alarm
    rates take the first class as the background (every preset's first class is normal)
    and any other class as a detection.
    """
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    n = len(class_names)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    total = int(cm.sum())
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "n": total,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "precision_macro": float(precision[present].mean()) if present.any() else 0.0,
        "recall_macro": float(recall[present].mean()) if present.any() else 0.0,
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        **dict(
            zip(
                ("detection_rate", "false_alarm_rate"),
                detection_rates(y_true, y_pred, range(1, n)),
                strict=True,
            )
        ),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }


def inter_patient_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """The figures the inter-patient ECG literature reports (de Chazal et al. 2004, AAMI EC57).

    - `normal_vs_anomalous_balanced_accuracy`: the classes other than the first (normal)
      merged into one, then the mean of the two recalls; comparable across presets;
    - per class `sensitivity` (recall) and `positive_predictivity` (precision), under the
      class's name (AAMI-5's N, S, V, F, Q);
    - `j_index`, with S and V classes: the mean of S and V sensitivity and positive
      predictivity (Llamedo and Martínez's j = Se_S + Se_V + P+_S + P+_V, divided by 4 so
      that it reads on 0..1 as Mondéjar-Guerra et al. 2019 print it).
    """
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    full = classification_metrics(y_true, y_pred, class_names)
    binary = classification_metrics(
        (y_true > 0).astype(np.int64), (y_pred > 0).astype(np.int64), ["normal", "anomalous"]
    )
    per_class = {
        name: {
            "sensitivity": v["recall"],
            "positive_predictivity": v["precision"],
            "support": v["support"],
        }
        for name, v in full["per_class"].items()
    }
    out: dict[str, Any] = {
        "normal_vs_anomalous_balanced_accuracy": binary["balanced_accuracy"],
        "balanced_accuracy": full["balanced_accuracy"],
        "per_class": per_class,
    }
    if "S" in per_class and "V" in per_class:
        s, v = per_class["S"], per_class["V"]
        out["j_index"] = float(np.mean([s["sensitivity"], v["sensitivity"],
                                        s["positive_predictivity"], v["positive_predictivity"]]))
    return out
