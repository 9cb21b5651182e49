"""Import TensorFlow with tf-keras (Keras 2), the only path that exports fused int8 LSTMs.

TensorFlow's native start-up writes to file descriptor 2 before any of its logging can be
configured: on a machine without a GPU it probes CUDA and reports that it found none
("Could not find cuda drivers", "failed call to cuInit", absl's "All log messages before
absl::InitializeLog()..."). `TF_CPP_MIN_LOG_LEVEL` does not reach those lines in TF 2.21.
They say nothing a hilnas user can act on, and they bury hilnas's own progress, so the
first import here runs with descriptor 2 captured: known start-up noise is dropped (kept
in the debug log), anything else is passed through to stderr unchanged.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# Lines TensorFlow's native start-up prints on a machine without CUDA (and a few more that
# only describe the build), matched anywhere in the line.
STARTUP_NOISE = re.compile(
    r"cuda|cuInit|cudart|cuDNN|cuFFT|cuBLAS|TF-TRT|TensorRT|absl::InitializeLog|"
    r"oneDNN custom operations|This TensorFlow binary is optimized|"
    r"rebuild TensorFlow with the appropriate compiler flags|computation placer|"
    r"Unable to register .* factory|gpu_device\.cc|GPU will not be used",
    re.IGNORECASE,
)
_IMPORT_LOCK = threading.Lock()


def _prepare() -> None:
    # Must be set before TensorFlow is first imported; with Keras 3 an LSTM converts to a
    # WHILE loop and int8 conversion segfaults (docs/decisions-ecg.md).
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextmanager
def quiet_native_startup() -> Iterator[None]:
    """Capture descriptor 2 while native code starts; replay what is not known noise."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (a notebook): nothing to do
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
    for line in text.splitlines():
        if STARTUP_NOISE.search(line):
            log.debug("tensorflow start-up: %s", line)
        elif line.strip():
            print(line, file=sys.stderr)


def _quiet_python_logging() -> None:
    # Retracing notes and deprecation chatter go through Python logging at WARNING.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def import_tf() -> Any:
    """Return the `tensorflow` module, configured for tf-keras (start-up noise dropped)."""
    _prepare()
    if "tensorflow" not in sys.modules:
        with _IMPORT_LOCK:
            if "tensorflow" not in sys.modules:
                with quiet_native_startup():
                    import tensorflow

                    # Device discovery (the CUDA probe) runs on first use, not at import:
                    # make it happen here, inside the capture.
                    tensorflow.config.list_physical_devices()
                _quiet_python_logging()
    import tensorflow as tf

    return tf


def import_keras() -> Any:
    """Return the `tf_keras` module (the Keras 2 API that tf.keras means here)."""
    import_tf()
    import tf_keras

    return tf_keras


def load_keras_model(path: str | os.PathLike[str]) -> Any:
    """A saved tf-keras model (`.keras`, `.h5`), hilnas's own layers registered first.

    tf_keras finds a custom layer nested in a saved model only by its registration and never
    imports the layer's module itself (docs/decisions.md, "Audio front end"), so every layer
    hilnas defines is registered here before loading.
    """
    keras = import_keras()
    from host.adapt.graph import instruction_layer
    from host.data.audio_features import frontend_class

    frontend_class(keras)  # defines and registers "hilnas>AudioFrontend"
    instruction_layer(keras)  # "hilnas>Instruction", in adapted models (host/adapt)
    return keras.models.load_model(str(path), compile=False)
