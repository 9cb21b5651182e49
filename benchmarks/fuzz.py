"""Fuzzing the agent: malformed gRPC requests, corrupt .tflite files, garbage on serial lines.

Three categories, each against a real agent (`hilnas-agent serve` in a subprocess, so a crash
is a dead process, not a dead benchmark):

(a) gRPC: hypothesis builds every request message of the agent's proto field by field with
    random and edge values (NaN, huge and negative numbers, bad hashes, bad dtypes and
    shapes, open-enum values), plus raw random bytes sent as the request body through a
    generic channel. Every call must end in a gRPC status (OK, or an error code with
    details), never an unhandled agent exception ("agent error: ..."), a hang or a crash.
(b) models: seeded random and mutated .tflite files (bit flips, truncations, splices, byte
    overwrites of real int8 models, random bytes), uploaded and measured: each must be
    rejected (CandidateRejected), fail (MeasurementFailed) or run, with a reason, within
    bounded time, and the agent must keep serving.
(c) serial: random bytes to the emulated board's line and to the serial bridge's host link
    (a pseudo-terminal each): the framing must reject them with a clear error and recover.

    .venv/bin/python benchmarks/fuzz.py            # the issue's counts
    .venv/bin/python benchmarks/fuzz.py --n 50     # quick
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from device_agent.proto import agent_pb2 as pb
from device_agent.proto import agent_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent
SERVICE = "/hilnas.agent.v1.DeviceAgent/"
# Every RPC of the contract and its request message (UploadModel takes a stream of chunks).
REQUESTS: dict[str, Any] = {
    "Describe": pb.DescribeRequest,
    "HasModel": pb.HasModelRequest,
    "UploadModel": pb.ModelChunk,
    "Measure": pb.MeasureRequest,
    "Profile": pb.ProfileRequest,
    "Validate": pb.ValidateRequest,
    "Heartbeat": pb.HeartbeatRequest,
}
# A call still unanswered after this long is a hang (the agent's own limits are far lower).
CALL_TIMEOUT_S = 90.0


# ------------------------------------------------------------------------------ the agent
class AgentProcess:
    """`hilnas-agent serve` on a free loopback port, in a child process of its own."""

    def __init__(
        self,
        workdir: Path,
        *,
        backend: str = "litert",
        extra: tuple[str, ...] = (),
        max_request_seconds: float = 5.0,
        start_timeout_s: float = 120.0,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        port_file = workdir / "port"
        port_file.unlink(missing_ok=True)
        self.log_path = workdir / "agent.log"
        self._log = self.log_path.open("wb")
        cmd = [
            sys.executable, "-m", "device_agent.cli", "serve",
            "--backend", backend, "--name", f"fuzz-{backend}",
            "--port", "0", "--port-file", str(port_file), "--no-auth",
            "--cache-dir", str(workdir / "cache"),
            "--max-request-seconds", str(max_request_seconds), *extra,
        ]  # fmt: skip
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
        deadline = time.monotonic() + start_timeout_s
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"agent did not start: {self.log_tail()}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.target = f"127.0.0.1:{self.port}"
        self.address = f"grpc://{self.target}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kb(self) -> int:
        """VmRSS of the agent process (its model worker is a separate process)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


def channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )


def still_serves(stub: pb_grpc.DeviceAgentStub) -> bool:
    try:
        stub.Heartbeat(pb.HeartbeatRequest(sequence=7), timeout=10)
        return True
    except grpc.RpcError:
        return False


def upload(stub: pb_grpc.DeviceAgentStub, data: bytes, timeout: float = CALL_TIMEOUT_S) -> Any:
    sha = hashlib.sha256(data).hexdigest()
    header = pb.ModelHeader(sha256=sha, total_bytes=len(data), filename="fuzz.tflite")
    chunks = [pb.ModelChunk(header=header, data=data[:262144])]
    chunks += [
        pb.ModelChunk(data=data[i : i + 262144]) for i in range(262144, len(data), 262144)
    ]
    return stub.UploadModel(iter(chunks), timeout=timeout)


# ------------------------------------------------------------------------------ outcomes
@dataclass
class Tally:
    """Counts per category: what was tried, how each case ended, and the cases that failed."""

    tried: Counter[str] = field(default_factory=Counter)
    handled: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)  # one reason per outcome label
    slowest_s: float = 0.0

    def fail(self, what: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(what)


def classify_rpc(exc: grpc.RpcError) -> tuple[str, bool]:
    """(outcome label, handled?) of a failed call."""
    code = exc.code()
    details = exc.details() or ""
    name = dict(exc.trailing_metadata() or ()).get("hilnas-error", "")
    label = f"{code.name}:{name}" if name else code.name
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "HANG " + label, False
    if code == grpc.StatusCode.UNKNOWN or details.startswith("agent error:"):
        return "UNHANDLED " + label, False  # an exception escaped the agent's own handling
    if code == grpc.StatusCode.UNAVAILABLE and not name:
        return "UNREACHABLE", False
    return label, bool(details)


# ------------------------------------------------------------------------------ (a) gRPC
def _ints(bits: int, signed: bool) -> Any:
    from hypothesis import strategies as st

    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    candidates = (0, 1, 2, 3, 20, 512, 10_000, 100_001, lo, hi, hi - 1, -1, lo + 1)
    edges = sorted({v for v in candidates if lo <= v <= hi})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _floats(width: int) -> Any:
    from hypothesis import strategies as st

    edges = [0.0, -0.0, 1e-300, 0.01, 0.2, 0.5, 0.999, 1.0, 1.5, 2.0, 1e308, -1.0,
             float("nan"), float("inf"), float("-inf")]  # fmt: skip
    return st.one_of(
        st.sampled_from(edges),
        st.floats(width=width, allow_nan=True, allow_infinity=True),
        st.floats(0.0, 1.0, width=width),
    )


def field_strategy(f: Any, shas: list[str], depth: int) -> Any:
    """Values for one protobuf field: random and edge values of its type (a list if repeated)."""
    from google.protobuf.descriptor import FieldDescriptor as FD
    from hypothesis import strategies as st

    t = f.type
    if t == FD.TYPE_MESSAGE:
        value = message_strategy(f.message_type, shas, depth + 1)
    elif t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        value = _ints(32, True)
    elif t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        value = _ints(64, True)
    elif t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        value = _ints(32, False)
    elif t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        value = _ints(64, False)
    elif t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        value = _floats(64 if t == FD.TYPE_DOUBLE else 32)
    elif t == FD.TYPE_BOOL:
        value = st.booleans()
    elif t == FD.TYPE_ENUM:
        # proto3 enums are open: values the agent does not know must be rejected cleanly.
        known = st.sampled_from([v.number for v in f.enum_type.values])
        value = st.one_of(known, known, known, st.integers(-3, 2**31 - 1))
    elif t == FD.TYPE_BYTES:
        value = st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"\x00" * 64, b"TFL3"]))
    elif f.name == "sha256":
        good = shas or ["0" * 64]
        value = st.one_of(
            st.sampled_from(good),  # twice: most requests should reach past the hash check
            st.sampled_from(good),
            st.sampled_from(
                ["", "0" * 64, good[0].upper(), good[0] + "\n", good[0][:63], good[0] + "0",
                 "../" * 21 + "a", "g" * 64, "\x00" * 64, "é" * 64]  # fmt: skip
            ),
            st.text(max_size=80),
        )
    elif f.name == "dtype":
        value = st.one_of(
            st.sampled_from(["int8", "uint8", "int16", "int32", "int64", "float16", "float32",
                             "float64", "bool", "", "object", "complex128", "U8", "V4", ">f4",
                             "<i8", "datetime64"]),  # fmt: skip
            st.text(max_size=12),
        )
    else:
        value = st.text(max_size=80)
    if f.is_repeated:
        if f.name == "shape":
            value = st.one_of(
                st.lists(st.sampled_from([0, 1, 2, 3, 64, -1, -2, 2**31, 2**62, 2**63 - 1]),
                         max_size=6),  # fmt: skip
                st.lists(value, max_size=6),
            )
        else:
            value = st.lists(value, max_size=3 if depth < 2 else 1)
    return value


def message_strategy(descriptor: Any, shas: list[str], depth: int = 0) -> Any:
    """A hypothesis strategy for a protobuf message: any subset of its fields set, each with
    random or edge values (nested messages to three levels)."""
    from hypothesis import strategies as st

    cls = getattr(pb, descriptor.name)
    if depth > 3:
        return st.just(cls())
    optional = {f.name: field_strategy(f, shas, depth) for f in descriptor.fields}
    # A request's hash is always set (with a valid one two times in four): requests
    # without one stop at the first check and would test little else.
    required = {k: optional.pop(k) for k in ("sha256",) if depth == 0 and k in optional}
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))


def request_strategy(method: str, shas: list[str]) -> Any:
    """Requests for one RPC; UploadModel gets a short stream of chunks."""
    from hypothesis import strategies as st

    msg = message_strategy(REQUESTS[method].DESCRIPTOR, shas)
    return st.lists(msg, max_size=4) if method == "UploadModel" else msg


def call(ch: grpc.Channel, method: str, request: Any, raw: bool = False) -> Any:
    """One call; `raw` sends `request` (bytes) as the body with identity serialisers."""
    path = SERVICE + method
    if method == "UploadModel":
        fn = ch.stream_unary(path) if raw else ch.stream_unary(
            path, request_serializer=pb.ModelChunk.SerializeToString,
            response_deserializer=pb.UploadModelResponse.FromString,
        )  # fmt: skip
        return fn(iter(request if isinstance(request, list) else [request]), timeout=CALL_TIMEOUT_S)
    fn = ch.unary_unary(path) if raw else ch.unary_unary(
        path, request_serializer=type(request).SerializeToString
    )  # fmt: skip
    return fn(request, timeout=CALL_TIMEOUT_S)


def fuzz_grpc(
    agent: AgentProcess, n_per_method: int, n_raw: int, tally: Tally, seed: int = 0
) -> None:
    """(a): `n_per_method` hypothesis-built requests per RPC, `n_raw` raw random bodies."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    ch = channel(agent.target)
    stub = pb_grpc.DeviceAgentStub(ch)
    model = tiny_model_bytes()
    upload(stub, model)
    shas = [hashlib.sha256(model).hexdigest()]

    def run_one(category: str, method: str, request: Any, raw: bool) -> None:
        tally.tried[category] += 1
        t0 = time.monotonic()
        try:
            call(ch, method, request, raw)
            label, ok = "OK", True
        except grpc.RpcError as exc:
            label, ok = classify_rpc(exc)
            tally.examples.setdefault(f"{category} {method} {label}", exc.details() or "")
        tally.slowest_s = max(tally.slowest_s, time.monotonic() - t0)
        tally.outcomes[f"{category} {method} {label}"] += 1
        if ok and not agent.alive():
            ok = False
            label = "AGENT DIED"
        if ok and not still_serves(stub):
            ok, label = False, "AGENT STOPPED SERVING"
        if ok:
            tally.handled[category] += 1
        else:
            tally.fail(f"{category} {method}: {label}: {str(request)[:300]!r}")

    def structured(method: str) -> Callable[[], None]:
        @settings(
            max_examples=n_per_method,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(request_strategy(method, shas))
        def one(request: Any) -> None:
            run_one("grpc-fields", method, request, False)

        return one  # type: ignore[no-any-return]

    for method in REQUESTS:
        structured(method)()

    rng = random.Random(seed)
    methods = list(REQUESTS)

    @settings(max_examples=n_raw, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.binary(max_size=512), st.integers(0, len(methods) - 1))
    def raw_bodies(body: bytes, index: int) -> None:
        # half the bodies are hypothesis's, half plain random bytes
        if rng.random() < 0.5:
            body = rng.randbytes(rng.randrange(0, 2048))
        run_one("grpc-raw-bytes", methods[index], body, True)

    raw_bodies()
    ch.close()


# ------------------------------------------------------------------------------ (b) models
_MODEL_DIR = Path(tempfile.gettempdir()) / "hilnas-fuzz-models"


def seed_models() -> list[bytes]:
    """Real int8 models to mutate: a Dense and a Conv1D net (converted once, then cached)."""
    names = ("int8_dense", "int8_conv1d_small")
    paths = [_MODEL_DIR / f"{n}.tflite" for n in names]
    if not all(p.exists() for p in paths):
        _MODEL_DIR.mkdir(parents=True, exist_ok=True)
        script = r"""
import sys, numpy as np, tensorflow as tf, tf_keras as k
from pathlib import Path
out = Path(sys.argv[1])
def conv(model, shape):
    def rep():
        for x in np.random.default_rng(0).standard_normal((8, *shape)).astype(np.float32):
            yield [x[None]]
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]; c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8; c.inference_output_type = tf.int8
    return c.convert()
k.utils.set_random_seed(0)
i = k.Input((32,), batch_size=1); o = k.layers.Dense(4)(k.layers.Dense(16, activation="relu")(i))
(out / "int8_dense.tflite").write_bytes(conv(k.Model(i, o), (32,)))
i = k.Input((64, 1), batch_size=1); x = k.layers.Conv1D(4, 5, strides=2, activation="relu")(i)
o = k.layers.Dense(3)(k.layers.Flatten()(x))
(out / "int8_conv1d_small.tflite").write_bytes(conv(k.Model(i, o), (64, 1)))
"""
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run([sys.executable, "-c", script, str(_MODEL_DIR)], check=True, env=env,
                       cwd=REPO, timeout=600, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
    return [p.read_bytes() for p in paths]


def tiny_model_bytes() -> bytes:
    return seed_models()[0]


MUTATIONS = ("bitflip", "truncate", "splice", "overwrite", "insert", "random", "header+random")


def mutate(models: list[bytes], i: int, seed: int = 0) -> tuple[str, bytes]:
    """The i-th seeded mutant: (kind, bytes)."""
    rng = random.Random(seed * 1_000_003 + i)
    kind = MUTATIONS[i % len(MUTATIONS)]
    base = bytearray(models[rng.randrange(len(models))])
    n = len(base)
    if kind == "bitflip":
        for _ in range(rng.choice((1, 1, 2, 4, 16, 64))):
            pos = rng.randrange(n)
            base[pos] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        base = base[: rng.choice((rng.randrange(n), rng.randrange(min(n, 64)), n - 1))]
    elif kind == "splice":
        other = models[rng.randrange(len(models))]
        a, b = sorted(rng.randrange(n) for _ in range(2))
        c = rng.randrange(len(other))
        base[a:b] = other[c : c + rng.randrange(1, 512)]
    elif kind == "overwrite":
        for _ in range(rng.choice((1, 4, 16))):
            pos = rng.randrange(n)
            width = rng.choice((1, 2, 4))
            base[pos : pos + width] = bytes([rng.choice((0x00, 0xFF, 0x7F, 0x80))]) * width
    elif kind == "insert":
        pos = rng.randrange(n)
        base[pos:pos] = rng.randbytes(rng.randrange(1, 64))
    elif kind == "random":
        base = bytearray(rng.randbytes(rng.randrange(0, 8192)))
    else:  # a real TFLite header (offset + "TFL3"), then noise
        base = base[:8] + bytearray(rng.randbytes(rng.randrange(0, 8192)))
    return kind, bytes(base)


QUICK_MEASURE = pb.MeasureSettings(
    warmup_runs=1, min_runs=3, max_runs=5, time_budget_seconds=1.0, target_ci_relative=0.0
)


def fuzz_models(agent: AgentProcess, n: int, tally: Tally, seed: int = 0) -> None:
    """(b): n mutated models, each uploaded and (when accepted) measured."""
    ch = channel(agent.target)
    stub = pb_grpc.DeviceAgentStub(ch)
    models = seed_models()
    for i in range(n):
        kind, data = mutate(models, i, seed)
        cat = f"tflite-{kind}"
        tally.tried["tflite"] += 1
        t0 = time.monotonic()
        ok = True
        try:
            upload(stub, data)
            sha = hashlib.sha256(data).hexdigest()
            stub.Measure(pb.MeasureRequest(sha256=sha, settings=QUICK_MEASURE),
                         timeout=CALL_TIMEOUT_S)  # fmt: skip
            label = "accepted and measured"
        except grpc.RpcError as exc:
            label, ok = classify_rpc(exc)
            tally.examples.setdefault(f"{cat} {label}", exc.details() or "")
        tally.slowest_s = max(tally.slowest_s, time.monotonic() - t0)
        tally.outcomes[f"{cat} {label}"] += 1
        tally.outcomes[f"tflite (all) {label}"] += 1
        if ok and not (agent.alive() and still_serves(stub)):
            ok, label = False, "AGENT DOWN"
        if ok:
            tally.handled["tflite"] += 1
        else:
            tally.fail(f"{cat} #{i}: {label} ({len(data)} bytes)")
    ch.close()


# ------------------------------------------------------------------------------ (c) serial
def serial_garbage(rng: random.Random) -> bytes:
    """Random line noise, sometimes shaped like frames (sync, lengths, valid CRCs)."""
    from device_agent.serial_protocol import SYNC, encode_frame

    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 300))
    if kind == 1:  # sync followed by a random header and body (bad CRC, bad length)
        return SYNC + rng.randbytes(rng.randrange(0, 40))
    if kind == 2:  # a claimed length over the maximum
        return SYNC + struct.pack("<H", rng.randrange(1025, 65536)) + rng.randbytes(4)
    if kind == 3:  # a well-formed frame with a random command and payload (valid CRC)
        cmd = rng.choice((0x01, 0x02, 0x10, 0x11, 0x12, 0x20, 0x21, 0x22, 0x23, 0x24,
                          0x55, 0x7E, 0x7F, 0xFF))  # fmt: skip
        return encode_frame(cmd, rng.randrange(256), rng.randbytes(rng.randrange(0, 64)))
    return bytes([rng.choice((0xA5, 0x5A))]) * rng.randrange(1, 64)  # sync-byte soup


def fuzz_emulated_board(n: int, tally: Tally, seed: int = 0) -> None:
    """(c1): garbage from the host to the emulated board; a PING must work after each."""
    from device_agent.errors import HilnasError
    from device_agent.mcu.emulator import EmulatorProcess
    from device_agent.serial_protocol import (
        BoardClient,
        Cmd,
        ErrorCode,
        Frame,
        FrameDecoder,
        SerialLink,
        open_port,
    )

    rng = random.Random(seed)
    with EmulatorProcess("nano33ble") as emu:
        link = SerialLink(open_port(emu.path), margin_s=0.1)
        client = BoardClient(link)
        client.fetch_info(first=True)
        try:
            for _ in range(n):
                tally.tried["serial->board"] += 1
                garbage = serial_garbage(rng)
                tally.tried["serial->board bytes"] += len(garbage)
                link.send_raw(garbage)
                # The board drops a partial frame after 50 ms of silence: collect its answers.
                decoder = FrameDecoder()
                deadline = time.monotonic() + 0.12
                while time.monotonic() < deadline:
                    for ev in decoder.feed(link._read()):
                        if isinstance(ev, Frame) and ev.cmd == Cmd.ERROR and ev.payload:
                            try:
                                code = ErrorCode(ev.payload[0]).name
                            except ValueError:
                                code = f"code {ev.payload[0]}"
                            tally.outcomes[f"serial->board ERROR {code}"] += 1
                        elif isinstance(ev, Frame):
                            tally.outcomes[f"serial->board reply 0x{ev.cmd:02x}"] += 1
                try:
                    ok = client.ping(b"alive?") == b"alive?" and emu.alive
                except HilnasError as exc:
                    ok = False
                    tally.fail(f"serial->board: no recovery after {garbage[:40].hex()}: {exc}")
                if ok:
                    tally.handled["serial->board"] += 1
                    tally.handled["serial->board bytes"] += len(garbage)
        finally:
            link.close()


class GarbageBoard:
    """A fake board on a pty: answers each request frame as `script(frame)` says."""

    def __init__(self, script: Callable[[Any], bytes]) -> None:
        from device_agent.serial_protocol import FrameDecoder

        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.script = script
        self._decoder = FrameDecoder()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import select

        from device_agent.serial_protocol import Frame

        while not self._stop:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            for ev in self._decoder.feed(data):
                if isinstance(ev, Frame):
                    out = self.script(ev)
                    if out:
                        os.write(self.master, out)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def fuzz_serial_bridge(n: int, tally: Tally, seed: int = 0) -> None:
    """(c2): a board answering with garbage; the host link must fail clearly or get through,
    within bounded time, and the next clean request must succeed."""
    from device_agent.errors import HilnasError
    from device_agent.serial_protocol import (
        REPLY_BIT,
        Allocation,
        BoardInfo,
        Cmd,
        InvokeResult,
        SerialLink,
        encode_frame,
        open_port,
    )

    rng = random.Random(seed + 1)
    state: dict[str, Any] = {"mode": "clean", "noise": b""}

    def script(frame: Any) -> bytes:
        good = encode_frame(frame.cmd | REPLY_BIT, frame.seq, frame.payload)
        mode, noise = state["mode"], state["noise"]
        if mode == "clean":
            return good
        if mode == "garbage-only":
            return noise
        if mode == "garbage-then-reply":
            return noise + good
        if mode == "reply-then-garbage":
            return good + noise
        # a well-formed reply whose payload is random (the parsers must cope)
        return encode_frame(frame.cmd | REPLY_BIT, frame.seq, noise[:1024])

    board = GarbageBoard(script)
    link = SerialLink(open_port(board.path), margin_s=0.05)
    parsers: list[tuple[str, Callable[[bytes], Any]]] = [
        ("INFO", BoardInfo.parse), ("ALLOCATE", Allocation.parse),
        ("INVOKE", InvokeResult.parse),
        ("GET_TIMINGS", lambda p: struct.unpack(f"<{len(p) // 4}I", p[: len(p) // 4 * 4])),
    ]  # fmt: skip
    modes = ("garbage-only", "garbage-then-reply", "reply-then-garbage", "random-payload")
    try:
        for i in range(n):
            mode = modes[i % len(modes)]
            noise = serial_garbage(rng) if mode != "random-payload" else rng.randbytes(
                rng.randrange(0, 200)
            )  # fmt: skip
            state.update(mode=mode, noise=noise)
            cat = "serial<-board"
            tally.tried[cat] += 1
            tally.tried[f"{cat} bytes"] += len(noise)
            t0 = time.monotonic()
            label = ""
            ok = True
            try:
                reply = link.request(Cmd.PING, b"ping", retries=2)
                if mode == "random-payload":
                    name, parse = parsers[i % len(parsers)]
                    try:
                        parse(reply)
                        label = f"random {name} payload parsed"
                    except HilnasError as exc:
                        label = f"random {name} payload rejected: {type(exc).__name__}"
                else:
                    label = "reply got through" if reply == b"ping" else "WRONG REPLY"
                    ok = reply == b"ping"
            except HilnasError as exc:
                label = f"clear error {type(exc).__name__}"
                ok = bool(str(exc))
            except Exception as exc:  # noqa: BLE001 - anything else is a finding
                label = f"UNHANDLED {type(exc).__name__}: {exc}"
                ok = False
            elapsed = time.monotonic() - t0
            tally.slowest_s = max(tally.slowest_s, elapsed)
            if elapsed > 10:
                ok, label = False, f"SLOW ({elapsed:.1f} s) " + label
            tally.outcomes[f"{cat} {mode}: {label}"] += 1
            state.update(mode="clean")
            try:
                recovered = link.request(Cmd.PING, b"again", retries=3) == b"again"
            except HilnasError as exc:
                recovered = False
                label += f"; no recovery: {exc}"
            if ok and recovered:
                tally.handled[cat] += 1
                tally.handled[f"{cat} bytes"] += len(noise)
            else:
                tally.fail(f"{cat} {mode}: {label} ({noise[:40].hex()})")
    finally:
        link.close()
        board.close()


# ------------------------------------------------------------------------------ report
def report(tally: Tally, categories: list[str]) -> None:
    print(f"{'category':<28}{'tried':>8}{'handled':>9}")
    for cat in categories:
        print(f"{cat:<28}{tally.tried[cat]:>8}{tally.handled[cat]:>9}")
    print("outcomes:")
    for label, count in sorted(tally.outcomes.items()):
        example = tally.examples.get(label, "")
        print(f"  {count:>6}  {label}" + (f"  e.g. {example[:90]!r}" if example else ""))
    print(f"slowest case: {tally.slowest_s:.2f} s")
    if tally.failures:
        print(f"FAILURES ({len(tally.failures)} shown):")
        for f in tally.failures:
            print("  " + f)
    else:
        print("failures: none")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="cases per kind: models, serial cases, gRPC requests per RPC and raw bodies "
        "(default: 1000 models, 300 per RPC, 1000 raw bodies, 300 serial cases each way)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("grpc", "models", "serial"), default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _util import machine_line

    n_models = args.n or 1000
    n_per_method = args.n or 300
    n_raw = args.n or 1000
    n_serial = args.n or 300
    print(machine_line())
    tally = Tally()
    cats: list[str] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hilnas-fuzz-") as tmp:
        if args.only in (None, "grpc", "models"):
            agent = AgentProcess(Path(tmp) / "agent", max_request_seconds=2.0)
            print(f"agent pid {agent.pid} on {agent.address} (litert, max request 2 s)")
            try:
                if args.only in (None, "grpc"):
                    t = time.monotonic()
                    fuzz_grpc(agent, n_per_method, n_raw, tally, args.seed)
                    cats += ["grpc-fields", "grpc-raw-bytes"]
                    print(f"(a) gRPC: {time.monotonic() - t:.0f} s")
                if args.only in (None, "models"):
                    t = time.monotonic()
                    fuzz_models(agent, n_models, tally, args.seed)
                    cats += ["tflite"]
                    print(f"(b) models: {time.monotonic() - t:.0f} s")
                alive = agent.alive() and still_serves(
                    pb_grpc.DeviceAgentStub(channel(agent.target))
                )
                print(f"agent alive and serving at the end: {'yes' if alive else 'NO'}")
            finally:
                code = agent.stop()
                print(f"agent exit status after SIGTERM: {code}")
        if args.only in (None, "serial"):
            t = time.monotonic()
            fuzz_emulated_board(n_serial, tally, args.seed)
            fuzz_serial_bridge(n_serial, tally, args.seed)
            cats += ["serial->board", "serial->board bytes", "serial<-board",
                     "serial<-board bytes"]  # fmt: skip
            print(f"(c) serial: {time.monotonic() - t:.0f} s")
    report(tally, cats)
    print(f"total {time.monotonic() - t0:.0f} s")
    return 1 if tally.failures else 0


def iter_mutants(n: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    models = seed_models()
    for i in range(n):
        yield mutate(models, i, seed)


if __name__ == "__main__":
    raise SystemExit(main())
