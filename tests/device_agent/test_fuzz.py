"""A small, fast version of benchmarks/fuzz.py: malformed gRPC requests (hypothesis), mutated
.tflite files and serial-line garbage against a real agent, which must answer every case
with a status and keep serving. Plus regression tests for the bugs the fuzzing found."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grpc
import pytest

from device_agent.proto import agent_pb2 as pb
from device_agent.proto import agent_pb2_grpc as pb_grpc

pytest.importorskip("hypothesis")

REPO = Path(__file__).resolve().parents[2]


def _load_fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hilnas_bench_fuzz", REPO / "benchmarks/fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    proc = fuzz.AgentProcess(tmp_path_factory.mktemp("fuzz-agent"), max_request_seconds=1.0)
    yield proc
    code = proc.stop()
    assert code == 0, proc.log_tail()


@pytest.fixture(scope="module")
def stub(agent: object) -> Iterator[pb_grpc.DeviceAgentStub]:
    ch = fuzz.channel(agent.target)  # type: ignore[attr-defined]
    yield pb_grpc.DeviceAgentStub(ch)
    ch.close()


def _assert_all_handled(tally: object, agent: object) -> None:
    assert not tally.failures, "\n".join(tally.failures)  # type: ignore[attr-defined]
    assert tally.handled == tally.tried  # type: ignore[attr-defined]
    assert agent.alive()  # type: ignore[attr-defined]


def test_malformed_grpc_requests(agent: object) -> None:
    tally = fuzz.Tally()
    fuzz.fuzz_grpc(agent, n_per_method=12, n_raw=30, tally=tally)
    assert tally.tried["grpc-fields"] >= 7 * 5 and tally.tried["grpc-raw-bytes"] == 30
    _assert_all_handled(tally, agent)


def test_mutated_models(agent: object) -> None:
    tally = fuzz.Tally()
    fuzz.fuzz_models(agent, 50, tally, seed=1)
    assert tally.tried["tflite"] == 50
    _assert_all_handled(tally, agent)
    rejected = sum(v for k, v in tally.outcomes.items() if k.startswith("tflite (all) INVALID"))
    assert rejected >= 25  # most mutants are refused at upload, with a reason


def test_serial_garbage_to_the_board_and_from_it() -> None:
    pytest.importorskip("tflite_micro")
    pytest.importorskip("serial")
    tally = fuzz.Tally()
    fuzz.fuzz_emulated_board(6, tally, seed=2)
    fuzz.fuzz_serial_bridge(8, tally, seed=2)
    assert tally.tried["serial->board bytes"] + tally.tried["serial<-board bytes"] >= 200
    assert not tally.failures, "\n".join(tally.failures)
    assert tally.handled == tally.tried


# ---------------------------------------------------------------------------- regressions
def _model(stub: pb_grpc.DeviceAgentStub) -> str:
    data = fuzz.tiny_model_bytes()
    fuzz.upload(stub, data)
    return hashlib.sha256(data).hexdigest()


def _status(fn: object) -> tuple[grpc.StatusCode, str, str]:
    try:
        fn()  # type: ignore[operator]
    except grpc.RpcError as exc:
        name = dict(exc.trailing_metadata() or ()).get("hilnas-error", "")
        return exc.code(), name, exc.details() or ""
    return grpc.StatusCode.OK, "", ""


def test_calls_without_a_deadline_work(stub: pb_grpc.DeviceAgentStub) -> None:
    # Was: OverflowError in Lock.acquire (grpc reports ~infinite time remaining), INTERNAL.
    sha = _model(stub)
    settings = pb.MeasureSettings(min_runs=2, max_runs=2, time_budget_seconds=0.5)
    reply = stub.Measure(pb.MeasureRequest(sha256=sha, settings=settings))  # no timeout
    assert reply.latency.n == 2


@pytest.mark.parametrize(
    ("shape", "data"),
    [([-2, -3], b"abcdef"), ([2**62, 4], b""), ([2**32, 2**32], b""), ([-1], b"")],
)
def test_bad_tensor_shapes_are_protocol_errors(
    stub: pb_grpc.DeviceAgentStub, shape: list[int], data: bytes
) -> None:
    # Was: "agent error: ValueError" (INTERNAL) from numpy's reshape.
    sha = _model(stub)
    tensor = pb.Tensor(dtype="int8", shape=shape, data=data)
    request = pb.ValidateRequest(sha256=sha, inputs=[pb.Sample(tensors=[tensor])])
    code, name, details = _status(lambda: stub.Validate(request, timeout=10))
    assert (code, name) == (grpc.StatusCode.FAILED_PRECONDITION, "ProtocolError"), details
    assert "agent error" not in details


def test_hash_with_a_trailing_newline_is_rejected(stub: pb_grpc.DeviceAgentStub) -> None:
    sha = _model(stub)
    code, name, _ = _status(lambda: stub.HasModel(pb.HasModelRequest(sha256=sha + "\n")))
    assert name == "ProtocolError"


@pytest.mark.parametrize(
    "settings",
    [
        pb.MeasureSettings(seed=-1, time_budget_seconds=0.5),
        pb.MeasureSettings(threads=2**31 - 1, time_budget_seconds=0.5),
    ],
    ids=["negative-seed", "huge-threads"],
)
def test_bad_settings_are_config_errors(
    stub: pb_grpc.DeviceAgentStub, settings: pb.MeasureSettings
) -> None:
    # Was: a negative seed failed in the worker (INTERNAL, MeasurementFailed); any thread
    # count went to the runtime's thread pool.
    sha = _model(stub)
    code, name, details = _status(
        lambda: stub.Measure(pb.MeasureRequest(sha256=sha, settings=settings), timeout=10)
    )
    assert (code, name) == (grpc.StatusCode.INVALID_ARGUMENT, "ConfigError"), details
    bad = pb.ValidateRequest(sha256=sha, threads=-5)
    assert _status(lambda: stub.Validate(bad, timeout=10))[1] == "ConfigError"
