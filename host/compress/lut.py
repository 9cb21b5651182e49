"""LUT compression of an int8 model with TFLite Micro's own tool, verified bit-exact in TFLM.

A weight tensor with at most 2^b distinct values (b in 1..7) is stored as b-bit indices into a
value table, and the tool inserts a DECODE operator (the custom operator TFLM_DECODE) that
rebuilds the int8 tensor before each use. That is what makes clustering pay on a
microcontroller: a k-cluster kernel needs ceil(log2 k) bits per weight in flash, not 8.

How the tool must be called (docs/compression.md, "The LUT finding";
tools/repro/tflm_lut_compression.py): TFLM's DECODE kernel takes the number of value tables
from the decoded tensor's *quantization* (one per scale, along the quantized axis) and ignores
the axis the tool writes into the ancillary data. So a tensor quantized per channel (the
converter's choice for Conv and Dense kernels) must be compressed `per_channel` on its quantized
axis, and only a tensor quantized per tensor (an LSTM's gate matrices) `per_tensor`. Any other
spec decodes the wrong values without an error.

Every compressed model is run in the wheel's TFLM interpreter next to the uncompressed one on
real windows, and used only if every output is bit-identical. A difference of any size rejects
it: the deployed model stays the int8 file.

A LUT model runs only in TFLM (LiteRT has no DECODE), and TFLM reads neither tensor names nor
signature definitions, so the LUT file is written without them (LiteRT's own
`flatbuffer_utils.strip_strings`, which keeps metadata names and custom operator codes: the
hilnas metadata and TFLM_DECODE survive). The converter names each tensor after every
tf-keras op fused into it, a few hundred bytes each: in a small network that is a fifth of
the file. The verification runs on the stripped file, and `strip` in the result gives both
sizes.
"""

from __future__ import annotations

import importlib
import io
import math
import warnings
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from host.compress.weights import WeightTensor, weight_tensors
from host.errors import ConfigError, HilnasError

MAX_BITS = 7  # the tool's limit ("bitwidth must be 1-7")
LATENCY_SOURCE = "host TFLM interpreter (x86-64 reference kernels), not a board"
ARENA_SOURCE = "TFLM RecordingMicroAllocator on a 64-bit host"


@dataclass(frozen=True)
class LutTensorPlan:
    """How one weight tensor is LUT-compressed, or why it is not (`skip`)."""

    subgraph: int
    tensor: int
    name: str
    consumers: tuple[str, ...]
    mode: str  # "per_channel" or "per_tensor"
    axis: int | None
    bits: int
    tables: int
    unique: int
    original_bytes: int
    compressed_bytes: int
    skip: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tensor": self.tensor,
            "name": self.name,
            "consumers": list(self.consumers),
            "mode": self.mode if self.axis is None else f"{self.mode} (axis {self.axis})",
            "unique_values": self.unique,
            "bits": self.bits,
            "original_bytes": self.original_bytes,
            "compressed_bytes": self.compressed_bytes,
        }
        if self.skip:
            out["skipped"] = self.skip
        return out


@dataclass
class LutResult:
    """The LUT stage: the compressed model if it verified, and every figure with its source.

    `status`: "verified" (bit-exact on every window: the model may be deployed), "rejected"
    (outputs differ: not used), "not applicable" (no tensor to compress) or "failed" (the tool
    or TFLM refused; `message` says why).
    """

    status: str
    message: str
    model: bytes | None = None
    tensors: list[LutTensorPlan] = field(default_factory=list)
    windows: int = 0
    windows_differing: int = 0
    max_abs_diff_lsb: int = 0
    tflm: dict[str, Any] = field(default_factory=dict)
    strip: dict[str, Any] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return self.status == "verified" and self.model is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.message,
            "bytes": len(self.model) if self.model is not None else None,
            "bytes_source": "file" if self.model is not None else None,
            "verification": {
                "windows": self.windows,
                "windows_differing": self.windows_differing,
                "max_abs_diff_lsb": self.max_abs_diff_lsb,
                "rule": "bit-exact outputs of TFLM on every window, no tolerance",
            },
            "tensors": [t.to_json() for t in self.tensors if not t.skip],
            "skipped_tensors": [t.to_json() for t in self.tensors if t.skip],
            "tflm": self.tflm,
            "strip": self.strip,
        }


def _bits(unique: int) -> int:
    return max(1, math.ceil(math.log2(max(unique, 1))))


def _plan_one(w: WeightTensor, force_per_tensor: bool) -> LutTensorPlan:
    per_channel = w.quantized_axis is not None and not force_per_tensor
    axis = w.quantized_axis if per_channel else None
    if per_channel:
        assert axis is not None
        tables = w.shape[axis]
        unique = w.unique_per_channel(axis)
    else:
        tables, unique = 1, w.unique
    bits = _bits(unique)
    table_len = max(unique, 1)
    # The tool's layout: packed indices, a 16-byte header, one table of `table_len` values
    # (padded to the longest table) per channel.
    compressed = math.ceil(w.size * bits / 8) + 16 + tables * table_len * w.values.itemsize
    plan = LutTensorPlan(
        subgraph=w.subgraph, tensor=w.index, name=w.name, consumers=w.consumers,
        mode="per_channel" if per_channel else "per_tensor", axis=axis, bits=bits,
        tables=tables, unique=unique, original_bytes=w.nbytes, compressed_bytes=compressed,
    )
    skip = None
    if w.dtype != "int8":
        skip = f"{w.dtype} tensor: only int8 weights are compressed"
    elif bits > MAX_BITS:
        skip = f"{unique} distinct values need {bits} bits; the tool's limit is {MAX_BITS}"
    elif per_channel and axis not in (0, len(w.shape) - 1):
        skip = f"quantized on axis {axis}; DECODE supports axis 0 or the last axis only"
    elif compressed >= w.nbytes:
        skip = f"would grow: {w.nbytes} -> {compressed} bytes"
    if skip:
        from dataclasses import replace

        plan = replace(plan, skip=skip)
    return plan


def plan_lut(model: bytes, *, force_per_tensor: bool = False) -> list[LutTensorPlan]:
    """The LUT spec of every weight tensor of an int8 model (skipped ones say why).

    `force_per_tensor` compresses per-channel quantized tensors with one table, the call that
    TFLM decodes wrongly: it exists to show that verification catches it (tests, the repro).
    """
    return [_plan_one(w, force_per_tensor) for w in weight_tensors(model)]


def _compress_module() -> Any:
    # `tflite_micro.compression.compress` is the function (the package re-exports it over the
    # module's name), so the module is imported by its full path.
    try:
        return importlib.import_module("tflite_micro.tensorflow.lite.micro.compression.compress")
    except ImportError as exc:
        raise HilnasError(
            "LUT compression needs the tflite-micro wheel: pip install 'hilnas[mcu]'"
        ) from exc


def apply_lut(model: bytes, plans: list[LutTensorPlan]) -> bytes:
    """Return `model` with the non-skipped tensors of `plans` LUT-compressed (the TFLM tool)."""
    tool = _compress_module()
    from tflite_micro.tensorflow.lite.micro.compression import spec

    specs = []
    for p in plans:
        if p.skip:
            continue
        mode = spec.PerChannel(axis=p.axis) if p.mode == "per_channel" else spec.PerTensor()
        specs.append(spec.Tensor(p.subgraph, p.tensor, [spec.LookUpTableCompression(p.bits, mode)]))
    if not specs:
        raise ConfigError("lut: no tensor to compress")
    # The tool prints "index_bitwidth larger than necessary" to stderr and warns about
    # expansion; both are covered by the plan (smallest width; growing tensors skipped).
    with warnings.catch_warnings(), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return bytes(tool.compress(model, specs))


def _quantize_windows(model: bytes, windows: np.ndarray) -> np.ndarray:
    from host.export.evaluate import quantize
    from host.export.flatbuf import io_tensors

    inp = io_tensors(model)["inputs"][0]
    shape = tuple(inp["shape"])
    x = np.asarray(windows, dtype=np.float32)
    if tuple(x.shape[1:]) != shape[1:]:
        raise ConfigError(f"windows: shape {tuple(x.shape[1:])} does not fit the input {shape}")
    return quantize(x, inp["dtype"], inp["scale"], inp["zero_point"])


def lut_compress(
    int8_model: bytes,
    windows: np.ndarray,
    *,
    force_per_tensor: bool = False,
    timing_runs: int = 10,
    strip: bool = True,
) -> LutResult:
    """LUT-compress every eligible weight tensor of `int8_model` and verify it in TFLM.

    `windows`: real float input windows (n, length, channels); both models run each of them in
    the TFLM interpreter of the tflite-micro wheel and the compressed model is kept only if
    every output is bit-identical. The result also carries TFLM's arena with and without
    decompression memory and the host's time per invoke (labelled: not a board). `strip`:
    write the LUT file without tensor names and signatures (see the module's docstring).
    """
    from host.compress.tflm_run import run_tflm

    plans = plan_lut(int8_model, force_per_tensor=force_per_tensor)
    todo = [p for p in plans if not p.skip]
    if not todo:
        return LutResult("not applicable", "lut: no weight tensor with <= 128 distinct values "
                         "that compression would shrink", tensors=plans)
    try:
        packed = apply_lut(int8_model, plans)
    except Exception as exc:  # noqa: BLE001 - the tool raises several kinds; all mean "no LUT"
        return LutResult("failed", f"lut: the TFLM compression tool refused: {exc}",
                         tensors=plans)
    strip_note: dict[str, Any] = {"stripped": strip, "bytes_with_names": len(packed)}
    if strip:
        packed = strip_strings(packed)
        strip_note.update(bytes=len(packed), what=(
            "tensor names, subgraph names, model description and signature defs "
            "(ai_edge_litert.tools.flatbuffer_utils.strip_strings); metadata and custom "
            "operator codes kept"))
    xq = _quantize_windows(int8_model, windows)
    # The decoded tensors' bytes: what an alternate decompression region must hold at most.
    decoded = sum(p.original_bytes for p in todo)
    try:
        base, lut0, lut_alt = run_tflm(
            [(int8_model, 0), (packed, 0), (packed, decoded)], xq, timing_runs=timing_runs
        )
    except HilnasError as exc:
        return LutResult("failed", f"lut: TFLM could not run the compressed model: {exc}",
                         tensors=plans)
    diff = np.abs(lut0.outputs.astype(np.int64) - base.outputs.astype(np.int64))
    differing = int((diff.reshape(len(xq), -1).max(axis=1) > 0).sum()) if len(xq) else 0
    max_diff = int(diff.max()) if diff.size else 0
    tflm = {
        "arena_int8_bytes": base.arena_bytes,
        "arena_lut_bytes": lut0.arena_bytes,
        "arena_lut_note": "decoded weights in the arena (alt_decompression_memory_size=0)",
        "arena_lut_with_alt_bytes": lut_alt.arena_bytes,
        "alt_decompression_bytes": decoded,
        "arena_lut_with_alt_note": (
            "decoded weights in a separate region of alt_decompression_bytes "
            "(the sum of the decoded tensors, an upper bound)"
        ),
        "arena_cortex_m_estimate": {
            "int8": base.arena_cortex_m_estimate,
            "lut": lut0.arena_cortex_m_estimate,
            "source": "estimated (64-bit figure corrected for 32-bit pointers)",
        },
        "arena_source": ARENA_SOURCE,
        "invoke_us": {"int8": round(base.host_invoke_us, 1), "lut": round(lut0.host_invoke_us, 1),
                      "lut_with_alt": round(lut_alt.host_invoke_us, 1)},
        "invoke_source": LATENCY_SOURCE,
    }
    n = len(xq)
    names = (f", names stripped: {strip_note['bytes_with_names']} -> {len(packed)} bytes"
             if strip else "")
    if differing:
        return LutResult(
            "rejected",
            f"lut: rejected (outputs differ on {differing} of {n} windows, max |diff| "
            f"{max_diff} LSB)",
            tensors=plans, windows=n, windows_differing=differing, max_abs_diff_lsb=max_diff,
            tflm=tflm, strip=strip_note,
        )
    return LutResult(
        "verified",
        f"lut: verified bit-exact on {n} of {n} windows ({len(todo)} tensors, "
        f"{len(int8_model)} -> {len(packed)} bytes{names})",
        model=packed, tensors=plans, windows=n, tflm=tflm, strip=strip_note,
    )


def strip_strings(model: bytes) -> bytes:
    """`model` without tensor and subgraph names, description and signature defs.

    LiteRT's `flatbuffer_utils.strip_strings` on its object model; metadata (and so the hilnas
    metadata) and custom operator codes are kept. For files only TFLM runs.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    flatbuffer_utils.strip_strings(obj)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
