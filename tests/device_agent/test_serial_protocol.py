"""The host-side codec and link of the serial protocol, against in-memory ports."""

from __future__ import annotations

import struct
import time

import pytest

from device_agent.errors import DeviceUnavailable, ProtocolError
from device_agent.serial_protocol import (
    Allocation,
    BadFrame,
    BoardError,
    BoardInfo,
    BoardReset,
    Cmd,
    ErrorCode,
    Frame,
    FrameDecoder,
    SerialLink,
    crc16,
    encode_frame,
)


def test_crc_check_value_and_golden_frame_shared_with_the_firmware() -> None:
    assert crc16(b"123456789") == 0x29B1
    # the same bytes firmware/tests/test_core.cpp checks for INFO, seq 1
    assert encode_frame(Cmd.INFO, 1).hex() == "a55a0000020183f2"


def test_roundtrip_and_resync_after_garbage() -> None:
    payload = bytes(range(256)) * 4
    frame = encode_frame(Cmd.UPLOAD_CHUNK, 7, payload)
    dec = FrameDecoder()
    # garbage containing a false sync and a damaged frame before the real one
    damaged = bytearray(encode_frame(Cmd.PING, 3, b"abc"))
    damaged[7] ^= 0x10
    events = dec.feed(b"\x00\xa5\x5a\xff" + bytes(damaged) + frame[:100])
    events += dec.feed(frame[100:])
    frames = [e for e in events if isinstance(e, Frame)]
    assert frames == [Frame(Cmd.UPLOAD_CHUNK, 7, payload)]
    assert any(isinstance(e, BadFrame) and e.seq == 3 for e in events)


def test_byte_at_a_time_and_too_long() -> None:
    dec = FrameDecoder()
    out = []
    for b in encode_frame(0x22, 9, b"xyz"):
        out += dec.feed(bytes([b]))
    assert out == [Frame(0x22, 9, b"xyz")]
    assert isinstance(dec.feed(b"\xa5\x5a\xff\xff")[0], BadFrame)
    with pytest.raises(ValueError):
        encode_frame(1, 1, bytes(1025))


def test_drop_partial_rescans_past_a_damaged_length() -> None:
    dec = FrameDecoder()
    good = encode_frame(0x81, 4, b"ok")
    # a header whose length claims 900 bytes swallows the real frame behind it
    assert dec.feed(b"\xa5\x5a\x84\x03\x01\x01" + good) == []
    assert dec.drop_partial() == [Frame(0x81, 4, b"ok")]


def test_board_info_parse() -> None:
    text = (
        b"proto=1.0\nboard=nano33ble\nclock_hz=64000000\nram=262144\nops=ADD,CONV_2D\nnew_key=x\n"
    )
    info = BoardInfo.parse(text)
    assert info.board == "nano33ble" and info.ops == ("ADD", "CONV_2D")
    assert info.raw["new_key"] == "x" and info.latency_source == "measured"
    with pytest.raises(ProtocolError, match="reflash"):
        BoardInfo.parse(b"proto=2.0\n")
    with pytest.raises(ProtocolError):
        BoardInfo.parse(b"board=x\n")


def test_allocation_parse() -> None:
    p = struct.pack("<IIBB", 1234, 196608, 1, 1)
    for shape in ((1, 256, 1), (1, 2)):
        p += struct.pack("<BIB", 9, 256 if len(shape) == 3 else 2, len(shape))
        p += struct.pack(f"<{len(shape)}i", *shape) + struct.pack("<fi", 0.5, -3)
    a = Allocation.parse(p)
    assert a.arena_used == 1234 and a.inputs[0].shape == (1, 256, 1)
    assert a.outputs[0].dtype == "int8" and a.outputs[0].zero_point == -3
    with pytest.raises(ProtocolError):
        Allocation.parse(p[:-3])


class FakePort:
    """A port whose 'board' is a function from request frames to reply bytes."""

    def __init__(self, respond) -> None:  # type: ignore[no-untyped-def]
        self.respond = respond
        self.timeout = 0.01
        self.rx = bytearray()
        self.decoder = FrameDecoder()
        self.closed = False

    def write(self, data: bytes) -> int:
        for ev in self.decoder.feed(data):
            assert isinstance(ev, Frame)
            self.rx += self.respond(ev)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self.rx:
            time.sleep(self.timeout)
            return b""
        out = bytes(self.rx[:size])
        del self.rx[:size]
        return out

    @property
    def in_waiting(self) -> int:
        return len(self.rx)

    def close(self) -> None:
        self.closed = True


def test_silent_board_is_a_clear_error_within_the_deadline() -> None:
    link = SerialLink(FakePort(lambda f: b""), margin_s=0.05)
    t0 = time.monotonic()
    with pytest.raises(DeviceUnavailable, match="did not answer INFO"):
        link.request(Cmd.INFO, retries=2)
    assert time.monotonic() - t0 < 2.0


def test_nak_and_damaged_reply_are_resent() -> None:
    calls = []

    def respond(f: Frame) -> bytes:
        calls.append(f.seq)
        if len(calls) == 1:
            return encode_frame(Cmd.ERROR, f.seq, bytes([ErrorCode.BAD_CRC, f.cmd]) + b"bad crc")
        if len(calls) == 2:
            reply = bytearray(encode_frame(f.cmd | 0x80, f.seq, b"pong"))
            reply[-1] ^= 0xFF
            return bytes(reply)
        # a stale reply to an old sequence number first, then the real one
        return encode_frame(f.cmd | 0x80, calls[0], b"old") + encode_frame(
            f.cmd | 0x80, f.seq, b"pong"
        )

    link = SerialLink(FakePort(respond), margin_s=0.05)
    assert link.request(Cmd.PING, b"pong") == b"pong"
    assert len(set(calls)) == 3  # a fresh sequence number per attempt
    assert link.stats.naks == 1 and link.stats.stale_replies == 1


def test_error_frames_and_unexpected_ready() -> None:
    def err(f: Frame) -> bytes:
        return encode_frame(Cmd.ERROR, f.seq, bytes([ErrorCode.ARENA_TOO_SMALL, f.cmd]) + b"big")

    link = SerialLink(FakePort(err), margin_s=0.05)
    with pytest.raises(BoardError) as info:
        link.request(Cmd.ALLOCATE)
    assert info.value.code == ErrorCode.ARENA_TOO_SMALL
    assert type(info.value.as_hilnas_error()).__name__ == "CandidateRejected"

    def ready(f: Frame) -> bytes:
        return encode_frame(Cmd.READY, 0, b"\x01\x00nano33ble")

    link = SerialLink(FakePort(ready), margin_s=0.05)
    with pytest.raises(BoardReset):
        link.request(Cmd.INVOKE, b"\x01\x00\x00\x00\x00")
    # during the first INFO, a READY left over from boot is not a reset
    link = SerialLink(FakePort(ready), margin_s=0.05)
    with pytest.raises(DeviceUnavailable):
        link.request(Cmd.INFO, retries=0, ignore_ready=True)


def test_unplugged_port_is_device_unavailable() -> None:
    class Gone(FakePort):
        def read(self, size: int = 1) -> bytes:
            raise OSError(5, "Input/output error")

    link = SerialLink(Gone(lambda f: b""), margin_s=0.05)
    with pytest.raises(DeviceUnavailable, match="unplugged"):
        link.request(Cmd.PING)
