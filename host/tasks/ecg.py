"""ECG classification on MIT-BIH (BioNetExplorer's task): beat-class windows, softmax head."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from host.data.dataset import EcgDatasetConfig
from host.errors import ConfigError
from host.metrics import MetricSpec
from host.spaces.base import InputSpec
from host.tasks.base import Granularity, TaskData, register_task
from host.tasks.classification import CLASS_METRICS, ClassificationTask, quality

#: the sample rate of each database's records (Hz)
NATIVE_RATES = {"mitdb": 360, "cudb": 250}

CLASSIFICATION_METRICS: tuple[MetricSpec, ...] = (
    *CLASS_METRICS,
    # HALF's acceptance figures: every class but the first (normal) counts as a detection.
    quality("detection_rate", "anomalous windows detected (sensitivity)"),
    quality("false_alarm_rate", "normal windows called anomalous", maximise=False),
    # The inter-patient literature's headline for a two-way decision (issue 18's goal):
    # comparable across presets, since every class but the first merges into "anomalous".
    quality("normal_vs_anomalous_balanced_accuracy",
            "mean of normal and anomalous recall, the classes after the first merged"),
)


@register_task("ecg")
class EcgClassification(ClassificationTask):
    """Windows of one MIT-BIH lead, labelled by the classes of a preset (host.data)."""

    config_type = EcgDatasetConfig
    config: EcgDatasetConfig

    def class_names(self) -> tuple[str, ...]:
        return tuple(self.config.scheme().classes)

    def input_spec(self) -> InputSpec:
        return InputSpec(self.config.window, 1, len(self.config.scheme().classes),
                         aux_features=self.config.n_aux_features)

    def representative(self, data: TaskData, n: int = 200) -> np.ndarray | list[np.ndarray]:
        """Calibration windows drawn evenly from every class of the training side.

        The first `n` training windows are mostly normal beats, so int8 ranges fitted on them
        clip the large deflections of ventricular beats; taking each class in equal share
        (all of a class that has fewer) keeps those ranges (docs/decisions.md, issue 18).
        """
        y = np.asarray(data.y_train)
        rng = np.random.default_rng(0)
        classes = [c for c in np.unique(y)]
        per_class = max(1, n // max(1, len(classes)))
        picked = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes]
        idx = np.sort(np.concatenate(picked)) if picked else np.arange(0)
        x = np.asarray(data.x_train[idx], dtype=np.float32)
        if data.aux_train is None:
            return x
        return [x, np.asarray(data.aux_train[idx], dtype=np.float32)]

    def metrics(self) -> tuple[MetricSpec, ...]:
        return CLASSIFICATION_METRICS

    def score(self, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        m = super().score(y_true, outputs)
        detected, false_alarm = m["detection_rate"], m["false_alarm_rate"]
        # NaN where a side has no windows (a validation side without anomalous beats).
        m["normal_vs_anomalous_balanced_accuracy"] = (detected + 1.0 - false_alarm) / 2.0
        return m

    # ------------------------------------------------------------------ data granularity
    def native_rate(self) -> float:
        return float(NATIVE_RATES[self.config.database])

    def granularity(self) -> Granularity:
        rate = self.config.sample_rate or self.native_rate()
        return Granularity(int(round(rate)), round(self.config.window / rate, 6))

    def with_granularity(self, granularity: Granularity) -> EcgClassification:
        """The task at another rate and window (the ECG is always given raw)."""
        if granularity.representation != "raw":
            raise ConfigError(
                f"representation {granularity.representation!r}: the ecg task gives its "
                "networks the raw lead only"
            )
        native = self.native_rate()
        if granularity.sample_rate > native:
            raise ConfigError(
                f"sample_rate {granularity.sample_rate} Hz is above the {native:g} Hz of "
                f"{self.config.database}; upsampling would invent granularity"
            )
        window = int(round(granularity.window_s * granularity.sample_rate))
        rate = None if granularity.sample_rate == native else float(granularity.sample_rate)
        return EcgClassification(
            dataclasses.replace(self.config, sample_rate=rate, window=window)
        )

    def default_quality(self) -> str:
        return "f1_macro"

    def load(self, progress: bool = False) -> TaskData:
        from host.data import load_ecg_dataset

        return load_ecg_dataset(self.config, progress=progress)
