"""The agent's gRPC server: the hilnas.agent.v1 contract in front of one Backend.

The server owns what every device shares: the model cache, authentication, size and time
limits, serialisation of runs (two measurements at once would disturb each other's timing),
and the mapping of hilnas exceptions to gRPC status codes. The backend only runs models.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc

from device_agent import errors, serde
from device_agent.auth import ERROR_METADATA_KEY, TlsConfig, TokenAuthInterceptor
from device_agent.backends.base import Backend
from device_agent.cache import ModelCache, check_sha256
from device_agent.errors import CandidateRejected, ConfigError, DeviceUnavailable, HilnasError
from device_agent.proto import agent_pb2 as pb
from device_agent.proto import agent_pb2_grpc as pb_grpc
from device_agent.types import DeviceInfo
from device_agent.versions import AGENT_VERSION

log = logging.getLogger(__name__)

# The status code of each error class (a subclass takes its base's; the class itself travels
# by name in the trailing metadata, so the client raises exactly what the agent raised).
STATUS_FOR_ERROR: dict[type[HilnasError], grpc.StatusCode] = {
    errors.CandidateRejected: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ConfigError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.DataError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.MeasurementFailed: grpc.StatusCode.INTERNAL,
    errors.DeviceUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ProtocolError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AuthenticationFailed: grpc.StatusCode.UNAUTHENTICATED,
}
HEARTBEAT_INTERVAL_S = 5.0
# Uploads arrive in chunks of this size; other messages (Validate batches) may be larger.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Validate inputs per request: a bound on what one call can make the device do.
MAX_VALIDATE_SAMPLES = 100_000
TFLITE_IDENTIFIER = b"TFL3"

# Interpreter threads per request: more than any board has cores, far fewer than would
# exhaust the worker's thread limit (each one is an OS thread in the runtime's pool).
MAX_THREADS = 256

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _check_threads(threads: int) -> None:
    if not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"threads must be in 1..{MAX_THREADS}, got {threads}")


def _rpc(method: F) -> F:
    """Turn hilnas exceptions into gRPC status codes (and name the class in metadata)."""

    @functools.wraps(method)
    def wrapper(self: AgentServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except HilnasError as exc:
            code = next(
                (status for cls, status in STATUS_FOR_ERROR.items() if isinstance(exc, cls)),
                grpc.StatusCode.INTERNAL,
            )
            log.info("%s failed: %s: %s", method.__name__, type(exc).__name__, exc)
            context.set_trailing_metadata(((ERROR_METADATA_KEY, type(exc).__name__),))
            context.abort(code, str(exc))
        except Exception as exc:
            log.exception("%s crashed", method.__name__)
            context.set_trailing_metadata(
                ((ERROR_METADATA_KEY, errors.MeasurementFailed.__name__),)
            )
            context.abort(grpc.StatusCode.INTERNAL, f"agent error: {type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]


class AgentServicer(pb_grpc.DeviceAgentServicer):
    def __init__(
        self,
        backend: Backend,
        cache: ModelCache,
        *,
        name: str,
        max_model_bytes: int,
        max_request_seconds: float,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.name = name
        self.max_model_bytes = max_model_bytes
        self.max_request_seconds = max_request_seconds
        self.started = time.monotonic()
        self._device_lock = threading.Lock()
        self._description: DeviceInfo | None = None

    # -------------------------------------------------------------------- helpers
    def describe_device(self) -> DeviceInfo:
        if self._description is None:
            info = self.backend.describe()
            limits = replace(
                info.limits,
                max_model_bytes=min(
                    info.limits.max_model_bytes or self.max_model_bytes, self.max_model_bytes
                ),
                max_request_seconds=min(
                    info.limits.max_request_seconds or self.max_request_seconds,
                    self.max_request_seconds,
                ),
            )
            self._description = replace(info, name=self.name, limits=limits)
        return self._description

    @contextlib.contextmanager
    def _exclusive(self, context: grpc.ServicerContext) -> Iterator[None]:
        """The device, held for one run at a time; wait no longer than the caller will."""
        # A call without a deadline reports a remaining time of ~1e9 s or more (grpc's
        # "infinite" deadline), which Lock.acquire rejects with OverflowError: wait as for
        # no deadline at all.
        remaining = context.time_remaining()
        cap = self.max_request_seconds * 2
        wait = cap if remaining is None else min(max(remaining - 1.0, 0.0), cap)
        if not self._device_lock.acquire(timeout=wait):
            raise DeviceUnavailable(f"the device stayed busy for {wait:.1f} s")
        try:
            yield
        finally:
            self._device_lock.release()

    # -------------------------------------------------------------------- RPCs
    @_rpc
    def Describe(self, request: pb.DescribeRequest, context: grpc.ServicerContext) -> Any:
        return serde.device_info_to_pb(self.describe_device())

    @_rpc
    def HasModel(self, request: pb.HasModelRequest, context: grpc.ServicerContext) -> Any:
        return pb.HasModelResponse(present=self.cache.has(check_sha256(request.sha256)))

    @_rpc
    def UploadModel(
        self, request_iterator: Iterator[pb.ModelChunk], context: grpc.ServicerContext
    ) -> Any:
        deadline = time.monotonic() + self.max_request_seconds
        first = next(request_iterator, None)
        if first is None or not first.HasField("header"):
            raise errors.ProtocolError("an upload must start with a chunk that carries the header")
        header = first.header
        sha = check_sha256(header.sha256)
        if self.cache.has(sha):
            return pb.UploadModelResponse(sha256=sha, bytes_received=0, already_present=True)
        if header.total_bytes <= 0:
            raise errors.ProtocolError("the upload header must give the model's size")

        def chunks() -> Iterator[bytes]:
            yield first.data
            for chunk in request_iterator:
                if time.monotonic() > deadline:
                    raise DeviceUnavailable(
                        f"upload took longer than {self.max_request_seconds:.0f} s"
                    )
                yield chunk.data

        path = self.cache.put(
            sha, header.total_bytes, chunks(), max_model_bytes=self.max_model_bytes
        )
        with path.open("rb") as fh:
            magic = fh.read(8)[4:8]
        if magic != TFLITE_IDENTIFIER:
            self.cache.remove(sha)
            raise CandidateRejected(
                f"{header.filename or sha[:12]} is not a TFLite model (no TFL3 identifier)"
            )
        try:
            with self._exclusive(context):
                self.backend.check_model(path)
        except CandidateRejected:
            self.cache.remove(sha)
            raise
        return pb.UploadModelResponse(sha256=sha, bytes_received=header.total_bytes)

    def _timed_run(self, request: Any, context: grpc.ServicerContext, run: Callable[..., T]) -> T:
        """Measure and Profile: a cached model, settings within the limits, the device held."""
        sha = check_sha256(request.sha256)
        settings = serde.settings_from_pb(request.settings).validated(self.describe_device().limits)
        _check_threads(settings.threads)
        if settings.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {settings.seed}")
        path = self.cache.path(sha)
        with self._exclusive(context):
            return run(path, sha, settings)

    @_rpc
    def Measure(self, request: pb.MeasureRequest, context: grpc.ServicerContext) -> Any:
        return serde.measurement_to_pb(self._timed_run(request, context, self.backend.measure))

    @_rpc
    def Profile(self, request: pb.ProfileRequest, context: grpc.ServicerContext) -> Any:
        return serde.profile_to_pb(self._timed_run(request, context, self.backend.profile))

    @_rpc
    def Validate(self, request: pb.ValidateRequest, context: grpc.ServicerContext) -> Any:
        sha = check_sha256(request.sha256)
        if len(request.inputs) > MAX_VALIDATE_SAMPLES:
            raise ConfigError(
                f"{len(request.inputs)} samples in one Validate call; the limit is "
                f"{MAX_VALIDATE_SAMPLES}"
            )
        threads = request.threads or 1
        _check_threads(threads)
        samples = [serde.sample_from_pb(s) for s in request.inputs]
        path = self.cache.path(sha)
        with self._exclusive(context):
            outputs = self.backend.validate(path, sha, samples, threads=threads)
        runtime = self.describe_device().runtimes
        return pb.ValidateResponse(
            sha256=sha,
            outputs=[serde.sample_to_pb(o) for o in outputs],
            runtime=serde.runtime_to_pb(runtime[0]) if runtime else None,
        )

    @_rpc
    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> Any:
        return pb.HeartbeatResponse(
            sequence=request.sequence,
            uptime_seconds=time.monotonic() - self.started,
            busy=self._device_lock.locked(),
            cached_models=len(self.cache),
            agent_version=AGENT_VERSION,
            interval_seconds=HEARTBEAT_INTERVAL_S,
        )


class AgentServer:
    """A running agent: `start()` binds and serves, `stop()` shuts down and closes the backend."""

    def __init__(
        self,
        backend: Backend,
        *,
        name: str = "device",
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        tls: TlsConfig | None = None,
        cache_dir: Path | None = None,
        cache_max_bytes: int = 1 << 30,
        max_model_bytes: int = 64 * 1024 * 1024,
        max_request_seconds: float = 120.0,
        max_workers: int = 8,
    ) -> None:
        self.backend = backend
        self.host, self.requested_port = host, port
        self.tls = tls
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hilnas-agent-cache-")
            cache_dir = Path(self._tmp.name)
        self.cache = ModelCache(Path(cache_dir), cache_max_bytes)
        self.servicer = AgentServicer(
            backend,
            self.cache,
            name=name,
            max_model_bytes=max_model_bytes,
            max_request_seconds=max_request_seconds,
        )
        interceptors = [TokenAuthInterceptor(token)] if token else []
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="agent-rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        pb_grpc.add_DeviceAgentServicer_to_server(self.servicer, self._server)
        self.port: int | None = None

    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError("the agent is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "grpcs" if self.tls else "grpc"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> int:
        bind = (
            f"[{self.host}]:{self.requested_port}"
            if ":" in self.host
            else f"{self.host}:{self.requested_port}"
        )
        try:
            if self.tls is not None:
                port = self._server.add_secure_port(bind, self.tls.server_credentials())
            else:
                port = self._server.add_insecure_port(bind)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {bind}: {exc}") from exc
        if port == 0:
            raise ConfigError(f"cannot listen on {bind} (address in use or not available)")
        self._server.start()
        self.port = port
        log.info("agent %s serving %s on %s", self.servicer.name, self.backend.name, self.address)
        return port

    def wait(self) -> None:
        self._server.wait_for_termination()

    def stop(self, grace: float = 1.0) -> None:
        self._server.stop(grace).wait(timeout=grace + 5)
        self.backend.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> AgentServer:
        if self.port is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
