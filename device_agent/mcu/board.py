"""The emulated board's protocol logic: the Python twin of firmware/core/hilnas_agent.cpp.

It keeps the same state machine and error codes as the firmware, with the real TFLite
Micro interpreter behind ALLOCATE/INVOKE. What differs from a board, and says so in INFO:
`timer=cycle-model` and `latency_source=estimated` (INVOKE times come from the cycle model,
not a clock), `emulated=1`, and `ptr_bytes=8` (TFLM's arena was planned on a 64-bit host).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_agent.errors import CandidateRejected
from device_agent.mcu import cycle_model, tflm_host
from device_agent.mcu.boards import BoardSpec
from device_agent.serial_protocol import (
    CRC_SIZE,
    HEADER_SIZE,
    INVOKE_FLAG_RESET_STATE,
    MAX_PAYLOAD,
    MAX_TIMED_RUNS,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    REPLY_BIT,
    SYNC,
    Cmd,
    ErrorCode,
    crc16,
    encode_frame,
)
from device_agent.versions import AGENT_VERSION

INTER_BYTE_TIMEOUT_S = 0.050
_TYPE_CODES = {"float32": 1, "int32": 2, "uint8": 3, "int64": 4, "int16": 7, "int8": 9}


class BoardParser:
    """Byte-at-a-time frame parser with the firmware's inter-byte timeout (FrameParser)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._last = 0.0

    def feed(self, byte: int, now: float) -> tuple[str, int, int, bytes] | None:
        """Returns (event, cmd, seq, payload) for 'frame', 'crc', 'too_long'; else None."""
        if self._buf and now - self._last >= INTER_BYTE_TIMEOUT_S:
            self._buf.clear()
        self._last = now
        buf = self._buf
        if not buf:
            if byte == SYNC[0]:
                buf.append(byte)
            return None
        if len(buf) == 1:
            if byte == SYNC[1]:
                buf.append(byte)
            elif byte != SYNC[0]:
                buf.clear()
            return None
        buf.append(byte)
        if len(buf) == 4:
            length = buf[2] | (buf[3] << 8)
            if length > MAX_PAYLOAD:
                buf.clear()
                return ("too_long", 0, 0, b"")
        if len(buf) >= HEADER_SIZE:
            length = buf[2] | (buf[3] << 8)
            if len(buf) == HEADER_SIZE + length + CRC_SIZE:
                body = bytes(buf[2 : HEADER_SIZE + length])
                crc_rx = buf[-2] | (buf[-1] << 8)
                cmd, seq = buf[4], buf[5]
                buf.clear()
                if crc16(body) != crc_rx:
                    return ("crc", cmd, seq, b"")
                return ("frame", cmd, seq, body[4:])
        return None

    def poll(self, now: float) -> tuple[int, int] | None:
        """(cmd, seq) of a partial frame dropped after the inter-byte timeout, if any."""
        if self._buf and now - self._last >= INTER_BYTE_TIMEOUT_S:
            seen = len(self._buf) >= HEADER_SIZE
            cmd, seq = (self._buf[4], self._buf[5]) if seen else (0, 0)
            self._buf.clear()
            return (cmd, seq) if seen else None
        return None


class _Error(Exception):
    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class _Flash:
    """The model slot: survives RESET, as the board's flash does."""

    data: bytearray = field(default_factory=bytearray)
    size: int = 0
    sha: bytes = b""
    valid: bool = False


class EmulatedBoard:
    """Protocol handler for one emulated board. `handle_bytes` in, reply bytes out."""

    def __init__(self, spec: BoardSpec, *, on_reset: Callable[[], None] | None = None) -> None:
        self.spec = spec
        self.parser = BoardParser()
        self.flash = _Flash()
        self._on_reset = on_reset
        self.fault_reset_on_invoke = False
        self._reset_state()

    def _reset_state(self) -> None:
        self.uploading = False
        self.upload_size = 0
        self.upload_next = 0
        self.upload_sha = b""
        self._hash = hashlib.sha256()
        self.host: tflm_host.HostInterpreter | None = None
        self.inputs: list[bytearray] = []
        self.outputs: list[bytes] = []
        self.timings: list[int] = []
        self._latency_us: int | None = None

    # ------------------------------------------------------------------------------ framing
    def ready_frame(self) -> bytes:
        return encode_frame(
            Cmd.READY, 0, bytes([PROTOCOL_MAJOR, PROTOCOL_MINOR]) + self.spec.id.encode()[:32]
        )

    def handle_bytes(self, data: bytes, now: float) -> bytes:
        out = bytearray()
        for byte in data:
            ev = self.parser.feed(byte, now)
            if ev is None:
                continue
            kind, cmd, seq, payload = ev
            if kind == "frame":
                out += self.handle_frame(cmd, seq, payload)
            elif kind == "crc":
                out += self._error(seq, ErrorCode.BAD_CRC, cmd, "bad crc")
            else:
                out += self._error(0, ErrorCode.TOO_LONG, 0, "frame too long")
        return bytes(out)

    def poll(self, now: float) -> bytes:
        dropped = self.parser.poll(now)
        if dropped is None:
            return b""
        cmd, seq = dropped
        return self._error(seq, ErrorCode.TRUNCATED, cmd, "frame truncated")

    @staticmethod
    def _error(seq: int, code: ErrorCode, request: int, detail: str) -> bytes:
        return encode_frame(Cmd.ERROR, seq, bytes([code, request & 0xFF]) + detail.encode()[:200])

    def handle_frame(self, cmd: int, seq: int, payload: bytes) -> bytes:
        handlers: dict[int, Callable[[bytes], bytes | None]] = {
            Cmd.PING: lambda p: p,
            Cmd.INFO: self._info,
            Cmd.UPLOAD_BEGIN: self._upload_begin,
            Cmd.UPLOAD_CHUNK: self._upload_chunk,
            Cmd.UPLOAD_END: self._upload_end,
            Cmd.ALLOCATE: self._allocate,
            Cmd.SET_INPUT: self._set_input,
            Cmd.INVOKE: self._invoke,
            Cmd.GET_OUTPUT: self._get_output,
            Cmd.GET_TIMINGS: self._get_timings,
            Cmd.RESET: self._reset,
        }
        handler = handlers.get(cmd)
        if handler is None:
            return self._error(seq, ErrorCode.UNKNOWN_COMMAND, cmd, "unknown command")
        try:
            reply = handler(payload)
        except _Error as err:
            return self._error(seq, err.code, cmd, err.detail)
        except _HardFault:
            # The firmware's HardFault handler resets the board: no reply, then READY.
            self._reset_state()
            self.parser = BoardParser()
            return self.ready_frame()
        frame = encode_frame(cmd | REPLY_BIT, seq, reply or b"")
        if cmd == Cmd.RESET:
            self._reset_state()
            self.parser = BoardParser()
            if self._on_reset is not None:
                self._on_reset()
            return frame + self.ready_frame()
        return frame

    # ----------------------------------------------------------------------------- commands
    def _info(self, p: bytes) -> bytes:
        s = self.spec
        lines = {
            "proto": f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}",
            "board": s.id,
            "cpu": s.cpu,
            "clock_hz": s.clock_hz,
            "ram": s.ram_bytes,
            "flash": s.flash_bytes,
            "arena": s.arena_bytes,
            "model_slot": s.model_slot_bytes,
            "tflm": _tflm_version(),
            "fw": f"emulator-{AGENT_VERSION}",
            "timer": "cycle-model",
            "latency_source": "estimated",
            "emulated": 1,
            "ptr_bytes": 8,
            "max_payload": MAX_PAYLOAD,
            "chunk_ms": 20,
            "cycle_model": s.cycle_model.get("name", ""),
            "model_sha": self.flash.sha.hex() if self.flash.valid else "",
            "ops": ",".join(s.resolver_ops),
            "compression": int(s.compression),
        }
        text = "".join(f"{k}={v}\n" for k, v in lines.items()).encode()
        if not p:
            return text
        if len(p) != 4:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected nothing or u16 offset + u16 max_len")
        offset, size = struct.unpack("<HH", p)
        return text[offset : offset + min(size, MAX_PAYLOAD)]

    def _upload_begin(self, p: bytes) -> bytes:
        if len(p) != 36:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected u32 size + 32-byte sha256")
        size = struct.unpack_from("<I", p)[0]
        sha = p[4:36]
        if size == 0:
            raise _Error(ErrorCode.BAD_PAYLOAD, "empty model")
        if size > self.spec.model_slot_bytes:
            raise _Error(
                ErrorCode.MODEL_TOO_LARGE,
                f"model {size} B exceeds the flash model slot of {self.spec.model_slot_bytes} B",
            )
        if self.flash.valid and self.flash.size == size and self.flash.sha == sha:
            self.uploading = False
            return b"\x01" + struct.pack("<I", size)
        self.host = None
        self.flash = _Flash(bytearray(size))
        self.uploading = True
        self.upload_size = size
        self.upload_next = 0
        self.upload_sha = sha
        self._hash = hashlib.sha256()
        return b"\x00" + struct.pack("<I", 0)

    def _upload_chunk(self, p: bytes) -> bytes:
        if not self.uploading:
            raise _Error(ErrorCode.WRONG_STATE, "no upload in progress")
        if len(p) < 4:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected u32 offset + data")
        offset = struct.unpack_from("<I", p)[0]
        data = p[4:]
        if offset > self.upload_size or len(data) > self.upload_size - offset:
            raise _Error(ErrorCode.BAD_PAYLOAD, "chunk past the announced size")
        if offset == self.upload_next and data:
            self.flash.data[offset : offset + len(data)] = data
            self._hash.update(data)
            self.upload_next += len(data)
        return struct.pack("<I", self.upload_next)

    def _upload_end(self, p: bytes) -> bytes:
        if p:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected an empty payload")
        if not self.uploading:
            if self.flash.valid:
                return self.flash.sha
            raise _Error(ErrorCode.WRONG_STATE, "no upload in progress")
        if self.upload_next != self.upload_size:
            raise _Error(
                ErrorCode.UPLOAD_INCOMPLETE,
                f"received {self.upload_next} of {self.upload_size} bytes",
            )
        digest = self._hash.digest()
        self.uploading = False
        self.flash.size = self.upload_size
        self.flash.sha = digest
        self.flash.valid = digest == self.upload_sha
        if not self.flash.valid:
            raise _Error(
                ErrorCode.HASH_MISMATCH, f"sha256 of received bytes starts {digest[:8].hex()}"
            )
        return digest

    def _allocate(self, p: bytes) -> bytes:
        if p:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected an empty payload")
        if self.uploading or not self.flash.valid:
            raise _Error(ErrorCode.NO_MODEL, "no verified model on the board")
        model = bytes(self.flash.data)
        if self.host is None:
            try:
                # Custom operators by name (TFLM_DECODE), as the resolver registers them; a
                # malformed flatbuffer is a CandidateRejected.
                ops = tflm_host.op_names(model)
            except CandidateRejected as exc:
                raise _Error(ErrorCode.MODEL_INVALID, str(exc)) from None
            missing = sorted(set(ops) - set(self.spec.resolver_ops))
            if missing:
                hint = ""
                if tflm_host.DECODE_OP in missing and tflm_host.DECODE_OP in (
                    self.spec.compression_ops
                ):
                    hint = (" (a LUT-compressed model: it needs a firmware built with "
                            "USE_TFLM_COMPRESSION=1; emulator: --compression)")
                raise _Error(
                    ErrorCode.UNSUPPORTED_OP,
                    f"op {', '.join(missing)} is not in the firmware's op resolver{hint}",
                )
            try:
                self.host = tflm_host.allocate(model, self.spec.arena_bytes)
            except tflm_host.ArenaTooSmall as exc:
                raise _Error(ErrorCode.ARENA_TOO_SMALL, str(exc)) from None
            except CandidateRejected as exc:
                raise _Error(ErrorCode.MODEL_INVALID, str(exc)) from None
            self.inputs = [bytearray(tflm_host.tensor_nbytes(d)) for d in self.host.inputs]
            self.outputs = [bytes(tflm_host.tensor_nbytes(d)) for d in self.host.outputs]
            self._latency_us = round(
                cycle_model.estimate_latency_us(model, self.spec.cycle_model, self.spec.clock_hz)
            )
        host = self.host
        out = bytearray(
            struct.pack(
                "<IIBB",
                host.report.total,
                self.spec.arena_bytes,
                len(host.inputs),
                len(host.outputs),
            )
        )
        for d in host.inputs + host.outputs:
            out += _tensor_desc(d)
        return bytes(out)

    def _set_input(self, p: bytes) -> bytes:
        if self.host is None:
            raise _Error(ErrorCode.WRONG_STATE, "ALLOCATE first")
        if len(p) < 5:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected u8 index + u32 offset + data")
        index, offset = struct.unpack_from("<BI", p)
        if index >= len(self.inputs):
            raise _Error(ErrorCode.BAD_TENSOR, "no such input")
        data = p[5:]
        buf = self.inputs[index]
        if offset > len(buf) or len(data) > len(buf) - offset:
            raise _Error(ErrorCode.BAD_TENSOR, "data past the end of the input tensor")
        buf[offset : offset + len(data)] = data
        return b""

    def _invoke(self, p: bytes) -> bytes:
        if self.host is None or self._latency_us is None:
            raise _Error(ErrorCode.WRONG_STATE, "ALLOCATE first")
        if len(p) != 5:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected u16 runs + u16 warmup + u8 flags")
        runs, warmup, flags = struct.unpack("<HHB", p)
        if not 1 <= runs <= MAX_TIMED_RUNS:
            raise _Error(ErrorCode.BAD_PAYLOAD, "runs must be 1..512")
        if self.fault_reset_on_invoke:
            raise _HardFault()
        interp = self.host.interpreter
        reset = bool(flags & INVOKE_FLAG_RESET_STATE)
        # One real inference per INVOKE, not warmup + runs of them: the times come from the
        # cycle model, so repeating identical runs would only burn host CPU (TFLM's reference
        # kernels are slow on x86). Errors and outputs are still TFLM's own.
        try:
            if reset:
                interp.reset()
            # Inputs are set before the run: TFLM may reuse an input's arena space.
            for i, d in enumerate(self.host.inputs):
                arr = np.frombuffer(bytes(self.inputs[i]), dtype=d["dtype"]).reshape(d["shape"])
                interp.set_input(arr, i)
            interp.invoke()
        except RuntimeError as exc:
            raise _Error(ErrorCode.INVOKE_FAILED, f"Invoke() failed: {exc}") from None
        self.outputs = [
            np.ascontiguousarray(interp.get_output(i)).tobytes() for i in range(len(self.outputs))
        ]
        # Every run's time is the cycle model's estimate: the host's own time says nothing
        # about a Cortex-M, so it is not used.
        self.timings = [self._latency_us] * runs
        t = self._latency_us
        return struct.pack("<IIIIIQ", runs, t, t, t, t, t * runs)

    def _get_output(self, p: bytes) -> bytes:
        if self.host is None:
            raise _Error(ErrorCode.WRONG_STATE, "ALLOCATE first")
        if len(p) != 7:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected u8 index + u32 offset + u16 max_len")
        index, offset, want = struct.unpack("<BIH", p)
        if index >= len(self.outputs):
            raise _Error(ErrorCode.BAD_TENSOR, "no such output")
        data = self.outputs[index]
        if offset > len(data):
            raise _Error(ErrorCode.BAD_TENSOR, "offset past the end of the output tensor")
        return data[offset : offset + min(want, MAX_PAYLOAD)]

    def _get_timings(self, p: bytes) -> bytes:
        if len(p) != 4:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected u16 first + u16 count")
        first, count = struct.unpack("<HH", p)
        if first > len(self.timings) or count > len(self.timings) - first or count > 256:
            raise _Error(ErrorCode.BAD_PAYLOAD, "range outside the last INVOKE's runs")
        return struct.pack(f"<{count}I", *self.timings[first : first + count])

    def _reset(self, p: bytes) -> bytes:
        if p:
            raise _Error(ErrorCode.BAD_PAYLOAD, "expected an empty payload")
        return b""


class _HardFault(Exception):
    """Raised to emulate a crash that resets the board (fault injection)."""


def _tensor_desc(d: dict[str, Any]) -> bytes:
    shape = [int(x) for x in d["shape"]]
    q = d.get("quantization_parameters") or {}
    scales = q.get("scales")
    zps = q.get("zero_points")
    scale = float(scales[0]) if scales is not None and len(scales) else 0.0
    zp = int(zps[0]) if zps is not None and len(zps) else 0
    dtype = np.dtype(d["dtype"]).name
    return (
        struct.pack("<BIB", _TYPE_CODES.get(dtype, 0), tflm_host.tensor_nbytes(d), len(shape))
        + struct.pack(f"<{len(shape)}i", *shape)
        + struct.pack("<fi", scale, zp)
    )


def _tflm_version() -> str:
    try:
        from importlib import metadata

        return f"tflite-micro {metadata.version('tflite-micro')} (host wheel)"
    except Exception:  # noqa: BLE001
        return "tflite-micro (host wheel)"
