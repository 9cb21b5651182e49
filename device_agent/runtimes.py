"""Discovery of the TFLite-compatible interpreter available on this device.

Preference order (TOOLCHAIN.md): LiteRT (`ai_edge_litert`, the maintained runtime and the
only one with numpy-2 wheels), then `tflite_runtime` (older boards pinned to numpy<2), then
`tensorflow.lite` (a workstation with TensorFlow). `HILNAS_TFLITE_RUNTIME` forces one.
Never import two of these in one process: they carry separate copies of the runtime.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from device_agent.errors import ConfigError, DeviceUnavailable
from device_agent.types import RuntimeInfo

RUNTIME_PREFERENCE = ("ai_edge_litert", "tflite_runtime", "tensorflow.lite")


@dataclass(frozen=True)
class TfliteRuntime:
    info: RuntimeInfo
    interpreter_class: Any


def _load(name: str) -> TfliteRuntime:
    from importlib import metadata

    if name == "ai_edge_litert":
        module = importlib.import_module("ai_edge_litert.interpreter")
        version = metadata.version("ai-edge-litert")
    elif name == "tflite_runtime":
        module = importlib.import_module("tflite_runtime.interpreter")
        version = metadata.version("tflite-runtime")
    elif name == "tensorflow.lite":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        tf = importlib.import_module("tensorflow")
        module = tf.lite
        version = tf.__version__
    else:
        raise ConfigError(
            f"unknown TFLite runtime {name!r}; choose one of {', '.join(RUNTIME_PREFERENCE)}"
        )
    return TfliteRuntime(RuntimeInfo(name, version), module.Interpreter)


def load_runtime(preferred: str | None = None) -> TfliteRuntime:
    """The first importable runtime, or the one named by `preferred`/HILNAS_TFLITE_RUNTIME."""
    forced = preferred or os.environ.get("HILNAS_TFLITE_RUNTIME")
    if forced:
        try:
            return _load(forced)
        except ImportError as exc:
            raise DeviceUnavailable(f"TFLite runtime {forced!r} is not installed: {exc}") from exc
    errors = []
    for name in RUNTIME_PREFERENCE:
        try:
            return _load(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise DeviceUnavailable(
        "no TFLite runtime is installed; install LiteRT with `pip install ai-edge-litert` "
        "(tried " + "; ".join(errors) + ")"
    )
