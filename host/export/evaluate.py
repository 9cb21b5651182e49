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
from host.data.dataset import EcgDataset, EcgDatasetConfig, load_ecg_eval_windows
from host.errors import ConfigError, DataError, HilnasError, MeasurementFailed
from host.export.flatbuf import io_tensors, read_metadata
from host.train.metrics import classification_metrics, inter_patient_metrics


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


Inputs = np.ndarray | list[np.ndarray]


def predict_tflite(model: bytes, x: Inputs) -> np.ndarray:
    """Return class predictions (argmax) for windows `x` (n, window, channels).

    `x` is [windows, aux] for a model with a second input (RR features).
    """
    return tflite_outputs(model, x).argmax(axis=1).astype(np.int64)


def input_order(shapes: list[list[int]], arrays: list[np.ndarray]) -> list[int]:
    """For each array (in the Keras model's input order), the index of the .tflite input.

    The converter may order a model's inputs differently from Keras, so inputs are paired
    by their per-sample shape (a window (length, channels) and RR features (8,) never
    share one); equal shapes keep their order. A mismatch is a ConfigError naming both.
    """
    if len(shapes) != len(arrays):
        raise ConfigError(
            f"data: the model has {len(shapes)} input(s), {len(arrays)} were given "
            f"(a model with RR features takes [windows, rr])"
        )
    free = list(range(len(shapes)))
    order = []
    for a in arrays:
        want = tuple(int(d) for d in a.shape[1:])
        match = next((i for i in free if tuple(shapes[i][1:]) == want), None)
        if match is None:
            raise ConfigError(
                f"data: inputs of shape {want} do not fit the model's inputs "
                f"{[tuple(sh) for sh in shapes]}"
            )
        free.remove(match)
        order.append(match)
    return order


def tflite_outputs(model: bytes, x: Inputs) -> np.ndarray:
    """Return the model's outputs for windows `x`, dequantized to float32, one invoke each.

    int8 inputs are quantized with each input's scale and zero point.
    """
    io = io_tensors(model)
    arrays = x if isinstance(x, list) else [x]
    order = input_order([t["shape"] for t in io["inputs"]], arrays)
    xq = [quantize(a, io["inputs"][k]["dtype"], io["inputs"][k]["scale"],
                   io["inputs"][k]["zero_point"]) for a, k in zip(arrays, order, strict=True)]
    out = io["outputs"][0]
    raw = raw_outputs(model, xq if isinstance(x, list) else xq[0], input_indices=order)
    return dequantize(raw, out["dtype"], out["scale"], out["zero_point"])


def raw_outputs(
    model: bytes,
    xq: Inputs,
    resolver: str = "AUTO",
    input_indices: list[int] | None = None,
) -> np.ndarray:
    """The first output (n, values) in its own type, for inputs already in the input's type.

    `xq`: one array of windows, or a list of arrays, one per model input; `input_indices`
    says which .tflite input each array feeds (default: in order; see `input_order`).
    One invoke per window at a batch of one, each from a zero state: LiteRT keeps an LSTM's
    state in variable tensors from one invoke to the next unless they are reset, and Keras
    (stateless) and the firmware (TFLM, reset per inference) start every window afresh.
    """
    arrays = xq if isinstance(xq, list) else [xq]
    it = _interpreter(model, resolver)
    details = it.get_input_details()
    indices = input_indices if input_indices is not None else list(range(len(arrays)))
    if len(details) != len(arrays):
        raise ConfigError(f"data: the model has {len(details)} input(s), {len(arrays)} were given")
    shapes = []
    for k in indices:
        inp = details[k]
        shape = [1, *(int(d) for d in inp["shape"][1:])]
        if int(inp["shape"][0]) != 1:
            it.resize_tensor_input(inp["index"], shape)
        shapes.append(shape)
    it.allocate_tensors()
    out = it.get_output_details()[0]
    n_out = int(np.prod(out["shape"][1:])) if len(out["shape"]) > 1 else 1
    n = len(arrays[0])
    ys = np.empty((n, n_out), out["dtype"])
    for i in range(n):
        it.reset_all_variables()
        for a, k, shape in zip(arrays, indices, shapes, strict=True):
            it.set_tensor(details[k]["index"],
                          np.asarray(a[i]).reshape(shape).astype(details[k]["dtype"]))
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
        "alignment": meta.get("alignment", "fixed"),
        "rr_features": bool(meta.get("rr_features")),
        # the names the model was trained with: models older than the irregularity feature
        # list 8 (host.data.beats.RR_FEATURES_V1) and get exactly those
        "rr_feature_names": (tuple(meta["rr_features"])
                             if isinstance(meta.get("rr_features"), list) and meta["rr_features"]
                             else None),
        "template_beats": int(meta.get("template_beats") or 0),
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
    detect: bool = False,
) -> dict[str, Any]:
    """Return the quality of a .tflite model (see `host.train.metrics`) plus context.

    `dataset_or_config`: a prepared `EcgDataset` (its `side` windows are used), an
    `EcgDatasetConfig` (every window of its records, no split, windowing as configured),
    or None (the config stored in the model's metadata, on its test records).
    `isolate`: run LiteRT in a child process; by default only when TensorFlow is already
    imported in this process (two TFLite runtimes in one process have crashed before).
    `detect`: a beat-aligned model is scored on the beats wfdb's XQRS detector finds in the
    raw records (as a device would see them) rather than on the annotated beats; the result
    carries the detector's own sensitivity and positive predictivity.

    Besides `host.train.metrics.classification_metrics`, the result has `inter_patient`
    (normal-vs-anomalous balanced accuracy, per-class sensitivity and positive
    predictivity, the j-index with AAMI classes) and, per record, the balanced accuracy.
    """
    model = (
        bytes(path_or_bytes)
        if isinstance(path_or_bytes, (bytes, bytearray))
        else Path(path_or_bytes).read_bytes()
    )
    meta = read_metadata(model)
    per_record: list[tuple[str, int]] = []
    extra: dict[str, Any] = {}
    x: Inputs
    if isinstance(dataset_or_config, EcgDataset):
        if side not in ("train", "val", "test"):
            raise ConfigError(f"side: must be train, val or test, not {side!r}")
        if detect:
            raise ConfigError("detect: pass a dataset config (records), not a prepared split")
        x, y = dataset_or_config.inputs(side), getattr(dataset_or_config, f"y_{side}")
        names = dataset_or_config.class_names
        desc = f"{side} side of {dataset_or_config.split_description}"
    else:
        cfg = dataset_or_config
        if cfg is None:
            test_records = (meta.get("records") or {}).get("test")
            cfg = config_from_metadata(meta, records=tuple(test_records) if test_records else None)
        windows = load_ecg_eval_windows(cfg, progress=progress, detect=detect)
        x, y, names = windows.inputs(), windows.y, windows.class_names
        desc = f"records {','.join(windows.records)}"
        per_record = list(zip(windows.records, windows.per_record, strict=True))
        extra["beats"] = windows.beats if cfg.alignment == "beat" else None
        if windows.detection is not None:
            extra["detection"] = windows.detection
    if meta.get("classes") and list(meta["classes"]) != list(names):
        raise DataError(
            f"classes: the model predicts {meta['classes']} but the data has {list(names)}"
        )
    if isolate is None:
        isolate = "tensorflow" in sys.modules
    preds = _predict_isolated(model, x) if isolate else predict_tflite(model, x)
    metrics = classification_metrics(y, preds, names)
    metrics["inter_patient"] = inter_patient_metrics(y, preds, names)
    if per_record:
        bounds = np.cumsum([0] + [n for _, n in per_record])
        metrics["per_record"] = {
            rec: {
                "n": n,
                "balanced_accuracy": classification_metrics(
                    y[bounds[i]:bounds[i + 1]], preds[bounds[i]:bounds[i + 1]], names
                )["balanced_accuracy"],
            }
            for i, (rec, n) in enumerate(per_record)
        }
    metrics.update({k: v for k, v in extra.items() if v is not None})
    metrics["data"] = desc
    metrics["quantization"] = meta.get("quantization")
    metrics["model_bytes"] = len(model)
    return metrics


def _predict_isolated(model: bytes, x: Inputs) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="hilnas-eval-") as tmp:
        mpath, xpath, ypath = (Path(tmp) / n for n in ("m.tflite", "x.npz", "y.npy"))
        mpath.write_bytes(model)
        np.savez(xpath, *(x if isinstance(x, list) else [x]))
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
    with np.load(xpath) as npz:
        arrays = [npz[f"arr_{k}"] for k in range(len(npz.files))]
    preds = predict_tflite(Path(mpath).read_bytes(), arrays if len(arrays) > 1 else arrays[0])
    np.save(ypath, preds)
    return 0


def evaluate_json(metrics: dict[str, Any]) -> str:
    """Return metrics as indented JSON."""
    return json.dumps(metrics, indent=2, default=str)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
