"""Host side of the hilnas serial protocol (firmware/PROTOCOL.md): codec, link and board client.

Three layers, each usable alone:

- the codec (`encode_frame`, `FrameDecoder`): bytes <-> frames, resynchronising after garbage;
- `SerialLink`: one request, one reply, over anything with pyserial's `read`/`write`; every
  read has a deadline, lost or corrupted frames are resent with a fresh sequence number, and
  an unexpected READY means the board reset;
- `BoardClient`: the protocol's commands with typed replies, and a chunked upload that
  adapts its chunk size to the line's error rate.

pyserial is imported only when a port is opened, so importing this module is cheap.
"""

from __future__ import annotations

import enum
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from device_agent.errors import (
    CandidateRejected,
    DeviceUnavailable,
    MeasurementFailed,
    ProtocolError,
)

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
SYNC = b"\xa5\x5a"
MAX_PAYLOAD = 1024
HEADER_SIZE = 6
CRC_SIZE = 2
REPLY_BIT = 0x80
MAX_TIMED_RUNS = 512
INVOKE_FLAG_RESET_STATE = 0x01
# Silence after which a partial frame is given up (the firmware uses the same 50 ms).
INTER_BYTE_TIMEOUT_S = 0.05


class Cmd(enum.IntEnum):
    PING = 0x01
    INFO = 0x02
    UPLOAD_BEGIN = 0x10
    UPLOAD_CHUNK = 0x11
    UPLOAD_END = 0x12
    ALLOCATE = 0x20
    SET_INPUT = 0x21
    INVOKE = 0x22
    GET_OUTPUT = 0x23
    GET_TIMINGS = 0x24
    RESET = 0x30
    READY = 0x7E
    ERROR = 0x7F


class ErrorCode(enum.IntEnum):
    BAD_CRC = 1
    TRUNCATED = 2
    TOO_LONG = 3
    UNKNOWN_COMMAND = 4
    BAD_PAYLOAD = 5
    WRONG_STATE = 6
    MODEL_TOO_LARGE = 7
    HASH_MISMATCH = 8
    UPLOAD_INCOMPLETE = 9
    NO_MODEL = 10
    MODEL_INVALID = 11
    UNSUPPORTED_OP = 12
    ARENA_TOO_SMALL = 13
    BAD_TENSOR = 14
    INVOKE_FAILED = 15
    FLASH_FAILED = 16
    INTERNAL = 17


# Line errors: the request (or its reply) was damaged in transit, so resending is right.
_LINE_ERRORS = {ErrorCode.BAD_CRC, ErrorCode.TRUNCATED, ErrorCode.TOO_LONG}
# Errors that mean "this candidate cannot run on this board".
_CANDIDATE_ERRORS = {
    ErrorCode.MODEL_TOO_LARGE,
    ErrorCode.MODEL_INVALID,
    ErrorCode.UNSUPPORTED_OP,
    ErrorCode.ARENA_TOO_SMALL,
}

# TfLiteType codes -> numpy dtype names.
TFLITE_TYPES: dict[int, str] = {
    1: "float32",
    2: "int32",
    3: "uint8",
    4: "int64",
    7: "int16",
    9: "int8",
}


def crc16(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE, the frame check (same as firmware/core/hilnas_crc16.cpp)."""
    for byte in bytes(data):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode_frame(cmd: int, seq: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = struct.pack("<HBB", len(payload), cmd & 0xFF, seq & 0xFF) + bytes(payload)
    return SYNC + body + struct.pack("<H", crc16(body))


@dataclass(frozen=True)
class Frame:
    cmd: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class BadFrame:
    """A frame-shaped run of bytes that failed its check: `reason` is 'crc' or 'too_long'."""

    reason: str
    seq: int | None


class FrameDecoder:
    """Turns a byte stream into frames.

    After a bad frame it rescans from the byte after the false sync, so a sync pattern
    inside garbage or inside a damaged frame costs nothing.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        self._buf += data
        out: list[Frame | BadFrame] = []
        buf = self._buf
        while True:
            start = buf.find(SYNC)
            if start < 0:
                # Keep a trailing A5: it may be the first half of the next sync.
                del buf[: max(len(buf) - 1, 0) if buf[-1:] == b"\xa5" else len(buf)]
                break
            del buf[:start]
            if len(buf) < 4:
                break
            length = buf[2] | (buf[3] << 8)
            if length > MAX_PAYLOAD:
                out.append(BadFrame("too_long", None))
                del buf[:1]
                continue
            if len(buf) < HEADER_SIZE:
                break
            total = HEADER_SIZE + length + CRC_SIZE
            if len(buf) < total:
                break
            body = bytes(buf[2 : HEADER_SIZE + length])
            (crc_rx,) = struct.unpack_from("<H", buf, HEADER_SIZE + length)
            if crc16(body) == crc_rx:
                out.append(Frame(buf[4], buf[5], bytes(buf[HEADER_SIZE : HEADER_SIZE + length])))
                del buf[:total]
            else:
                out.append(BadFrame("crc", buf[5]))
                del buf[:1]
        return out

    @property
    def pending(self) -> bool:
        """Bytes are buffered that may be the start of a frame."""
        return bool(self._buf)

    def drop_partial(self) -> list[Frame | BadFrame]:
        """Give up on a partial frame (its length field may be damaged) and rescan after it."""
        if self._buf.startswith(SYNC):
            del self._buf[:1]
        return self.feed(b"")

    def clear(self) -> None:
        self._buf.clear()


class BoardError(ProtocolError):
    """The board answered with an ERROR frame."""

    def __init__(self, code: int, request: int, detail: str) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        try:
            req = Cmd(request).name
        except ValueError:
            req = f"0x{request:02x}"
        super().__init__(f"board error {name} on {req}: {detail}")
        self.code = code
        self.request = request
        self.detail = detail

    def as_hilnas_error(self) -> Exception:
        """The shared exception this board error means for the caller."""
        if self.code in _CANDIDATE_ERRORS:
            return CandidateRejected(str(self))
        if self.code == ErrorCode.INVOKE_FAILED:
            return MeasurementFailed(str(self))
        return self


class BoardReset(DeviceUnavailable):
    """The board sent READY in the middle of a request: it reset and lost its state."""


class PortGone(DeviceUnavailable):
    """The serial port itself failed (unplugged board, closed pty): no retry can help."""


class Port(Protocol):
    """What SerialLink needs from a port (a pyserial `Serial` satisfies it)."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


def open_port(path: str, baud: int = 115200) -> Port:
    """Open a serial port (a board's USB CDC device, or a pseudo-terminal) with pyserial."""
    try:
        import serial
    except ImportError as exc:  # pragma: no cover - pyserial is in the agent extra
        raise DeviceUnavailable("pyserial is not installed: pip install 'hilnas[agent]'") from exc
    try:
        # A short read timeout: SerialLink keeps its own deadlines and polls in slices.
        port: Port = serial.Serial(path, baudrate=baud, timeout=0.02, write_timeout=2.0)
    except (serial.SerialException, OSError) as exc:
        raise DeviceUnavailable(f"cannot open serial port {path}: {exc}") from exc
    return port


@dataclass
class LinkStats:
    requests: int = 0
    resends: int = 0
    timeouts: int = 0
    bad_frames: int = 0
    naks: int = 0
    stale_replies: int = 0


class SerialLink:
    """Request/reply over a serial port with deadlines, resends and resynchronisation.

    `margin_s` is added to every reply deadline for host scheduling and USB latency;
    `baud` is used only to budget the time the bytes take on the line.
    """

    def __init__(
        self,
        port: Port,
        *,
        baud: int = 115200,
        margin_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.baud = baud
        self.margin_s = margin_s
        self._clock = clock
        self._decoder = FrameDecoder()
        self._seq = 0
        self.stats = LinkStats()
        self.on_ready: Callable[[Frame], None] | None = None

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # noqa: BLE001 - closing a vanished port must not mask the cause
            pass

    def line_seconds(self, nbytes: float) -> float:
        """Time `nbytes` take on the line at the nominal baud rate (10 bits per byte)."""
        return nbytes * 10 / self.baud

    def _next_seq(self) -> int:
        self._seq = (self._seq % 255) + 1  # never 0: 0 is READY's and unknown-SEQ errors'
        return self._seq

    def _read(self) -> bytes:
        try:
            # Block (up to the port's short timeout) for one byte, then take what is waiting:
            # a reply is handled as soon as it arrives, not when a large read times out.
            first = self.port.read(1)
            if not first:
                return b""
            waiting = int(getattr(self.port, "in_waiting", 0) or 0)
            return first + (self.port.read(waiting) if waiting else b"")
        except Exception as exc:  # pyserial raises SerialException (an OSError subclass or not)
            raise PortGone(
                f"serial port read failed ({exc}): the board was unplugged or reset its USB"
            ) from exc

    def send_raw(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except Exception as exc:
            raise PortGone(f"serial port write failed ({exc}): the board was unplugged") from exc

    def request(
        self,
        cmd: int,
        payload: bytes = b"",
        *,
        handling_s: float = 0.05,
        retries: int = 8,
        reply_bytes: int = 64,
        ignore_ready: bool = False,
    ) -> bytes:
        """Send one request and return the reply's payload.

        `handling_s` is how long the board may take to act on it. A lost or damaged request or
        reply is resent up to `retries` times; then DeviceUnavailable (silence) or
        ProtocolError (persistent damage) is raised. ERROR replies raise BoardError.
        `ignore_ready` is for the first request after opening a port, when a READY sent at
        boot may still sit in the buffers.
        """
        frame_len = HEADER_SIZE + len(payload) + CRC_SIZE
        wait = (
            self.line_seconds(frame_len + HEADER_SIZE + reply_bytes + CRC_SIZE)
            + handling_s
            + self.margin_s
        )
        self.stats.requests += 1
        last_problem = "no reply"
        silent = True
        for attempt in range(retries + 1):
            if attempt:
                self.stats.resends += 1
            seq = self._next_seq()
            self.send_raw(encode_frame(cmd, seq, payload))
            outcome = self._await(cmd, seq, wait, ignore_ready)
            if isinstance(outcome, Frame):
                return outcome.payload
            if outcome != "timeout":
                silent = False
            last_problem = outcome
        if silent:
            raise DeviceUnavailable(
                f"board did not answer {Cmd(cmd).name} within {wait:.2f} s "
                f"({retries + 1} attempts): is the hilnas firmware running on this port?"
            )
        raise ProtocolError(
            f"{Cmd(cmd).name} failed {retries + 1} times on a noisy line (last: {last_problem})"
        )

    def _await(self, cmd: int, seq: int, wait: float, ignore_ready: bool = False) -> Frame | str:
        """Wait for the reply to (cmd, seq): the Frame, or why not.

        The reasons are 'timeout', 'nak', 'crc' and 'truncated'.
        """
        deadline = self._clock() + wait
        last_rx: float | None = None
        while True:
            data = self._read()
            now = self._clock()
            if data:
                last_rx = now
            elif last_rx is not None and now - last_rx > INTER_BYTE_TIMEOUT_S:
                # Bytes came and then stopped without a whole frame: a byte of the reply was
                # lost. Resend now rather than at the deadline (the board does the same).
                self.stats.bad_frames += 1
                for ev in self._decoder.drop_partial():
                    if isinstance(ev, Frame) and ev.seq == seq and ev.cmd == (cmd | REPLY_BIT):
                        return ev
                self._decoder.clear()
                return "truncated"
            events = self._decoder.feed(data) if data else []
            if any(isinstance(ev, Frame) for ev in events):
                # Whole frames arrived: only bytes left over after them can be half a frame.
                last_rx = now if self._decoder.pending else None
            for ev in events:
                if isinstance(ev, BadFrame):
                    self.stats.bad_frames += 1
                    if ev.seq == seq:
                        return "crc"  # our reply was damaged: resend now, not at the deadline
                    continue
                if ev.cmd == Cmd.READY:
                    if ignore_ready:
                        continue
                    if self.on_ready is not None:
                        self.on_ready(ev)
                    raise BoardReset(
                        f"the board reset while handling {Cmd(cmd).name} "
                        "(hard fault, watchdog or brown-out); its arena and inputs are gone"
                    )
                if ev.seq != seq:
                    self.stats.stale_replies += 1
                    continue
                if ev.cmd == Cmd.ERROR:
                    code = ev.payload[0] if ev.payload else ErrorCode.INTERNAL
                    request = ev.payload[1] if len(ev.payload) > 1 else cmd
                    detail = ev.payload[2:].decode("utf-8", "replace")
                    if code in _LINE_ERRORS:
                        self.stats.naks += 1
                        return "nak"
                    raise BoardError(code, request, detail)
                if ev.cmd == (cmd | REPLY_BIT):
                    return ev
                raise ProtocolError(f"unexpected reply 0x{ev.cmd:02x} to {Cmd(cmd).name}")
            if self._clock() >= deadline:
                self.stats.timeouts += 1
                # The partial frame we hold may carry a damaged length: rescan past it.
                for ev in self._decoder.drop_partial():
                    if isinstance(ev, Frame) and ev.seq == seq and ev.cmd == (cmd | REPLY_BIT):
                        return ev
                return "timeout"

    def wait_ready(self, timeout: float) -> Frame | None:
        """Wait up to `timeout` for a READY frame (after RESET); None if none came."""
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            data = self._read()
            for ev in self._decoder.feed(data) if data else []:
                if isinstance(ev, Frame) and ev.cmd == Cmd.READY:
                    return ev
        return None


@dataclass(frozen=True)
class BoardInfo:
    """INFO, parsed. `raw` keeps every key, including ones this host does not know."""

    proto: tuple[int, int]
    board: str
    cpu: str
    clock_hz: int
    ram_bytes: int
    flash_bytes: int
    arena_bytes: int
    model_slot_bytes: int
    tflm_version: str
    firmware_version: str
    ops: tuple[str, ...]
    timer: str
    latency_source: str
    emulated: bool
    ptr_bytes: int
    max_payload: int
    chunk_ms: int
    model_sha: str
    raw: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, payload: bytes) -> BoardInfo:
        raw: dict[str, str] = {}
        for line in payload.decode("utf-8", "replace").splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                raw[key.strip()] = value.strip()
        if "proto" not in raw:
            raise ProtocolError(f"INFO reply has no 'proto' key: {payload[:80]!r}")
        try:
            major, minor = (int(x) for x in raw["proto"].split(".", 1))
        except ValueError:
            raise ProtocolError(f"INFO 'proto' is not major.minor: {raw['proto']!r}") from None
        if major != PROTOCOL_MAJOR:
            raise ProtocolError(
                f"board speaks serial protocol {major}.{minor}, this host speaks "
                f"{PROTOCOL_MAJOR}.x: reflash the board with this release's firmware"
            )

        def num(key: str, default: int = 0) -> int:
            try:
                return int(raw.get(key, default))
            except ValueError:
                raise ProtocolError(f"INFO {key!r} is not a number: {raw[key]!r}") from None

        return cls(
            proto=(major, minor),
            board=raw.get("board", "unknown"),
            cpu=raw.get("cpu", "unknown"),
            clock_hz=num("clock_hz"),
            ram_bytes=num("ram"),
            flash_bytes=num("flash"),
            arena_bytes=num("arena"),
            model_slot_bytes=num("model_slot"),
            tflm_version=raw.get("tflm", "unknown"),
            firmware_version=raw.get("fw", "unknown"),
            ops=tuple(op for op in raw.get("ops", "").split(",") if op),
            timer=raw.get("timer", "micros"),
            latency_source=raw.get("latency_source", "measured"),
            emulated=raw.get("emulated", "0") == "1",
            ptr_bytes=num("ptr_bytes", 4),
            max_payload=num("max_payload", MAX_PAYLOAD),
            chunk_ms=num("chunk_ms", 100),
            model_sha=raw.get("model_sha", ""),
            raw=raw,
        )


@dataclass(frozen=True)
class TensorInfo:
    type_code: int
    nbytes: int
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def dtype(self) -> str:
        try:
            return TFLITE_TYPES[self.type_code]
        except KeyError:
            raise ProtocolError(f"tensor type code {self.type_code} is not supported") from None


@dataclass(frozen=True)
class Allocation:
    arena_used: int
    arena_capacity: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @classmethod
    def parse(cls, p: bytes) -> Allocation:
        try:
            used, cap, n_in, n_out = struct.unpack_from("<IIBB", p, 0)
            k = 10
            tensors: list[TensorInfo] = []
            for _ in range(n_in + n_out):
                type_code, nbytes, ndim = struct.unpack_from("<BIB", p, k)
                k += 6
                dims = struct.unpack_from(f"<{ndim}i", p, k)
                k += 4 * ndim
                scale, zp = struct.unpack_from("<fi", p, k)
                k += 8
                tensors.append(TensorInfo(type_code, nbytes, tuple(dims), scale, zp))
        except struct.error as exc:
            raise ProtocolError(f"malformed ALLOCATE reply ({len(p)} bytes): {exc}") from None
        return cls(used, cap, tuple(tensors[:n_in]), tuple(tensors[n_in:]))


@dataclass(frozen=True)
class InvokeResult:
    n: int
    min_us: int
    median_us: int
    max_us: int
    mean_us: int
    total_us: int

    @classmethod
    def parse(cls, p: bytes) -> InvokeResult:
        if len(p) != 28:
            raise ProtocolError(f"INVOKE reply has {len(p)} bytes, expected 28")
        return cls(*struct.unpack("<IIIIIQ", p))


@dataclass
class UploadReport:
    bytes: int
    skipped: bool
    seconds: float
    chunks_sent: int
    final_chunk_bytes: int
    link: dict[str, Any]


class BoardClient:
    """The protocol's commands, with typed replies and sensible deadlines."""

    def __init__(self, link: SerialLink) -> None:
        self.link = link
        self._info: BoardInfo | None = None
        self._page = MAX_PAYLOAD  # largest reply asked for; shrinks on a noisy line
        self._last_page = MAX_PAYLOAD
        self._clean = 0

    @property
    def info(self) -> BoardInfo:
        if self._info is None:
            self._info = self.fetch_info()
        return self._info

    def fetch_info(
        self, retries: int = 4, *, first: bool = False, deadline_s: float = 30.0
    ) -> BoardInfo:
        """INFO, read in pages so that it also crosses a noisy line, within `deadline_s`."""
        text = bytearray()
        start = time.monotonic()
        while True:
            left = deadline_s - (time.monotonic() - start)
            if left <= 0:
                raise DeviceUnavailable(
                    f"INFO did not come through within {deadline_s:.0f} s ({len(text)} bytes "
                    f"read, {self.link.stats.bad_frames} damaged frames): the line is too noisy"
                )
            got = len(text)
            page = self._paged(
                lambda size, got=got: self.link.request(  # type: ignore[misc]
                    Cmd.INFO,
                    struct.pack("<HH", got, size),
                    handling_s=0.1,
                    retries=retries,
                    reply_bytes=size,
                    ignore_ready=first,
                ),
                deadline_s=left,
            )
            text += page
            if len(page) < self._last_page:
                break
        self._info = BoardInfo.parse(bytes(text))
        return self._info

    def _paged(self, call: Callable[[int], bytes], deadline_s: float = 30.0) -> bytes:
        """Run `call(page_size)`, halving the page after damaged or lost replies.

        Long replies rarely cross a noisy line intact (a 1% byte error rate lets through
        0.99^1032 ~ 0.003% of full frames but 0.99^72 ~ 48% of 64-byte ones), so reads that
        can be split (INFO, GET_OUTPUT, GET_TIMINGS) shrink their page until they get through.
        """
        start = time.monotonic()
        while True:
            size = self._page
            try:
                reply = call(size)
            except ProtocolError as exc:
                # Silence (DeviceUnavailable) and board errors pass straight through; only a
                # line that keeps damaging replies makes the page shrink, until the deadline.
                if isinstance(exc, BoardError) or time.monotonic() - start > deadline_s:
                    raise
                self._page = max(32, self._page // 2)
                self._clean = 0
                continue
            self._last_page = size
            self._clean += 1
            if self._clean >= 8 and self._page < MAX_PAYLOAD:
                self._page = min(MAX_PAYLOAD, self._page * 2)
                self._clean = 0
            return reply

    def ping(self, data: bytes = b"hilnas") -> bytes:
        return self.link.request(Cmd.PING, data, reply_bytes=len(data))

    def upload(
        self, model: bytes, sha256_hex: str, *, deadline_s: float | None = None
    ) -> UploadReport:
        """Upload `model` unless the board already holds it; verify its SHA-256 on the board.

        The chunk size starts at the largest payload and halves after each damaged or lost
        chunk (down to 32 bytes), doubling back after a run of clean ones: on a noisy line a
        short frame is far likelier to arrive intact (0.99^1032 ~ 0.00003, 0.99^40 ~ 0.67).
        The whole transfer must finish within `deadline_s` (default: three times the line time
        plus the board's flash time, at least 30 s), or it fails with the progress made.
        """
        info = self.info
        size = len(model)
        if size > info.model_slot_bytes:
            raise CandidateRejected(
                f"model of {size} B does not fit the {info.board}'s flash model slot of "
                f"{info.model_slot_bytes} B"
            )
        sha = bytes.fromhex(sha256_hex)
        start = time.monotonic()
        try:
            reply = self.link.request(
                Cmd.UPLOAD_BEGIN, struct.pack("<I", size) + sha, handling_s=0.5
            )
        except BoardError as exc:
            raise exc.as_hilnas_error() from exc
        present = reply[0] == 1
        if present:
            return UploadReport(size, True, time.monotonic() - start, 0, 0, vars(self.link.stats))
        max_chunk = min(info.max_payload, MAX_PAYLOAD) - 4
        pages = size / 4096 + 1
        if deadline_s is None:
            deadline_s = max(
                30.0, 3 * self.link.line_seconds(size * 1.1) + pages * info.chunk_ms / 1000 * 2
            )
        chunk = max_chunk
        clean = 0
        offset = 0
        sent = 0
        handling = info.chunk_ms / 1000
        while offset < size:
            if time.monotonic() - start > deadline_s:
                raise DeviceUnavailable(
                    f"upload did not finish within {deadline_s:.1f} s: {offset} of {size} bytes "
                    f"acknowledged, {self.link.stats.resends} resends, "
                    f"{self.link.stats.bad_frames} damaged frames (a noisy or failing link?)"
                )
            data = model[offset : offset + chunk]
            sent += 1
            try:
                reply = self.link.request(
                    Cmd.UPLOAD_CHUNK,
                    struct.pack("<I", offset) + data,
                    handling_s=handling,
                    retries=0,
                    reply_bytes=4,
                )
            except (ProtocolError, DeviceUnavailable) as exc:
                if isinstance(exc, BoardError | BoardReset | PortGone):
                    raise
                # A lost or damaged chunk or ack: shrink, and let the board say where it is.
                chunk = max(32, chunk // 2)
                clean = 0
                continue
            (next_offset,) = struct.unpack("<I", reply[:4])
            if next_offset > size:
                raise ProtocolError(f"board acknowledged offset {next_offset} past {size}")
            offset = next_offset
            clean += 1
            if clean >= 8 and chunk < max_chunk:
                chunk = min(max_chunk, chunk * 2)
                clean = 0
        try:
            digest = self.link.request(Cmd.UPLOAD_END, handling_s=0.5 + size / 1e6, retries=5)
        except BoardError as exc:
            raise exc.as_hilnas_error() from exc
        if digest != sha:
            raise ProtocolError(
                f"board reports SHA-256 {digest.hex()[:16]}… for the upload, expected "
                f"{sha256_hex[:16]}…"
            )
        self._info = None  # model_sha changed
        return UploadReport(
            size, False, time.monotonic() - start, sent, chunk, vars(self.link.stats)
        )

    def allocate(self) -> Allocation:
        try:
            reply = self.link.request(Cmd.ALLOCATE, handling_s=2.0, reply_bytes=MAX_PAYLOAD)
        except BoardError as exc:
            raise exc.as_hilnas_error() from exc
        return Allocation.parse(reply)

    def set_input(self, index: int, data: bytes) -> None:
        step = min(self.info.max_payload, MAX_PAYLOAD) - 5
        for off in range(0, max(len(data), 1), step):
            self.link.request(
                Cmd.SET_INPUT, struct.pack("<BI", index, off) + data[off : off + step]
            )

    def invoke(
        self, runs: int, warmup: int = 0, *, reset_state: bool = False, expected_s: float = 1.0
    ) -> InvokeResult:
        if not 1 <= runs <= MAX_TIMED_RUNS:
            raise ValueError(f"runs must be 1..{MAX_TIMED_RUNS}")
        flags = INVOKE_FLAG_RESET_STATE if reset_state else 0
        try:
            reply = self.link.request(
                Cmd.INVOKE,
                struct.pack("<HHB", runs, warmup, flags),
                handling_s=expected_s,
                retries=1,
            )
        except BoardError as exc:
            raise exc.as_hilnas_error() from exc
        return InvokeResult.parse(reply)

    def get_timings(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            first = len(out)
            reply = self._paged(
                lambda size, first=first: self.link.request(  # type: ignore[misc]
                    Cmd.GET_TIMINGS,
                    struct.pack("<HH", first, min(size // 4, n - first)),
                    reply_bytes=size,
                )
            )
            out.extend(struct.unpack(f"<{len(reply) // 4}I", reply))
        return out

    def get_output(self, index: int, nbytes: int) -> bytes:
        out = bytearray()
        while len(out) < nbytes:
            offset = len(out)
            reply = self._paged(
                lambda size, offset=offset: self.link.request(  # type: ignore[misc]
                    Cmd.GET_OUTPUT,
                    struct.pack("<BIH", index, offset, min(size, nbytes - offset)),
                    reply_bytes=size,
                )
            )
            if not reply:
                raise ProtocolError(f"GET_OUTPUT returned no bytes at offset {offset}")
            out += reply
        return bytes(out)

    def reset(self, ready_timeout: float = 5.0) -> Frame | None:
        """Reset the board; return its READY frame (None if it did not announce itself)."""
        self.link.request(Cmd.RESET, handling_s=0.2)
        self._info = None
        return self.link.wait_ready(ready_timeout)
