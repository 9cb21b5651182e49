"""Training and quality metrics for candidate networks (tf-keras)."""

from host.train.metrics import classification_metrics, confusion_matrix, detection_rates
from host.train.trainer import (
    TrainConfig,
    TrainResult,
    balanced_class_weights,
    class_weights_of,
    refit_network,
    train_candidate,
    train_model,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "balanced_class_weights",
    "class_weights_of",
    "classification_metrics",
    "confusion_matrix",
    "detection_rates",
    "refit_network",
    "train_candidate",
    "train_model",
]
