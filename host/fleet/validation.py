"""Field validation: a model's quality measured from a device's own outputs.

`validate_on_device` sends windows through a device's `Validate` (in batches within the
agent's limits), scores the device's outputs with the task, and compares them with the
host's int8 reference: the same quantized inputs run by LiteRT on this machine. It says
how many windows gave bit-identical raw outputs and the largest difference, so a device's
quality is a measured figure with its source, and a difference between device and host is
reported rather than hidden (see docs/validation.md).

Two host references are computed, both with LiteRT on the same int8 inputs:

- "host int8 reference (LiteRT)": the interpreter as `hilnas evaluate` and the search's
  host quality run it (default kernels: the XNNPACK delegate takes the int8 operators);
- "LiteRT reference kernels": `OpResolverType.BUILTIN_REF`, TFLite's portable integer
  kernels, which TFLite Micro shares. A microcontroller (TFLM) matches these bit for bit
  but can differ from the default by a few int8 steps, because XNNPACK requantizes with
  float arithmetic where the reference kernels use fixed-point multipliers.

`validate_front` does the same for several models on several devices, recording why a
device could not validate (no Validate, unreachable) and going on.

The search's own validation of a candidate (host.search.pipeline) calls
`validate_on_device` too: one implementation.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.errors import (
    CandidateRejected,
    ConfigError,
    DeviceUnavailable,
    HilnasError,
    MeasurementFailed,
    ProtocolError,
)
from host.fleet.device import Device, ModelBlob

log = logging.getLogger(__name__)

#: Windows per Validate call when nothing else is known: a request far under the agents'
#: size limits (device_agent.server: MAX_VALIDATE_SAMPLES, MAX_MESSAGE_BYTES).
VALIDATE_BATCH = 256
#: The agent's hard limits on one Validate request (device_agent.server); kept here so the
#: host does not import the agent's server module.
MAX_VALIDATE_SAMPLES = 100_000
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Input bytes per Validate call: a request well inside every limit on the way (gRPC's
#: message size, the agent's worker pipe). Agents before the fix of the worker pipe's short
#: reads (docs/decisions.md, "Short reads on the worker pipe") crashed on frames over
#: 64 KiB; for those, pass `batch` (`hilnas validate --batch 150`).
REQUEST_INPUT_BYTES = 1024 * 1024
#: With automatic batching, each call aims at this many seconds at most: well inside the
#: client's Validate deadline (timeout + 30 s + 10 ms per window) and the agent's
#: max_request_seconds, so a slow board (a serial link, an emulator) is never cut off.
TARGET_CALL_SECONDS = 10.0
#: The first call of an automatic batching probes the device's speed with this many windows.
PROBE_BATCH = 32

HOST_SOURCE = "host int8 reference (LiteRT)"
AGREEMENT_SOURCE = "device outputs vs host int8 reference (LiteRT), same quantized inputs"
REF_KERNELS_SOURCE = (
    "device outputs vs LiteRT reference kernels (BUILTIN_REF, TFLite's portable int8 kernels "
    "that TFLite Micro shares), same quantized inputs"
)
#: The host references: name -> LiteRT op resolver (see the module docstring).
REFERENCES = {"default": "AUTO", "reference_kernels": "BUILTIN_REF"}
#: Differing window indices kept in a result (the first ones).
MAX_DIFFERING_LISTED = 20


def device_source(device: str) -> str:
    """The source label of quality computed from a device's outputs."""
    return f"validated on {device} (device outputs)"


class ValidationUnsupported(HilnasError):
    """The device cannot run Validate (an agent or backend without it).

    The message starts "cannot validate on this device: NAME (BACKEND)"; a search records it
    and goes on without that device's quality.
    """


@dataclass
class DeviceValidation:
    """Quality measured from a device's outputs, next to the host's int8 reference."""

    device: str
    backend: str
    board: str
    is_stand_in: bool
    runtime: str
    n_windows: int
    batches: int
    batch_size: int
    seconds: float
    #: task.score on the device's outputs ({} without labels)
    device_metrics: dict[str, Any]
    device_source: str
    #: task.score on the host reference's outputs (None: no reference was computed)
    host_metrics: dict[str, Any] | None
    host_source: str = HOST_SOURCE
    reference_seconds: float = 0.0
    #: windows whose raw output vectors (int8 for an int8 model) are bit-identical
    identical_windows: int | None = None
    identical_share: float | None = None
    #: the largest difference of one output value, in raw (int8) units and dequantized
    max_abs_diff_raw: float | None = None
    max_abs_diff: float | None = None
    #: windows where device and host pick the same class (argmax)
    same_prediction_share: float | None = None
    differing_windows: list[int] = field(default_factory=list)
    #: the same agreement figures against LiteRT's reference kernels (None: not computed)
    reference_kernels: dict[str, Any] | None = None
    output_dtype: str = ""
    output_scale: float = 0.0
    output_zero_point: int = 0
    agreement_source: str = AGREEMENT_SOURCE
    #: raw outputs (n, outputs) of the device and of the host reference; not in JSON
    outputs: np.ndarray | None = field(default=None, repr=False)
    reference_outputs: np.ndarray | None = field(default=None, repr=False)

    @property
    def numeric_metrics(self) -> dict[str, float]:
        """The device's metrics that are numbers (what a search's figures hold)."""
        return numeric(self.device_metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "backend": self.backend,
            "board": self.board,
            "is_stand_in": self.is_stand_in,
            "runtime": self.runtime,
            "n_windows": self.n_windows,
            "batches": self.batches,
            "batch_size": self.batch_size,
            "seconds": round(self.seconds, 4),
            "reference_seconds": round(self.reference_seconds, 4),
            "device_metrics": _jsonable(self.device_metrics),
            "device_source": self.device_source,
            "host_metrics": _jsonable(self.host_metrics),
            "host_source": self.host_source if self.host_metrics is not None
            or self.identical_share is not None else None,
            "identical_windows": self.identical_windows,
            "identical_share": self.identical_share,
            "max_abs_diff_raw": self.max_abs_diff_raw,
            "max_abs_diff": self.max_abs_diff,
            "same_prediction_share": self.same_prediction_share,
            "differing_windows": list(self.differing_windows),
            "reference_kernels": self.reference_kernels,
            "output_dtype": self.output_dtype,
            "output_scale": self.output_scale,
            "output_zero_point": self.output_zero_point,
            "agreement_source": self.agreement_source if self.identical_share is not None
            else None,
        }


def numeric(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """The entries of a metrics dict that are plain numbers."""
    return {k: v for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- the model's I/O
@dataclass(frozen=True)
class ModelIO:
    """What the host needs to feed a model's inputs and read its first output.

    The `input_*` fields describe the first input; `inputs` lists every input as
    (shape, dtype, scale, zero point) in the .tflite's order (a beat model takes the window
    and its RR features).
    """

    input_shape: tuple[int, ...]
    input_dtype: str
    input_scale: float
    input_zero_point: int
    output_dtype: str
    output_scale: float
    output_zero_point: int
    inputs: tuple[tuple[tuple[int, ...], str, float, int], ...] = ()

    @classmethod
    def of(cls, model: bytes) -> ModelIO:
        from host.export.flatbuf import io_tensors

        if len(model) < 8 or model[4:8] != b"TFL3":
            raise ConfigError("model: not a .tflite model (no TFL3 identifier)")
        try:
            io = io_tensors(model)
        except Exception as exc:  # noqa: BLE001 - a corrupt flatbuffer, whatever it raises
            raise ConfigError(f"model: cannot read the .tflite's tensors: {exc}") from exc
        if not io["inputs"] or not io["outputs"]:
            raise ConfigError(
                f"model: field validation needs an input tensor and an output; this model "
                f"has {len(io['inputs'])} inputs and {len(io['outputs'])} outputs"
            )
        inp, out = io["inputs"][0], io["outputs"][0]
        inputs = tuple(
            (tuple(max(1, d) for d in t["shape"]), t["dtype"], t["scale"], t["zero_point"])
            for t in io["inputs"]
        )
        return cls(
            inputs[0][0], inp["dtype"], inp["scale"],
            inp["zero_point"], out["dtype"], out["scale"], out["zero_point"], inputs,
        )

    @property
    def n_inputs(self) -> int:
        return len(self.inputs) or 1

    def quantize(self, x: np.ndarray | list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Windows (n, ...) as the input tensor reads them, one window per row.

        For a model with several inputs, `x` is a list of arrays (the Keras model's order:
        [windows, rr]); the result is a list in the .tflite's input order.
        """
        from host.export.evaluate import input_order, quantize

        arrays = [np.asarray(a, np.float32) for a in (x if isinstance(x, list) else [x])]
        specs = self.inputs or ((self.input_shape, self.input_dtype, self.input_scale,
                                 self.input_zero_point),)
        if len(arrays) != len(specs):
            raise ConfigError(
                f"data: the model has {len(specs)} inputs, {len(arrays)} were given "
                "(a model with RR features takes [windows, rr])"
            )
        if len(specs) == 1:
            size = int(np.prod(specs[0][0]))
            if len(arrays[0]) and int(np.prod(arrays[0].shape[1:])) != size:
                raise ConfigError(
                    f"data: windows of shape {tuple(arrays[0].shape[1:])} do not fit the model "
                    f"input {list(specs[0][0])}"
                )
            return quantize(arrays[0], *specs[0][1:])
        order = input_order([list(sp[0]) for sp in specs], arrays)
        out: list[np.ndarray] = [np.zeros(0)] * len(specs)
        for a, k in zip(arrays, order, strict=True):
            out[k] = quantize(a, *specs[k][1:])
        return out

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        from host.export.evaluate import dequantize

        return dequantize(raw, self.output_dtype, self.output_scale, self.output_zero_point)


# --------------------------------------------------------------------------- host reference
def host_references(
    model: bytes, xq: np.ndarray | list[np.ndarray], *, isolate: bool | None = None
) -> dict[str, np.ndarray]:
    """The host's raw outputs (n, outputs) for quantized windows `xq`, per REFERENCES entry.

    LiteRT, one invoke per window from a zero state (variables reset), one thread.
    `isolate`:
    run LiteRT in a child process; by default when TensorFlow is imported in this process
    (two TFLite runtimes in one process have crashed before; see host.export.evaluate).
    """
    if isolate is None:
        isolate = "tensorflow" in sys.modules
    if not isolate:
        return {name: _reference_in_process(model, xq, kind) for name, kind in REFERENCES.items()}
    with tempfile.TemporaryDirectory(prefix="hilnas-validate-") as tmp:
        mpath, xpath, ypath = (Path(tmp) / n for n in ("m.tflite", "x.npz", "y.npz"))
        mpath.write_bytes(model)
        np.savez(xpath, *(xq if isinstance(xq, list) else [xq]))
        proc = subprocess.run(
            [sys.executable, "-m", "host.fleet.validation", str(mpath), str(xpath), str(ypath)],
            capture_output=True, text=True, env=dict(os.environ), timeout=3600,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            raise MeasurementFailed(
                f"the host int8 reference (LiteRT) failed (exit {proc.returncode}): {tail}"
            )
        with np.load(ypath) as data:
            return {name: data[name] for name in REFERENCES}


def _reference_in_process(
    model: bytes, xq: np.ndarray | list[np.ndarray], resolver: str = "AUTO"
) -> np.ndarray:
    """LiteRT's raw outputs with `resolver`'s kernels ("AUTO": what `hilnas evaluate` runs)."""
    from host.export.evaluate import raw_outputs

    return raw_outputs(model, xq, resolver)


# --------------------------------------------------------------------------- on the device
_UNSUPPORTED_TEXT = re.compile(
    r"NotImplementedError|Method not (found|implemented)|UNIMPLEMENTED|cannot run Validate",
    re.IGNORECASE,
)


def _is_unsupported(exc: BaseException) -> bool:
    """Whether an error from Validate means the device has no Validate at all.

    An agent without the RPC answers UNIMPLEMENTED (a ProtocolError on the host); a backend
    whose validate raises NotImplementedError reaches the host as MeasurementFailed naming
    it; an Android benchmark_model build that cannot pull outputs back says it cannot.
    """
    if isinstance(exc, NotImplementedError):
        return True
    if isinstance(exc, (ProtocolError, MeasurementFailed)):
        return bool(_UNSUPPORTED_TEXT.search(str(exc)))
    return False


def _runtime_text(info: Any) -> str:
    runtimes = getattr(info, "runtimes", ()) or ()
    if not runtimes:
        return ""
    r = runtimes[0]
    return f"{r.name} {r.version}".strip()


def safe_batch(sample_bytes: int) -> int:
    """The most windows one Validate call may carry: the agent's count and size limits.

    The tightest is the worker pipe's (REQUEST_INPUT_BYTES); the gRPC message limit
    (MAX_MESSAGE_BYTES) and the count limit (MAX_VALIDATE_SAMPLES) follow.
    """
    per_window = max(1, sample_bytes) + 64  # the array's bytes and its framing
    by_size = min(REQUEST_INPUT_BYTES, MAX_MESSAGE_BYTES // 4) // per_window
    return max(1, min(MAX_VALIDATE_SAMPLES, by_size))


def validate_on_device(
    device: Device,
    model_bytes: bytes,
    x: np.ndarray | list[np.ndarray],
    y: np.ndarray | None,
    task: Any,
    *,
    batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    reference: bool | Mapping[str, np.ndarray] = True,
    threads: int = 1,
) -> DeviceValidation:
    """Run windows `x` through `device`'s Validate and compare with the host's reference.

    `x`: the windows, or [windows, rr] for a model with a second input (each Validate
    sample then carries one tensor per input, in the .tflite's order).

    `batch`: windows per Validate call (None: automatic, within the agent's limits and
    sized so each call takes about TARGET_CALL_SECONDS); more windows than one call takes
    are always split, never refused. `reference`: compute the host's references (True),
    skip them (False: no host quality, no agreement), or reuse `host_references` computed
    before for the same model and windows. `progress`
    is called with (windows done, windows in all) after each call.

    Raises ValidationUnsupported when the device has no Validate, DeviceUnavailable when it
    does not answer, CandidateRejected / MeasurementFailed when it cannot run this model.
    """
    model_bytes = bytes(model_bytes)
    if batch is not None and batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    io = ModelIO.of(model_bytes)
    xq = io.quantize(x)
    parts = xq if isinstance(xq, list) else [xq]
    n = len(parts[0])
    if y is not None and len(y) != n:
        raise ConfigError(f"data: {n} windows but {len(y)} labels")
    info = device.describe()
    name = getattr(device, "name", "") or info.name
    backend = info.backend or info.kind
    blob = ModelBlob.of(model_bytes)
    shapes = [list(spec[0]) for spec in io.inputs] or [list(io.input_shape)]
    cap = safe_batch(sum(int(a[0].nbytes) for a in parts) if n else 1)
    fixed = batch is not None
    size = min(batch, cap) if batch is not None else min(VALIDATE_BATCH, cap, PROBE_BATCH)
    target_s = TARGET_CALL_SECONDS
    limit_s = getattr(getattr(info, "limits", None), "max_request_seconds", 0) or 0
    if limit_s:
        target_s = min(target_s, limit_s / 4)
    raw_out: list[np.ndarray] = []
    batches, largest, seconds = 0, 0, 0.0
    i = 0
    while i < n:
        chunks = [a[i : i + size] for a in parts]
        samples = [
            tuple(c[j].reshape(shape) for c, shape in zip(chunks, shapes, strict=True))
            for j in range(len(chunks[0]))
        ]
        t0 = time.perf_counter()
        try:
            answers = device.validate(blob, samples, threads=threads)
        except (ValidationUnsupported, DeviceUnavailable, CandidateRejected):
            raise
        except (HilnasError, NotImplementedError) as exc:
            if _is_unsupported(exc):
                raise ValidationUnsupported(
                    f"cannot validate on this device: {name} ({backend}) has no Validate "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            raise
        dt = time.perf_counter() - t0
        if len(answers) != len(samples):
            raise MeasurementFailed(
                f"{name}: Validate answered {len(answers)} outputs for {len(samples)} windows"
            )
        raw_out += [np.asarray(a[0]).reshape(-1) for a in answers]
        seconds += dt
        batches += 1
        largest = max(largest, len(samples))
        i += len(samples)
        if progress is not None:
            progress(i, n)
        if not fixed:  # size the next call by this one's speed
            per_window = dt / max(1, len(samples))
            want = int(target_s / per_window) if per_window > 0 else VALIDATE_BATCH
            size = max(1, min(VALIDATE_BATCH, cap, want))
    raw = np.stack(raw_out) if raw_out else np.zeros((0, 1), np.dtype(io.output_dtype))
    outputs = io.dequantize(raw)
    device_metrics = dict(task.score(y, outputs)) if y is not None and n else {}
    result = DeviceValidation(
        device=name, backend=backend, board=info.board, is_stand_in=bool(info.is_stand_in),
        runtime=_runtime_text(info), n_windows=n, batches=batches, batch_size=largest,
        seconds=seconds, device_metrics=device_metrics, device_source=device_source(name),
        host_metrics=None, output_dtype=str(io.output_dtype), output_scale=io.output_scale,
        output_zero_point=io.output_zero_point, outputs=raw,
    )
    if reference is False:
        return result
    t0 = time.perf_counter()
    refs = host_references(model_bytes, xq) if reference is True else reference
    result.reference_seconds = time.perf_counter() - t0 if reference is True else 0.0
    ref = np.asarray(refs["default"])
    result.reference_outputs = ref
    for key, value in agreement(raw, ref, io, name).items():
        setattr(result, key, value)
    if "reference_kernels" in refs:
        result.reference_kernels = {
            **agreement(raw, refs["reference_kernels"], io, name), "source": REF_KERNELS_SOURCE
        }
    if y is not None and n:
        result.host_metrics = dict(task.score(y, io.dequantize(ref)))
    return result


def agreement(raw: np.ndarray, ref: np.ndarray, io: ModelIO, device: str) -> dict[str, Any]:
    """How the device's raw outputs agree with a host reference's, window by window."""
    ref = np.asarray(ref).reshape(len(ref), -1)
    if ref.shape != raw.shape:
        raise MeasurementFailed(
            f"{device}: outputs of shape {raw.shape}, the host reference {ref.shape}"
        )
    n = len(raw)
    same = np.array([np.array_equal(a, b) for a, b in zip(raw, ref, strict=True)], bool)
    diff = np.abs(raw.astype(np.float64) - ref.astype(np.float64))
    max_raw = float(diff.max()) if diff.size else 0.0
    quantized = io.output_scale and np.dtype(io.output_dtype).kind in "iu"
    return {
        "identical_windows": int(same.sum()),
        "identical_share": float(same.mean()) if n else None,
        "max_abs_diff_raw": max_raw,
        "max_abs_diff": max_raw * (io.output_scale if quantized else 1.0),
        "same_prediction_share": (
            float(np.mean(raw.argmax(axis=1) == ref.argmax(axis=1))) if n else None
        ),
        "differing_windows": [int(k) for k in np.flatnonzero(~same)[:MAX_DIFFERING_LISTED]],
    }


# --------------------------------------------------------------------------- a front
def _entry_model(entry: Mapping[str, Any]) -> bytes:
    for key in ("model_bytes", "model", "bytes"):
        value = entry.get(key)
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
    path = entry.get("model_path") or entry.get("path")
    if not path:
        raise ConfigError(f"front entry {entry.get('arch')!r} has no model_path or model bytes")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"front entry {entry.get('arch')!r}: cannot read {path}: {exc}") from exc


def validate_front(
    devices: Mapping[str, Device],
    entries: Sequence[Mapping[str, Any]],
    x_test: np.ndarray | list[np.ndarray],
    y_test: np.ndarray | None,
    task: Any,
    *,
    batch: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Validate every front model on every device: {arch: {device: result JSON}}.

    Each `entries` item names its model by "arch" and gives "model_path" (or "model_bytes").
    A device's result is `DeviceValidation.to_json()` plus "ok": true, or
    {"ok": false, "reason": "unsupported" | "unavailable" | "rejected" | "failed",
    "error": "..."}. A device that has no Validate or stops answering is not asked again
    for later models (its entries say "skipped" in "error"). The host reference is computed
    once per model and shared by the devices.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    given_up: dict[str, tuple[str, str]] = {}
    for entry in entries:
        arch = str(entry.get("arch") or entry.get("arch_key") or f"model{len(out)}")
        row: dict[str, dict[str, Any]] = {}
        out[arch] = row
        try:
            model = _entry_model(entry)
            io = ModelIO.of(model)
            xq = io.quantize(x_test)
            refs = host_references(model, xq)
        except HilnasError as exc:
            for name in devices:
                row[name] = {"ok": False, "reason": "failed",
                             "error": f"{type(exc).__name__}: {exc}"}
            continue
        for name, device in devices.items():
            if name in given_up:
                reason, why = given_up[name]
                row[name] = {"ok": False, "reason": reason, "error": f"skipped: {why}"}
                continue
            if progress is not None:
                progress(f"validating {arch} on {name}")
            try:
                result = validate_on_device(device, model, x_test, y_test, task, batch=batch,
                                            reference=refs)
            except ValidationUnsupported as exc:
                given_up[name] = ("unsupported", str(exc))
                row[name] = {"ok": False, "reason": "unsupported", "error": str(exc)}
            except DeviceUnavailable as exc:
                given_up[name] = ("unavailable", f"{type(exc).__name__}: {exc}")
                row[name] = {"ok": False, "reason": "unavailable",
                             "error": f"{type(exc).__name__}: {exc}"}
            except CandidateRejected as exc:
                row[name] = {"ok": False, "reason": "rejected",
                             "error": f"{type(exc).__name__}: {exc}"}
            except HilnasError as exc:
                row[name] = {"ok": False, "reason": "failed",
                             "error": f"{type(exc).__name__}: {exc}"}
            else:
                row[name] = {"ok": True, **result.to_json()}
            if not row[name]["ok"]:
                log.warning("validation of %s on %s: %s", arch, name, row[name]["error"])
    return out


def _main(argv: list[str]) -> int:
    mpath, xpath, ypath = argv
    model = Path(mpath).read_bytes()
    with np.load(xpath) as npz:
        arrays = [npz[f"arr_{k}"] for k in range(len(npz.files))]
    xq: np.ndarray | list[np.ndarray] = arrays if len(arrays) > 1 else arrays[0]
    outputs: dict[str, Any] = {
        name: _reference_in_process(model, xq, kind) for name, kind in REFERENCES.items()
    }
    np.savez(ypath, **outputs)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
