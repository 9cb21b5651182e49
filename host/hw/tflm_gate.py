"""Deployability gate for microcontroller devices: will a candidate run under TFLite Micro.

Before a candidate is trained or measured for an MCU, the gate checks its int8 TFLite model
against a board (device_agent/mcu/boards.json):

1. every operator is registered in the board firmware's op resolver;
2. the model fits the flash model slot (flash minus bootloader and firmware);
3. the tensor arena fits the RAM left after the firmware's reserve, with the arena computed
   by TFLM's own memory planner on the host (the real `tflite-micro` interpreter, not an
   estimate).

The arena check uses the host's figure, which is planned on 64 bits and so slightly larger
than on the 32-bit Cortex-M (docs/decisions-mcu.md): the gate errs toward rejecting a
candidate that would only just fit. The 32-bit estimate is reported alongside.

Weights do not change any of these figures, so an untrained network converted with random
calibration data gives the same verdict as the trained one; that is what makes the gate
cheap enough to run before training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_agent.errors import CandidateRejected
from device_agent.mcu.boards import BoardSpec, load_board


@dataclass(frozen=True)
class GateResult:
    ok: bool
    board: str
    reasons: tuple[str, ...]
    model_bytes: int
    flash_budget_bytes: int
    arena_bytes: int | None  # TFLM on the host (64-bit); None when TFLM could not plan it
    arena_cortex_m_estimate: int | None
    arena_budget_bytes: int
    ops: tuple[str, ...] = field(default=())
    unsupported_ops: tuple[str, ...] = field(default=())

    @property
    def reason_kinds(self) -> tuple[str, ...]:
        """Short labels of the failed checks: 'ops', 'flash', 'arena', 'tflm'."""
        return tuple(r.split(":", 1)[0] for r in self.reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "board": self.board,
            "reasons": list(self.reasons),
            "model_bytes": self.model_bytes,
            "flash_budget_bytes": self.flash_budget_bytes,
            "arena_bytes": self.arena_bytes,
            "arena_source": "TFLM RecordingMicroAllocator on the 64-bit host",
            "arena_cortex_m_estimate": self.arena_cortex_m_estimate,
            "arena_budget_bytes": self.arena_budget_bytes,
            "ops": list(self.ops),
            "unsupported_ops": list(self.unsupported_ops),
        }


def unsupported_ops(runtime: str, ops: frozenset[str]) -> frozenset[str]:
    """Operators of `ops` that a device's runtime ("tflite-micro 0.dev...") cannot run.

    TFLite Micro has no RFFT2D, REAL or IMAG (checked on the wheel's interpreter,
    docs/decisions.md "Audio front end"); LiteRT runs every builtin.
    """
    from host.data.audio_features import TFLM_UNSUPPORTED_OPS

    if runtime.lower().replace("_", "-").startswith(("tflite-micro", "tflm")):
        return frozenset(ops) & TFLM_UNSUPPORTED_OPS
    return frozenset()


def _board(board: str | BoardSpec) -> BoardSpec:
    return board if isinstance(board, BoardSpec) else load_board(board)


def check_tflite(model: bytes, board: str | BoardSpec = "nano33ble") -> GateResult:
    """Check an int8 .tflite flatbuffer against a board; never raises for a misfit."""
    from device_agent.mcu import tflm_host
    from device_agent.tflite_schema import model_ops

    spec = _board(board)
    reasons: list[str] = []
    try:
        ops = tuple(model_ops(model))
    except CandidateRejected as exc:
        return GateResult(
            False,
            spec.id,
            (f"tflm: {exc}",),
            len(model),
            spec.model_slot_bytes,
            None,
            None,
            spec.arena_bytes,
        )
    unsupported = tuple(sorted(set(ops) - set(spec.ops)))
    if unsupported:
        reasons.append(f"ops: {', '.join(unsupported)} not in the {spec.id} firmware's op resolver")
    if len(model) > spec.model_slot_bytes:
        reasons.append(
            f"flash: model of {len(model)} B exceeds the {spec.model_slot_bytes} B model slot"
        )
    arena: int | None = None
    estimate: int | None = None
    try:
        host = tflm_host.allocate(model, spec.arena_bytes)
        arena = host.report.total
        estimate = tflm_host.cortex_m_arena_estimate(host.report)
        del host
    except tflm_host.ArenaTooSmall as exc:
        arena = exc.needed
        reasons.append(f"arena: {exc}")
    except CandidateRejected as exc:
        reasons.append(f"tflm: {exc}")
    return GateResult(
        ok=not reasons,
        board=spec.id,
        reasons=tuple(reasons),
        model_bytes=len(model),
        flash_budget_bytes=spec.model_slot_bytes,
        arena_bytes=arena,
        arena_cortex_m_estimate=estimate,
        arena_budget_bytes=spec.arena_bytes,
        ops=ops,
        unsupported_ops=unsupported,
    )


def require_deployable(model: bytes, board: str | BoardSpec = "nano33ble") -> GateResult:
    """Like check_tflite, but raise CandidateRejected (with every reason) for a misfit."""
    result = check_tflite(model, board)
    if not result.ok:
        raise CandidateRejected(f"not deployable on {result.board}: " + "; ".join(result.reasons))
    return result


def check_keras(
    model: Any,
    board: str | BoardSpec = "nano33ble",
    *,
    representative: np.ndarray | None = None,
    seed: int = 0,
) -> GateResult:
    """Gate a (possibly untrained) tf-keras model: convert it to int8 and check it.

    Without `representative`, calibration uses random inputs: the op set, the model's size
    and the arena do not depend on the quantization ranges.
    """
    from host.export.tflite import ConversionError, convert

    if representative is None:
        shape = tuple(int(d) for d in model.input_shape[1:])
        representative = np.random.default_rng(seed).standard_normal((8, *shape)).astype(np.float32)
    spec = _board(board)
    try:
        tflite = convert(model, "int8", representative=representative)
    except ConversionError as exc:
        return GateResult(
            False,
            spec.id,
            (f"tflm: int8 conversion failed: {exc}",),
            0,
            spec.model_slot_bytes,
            None,
            None,
            spec.arena_bytes,
        )
    return check_tflite(tflite, spec)
