"""Import TensorFlow with tf-keras (Keras 2), the only path that exports fused int8 LSTMs."""

from __future__ import annotations

import os
from typing import Any


def _prepare() -> None:
    # Must be set before TensorFlow is first imported; with Keras 3 an LSTM converts to a
    # WHILE loop and int8 conversion segfaults (docs/decisions-ecg.md).
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tf() -> Any:
    """Return the `tensorflow` module, configured for tf-keras."""
    _prepare()
    import tensorflow as tf

    return tf


def import_keras() -> Any:
    """Return the `tf_keras` module (the Keras 2 API that tf.keras means here)."""
    _prepare()
    import tf_keras

    return tf_keras
