"""The emulated board: real TFLM behind the protocol, board limits, honest labels."""

from __future__ import annotations

import hashlib
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite_micro")

from device_agent.mcu import cycle_model, tflm_host  # noqa: E402
from device_agent.mcu.board import EmulatedBoard  # noqa: E402
from device_agent.mcu.boards import load_board  # noqa: E402
from device_agent.serial_protocol import (  # noqa: E402
    Allocation,
    BoardInfo,
    Cmd,
    ErrorCode,
    Frame,
    FrameDecoder,
    InvokeResult,
    encode_frame,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mcu_models import model_path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class Driver:
    """Drives an EmulatedBoard frame by frame, without a pty."""

    def __init__(self, board: EmulatedBoard) -> None:
        self.board = board
        self.seq = 0

    def call(self, cmd: int, payload: bytes = b"") -> Frame:
        self.seq = self.seq % 255 + 1
        out = self.board.handle_bytes(encode_frame(cmd, self.seq, payload), now=0.0)
        frames = [f for f in FrameDecoder().feed(out) if isinstance(f, Frame)]
        assert len(frames) >= 1
        return frames[0]

    def upload(self, model: bytes) -> Frame:
        sha = hashlib.sha256(model).digest()
        r = self.call(Cmd.UPLOAD_BEGIN, struct.pack("<I", len(model)) + sha)
        if r.cmd == Cmd.ERROR:
            return r
        for off in range(0, len(model), 1000):
            self.call(Cmd.UPLOAD_CHUNK, struct.pack("<I", off) + model[off : off + 1000])
        return self.call(Cmd.UPLOAD_END)


def error_code(f: Frame) -> int:
    assert f.cmd == Cmd.ERROR, f
    return f.payload[0]


@pytest.fixture()
def drv() -> Driver:
    return Driver(EmulatedBoard(load_board("nano33ble")))


def test_info_labels_the_stand_in(drv: Driver) -> None:
    info = BoardInfo.parse(drv.call(Cmd.INFO).payload)
    spec = load_board("nano33ble")
    assert info.emulated and info.latency_source == "estimated" and info.timer == "cycle-model"
    assert info.ptr_bytes == 8
    assert info.arena_bytes == spec.ram_bytes - spec.ram_reserve_bytes == 196608
    assert info.model_slot_bytes == spec.model_slot_bytes
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info.ops


def test_arena_equals_tflm_print_allocations_exactly(drv: Driver) -> None:
    model = model_path("ecg").read_bytes()
    assert drv.upload(model).cmd == Cmd.UPLOAD_END | 0x80
    alloc = Allocation.parse(drv.call(Cmd.ALLOCATE).payload)
    # an independent interpreter's own report, parsed from its printed text
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=196608)
    _, text = tflm_host.capture_stderr(interp.print_allocations)
    total = int(re.search(r"Arena allocation total (\d+) bytes", text).group(1))  # type: ignore[union-attr]
    assert alloc.arena_used == total
    # and it is the smallest arena TFLM accepts
    tflm_host.allocate(model, total)
    with pytest.raises(tflm_host.ArenaTooSmall):
        tflm_host.allocate(model, total - 16)
    assert tflm_host.cortex_m_arena_estimate(tflm_host.allocate(model, total).report) < total


def test_invoke_reports_the_cycle_model_and_outputs_match_tflm(drv: Driver) -> None:
    model = model_path("ecg").read_bytes()
    drv.upload(model)
    alloc = Allocation.parse(drv.call(Cmd.ALLOCATE).payload)
    x = np.load(model_path("ecg").parent / "ecg_windows.npy")[0]
    t = alloc.inputs[0]
    q = np.clip(np.round(x / t.scale + t.zero_point), -128, 127).astype(np.int8).reshape(t.shape)
    assert (
        drv.call(Cmd.SET_INPUT, struct.pack("<BI", 0, 0) + q.tobytes()).cmd == Cmd.SET_INPUT | 0x80
    )
    res = InvokeResult.parse(drv.call(Cmd.INVOKE, struct.pack("<HHB", 5, 1, 1)).payload)
    spec = load_board("nano33ble")
    est = round(cycle_model.estimate_latency_us(model, spec.cycle_model, spec.clock_hz))
    assert res.n == 5 and res.min_us == res.median_us == res.max_us == est
    out = drv.call(Cmd.GET_OUTPUT, struct.pack("<BIH", 0, 0, 1024)).payload
    ref = tflm_host.allocate(model, 196608).interpreter
    ref.set_input(q, 0)
    ref.invoke()
    assert out == ref.get_output(0).tobytes()


def test_board_limits_and_errors(drv: Driver) -> None:
    assert error_code(drv.call(Cmd.ALLOCATE)) == ErrorCode.NO_MODEL
    drv.upload(model_path("leaky").read_bytes())
    f = drv.call(Cmd.ALLOCATE)
    assert error_code(f) == ErrorCode.UNSUPPORTED_OP and b"LEAKY_RELU" in f.payload
    drv.upload(model_path("bigarena").read_bytes())
    f = drv.call(Cmd.ALLOCATE)
    assert error_code(f) == ErrorCode.ARENA_TOO_SMALL and b"196608" in f.payload
    small = Driver(EmulatedBoard(load_board("nano33ble").with_limits(flash_bytes=600_000)))
    f = small.upload(model_path("fc50k").read_bytes())
    assert error_code(f) == ErrorCode.MODEL_TOO_LARGE
    bad = bytearray(model_path("tiny").read_bytes())
    sha = hashlib.sha256(bytes(bad)).digest()
    drv.call(Cmd.UPLOAD_BEGIN, struct.pack("<I", len(bad)) + sha)
    bad[100] ^= 1
    for off in range(0, len(bad), 1000):
        drv.call(Cmd.UPLOAD_CHUNK, struct.pack("<I", off) + bytes(bad[off : off + 1000]))
    assert error_code(drv.call(Cmd.UPLOAD_END)) == ErrorCode.HASH_MISMATCH
    assert error_code(drv.call(Cmd.INVOKE, b"\x01\x00\x00\x00\x00")) == ErrorCode.WRONG_STATE
    assert error_code(drv.call(0x66)) == ErrorCode.UNKNOWN_COMMAND


def test_model_survives_reset_like_flash(drv: Driver) -> None:
    model = model_path("tiny").read_bytes()
    drv.upload(model)
    drv.call(Cmd.ALLOCATE)
    out = drv.board.handle_bytes(encode_frame(Cmd.RESET, 9), 0.0)
    cmds = [f.cmd for f in FrameDecoder().feed(out) if isinstance(f, Frame)]
    assert cmds == [Cmd.RESET | 0x80, Cmd.READY]
    r = drv.call(Cmd.UPLOAD_BEGIN, struct.pack("<I", len(model)) + hashlib.sha256(model).digest())
    assert r.payload[0] == 1  # present: no transfer needed
    assert drv.call(Cmd.ALLOCATE).cmd == Cmd.ALLOCATE | 0x80


def test_firmware_resolver_matches_boards_json() -> None:
    ino = (REPO / "firmware/arduino/hilnas_agent/hilnas_agent.ino").read_text()
    registered = re.findall(r"resolver\.Add(\w+)\(", ino)
    names = {
        "Add": "ADD", "AveragePool2D": "AVERAGE_POOL_2D", "Concatenation": "CONCATENATION",
        "Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D", "Dequantize": "DEQUANTIZE",
        "ExpandDims": "EXPAND_DIMS", "FullyConnected": "FULLY_CONNECTED", "Logistic": "LOGISTIC",
        "MaxPool2D": "MAX_POOL_2D", "Mean": "MEAN", "Mul": "MUL", "Pack": "PACK", "Pad": "PAD",
        "Quantize": "QUANTIZE", "Relu": "RELU", "Relu6": "RELU6", "Reshape": "RESHAPE",
        "Shape": "SHAPE", "Softmax": "SOFTMAX", "Split": "SPLIT", "Squeeze": "SQUEEZE",
        "StridedSlice": "STRIDED_SLICE", "Sub": "SUB", "Tanh": "TANH", "Transpose": "TRANSPOSE",
        "UnidirectionalSequenceLSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM", "Unpack": "UNPACK",
    }  # fmt: skip
    assert sorted(names[r] for r in registered) == sorted(load_board("nano33ble").ops)
    m = re.search(r"MicroMutableOpResolver<(\d+)>", ino)
    assert m and int(m.group(1)) == len(registered)


def test_cycle_model_macs_follow_the_reference_convention() -> None:
    costs = cycle_model.op_costs(model_path("tiny").read_bytes(), {})
    assert sum(c.macs for c in costs) == 64 * 32 + 32 * 4
