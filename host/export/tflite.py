"""Convert tf-keras models to TFLite (float32, dynamic-range, full int8) in a child process."""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from host.errors import ConfigError, HilnasError
from host.export.flatbuf import METADATA_NAME, io_types, model_ops, read_metadata

MODES = ("float32", "dynamic", "int8", "int8-float-input")
DEFAULT_REPRESENTATIVE_SAMPLES = 200

__all__ = [
    "MODES",
    "ConversionError",
    "add_metadata",
    "convert",
    "convert_many",
    "warm_up",
    "io_types",
    "model_ops",
    "read_metadata",
]


class ConversionError(HilnasError):
    """The TFLite converter failed or crashed; the message says how."""


def convert(
    model_or_saved_path: Any,
    mode: str,
    representative: np.ndarray | Sequence[np.ndarray] | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    batch_size: int | None = 1,
    max_representative: int = DEFAULT_REPRESENTATIVE_SAMPLES,
    timeout: float = 900.0,
) -> bytes:
    """Return a .tflite flatbuffer of a tf-keras model.

    `model_or_saved_path`: a tf-keras model, or the path of one saved as `.h5`/`.keras`
    or as a SavedModel folder. `mode`: "float32"; "dynamic" (int8 weights, float
    activations); "int8" (full integer: int8 weights and activations, int8 input and
    output, TFLITE_BUILTINS_INT8 only); "int8-float-input" (float32 input, int8 output,
    TFLITE_BUILTINS_INT8 with TFLITE_BUILTINS as fallback: the operators of an audio front
    end, named under `host.data.audio_features.FLOAT_SCOPE`, and what feeds only them stay
    float32, RFFT2D having no int8 kernel; the network after them is int8, joined by one
    QUANTIZE; a model without a front end comes out full int8 with a float input). Both
    int8 modes need `representative`, an array of model inputs (n, *input_shape) whose
    first `max_representative` rows calibrate the ranges, or a list of such arrays, one per
    model input in the model's order.
    `batch_size`: the model is rebuilt with this static batch size (1 by default: static
    shapes are what fuse an LSTM into UNIDIRECTIONAL_SEQUENCE_LSTM); None keeps it.
    `metadata`: a JSON-able dict stored in the model as the metadata entry "hilnas"
    (see `read_metadata`).

    The converter runs in a child process because it can crash the interpreter (a
    segfault is a signal, not an exception). A crash, a failure or a timeout raises
    ConversionError. Models with custom layers must be passed as a SavedModel path: the
    converter process loads a `.keras` before it imports the module that registers them
    (hilnas's own `AudioFrontend` included).
    """
    return convert_many(
        model_or_saved_path,
        [mode],
        representative,
        metadata,
        batch_size=batch_size,
        max_representative=max_representative,
        timeout=timeout,
    )[mode]


def convert_many(
    model_or_saved_path: Any,
    modes: list[str],
    representative: np.ndarray | Sequence[np.ndarray] | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    batch_size: int | None = 1,
    max_representative: int = DEFAULT_REPRESENTATIVE_SAMPLES,
    timeout: float = 900.0,
) -> dict[str, bytes]:
    """Return {mode: flatbuffer} for several modes in one child process (see `convert`).

    Each mode's metadata gets `"quantization": mode` added.
    """
    for mode in modes:
        if mode not in MODES:
            raise ConfigError(f"mode: unknown {mode!r}; choose one of {list(MODES)}")
    if {"int8", "int8-float-input"} & set(modes) and representative is None:
        raise ConfigError("representative: full int8 conversion needs representative inputs")
    meta_json = json.dumps(dict(metadata), default=_json_default) if metadata else None
    with tempfile.TemporaryDirectory(prefix="hilnas-convert-") as tmp:
        tmpdir = Path(tmp)
        if isinstance(model_or_saved_path, (str, os.PathLike)):
            model_path = Path(model_or_saved_path)
            if not model_path.exists():
                raise ConfigError(f"model: {model_path} does not exist")
        else:
            model_path = tmpdir / "model.keras"
            try:
                model_or_saved_path.save(str(model_path), save_format="keras_v3")
            except Exception as exc:  # Keras raises several kinds for unsavable models
                raise ConversionError(f"could not save the model for conversion: {exc}") from exc
        rep_path = None
        if representative is not None:
            reps = (
                [np.asarray(representative, dtype=np.float32)]
                if isinstance(representative, np.ndarray)
                else [np.asarray(r, dtype=np.float32) for r in representative]
            )
            reps = [r[:max_representative] for r in reps]
            if not reps or any(len(r) == 0 for r in reps):
                raise ConfigError("representative: no samples")
            if len({len(r) for r in reps}) != 1:
                raise ConfigError(
                    f"representative: the inputs have {[len(r) for r in reps]} samples; "
                    "each input needs one per sample"
                )
            rep_path = tmpdir / "representative.npz"
            np.savez(rep_path, *reps)  # arr_0, arr_1, ... in the model's input order
        outs = {m: tmpdir / f"model-{m}.tflite" for m in modes}
        request = {
            "model": str(model_path),
            "modes": {m: str(p) for m, p in outs.items()},
            "representative": str(rep_path) if rep_path else None,
            "metadata": meta_json,
            "batch_size": batch_size,
        }
        req_path = tmpdir / "request.json"
        req_path.write_text(json.dumps(request))
        _run_child(req_path, timeout)
        return {m: p.read_bytes() for m, p in outs.items()}


def add_metadata(
    tflite_bytes: bytes, metadata: Mapping[str, Any], name: str = METADATA_NAME
) -> bytes:
    """Return the model with `metadata` (JSON) stored as entry `name`, replacing any.

    Runs in a child process (it needs TensorFlow's flatbuffer schema).
    """
    with tempfile.TemporaryDirectory(prefix="hilnas-meta-") as tmp:
        src = Path(tmp) / "in.tflite"
        src.write_bytes(tflite_bytes)
        out = Path(tmp) / "out.tflite"
        req = Path(tmp) / "request.json"
        req.write_text(
            json.dumps(
                {
                    "add_metadata": str(src),
                    "metadata": json.dumps(dict(metadata), default=_json_default),
                    "name": name,
                    "out": str(out),
                }
            )
        )
        _run_child(req, 120.0)
        return out.read_bytes()


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_json"):
        return o.to_json()
    return str(o)


_CONVERTERS: dict[str, Any] = {}
_CONVERTERS_LOCK = threading.Lock()


def _converter() -> Any:
    """The warm converter process for this interpreter (one per `sys.executable`)."""
    from device_agent.isolation import IsolatedWorker

    with _CONVERTERS_LOCK:
        worker = _CONVERTERS.get(sys.executable)
        if worker is None:
            worker = IsolatedWorker(
                module="host.export.convert_worker",
                label="the TFLite converter",
                executable=sys.executable,
                start_timeout_s=300.0,
            )
            _CONVERTERS[sys.executable] = worker
            atexit.register(worker.close)
        return worker


def warm_up() -> None:
    """Start the converter process now, so the first conversion does not wait for it.

    Its TensorFlow import takes seconds. A failure to start is raised here.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    _converter().start()


def _run_child(request: Path, timeout: float) -> None:
    """Convert in the warm converter process; a crash or a hang is a ConversionError."""
    from device_agent.errors import WorkerCrashed, WorkerTimedOut

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        _converter().call("convert", timeout_s=timeout, request_path=str(request))
    except WorkerCrashed as exc:
        tail = f"; last output: {exc.output_tail}" if exc.output_tail else ""
        raise ConversionError(f"the TFLite converter crashed ({exc.how}){tail}") from None
    except WorkerTimedOut as exc:
        raise ConversionError(
            f"the TFLite converter did not finish within {exc.deadline_s or timeout:.0f} s "
            "and was killed"
        ) from None
    except HilnasError as exc:
        raise ConversionError(f"TFLite conversion failed: {exc}") from None


# ---- child side (python -m host.export.tflite REQUEST.json) --------------------------------


def _with_batch(model: Any, batch_size: int, keras: Any) -> Any:
    """Return a copy of `model` whose input layers have a static batch size."""
    if all(t.shape[0] == batch_size for t in model.inputs):
        return model
    cfg = model.get_config()

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "batch_input_shape" and isinstance(v, (list, tuple)):
                    node[k] = [batch_size, *list(v)[1:]]
                else:
                    fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)

    fix(cfg)
    clone = model.__class__.from_config(cfg)
    clone.set_weights(model.get_weights())
    return clone


def _child_add_metadata(buf: bytes, meta_json: str, name: str) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    payload = np.frombuffer(meta_json.encode("utf-8"), dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if _decode(m.name) != name]
    buffer = schema.BufferT()
    buffer.data = payload
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*entries, entry]
    builder = flatbuffers.Builder(len(buf) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _decode(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def _child_convert(tf: Any, converter: Any, mode: str, req: dict[str, Any]) -> bytes:
    quantized = mode in ("int8", "int8-float-input")
    converter.optimizations = [tf.lite.Optimize.DEFAULT] if mode != "float32" else []
    converter.representative_dataset = None
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    converter._experimental_calibrate_only = False
    if quantized:
        if not req.get("representative"):
            raise ConfigError(f"representative: {mode} conversion needs representative inputs")
        with np.load(req["representative"]) as npz:
            reps = [npz[f"arr_{k}"].astype(np.float32) for k in range(len(npz.files))]

        def gen() -> Any:
            for i in range(len(reps[0])):
                yield [r[i : i + 1] for r in reps]

        converter.representative_dataset = gen
    if mode == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

    def float_input_int8() -> bytes:
        """Mode "int8-float-input": float32 input, float front end, int8 network and output.

        The converter's own int8 pass quantizes every operator that has an int8 kernel: with a
        tf.signal front end that put the audio, the window, the power spectrum, the mel matmul
        and the log in int8, with only RFFT2D, REAL and IMAG left in float (measured; docs/
        decisions.md, issue 14). So the model is calibrated first; then the operators named
        under the front end's scope (`host.data.audio_features.FLOAT_SCOPE`), and everything
        upstream of them that feeds nothing else, lose their calibration ranges and are
        denylisted, and the calibrated model is quantized with the converter's MLIR quantizer
        (what `tf.lite.experimental.QuantizationDebugger` uses for selective quantization).
        Denylisting alone is not enough: the quantizer matches only plain names (a fused name,
        "a;b", is never matched) and still inserted int8 round trips on front-end tensors with
        several users. A model without such a scope comes out as full int8 with a float input.
        """
        import flatbuffers
        from tensorflow.lite.python import convert as tf_convert
        from tensorflow.lite.python import schema_py_generated as schema

        from host.data.audio_features import FLOAT_SCOPE

        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.int8
        converter._experimental_calibrate_only = True
        try:
            calibrated = bytes(converter.convert())
        finally:
            converter._experimental_calibrate_only = False
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(calibrated, 0))
        denylist: list[str] = []
        for sg in model.subgraphs:
            names = [_decode(t.name) for t in sg.tensors]
            ops = list(sg.operators or [])
            consumers: dict[int, list[int]] = {}
            for k, op in enumerate(ops):
                for i in op.inputs if op.inputs is not None else []:
                    if i >= 0:
                        consumers.setdefault(int(i), []).append(k)
            graph_outputs = {int(i) for i in (sg.outputs if sg.outputs is not None else [])}

            def scoped(k: int, names: list[str] = names, ops: list[Any] = ops) -> bool:
                outs = [int(o) for o in ops[k].outputs]
                return bool(outs) and all(
                    any(f"/{FLOAT_SCOPE}/" in f"/{part}/" for part in names[o].split(";"))
                    for o in outs
                )

            float_ops = {k for k in range(len(ops)) if scoped(k)}
            if not float_ops:
                continue
            # Upstream of the front end: an operator whose outputs feed only float operators
            # (a reshape of the input window) stays float too.
            changed = True
            while changed:
                changed = False
                for k in range(len(ops)):
                    if k in float_ops:
                        continue
                    outs = [int(o) for o in ops[k].outputs]
                    users = [c for o in outs for c in consumers.get(o, [])]
                    if users and all(c in float_ops for c in users) and not (
                        set(outs) & graph_outputs
                    ):
                        float_ops.add(k)
                        changed = True
            internal = set()
            for k in float_ops:
                for o in ops[k].outputs:
                    o = int(o)
                    if o not in graph_outputs and all(
                        c in float_ops for c in consumers.get(o, [])
                    ):
                        internal.add(o)
                    denylist.extend(p for p in {names[o], *names[o].split(";")} if p)
            for i in sg.inputs if sg.inputs is not None else []:
                users = consumers.get(int(i), [])
                if users and all(c in float_ops for c in users):
                    internal.add(int(i))
            for o in internal:  # no calibration range: the quantizer leaves it float
                sg.tensors[o].quantization = None
        builder = flatbuffers.Builder(len(calibrated) + 1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(
            tf_convert.mlir_quantize(
                bytes(builder.Output()),
                disable_per_channel=converter._experimental_disable_per_channel,
                input_data_type=tf.float32,
                output_data_type=tf.int8,
                denylisted_nodes=sorted(set(denylist)) or None,
            )
        )

    if mode == "int8-float-input":
        buf = float_input_int8()
    else:
        buf = bytes(converter.convert())
    if req.get("metadata"):
        meta = {**json.loads(req["metadata"]), "quantization": mode}
        buf = _child_add_metadata(buf, json.dumps(meta), METADATA_NAME)
    return buf


def run_request(request_path: str) -> int:
    """Carry out one conversion request file (the converter process's only request).

    The request is JSON: {"model", "modes", "representative", "metadata", "batch_size"} for
    a conversion, or {"add_metadata", "metadata", "name", "out"} to add metadata. A key
    "_test_signal" (a signal name) makes the process send itself that signal first: the
    tests' way to crash or hang a real converter.
    """
    req = json.loads(Path(request_path).read_text())
    if req.get("_test_signal"):
        os.kill(os.getpid(), getattr(signal, req["_test_signal"]))
    from host.train.tfenv import import_keras, import_tf

    if "add_metadata" in req:
        buf = Path(req["add_metadata"]).read_bytes()
        Path(req["out"]).write_bytes(_child_add_metadata(buf, req["metadata"], req["name"]))
        return 0
    tf = import_tf()
    keras = import_keras()
    path = Path(req["model"])
    if path.is_dir() and not (path / "keras_metadata.pb").exists():
        converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    else:
        from host.train.tfenv import load_keras_model

        model = load_keras_model(path)  # registers hilnas's layers (the audio front end)
        if req["batch_size"]:
            model = _with_batch(model, int(req["batch_size"]), keras)
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    for mode, out in req["modes"].items():
        Path(out).write_bytes(_child_convert(tf, converter, mode, req))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m host.export.tflite REQUEST.json", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(run_request(sys.argv[1]))
    except Exception as exc:  # reported to the parent through stderr and the exit code
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
