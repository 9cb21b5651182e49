"""Small int8 .tflite models for the device tests, built once per machine in a child process.

The MCU tests use most of them; the device-contract suite uses "conv1d" (an ordinary int8
Conv1D + Dense model) and "separable" (a HALF-style depthwise-separable 1-D CNN that the
FPGA stand-in can build).

TensorFlow is imported only in that child (it is slow to import and the test process also
loads tflite-micro). Models are cached in the temp dir under a hash of the build script.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_SCRIPT = r"""
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
import tf_keras as k
out = sys.argv[1]

def int8(model, rep):
    def gen():
        for x in rep[:16]:
            yield [x[None].astype(np.float32)]
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = gen
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c.convert()

def save(name, model, shape):
    rep = np.random.default_rng(0).standard_normal((16, *shape)).astype(np.float32)
    with open(os.path.join(out, name + ".tflite"), "wb") as f:
        f.write(int8(model, rep))

k.utils.set_random_seed(0)
i = k.Input((64, 1), batch_size=1); x = k.layers.Flatten()(i)
x = k.layers.Dense(32, activation="relu")(x); o = k.layers.Dense(4, activation="softmax")(x)
save("tiny", k.Model(i, o), (64, 1))
# about 50 KB of weights
i = k.Input((64, 1), batch_size=1); x = k.layers.Flatten()(i)
x = k.layers.Dense(256, activation="relu")(x); x = k.layers.Dense(128)(x); o = k.layers.Dense(5)(x)
save("fc50k", k.Model(i, o), (64, 1))
# an op outside the Nano firmware's resolver (LEAKY_RELU)
i = k.Input((64, 1), batch_size=1); x = k.layers.Conv1D(8, 3)(i); x = k.layers.LeakyReLU()(x)
o = k.layers.Dense(2)(k.layers.Flatten()(x))
save("leaky", k.Model(i, o), (64, 1))
# activations far over the arena: 4096 x 64 int8 = 256 KB
i = k.Input((4096, 1), batch_size=1); x = k.layers.Conv1D(64, 3, padding="same")(i)
x = k.layers.Conv1D(64, 3, padding="same")(x)
o = k.layers.Dense(2)(k.layers.GlobalAveragePooling1D()(x))
save("bigarena", k.Model(i, o), (4096, 1))
# an ordinary int8 Conv1D + Dense model that every runtime here runs
i = k.Input((64, 1), batch_size=1); x = k.layers.Conv1D(8, 5, strides=2, activation="relu")(i)
o = k.layers.Dense(3)(k.layers.Flatten()(x))
save("conv1d", k.Model(i, o), (64, 1))
# HALF-style: depthwise-separable blocks (DW -> PW with ReLU), max pooling, GAP, logits
i = k.Input((128, 1), batch_size=1)
x = k.layers.DepthwiseConv1D(9, strides=2, depth_multiplier=2, activation="relu")(i)
x = k.layers.Conv1D(8, 1, activation="relu")(x)
x = k.layers.MaxPooling1D(2)(x)
x = k.layers.DepthwiseConv1D(5, padding="same", activation="relu")(x)
x = k.layers.Conv1D(8, 1, activation="relu")(x)
o = k.layers.Dense(3)(k.layers.GlobalAveragePooling1D()(x))
save("separable", k.Model(i, o), (128, 1))
# a real exported ECG model: the BioNetExplorer space's network, exported by hilnas, with
# MIT-BIH windows for calibration when the data are there
try:
    from host.export.tflite import convert
    from host.spaces.bionet import BioNetArch, build_keras_model
    m = build_keras_model(BioNetArch(1, 1, 4), 256, 1, 2, batch_size=1, seed=0)
    rep = None
    data = os.environ.get("HILNAS_DATA_DIR")
    if data and os.path.exists(os.path.join(data, "mitdb", "100.hea")):
        import wfdb
        sig = wfdb.rdrecord(os.path.join(data, "mitdb", "100"), sampto=256 * 40).p_signal[:, 0]
        rep = sig.reshape(40, 256, 1).astype(np.float32)
        np.save(os.path.join(out, "ecg_windows.npy"), rep)
    else:
        rep = np.random.default_rng(0).standard_normal((40, 256, 1)).astype(np.float32)
        np.save(os.path.join(out, "ecg_windows.npy"), rep)
    with open(os.path.join(out, "ecg.tflite"), "wb") as f:
        f.write(convert(m, "int8", representative=rep))
except ImportError as exc:
    print("no hilnas exporter:", exc, file=sys.stderr)
"""

NAMES = ("tiny", "fc50k", "leaky", "bigarena", "conv1d", "separable", "ecg")


def model_dir() -> Path:
    """The folder of built models (building them on first use, ~30-60 s)."""
    key = hashlib.sha256(_SCRIPT.encode()).hexdigest()[:12]
    final = Path(tempfile.gettempdir()) / f"hilnas-mcu-test-models-{key}"
    if (final / "tiny.tflite").exists():
        return final
    work = Path(tempfile.mkdtemp(prefix="hilnas-mcu-models-"))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(work)], check=True, timeout=600, env=env, cwd=repo
    )
    try:
        work.rename(final)
    except OSError:  # another process won the race; use its copy
        pass
    return final if final.exists() else work


def model_path(name: str) -> Path:
    return model_dir() / f"{name}.tflite"
