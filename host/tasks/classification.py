"""What every classification task shares: a softmax head, cross-entropy, class weights.

A classification task (ECG beat classes, spoken digits) subclasses `ClassificationTask`
and names its classes (`class_names`); the head, loss, class weights and scoring follow.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from host.metrics import MetricKind, MetricSpec
from host.tasks.base import Task, TaskData
from host.train.metrics import classification_metrics


def quality(name: str, description: str, maximise: bool = True) -> MetricSpec:
    """A quality metric of the catalogue (host.metrics)."""
    return MetricSpec(name, maximise, MetricKind.QUALITY, "", description)


#: the metrics `classification_metrics` gives for any set of classes
CLASS_METRICS: tuple[MetricSpec, ...] = (
    quality("accuracy", "share of windows classified right"),
    quality("balanced_accuracy", "mean recall over the classes present"),
    quality("f1_macro", "F1 averaged over classes"),
    quality("precision_macro", "precision averaged over classes"),
    quality("recall_macro", "recall averaged over classes"),
)


class ClassificationTask(Task):
    """A task whose networks end in a softmax over `class_names()`."""

    output_activation = "softmax"

    @abstractmethod
    def class_names(self) -> tuple[str, ...]:
        """The classes, in the order of the network's outputs."""

    def metrics(self) -> tuple[MetricSpec, ...]:
        return CLASS_METRICS

    def head(self, keras: Any, features: Any, *, logits: bool = False, name: str = "out",
             **layer_options: Any) -> Any:
        activation = None if logits else "softmax"
        return keras.layers.Dense(len(self.class_names()), activation=activation, name=name,
                                  **layer_options)(features)

    def loss(self, keras: Any, *, logits: bool = False) -> Any:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)

    def fit_options(self, data: TaskData, class_weights: str | None) -> dict[str, Any]:
        from host.train.trainer import class_weights_of

        if class_weights is None:
            return {}
        return {"class_weight": class_weights_of(
            class_weights, np.asarray(data.y_train), len(self.class_names()))}

    def score(self, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        predicted = np.asarray(outputs).reshape(len(y_true), -1).argmax(axis=-1)
        return classification_metrics(y_true, predicted, self.class_names())
