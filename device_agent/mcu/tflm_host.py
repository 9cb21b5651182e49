"""TensorFlow Lite Micro on the host: model parsing, real arena allocation and its report.

Used by the emulated board, the deployability gate and the benchmarks. The arena figure is
the one TFLM's RecordingMicroAllocator prints (`print_allocations()`), captured from the C++
side's stderr. It comes from a 64-bit host; `cortex_m_arena_estimate` corrects the
pointer-sized structures for a 32-bit Cortex-M (docs/decisions-mcu.md).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_agent.errors import CandidateRejected
from device_agent.tflite_schema import read_model

_STDERR_LOCK = threading.Lock()


def capture_stderr(fn: Callable[[], Any]) -> tuple[Any, str]:
    """Run fn() with file descriptor 2 redirected, returning (result, what C++ printed).

    TFLM's MicroPrintf writes to the C stderr, which Python's sys.stderr does not see.
    """
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        except BaseException as exc:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            exc.tflm_log = tmp.read().decode("utf-8", "replace")  # type: ignore[attr-defined]
            raise
        os.dup2(saved, 2)
        os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode("utf-8", "replace")


@dataclass(frozen=True)
class AllocationEntry:
    used: int
    requested: int
    count: int


@dataclass(frozen=True)
class AllocationReport:
    """TFLM's RecordingMicroAllocator report, parsed."""

    total: int
    head: int
    tail: int
    entries: dict[str, AllocationEntry] = field(default_factory=dict)
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> AllocationReport:
        def grab(what: str) -> int:
            m = re.search(rf"Arena allocation {what} (\d+) bytes", text)
            if not m:
                raise ValueError(f"no 'Arena allocation {what}' line in TFLM's report: {text!r}")
            return int(m.group(1))

        entries = {
            m.group(1): AllocationEntry(int(m.group(2)), int(m.group(3)), int(m.group(4)))
            for m in re.finditer(
                r"'([^']+)' used (\d+) bytes with alignment overhead "
                r"\(requested (\d+) bytes for (\d+)",
                text,
            )
        }
        return cls(grab("total"), grab("head"), grab("tail"), entries, text)


# Per-structure sizes on x86-64 vs a 32-bit Cortex-M, for the structures TFLM's report counts
# (TF_LITE_STATIC_MEMORY layouts; each 64-bit size was checked against the report's
# bytes-per-allocation on this host).
STRUCT_BYTES_64_32 = {
    "TfLiteEvalTensor data": (24, 12),  # data*, dims*, type
    "Persistent TfLiteTensor data": (64, 40),
    "NodeAndRegistration struct": (64, 32),  # TfLiteNode (6 pointers + int) + registration*
}
# Each persistent tensor's quantization holds one TfLiteAffineQuantization (2 pointers + int).
AFFINE_QUANT_BYTES_64_32 = (24, 12)


def cortex_m_arena_estimate(report: AllocationReport) -> int:
    """The arena a 32-bit Cortex-M would use for the same model (an estimate).

    TFLM's 64-bit figure minus what the counted pointer-sized structures lose on 32 bits.
    Other persistent data (kernel OpData, scratch) is left as is, so the estimate errs on
    the large side.
    """
    saved = 0
    for name, (b64, b32) in STRUCT_BYTES_64_32.items():
        entry = report.entries.get(name)
        if entry is not None:
            saved += entry.count * (b64 - b32)
    tensors = report.entries.get("Persistent TfLiteTensor data")
    if tensors is not None:
        saved += tensors.count * (AFFINE_QUANT_BYTES_64_32[0] - AFFINE_QUANT_BYTES_64_32[1])
    return max(report.total - saved, 0)


@dataclass
class HostInterpreter:
    """A TFLM interpreter built on the host, with its arena report."""

    interpreter: Any
    report: AllocationReport
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


class ArenaTooSmall(CandidateRejected):
    """TFLM could not allocate the model's tensors in the given arena."""

    def __init__(self, message: str, needed: int | None = None) -> None:
        super().__init__(message)
        self.needed = needed


# Arena for probing how much a model needs: more than any MCU has, small enough to be cheap.
_PROBE_ARENA = 16 * 1024 * 1024


def allocate(model: bytes, arena_bytes: int, alt_decompression_bytes: int = 0) -> HostInterpreter:
    """Build a TFLM interpreter with an arena of `arena_bytes` and report what it used.

    `alt_decompression_bytes`: a separate memory region for the outputs of DECODE operators
    (the weights of a LUT-compressed model, decoded before each use); 0 puts them in the
    arena, where the report then counts them.

    Raises ArenaTooSmall when TFLM's planner cannot fit the model, CandidateRejected for a
    model TFLM refuses otherwise (its log is in the message).
    """
    from tflite_micro.python.tflite_micro import runtime

    def build() -> Any:
        return runtime.Interpreter.from_bytes(
            model,
            arena_size=int(arena_bytes),
            alt_decompression_memory_size=int(alt_decompression_bytes),
        )

    try:
        interp, _log = capture_stderr(build)
    except RuntimeError as exc:
        log = getattr(exc, "tflm_log", "").strip()
        last = log.splitlines()[-1] if log else str(exc)
        if "allocate tensors" not in str(exc):
            raise CandidateRejected(f"TFLM refused the model: {exc}; {last}") from None
        # TFLM's failure text depends on which allocation ran out ("Failed to resize
        # buffer", "Too many buffers", ...). Retrying with a generous arena tells an arena
        # that is too small from a model TFLM cannot prepare, and yields the size needed.
        if arena_bytes < _PROBE_ARENA:
            try:
                needed = allocate(model, _PROBE_ARENA, alt_decompression_bytes).report.total
            except CandidateRejected:
                raise CandidateRejected(f"TFLM cannot prepare the model: {last}") from None
            raise ArenaTooSmall(
                f"needs a {needed}-byte tensor arena, more than the {arena_bytes} bytes "
                f"available (TFLM: {last})",
                needed,
            ) from None
        raise CandidateRejected(f"TFLM cannot prepare the model: {last}") from None
    _, text = capture_stderr(interp.print_allocations)
    report = AllocationReport.parse(text)
    m = read_model(model)
    sg = m.Subgraphs(0)
    inputs = [interp.get_input_details(i) for i in range(sg.InputsLength())]
    outputs = [interp.get_output_details(i) for i in range(sg.OutputsLength())]
    return HostInterpreter(interp, report, inputs, outputs)


def op_names(model: bytes) -> list[str]:
    """Operator names in execution order, custom operators by their custom code.

    Those are the names a board's op resolver registers them under.
    """
    from device_agent.tflite_schema import model_ops

    return model_ops(model, custom_names=True)


#: The custom operator TFLM's compression tool inserts to decode a compressed tensor.
DECODE_OP = "TFLM_DECODE"


def tensor_nbytes(details: dict[str, Any]) -> int:
    return int(np.prod(details["shape"])) * np.dtype(details["dtype"]).itemsize
