"""Small reference .tflite models (built with tf-keras) for checking devices and agents.

Each builder returns the bytes of a converted model. Conversion uses TensorFlow, so call
these from a process that does not also load LiteRT (the agent's worker is separate).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _convert(model, representative_shape: tuple[int, ...] | None) -> bytes:
    tf = _tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative_shape is not None:
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(16):
                yield [rng.standard_normal(representative_shape).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def int8_conv1d(window: int = 256, filters: int = 16, seed: int = 0) -> bytes:
    """A small int8 Conv1D classifier (a few KB)."""
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)  # Python, NumPy and TF: the same model every time
    inp = tf.keras.Input((window, 1), batch_size=1)
    x = tf.keras.layers.Conv1D(filters, 16, activation="relu")(inp)
    x = tf.keras.layers.MaxPooling1D(4)(x)
    x = tf.keras.layers.Conv1D(filters, 8, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling1D()(x)
    out = tf.keras.layers.Dense(2, activation="softmax")(x)
    return _convert(tf.keras.Model(inp, out), (1, window, 1))


def int8_conv_lstm(window: int = 256, seed: int = 0) -> bytes:
    """Conv1D(32,16) + LSTM(16) + Dense(2), int8 with a fused LSTM (TOOLCHAIN.md)."""
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)  # Python, NumPy and TF: the same model every time
    inp = tf.keras.Input((window, 1), batch_size=1)
    x = tf.keras.layers.Conv1D(32, 16, activation="relu")(inp)
    x = tf.keras.layers.LSTM(16)(x)
    out = tf.keras.layers.Dense(2, activation="softmax")(x)
    return _convert(tf.keras.Model(inp, out), (1, window, 1))


def float_dense(target_bytes: int = 1_000_000, seed: int = 0) -> bytes:
    """A float32 MLP of about `target_bytes` of weights."""
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)  # Python, NumPy and TF: the same model every time
    width = int((target_bytes / 4 / 2) ** 0.5)
    inp = tf.keras.Input((width,), batch_size=1)
    x = tf.keras.layers.Dense(width, activation="relu")(inp)
    x = tf.keras.layers.Dense(width, activation="relu")(x)
    out = tf.keras.layers.Dense(4)(x)
    return _convert(tf.keras.Model(inp, out), None)


def int8_sized(target_bytes: int, seed: int = 0) -> bytes:
    """An int8 Conv1D + Dense network of roughly `target_bytes` (for transfer benchmarks)."""
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)  # Python, NumPy and TF: the same model every time
    units = max(8, int(target_bytes / 64))
    inp = tf.keras.Input((64, 1), batch_size=1)
    x = tf.keras.layers.Conv1D(8, 8, padding="same", activation="relu")(inp)
    x = tf.keras.layers.Conv1D(1, 1)(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(units, activation="relu")(x)
    out = tf.keras.layers.Dense(2)(x)
    return _convert(tf.keras.Model(inp, out), (1, 64, 1))


def huge_intermediate(elements: int = 200_000_000) -> bytes:
    """A tiny float model whose Tile output needs `elements` floats of arena."""
    tf = _tf()

    layer_base: Any = tf.keras.layers.Layer

    class TileUp(layer_base):
        def call(self, x):
            return tf.reduce_sum(tf.tile(x, [1, elements // 16]), axis=1, keepdims=True)

    inp = tf.keras.Input((16,), batch_size=1)
    out = TileUp()(inp)
    return _convert(tf.keras.Model(inp, out), None)


BUILDERS: dict[str, Callable[[], bytes]] = {
    "int8_conv1d": int8_conv1d,
    "int8_conv_lstm": int8_conv_lstm,
    "float_1mb": float_dense,
}


def build_all(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, builder in BUILDERS.items():
        path = directory / f"{name}.tflite"
        if not path.exists():
            path.write_bytes(builder())
        paths[name] = path
    return paths
