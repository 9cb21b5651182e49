"""The "mcu-emulator" backend: an emulated board on a pseudo-terminal plus its serial bridge.

`hilnas-agent serve --backend mcu-emulator --board nano33ble` starts the emulated board
(device_agent.mcu.emulator, a child process running the real TFLite Micro interpreter) and
bridges it exactly as a real board: every byte crosses a real pty and the hilnas serial
protocol. It is a stand-in (`is_stand_in=True`): latency is the cycle model's estimate,
labelled `estimated`; the arena is TFLM's real allocation, planned on a 64-bit host, with the
32-bit Cortex-M estimate in its note. Per-op profiles come from the same cycle model.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

from device_agent.backends.base import Backend, register_backend
from device_agent.backends.serial_bridge import SerialBridgeBackend, _add
from device_agent.types import MeasureSettings, OpProfile, OpTiming, RuntimeInfo, Source


@register_backend("mcu-emulator")
class McuEmulatorBackend(SerialBridgeBackend):
    """An emulated microcontroller (default: Arduino Nano 33 BLE) behind the serial bridge."""

    def __init__(
        self,
        board: str = "nano33ble",
        *,
        name: str | None = None,
        emulator_args: Sequence[str] = (),
        margin_s: float = 0.25,
        compression: bool = False,
    ) -> None:
        from device_agent.mcu.boards import load_board
        from device_agent.mcu.emulator import EmulatorProcess

        # A clear ConfigError for an unknown board. `compression`: the emulated firmware is
        # built with TFLM compression, so LUT-compressed models (DECODE) run.
        self.board_spec = load_board(board).with_limits(compression=compression)
        args = [*emulator_args, "--compression"] if compression else list(emulator_args)
        self.emulator = EmulatorProcess(board, extra_args=args)
        try:
            super().__init__(self.emulator.path, name=name, margin_s=margin_s)
        except BaseException:
            self.emulator.close()
            raise

    def _arena_note(self, model: bytes) -> str:
        from device_agent.mcu import tflm_host

        try:
            host = tflm_host.allocate(model, self.info.arena_bytes)
            m4 = tflm_host.cortex_m_arena_estimate(host.report)
            est = f"; a 32-bit Cortex-M needs ~{m4} B (estimated)"
        except Exception:  # noqa: BLE001 - the note is informative only
            est = ""
        return (
            "TFLM's real arena (RecordingMicroAllocator), planned on a 64-bit host by the "
            f"emulated board{est}"
        )

    def profile(self, model_path: Path, sha256: str, settings: MeasureSettings) -> OpProfile:
        from device_agent.mcu import cycle_model

        model = model_path.read_bytes()
        if hashlib.sha256(model).hexdigest() != sha256:
            from device_agent.errors import ProtocolError

            raise ProtocolError("model bytes do not match their SHA-256")
        costs = cycle_model.op_costs(model, self.board_spec.cycle_model)
        clock = self.board_spec.clock_hz
        total = sum(c.cycles for c in costs) or 1.0
        ops = tuple(
            OpTiming(
                index=c.index,
                op=c.op,
                mean_us=c.cycles / clock * 1e6,
                p50_us=c.cycles / clock * 1e6,
                fraction=c.cycles / total,
                runs=0,
            )
            for c in costs
        )
        return OpProfile(
            sha256=sha256,
            ops=ops,
            method=f"cycle model {self.board_spec.cycle_model.get('name', '')}",
            whole_model_p50_us=total / clock * 1e6,
            source=Source.ESTIMATED,
            runtime=RuntimeInfo("tflite-micro", self.info.tflm_version),
            notes=(
                "stand-in: per-op cycle-model estimate for the emulated board, not a measurement",
            ),
        )

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.emulator.close()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        _add(parser, "--board", default="nano33ble", help="mcu-emulator: board id in boards.json")
        _add(parser, "--compression", action="store_true",
             help="mcu-emulator: firmware built with TFLM compression (LUT models run)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        return cls(getattr(args, "board", None) or "nano33ble", name=getattr(args, "name", None),
                   compression=bool(getattr(args, "compression", False)))
