"""ECG classification on MIT-BIH (BioNetExplorer's task): beat-class windows, softmax head."""

from __future__ import annotations

from typing import Any

import numpy as np

from host.data.dataset import EcgDatasetConfig
from host.metrics import MetricKind, MetricSpec
from host.spaces.base import InputSpec
from host.tasks.base import Task, TaskData, register_task
from host.train.metrics import classification_metrics


def _quality(name: str, description: str, maximise: bool = True) -> MetricSpec:
    return MetricSpec(name, maximise, MetricKind.QUALITY, "", description)


CLASSIFICATION_METRICS: tuple[MetricSpec, ...] = (
    _quality("accuracy", "share of windows classified right"),
    _quality("balanced_accuracy", "mean recall over the classes present"),
    _quality("f1_macro", "F1 averaged over classes"),
    _quality("precision_macro", "precision averaged over classes"),
    _quality("recall_macro", "recall averaged over classes"),
    # HALF's acceptance figures: every class but the first (normal) counts as a detection.
    _quality("detection_rate", "anomalous windows detected (sensitivity)"),
    _quality("false_alarm_rate", "normal windows called anomalous", maximise=False),
)


@register_task("ecg")
class EcgClassification(Task):
    """Windows of one MIT-BIH lead, labelled by the classes of a preset (host.data)."""

    config_type = EcgDatasetConfig
    config: EcgDatasetConfig
    output_activation = "softmax"

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

    def default_quality(self) -> str:
        return "f1_macro"

    def load(self, progress: bool = False) -> TaskData:
        from host.data import load_ecg_dataset

        return load_ecg_dataset(self.config, progress=progress)

    def head(self, keras: Any, features: Any, *, logits: bool = False, name: str = "out",
             **layer_options: Any) -> Any:
        classes = self.input_spec().outputs
        activation = None if logits else "softmax"
        return keras.layers.Dense(classes, activation=activation, name=name,
                                  **layer_options)(features)

    def loss(self, keras: Any, *, logits: bool = False) -> Any:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)

    def fit_options(self, data: TaskData, class_weights: str | None) -> dict[str, Any]:
        if class_weights != "balanced":
            return {}
        from host.train.trainer import balanced_class_weights

        return {"class_weight": balanced_class_weights(data.y_train, self.input_spec().outputs)}

    def score(self, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        predicted = np.asarray(outputs).reshape(len(y_true), -1).argmax(axis=-1)
        return classification_metrics(y_true, predicted, self.config.scheme().classes)
