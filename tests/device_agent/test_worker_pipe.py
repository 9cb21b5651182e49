"""The worker pipe protocol end to end: a real child process behind IsolatedWorker."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import numpy as np
import pytest

from device_agent import pipe
from device_agent.errors import (
    CandidateRejected,
    DeviceUnavailable,
    MeasurementFailed,
    ProtocolError,
    WorkerCrashed,
    WorkerTimedOut,
)
from device_agent.isolation import IsolatedWorker

HERE = Path(__file__).resolve().parent


@pytest.fixture()
def worker(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(HERE), prepend=":")
    w = IsolatedWorker(module="pipe_test_worker", label="the test worker", start_timeout_s=30)
    yield w
    w.close()


def test_results_events_and_errors_travel_by_type(worker: IsolatedWorker) -> None:
    assert worker.start().name == "pipe-test"
    arr = np.arange(6, dtype=np.int8).reshape(2, 3)
    out = worker.call("echo", timeout_s=10, x=arr, label="a")
    assert out["label"] == "a" and np.array_equal(out["x"], arr)
    seen: list[str] = []
    assert worker.call("events", timeout_s=10, on_event=seen.append, names=["a", "b"]) == "done"
    assert seen == ["a", "b"]
    with pytest.raises(CandidateRejected, match="too big"):
        worker.call("reject", timeout_s=10, why="too big")
    with pytest.raises(MeasurementFailed, match="ValueError: not a HilnasError"):
        worker.call("boom", timeout_s=10)
    with pytest.raises(ProtocolError, match="unknown request 'nope'.*echo"):
        worker.call("nope", timeout_s=10)
    assert worker.restarts == 0  # failed requests do not cost the worker


def test_a_crash_is_worker_crashed_with_its_signal(worker: IsolatedWorker) -> None:
    first = worker.call("pid", timeout_s=10)
    with pytest.raises(WorkerCrashed) as info:
        worker.call("kill", timeout_s=10, name="SIGSEGV")
    crash = info.value
    assert isinstance(crash, MeasurementFailed)
    assert crash.signal == "SIGSEGV" and crash.returncode == -signal.SIGSEGV
    assert crash.during == "kill" and crash.how == "SIGSEGV"
    assert "the test worker crashed during kill (SIGSEGV)" in str(crash)
    assert worker.call("pid", timeout_s=10) != first and worker.restarts == 1


def test_a_hang_is_worker_timed_out_with_its_deadline(worker: IsolatedWorker) -> None:
    worker.start()
    with pytest.raises(WorkerTimedOut) as info:
        worker.call("sleep", timeout_s=0.5, secs=30)
    assert info.value.deadline_s == 0.5 and info.value.during == "sleep"
    assert "deadline" in str(info.value)
    assert worker.call("echo", timeout_s=10, ok=1) == {"ok": 1}


def test_a_failed_setup_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(HERE), prepend=":")
    w = IsolatedWorker(module="pipe_test_worker", runtime="broken", start_timeout_s=30)
    with pytest.raises(DeviceUnavailable, match="could not start: this test worker was asked"):
        w.start()
    w.close()


def test_failures_name_their_class_and_are_rebuilt() -> None:
    failure = pipe.Failure.of(CandidateRejected("no LSTM"))
    assert failure == pipe.Failure("CandidateRejected", "no LSTM")
    assert type(failure.exception()) is CandidateRejected
    crashed = pipe.Failure("WorkerCrashed", "gone").exception()
    assert type(crashed) is WorkerCrashed and str(crashed) == "gone"
    unknown = pipe.Failure("SomethingElse", "why").exception()
    assert type(unknown) is MeasurementFailed
    try:
        raise KeyError("k")
    except KeyError as exc:
        other = pipe.Failure.of(exc)
    assert other.error == "MeasurementFailed" and "KeyError" in other.traceback


def test_frames_round_trip_and_refuse_foreign_objects() -> None:
    buf = io.BytesIO()
    pipe.write_frame(buf, pipe.Request("measure", {"n": 1}))
    pipe.write_frame(buf, pipe.Result(42))
    buf.seek(0)
    assert pipe.read_frame(buf) == pipe.Request("measure", {"n": 1})
    assert pipe.read_frame(buf) == pipe.Result(42)
    with pytest.raises(EOFError):
        pipe.read_frame(buf)
    import pickle

    payload = pickle.dumps({"ok": True})
    with pytest.raises(ProtocolError, match="unexpected dict"):
        pipe.decode(payload)


def test_a_frame_larger_than_the_pipe_buffer_arrives_whole() -> None:
    """An unbuffered pipe's read() returns at most what the pipe holds (64 KiB on Linux):
    a Validate request of 240 windows of 256 int8 samples (69 KB) once arrived short and
    the worker exited. read_frame reads until the frame is whole."""
    import os
    import threading

    windows = [(np.zeros((1, 256, 1), np.int8),) for _ in range(240)]
    message = pipe.Request("validate", {"samples": windows})
    r, w = os.pipe()
    with os.fdopen(r, "rb", buffering=0) as reader, os.fdopen(w, "wb", buffering=0) as writer:
        sender = threading.Thread(target=pipe.write_frame, args=(writer, message))
        sender.start()
        received = pipe.read_frame(reader)
        sender.join()
    assert len(pipe.encode(message)) > 64 * 1024
    assert isinstance(received, pipe.Request)
    assert len(received.args["samples"]) == 240
