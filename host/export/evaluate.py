"""Quality of a .tflite model on ECG windows, run with LiteRT (`ai_edge_litert`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from host.data.classes import PRESETS
from host.data.dataset import EcgDataset, EcgDatasetConfig, load_ecg_windows
from host.errors import ConfigError, DataError, HilnasError, MeasurementFailed
from host.export.flatbuf import io_tensors, read_metadata
from host.train.metrics import classification_metrics


def _interpreter(model: bytes, resolver: str = "AUTO") -> Any:
    """A one-thread LiteRT interpreter with the kernels `resolver` names.

    "AUTO" is LiteRT's default; otherwise an `OpResolverType`, e.g. "BUILTIN_REF" (TFLite's
    portable reference kernels).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:  # the agent extra is not installed
        raise HilnasError("ai-edge-litert is not installed: pip install 'hilnas[agent]'") from exc
    if resolver == "AUTO":
        return Interpreter(model_content=model, num_threads=1)
    return Interpreter(model_content=model, num_threads=1,
                       experimental_op_resolver_type=OpResolverType[resolver])


def predict_tflite(model: bytes, x: np.ndarray) -> np.ndarray:
    """Return class predictions (argmax) for windows `x` (n, window, channels)."""
    return tflite_outputs(model, x).argmax(axis=1).astype(np.int64)


def tflite_outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    """Return the model's outputs for windows `x`, dequantized to float32, one invoke each.

    int8 inputs are quantized with the model's input scale and zero point.
    """
    io = io_tensors(model)
    inp, out = io["inputs"][0], io["outputs"][0]
    shape = tuple(inp["shape"])
    if tuple(shape[1:]) != tuple(x.shape[1:]):
        raise ConfigError(
            f"data: windows of shape {tuple(x.shape[1:])} do not fit the model input {shape}"
        )
    xq = quantize(x, inp["dtype"], inp["scale"], inp["zero_point"])
    return dequantize(raw_outputs(model, xq), out["dtype"], out["scale"], out["zero_point"])


def raw_outputs(model: bytes, xq: np.ndarray, resolver: str = "AUTO") -> np.ndarray:
    """The first output (n, values) in its own type, for windows already in the input's type.

    One invoke per window at a batch of one, each from a zero state: LiteRT keeps an LSTM's
    state in variable tensors from one invoke to the next unless they are reset, and Keras
    (stateless) and the firmware (TFLM, reset per inference) start every window afresh.
    """
    it = _interpreter(model, resolver)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    shape = [1, *(int(d) for d in inp["shape"][1:])]
    if int(inp["shape"][0]) != 1:
        it.resize_tensor_input(inp["index"], shape)
    it.allocate_tensors()
    n_out = int(np.prod(out["shape"][1:])) if len(out["shape"]) > 1 else 1
    ys = np.empty((len(xq), n_out), out["dtype"])
    for i in range(len(xq)):
        it.reset_all_variables()
        it.set_tensor(inp["index"], np.asarray(xq[i]).reshape(shape).astype(inp["dtype"]))
        it.invoke()
        ys[i] = it.get_tensor(out["index"]).reshape(-1)[:n_out]
    return ys


def quantize(x: np.ndarray, dtype: Any, scale: float, zero_point: int) -> np.ndarray:
    """Float windows as a quantized input tensor reads them (unchanged for a float input)."""
    if np.dtype(dtype) in (np.dtype(np.int8), np.dtype(np.uint8)) and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return np.asarray(x).astype(dtype)


def dequantize(y: np.ndarray, dtype: Any, scale: float, zero_point: int) -> np.ndarray:
    """A quantized output tensor's values as floats (unchanged for a float output)."""
    y = np.asarray(y, dtype=np.float32)
    if np.dtype(dtype) in (np.dtype(np.int8), np.dtype(np.uint8)) and scale:
        return (y - zero_point) * scale
    return y


def config_from_metadata(meta: dict[str, Any], **overrides: Any) -> EcgDatasetConfig:
    """Return the dataset config a model was trained with, from its embedded metadata."""
    if not meta:
        raise ConfigError(
            "model: the .tflite has no hilnas metadata; pass --preset and the windowing options"
        )
    scheme = meta.get("scheme") or {}
    preset = overrides.pop("preset", None) or meta.get("preset", "normal-vs-anomalous")
    kwargs: dict[str, Any] = {
        "preset": preset,
        "database": meta.get("database", "mitdb"),
        "window": int(meta.get("window", 256)),
        "stride": meta.get("stride"),
        "lead": meta.get("lead", "MLII"),
        "normalization": meta.get("normalization", "zscore"),
        "sample_rate": meta.get("resample"),
        "seed": int(meta.get("seed", 0)),
    }
    if preset == meta.get("preset") and preset not in PRESETS and scheme:
        groups: dict[str, list[str]] = {c: [] for c in scheme["classes"]}
        for code, cls in scheme["mapping"].items():
            groups[cls].append(code)
        kwargs.update(
            preset="custom",
            custom=groups,
            custom_source=scheme.get("source", "beat"),
            custom_priority=tuple(scheme.get("priority") or ()) or None,
        )
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return EcgDatasetConfig(**kwargs)


def evaluate_tflite(
    path_or_bytes: str | os.PathLike[str] | bytes,
    dataset_or_config: EcgDataset | EcgDatasetConfig | None = None,
    *,
    side: str = "test",
    isolate: bool | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Return the quality of a .tflite model (see `host.train.metrics`) plus context.

    `dataset_or_config`: a prepared `EcgDataset` (its `side` windows are used), an
    `EcgDatasetConfig` (every window of its records, no split, windowing as configured),
    or None (the config stored in the model's metadata, on its test records).
    `isolate`: run LiteRT in a child process; by default only when TensorFlow is already
    imported in this process (two TFLite runtimes in one process have crashed before).
    """
    model = (
        bytes(path_or_bytes)
        if isinstance(path_or_bytes, (bytes, bytearray))
        else Path(path_or_bytes).read_bytes()
    )
    meta = read_metadata(model)
    if isinstance(dataset_or_config, EcgDataset):
        if side not in ("train", "val", "test"):
            raise ConfigError(f"side: must be train, val or test, not {side!r}")
        x, y = getattr(dataset_or_config, f"x_{side}"), getattr(dataset_or_config, f"y_{side}")
        names = dataset_or_config.class_names
        desc = f"{side} side of {dataset_or_config.split_description}"
    else:
        cfg = dataset_or_config
        if cfg is None:
            test_records = (meta.get("records") or {}).get("test")
            cfg = config_from_metadata(meta, records=tuple(test_records) if test_records else None)
        x, y, names, used = load_ecg_windows(cfg, progress=progress)
        desc = f"records {','.join(used)}"
    if meta.get("classes") and list(meta["classes"]) != list(names):
        raise DataError(
            f"classes: the model predicts {meta['classes']} but the data has {list(names)}"
        )
    if isolate is None:
        isolate = "tensorflow" in sys.modules
    preds = _predict_isolated(model, x) if isolate else predict_tflite(model, x)
    metrics = classification_metrics(y, preds, names)
    metrics["data"] = desc
    metrics["quantization"] = meta.get("quantization")
    metrics["model_bytes"] = len(model)
    return metrics


def _predict_isolated(model: bytes, x: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="hilnas-eval-") as tmp:
        mpath, xpath, ypath = (Path(tmp) / n for n in ("m.tflite", "x.npy", "y.npy"))
        mpath.write_bytes(model)
        np.save(xpath, x)
        env = {k: v for k, v in os.environ.items()}
        proc = subprocess.run(
            [sys.executable, "-m", "host.export.evaluate", str(mpath), str(xpath), str(ypath)],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            raise MeasurementFailed(f"LiteRT evaluation failed (exit {proc.returncode}): {tail}")
        return np.load(ypath)


def _main(argv: list[str]) -> int:
    mpath, xpath, ypath = argv
    preds = predict_tflite(Path(mpath).read_bytes(), np.load(xpath))
    np.save(ypath, preds)
    return 0


def evaluate_json(metrics: dict[str, Any]) -> str:
    """Return metrics as indented JSON."""
    return json.dumps(metrics, indent=2, default=str)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
