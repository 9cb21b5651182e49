"""Build a small trained int8 HALF-space .tflite for tests, benchmarks and demos.

Training and conversion run in a child Python process, so the caller never imports
TensorFlow next to LiteRT (two TFLite runtimes in one process have crashed here) and a
converter crash cannot take it down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from host.spaces.half import HalfArch, MaxPool, SepConv

DEMO_ARCH = HalfArch((SepConv(9, 2, 2, 8), MaxPool(2), SepConv(5, 1, 1, 16),
                      SepConv(3, 2, 2, 8)))

_CHILD = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tf_keras as keras
from host.export.tflite import convert
from host.spaces.base import InputSpec
from host.spaces.half import HalfArch, MaxPool, SepConv, build_half_model, fold_batchnorm
req = json.loads(open(sys.argv[1]).read())
layers = tuple(SepConv(*l[1:]) if l[0] == "s" else MaxPool(l[1]) for l in req["layers"])
arch = HalfArch(layers)
d = np.load(req["data"])
x, y = d["x"], d["y"]
n_classes = int(req["n_classes"])
keras.utils.set_random_seed(int(req["seed"]))
model = build_half_model(arch, InputSpec(x.shape[1], x.shape[2], n_classes))
model.compile(optimizer=keras.optimizers.Adam(3e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
if req["epochs"] > 0:
    model.fit(x, y, epochs=int(req["epochs"]), batch_size=64, verbose=0)
folded = fold_batchnorm(model, arch, batch_size=1)
buf = convert(folded, "int8", representative=x[:200])
open(req["out"], "wb").write(buf)
"""


def build_demo_tflite(
    out: Path,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    arch: HalfArch = DEMO_ARCH,
    epochs: int = 1,
    seed: int = 0,
    timeout: float = 600.0,
) -> Path:
    """Train `arch` briefly on (x, y), fold BN, convert to int8 and write `out`."""
    layers = [["s", L.kernel, L.stride, L.multiplier, L.filters] if isinstance(L, SepConv)
              else ["p", L.stride] for L in arch.layers]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        np.savez(data, x=x.astype(np.float32), y=y.astype(np.int64))
        req = Path(tmp) / "req.json"
        req.write_text(json.dumps({"layers": layers, "data": str(data), "n_classes": n_classes,
                                   "epochs": epochs, "seed": seed, "out": str(out)}))
        subprocess.run([sys.executable, "-c", _CHILD, str(req)], check=True, timeout=timeout,
                       capture_output=True)
    return out
