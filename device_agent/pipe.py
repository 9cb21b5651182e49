"""The worker pipe protocol: how a parent talks to a warm child process over two pipes.

`device_agent.isolation.IsolatedWorker` (the parent) starts a worker module with
`python -m MODULE REQ_FD RESP_FD RUNTIME` (`worker_command`); the module's `main()` calls
`run_worker`, which sets the worker up, announces it and serves requests (`serve`). The
agent's model runner (`device_agent.worker`) and the host's TFLite converter
(`host.export.convert_worker`) are two such modules.

Messages, one per frame:

- parent -> child: `Request(op, args)`;
- child -> parent: `Ready(runtime, pid)` once, first (or a `Failure` if setting up failed);
  then per request any number of `Event`s (e.g. "timed_start", for the power sensor) and
  exactly one `Result` or `Failure`.

A `Failure` names the exception class; the parent raises the same class again through
`device_agent.errors.ERRORS_BY_NAME` (an exception the worker did not expect becomes the
worker's `unexpected` class, MeasurementFailed by default, with its traceback attached).

Frames: a 4-byte big-endian length, then a pickle. Both ends are started by this package,
so pickle is safe here: nothing from the network is unpickled (requests are built by the
agent from validated protobuf messages).
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from device_agent.errors import ERRORS_BY_NAME, HilnasError, MeasurementFailed, ProtocolError
from device_agent.types import RuntimeInfo

HEADER = struct.Struct(">I")


# ---------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class Request:
    """Run handler `op` of the worker with keyword arguments `args`."""

    op: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ready:
    """The worker is set up and serving; `runtime` is what it runs requests with."""

    runtime: RuntimeInfo
    pid: int


@dataclass(frozen=True)
class Event:
    """Something happened during the current request (`time.time()` in `t`)."""

    name: str
    t: float


@dataclass(frozen=True)
class Result:
    """The current request succeeded with `value`."""

    value: Any


@dataclass(frozen=True)
class Failure:
    """The current request (or the worker's setup) failed with exception class `error`."""

    error: str
    message: str
    traceback: str = ""

    @classmethod
    def of(cls, exc: BaseException, unexpected: type[HilnasError] = MeasurementFailed) -> Failure:
        """The failure for `exc`: a HilnasError by its own name, anything else as `unexpected`."""
        if isinstance(exc, HilnasError):
            return cls(type(exc).__name__, str(exc))
        if isinstance(exc, MemoryError):
            return cls(unexpected.__name__, f"out of memory in the worker {str(exc)}".strip())
        return cls(unexpected.__name__, f"{type(exc).__name__}: {exc}",
                   traceback.format_exc(limit=5))

    def exception(self) -> HilnasError:
        """The exception to raise in the parent: the class the worker named."""
        cls = ERRORS_BY_NAME.get(self.error, MeasurementFailed)
        return cls(self.message or "unknown worker error")


Response = Ready | Event | Result | Failure
Message = Request | Response
Handlers = Mapping[str, Callable[..., Any]]


# ---------------------------------------------------------------------------- framing
def encode(message: Message) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def decode(payload: bytes) -> Message:
    message = pickle.loads(payload)
    if not isinstance(message, Request | Ready | Event | Result | Failure):
        raise ProtocolError(f"worker pipe: unexpected {type(message).__name__} frame")
    return message


def write_frame(stream: BinaryIO, message: Message) -> None:
    stream.write(encode(message))
    stream.flush()


def read_frame(stream: BinaryIO) -> Message:
    """The next message on a blocking stream; EOFError when the other end closed it."""
    header = stream.read(HEADER.size)
    while header and len(header) < HEADER.size:
        more = stream.read(HEADER.size - len(header))
        if not more:
            break
        header += more
    if len(header) < HEADER.size:
        raise EOFError("pipe closed")
    (size,) = HEADER.unpack(header)
    # One read() of an unbuffered pipe returns at most what the pipe holds (64 KiB on
    # Linux): read until the frame is whole (docs/decisions.md, "Short reads on the pipe").
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("pipe closed mid-frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return decode(b"".join(chunks))


def _read_exact(fd: int, size: int, deadline: float) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise TimeoutError
        readable, _, _ = select.select([fd], [], [], timeout)
        if not readable:
            raise TimeoutError
        chunk = os.read(fd, remaining)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_response(fd: int, deadline: float) -> Response:
    """The parent's read: the child's next message before `deadline` (time.monotonic()).

    Raises TimeoutError at the deadline, EOFError when the child closed its end (it died),
    ProtocolError for a message a child never sends.
    """
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size, deadline))
    message = decode(_read_exact(fd, size, deadline))
    if isinstance(message, Request):
        raise ProtocolError("worker pipe: the worker sent a request")
    return message


# ---------------------------------------------------------------------------- child side
def worker_command(
    executable: str, module: str, req_fd: int, resp_fd: int, runtime: str | None
) -> list[str]:
    """The command line that starts worker `module` on the given pipe ends."""
    return [executable, "-m", module, str(req_fd), str(resp_fd), runtime or ""]


@dataclass(frozen=True)
class WorkerContext:
    """What a worker's setup gets: the preferred runtime and a way to send events."""

    runtime: str | None
    emit: Callable[[str], None]


Setup = Callable[[WorkerContext], tuple[RuntimeInfo, Handlers]]


def serve(
    handlers: Handlers,
    requests: BinaryIO,
    responses: BinaryIO,
    *,
    unexpected: type[HilnasError] = MeasurementFailed,
) -> int:
    """Answer requests until the parent closes the pipe; a failed request keeps serving."""
    while True:
        try:
            message = read_frame(requests)
        except EOFError:
            return 0
        if not isinstance(message, Request):
            failure = Failure("ProtocolError", f"expected a Request, got {type(message).__name__}")
            write_frame(responses, failure)
            continue
        handler = handlers.get(message.op)
        if handler is None:
            known = ", ".join(sorted(handlers))
            write_frame(responses, Failure(
                "ProtocolError", f"unknown request {message.op!r}; this worker serves {known}"))
            continue
        try:
            write_frame(responses, Result(handler(**message.args)))
        except Exception as exc:  # report and keep serving: the parent decides what it means
            write_frame(responses, Failure.of(exc, unexpected))


def run_worker(
    setup: Setup,
    argv: Sequence[str] | None = None,
    *,
    unexpected: type[HilnasError] = MeasurementFailed,
) -> int:
    """The `main()` of a worker module: set up, say Ready (or why not), then `serve`."""
    args = list(sys.argv[1:] if argv is None else argv)
    req_fd, resp_fd = int(args[0]), int(args[1])
    preferred = args[2] if len(args) > 2 and args[2] else None
    requests = os.fdopen(req_fd, "rb", buffering=0)
    responses = os.fdopen(resp_fd, "wb", buffering=0)

    def emit(name: str) -> None:
        write_frame(responses, Event(name, time.time()))

    try:
        runtime, handlers = setup(WorkerContext(preferred, emit))
    except Exception as exc:  # the parent reports it as "could not start"
        write_frame(responses, Failure.of(exc, unexpected))
        return 1
    write_frame(responses, Ready(runtime, os.getpid()))
    return serve(handlers, requests, responses, unexpected=unexpected)


__all__ = [
    "HEADER",
    "Event",
    "Failure",
    "Handlers",
    "Message",
    "Ready",
    "Request",
    "Response",
    "Result",
    "Setup",
    "WorkerContext",
    "decode",
    "encode",
    "read_frame",
    "read_response",
    "run_worker",
    "serve",
    "worker_command",
    "write_frame",
]
