"""A device reached over gRPC: deadlines, retries with backoff and jitter, skip-if-cached.

Transient failures (the agent restarting, a dropped connection, a busy device) are retried
with exponential backoff and full jitter, up to a number of attempts. When an agent comes
back with an empty cache (it restarted on a new disk, or evicted the model), the client
uploads the model again and repeats the call. Errors come back as hilnas exceptions of the
same class the agent raised.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from device_agent import serde
from device_agent.auth import ERROR_METADATA_KEY
from device_agent.errors import (
    ERRORS_BY_NAME,
    AuthenticationFailed,
    ConfigError,
    DeviceUnavailable,
    HilnasError,
    MeasurementFailed,
    ModelNotFound,
    ProtocolError,
)
from device_agent.proto import agent_pb2 as pb
from device_agent.proto import agent_pb2_grpc as pb_grpc
from device_agent.types import DeviceInfo, Measurement, MeasureSettings, OpProfile, Sample
from device_agent.versions import PROTOCOL_MAJOR
from host.fleet.device import Device, ModelBlob

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_BYTES = 256 * 1024
_ADDRESS = re.compile(r"^(grpcs?)://(\[[^\]]+\]|[^:/]+):(\d+)$")
# Status codes that say "try again": the call did not reach a working agent.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE}
ERROR_FOR_STATUS = {
    grpc.StatusCode.UNAVAILABLE: DeviceUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeviceUnavailable,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationFailed,
    grpc.StatusCode.NOT_FOUND: ModelNotFound,
    grpc.StatusCode.FAILED_PRECONDITION: ProtocolError,
    grpc.StatusCode.INTERNAL: MeasurementFailed,
    grpc.StatusCode.UNIMPLEMENTED: ProtocolError,
}


class TlsHandshakeFailed(DeviceUnavailable):
    """The TLS handshake with the agent failed: a certificate problem, not a passing one.

    Retrying cannot help (the certificate will not become valid or trusted on its own), so
    the client raises it at once; the message names the address and the likely cause.
    """


# What grpc's handshake error says (BoringSSL's verify reason) -> the likely cause, in words.
_TLS_MARKERS = ("Tls handshake failed", "Ssl handshake failed", "SSL_ERROR_SSL", "TSI_")
_TLS_CAUSES = (
    ("certificate has expired", "the agent's certificate has expired (renew it; check that "
     "this machine's clock is right)"),
    ("certificate is not yet valid", "the agent's certificate is not valid yet (check the "
     "clocks of this machine and of the agent)"),
    ("unable to get local issuer certificate", "certificate verify failed: the agent's "
     "certificate is not signed by the CA this host trusts (wrong CA or root_certificates)"),
    ("self signed certificate", "certificate verify failed: the agent presents a self-signed "
     "certificate this host does not trust (wrong CA or root_certificates)"),
    ("self-signed certificate", "certificate verify failed: the agent presents a self-signed "
     "certificate this host does not trust (wrong CA or root_certificates)"),
    ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed (wrong CA, expired or "
     "not-yet-valid certificate)"),
    ("Peer name", "the agent's certificate does not name this address (check its "
     "subjectAltName)"),
    ("CERTIFICATE_REQUIRED", "the agent requires a client certificate and this host sent "
     "none (client_cert)"),
    ("WRONG_VERSION_NUMBER", "the agent does not speak TLS on this port (use grpc:// or "
     "start the agent with --tls-cert/--tls-key)"),
)


def tls_failure(details: str, address: str, what: str) -> TlsHandshakeFailed | None:
    """A TlsHandshakeFailed naming the likely cause, if `details` is a handshake failure."""
    if not any(marker in details for marker in _TLS_MARKERS):
        return None
    cause = next(
        (text for marker, text in _TLS_CAUSES if marker.lower() in details.lower()),
        "the agent or this host rejected the other's certificate (wrong CA, expired "
        "certificate, or a client certificate the agent does not accept)",
    )
    return TlsHandshakeFailed(f"{what}: TLS handshake with {address} failed: {cause} ({details})")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        """Full-jitter exponential backoff (AWS architecture blog, 2015)."""
        ceiling = self.initial_backoff_s
        for _ in range(self.attempts - 1):
            yield random.uniform(0, ceiling)
            ceiling = min(ceiling * self.multiplier, self.max_backoff_s)


def parse_address(address: str) -> tuple[bool, str]:
    """`grpc://host:port` or `grpcs://host:port` -> (tls, target)."""
    match = _ADDRESS.match(address.strip())
    if not match:
        raise ConfigError(
            f"device address {address!r} is not grpc://HOST:PORT or grpcs://HOST:PORT"
        )
    scheme, host, port = match.groups()
    return scheme == "grpcs", f"{host}:{port}"


def error_from_rpc(exc: grpc.RpcError, what: str) -> HilnasError:
    """The hilnas exception an agent raised (named in trailing metadata), or one by status."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    name = None
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == ERROR_METADATA_KEY:
            name = value
    cls = ERRORS_BY_NAME.get(name or "") or ERROR_FOR_STATUS.get(code, HilnasError)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeviceUnavailable(f"{what}: no answer before the deadline ({details})")
    if cls is DeviceUnavailable and name is None:
        return DeviceUnavailable(f"{what}: agent unreachable ({details})")
    return cls(f"{what}: {details}")


class GrpcDevice(Device):
    """A device agent at `grpc://HOST:PORT` (or `grpcs://` with TLS)."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        name: str | None = None,
        root_certificates: bytes | Path | None = None,
        client_cert: tuple[bytes | Path, bytes | Path] | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        tls, target = parse_address(address)
        self.address = address
        self.name = name or target
        self.timeout_s = timeout_s
        self.retry = retry
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            # Reconnect quickly after an agent restart instead of grpc's default 1 s..120 s.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if tls:

            def read(v: bytes | Path | None) -> bytes | None:
                return Path(v).read_bytes() if isinstance(v, Path) else v

            creds = grpc.ssl_channel_credentials(
                root_certificates=read(root_certificates),
                private_key=read(client_cert[1]) if client_cert else None,
                certificate_chain=read(client_cert[0]) if client_cert else None,
            )
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = pb_grpc.DeviceAgentStub(self._channel)
        self._known_models: set[str] = set()
        self._lock = threading.Lock()
        self._info: DeviceInfo | None = None

    # -------------------------------------------------------------------- plumbing
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        delays = self.retry.delays()
        while True:
            try:
                return fn()
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                details = (exc.details() if hasattr(exc, "details") else "") or ""
                tls = (
                    tls_failure(details, self.address, f"{self.name}: {what}")
                    if code == grpc.StatusCode.UNAVAILABLE
                    else None
                )
                if tls is not None:
                    raise tls from None  # a certificate problem: retrying cannot help
                error = error_from_rpc(exc, f"{self.name}: {what}")
                # A DeviceUnavailable raised by the backend itself (named in metadata) is
                # retried too: a board that was reset may answer the next attempt.
                if code in RETRYABLE:
                    delay = next(delays, None)
                    if delay is not None:
                        log.info("%s; retrying in %.2f s", error, delay)
                        time.sleep(delay)
                        continue
                raise error from None

    def _deadline(self, extra_s: float = 0.0) -> float:
        return self.timeout_s + extra_s

    # -------------------------------------------------------------------- contract
    def describe(self) -> DeviceInfo:
        msg = self._call(
            "describe",
            lambda: self._stub.Describe(
                pb.DescribeRequest(), timeout=self._deadline(), metadata=self._metadata
            ),
        )
        info = serde.device_info_from_pb(msg)
        if info.protocol_major != PROTOCOL_MAJOR:
            raise ProtocolError(
                f"{self.name} speaks device protocol {info.protocol_major}.{info.protocol_minor}; "
                f"this host speaks {PROTOCOL_MAJOR}.x"
            )
        self._info = info
        return info

    def has_model(self, sha256: str) -> bool:
        msg = self._call(
            "has-model",
            lambda: self._stub.HasModel(
                pb.HasModelRequest(sha256=sha256), timeout=self._deadline(), metadata=self._metadata
            ),
        )
        return bool(msg.present)

    def upload(self, blob: ModelBlob) -> None:
        def chunks() -> Iterator[pb.ModelChunk]:
            header = pb.ModelHeader(
                sha256=blob.sha256, total_bytes=len(blob.data), filename=blob.name
            )
            first = blob.data[:CHUNK_BYTES]
            yield pb.ModelChunk(header=header, data=first)
            for offset in range(CHUNK_BYTES, len(blob.data), CHUNK_BYTES):
                yield pb.ModelChunk(data=blob.data[offset : offset + CHUNK_BYTES])

        # Allow ~1 MB/s on slow links on top of the base deadline.
        extra = len(blob.data) / 1_000_000
        self._call(
            "upload",
            lambda: self._stub.UploadModel(
                chunks(), timeout=self._deadline(extra), metadata=self._metadata
            ),
        )

    def ensure_model(self, model: bytes | str | Path | ModelBlob) -> str:
        blob = ModelBlob.of(model)
        if blob.sha256 in self._known_models:
            return blob.sha256
        if not self.has_model(blob.sha256):
            self.upload(blob)
        with self._lock:
            self._known_models.add(blob.sha256)
        return blob.sha256

    def _with_model(
        self, model: bytes | str | Path | ModelBlob, what: str, call: Callable[[str], T]
    ) -> T:
        """Run `call(sha)`; if the agent lost the model (restart, eviction), upload again."""
        blob = ModelBlob.of(model)
        sha = self.ensure_model(blob)
        try:
            return call(sha)
        except ModelNotFound:
            log.info("%s no longer holds %s; uploading again", self.name, sha[:12])
            with self._lock:
                self._known_models.discard(sha)
            self.ensure_model(blob)
            return call(sha)

    def measure(
        self, model: bytes | str | Path | ModelBlob, settings: MeasureSettings | None = None
    ) -> Measurement:
        settings = (settings or MeasureSettings()).validated()
        request_settings = serde.settings_to_pb(settings)
        deadline = self._deadline(settings.time_budget_seconds + 30)

        def call(sha: str) -> Measurement:
            msg = self._call(
                "measure",
                lambda: self._stub.Measure(
                    pb.MeasureRequest(sha256=sha, settings=request_settings),
                    timeout=deadline,
                    metadata=self._metadata,
                ),
            )
            return serde.measurement_from_pb(msg, device=self.name)

        return self._with_model(model, "measure", call)

    def profile(
        self, model: bytes | str | Path | ModelBlob, settings: MeasureSettings | None = None
    ) -> OpProfile:
        settings = (settings or MeasureSettings()).validated()
        request_settings = serde.settings_to_pb(settings)
        # Every operator is timed on its own; allow several budgets.
        deadline = self._deadline(settings.time_budget_seconds * 5 + 120)

        def call(sha: str) -> OpProfile:
            msg = self._call(
                "profile",
                lambda: self._stub.Profile(
                    pb.ProfileRequest(sha256=sha, settings=request_settings),
                    timeout=deadline,
                    metadata=self._metadata,
                ),
            )
            return serde.profile_from_pb(msg)

        return self._with_model(model, "profile", call)

    def validate(
        self, model: bytes | str | Path | ModelBlob, inputs: Sequence[Sample], threads: int = 1
    ) -> list[Sample]:
        samples = [serde.sample_to_pb(s) for s in inputs]
        deadline = self._deadline(30 + 0.01 * len(samples))

        def call(sha: str) -> list[Sample]:
            msg = self._call(
                "validate",
                lambda: self._stub.Validate(
                    pb.ValidateRequest(sha256=sha, inputs=samples, threads=threads),
                    timeout=deadline,
                    metadata=self._metadata,
                ),
            )
            return [serde.sample_from_pb(s) for s in msg.outputs]

        return self._with_model(model, "validate", call)

    def heartbeat(self, sequence: int = 0) -> dict[str, Any]:
        msg = self._call(
            "heartbeat",
            lambda: self._stub.Heartbeat(
                pb.HeartbeatRequest(sequence=sequence),
                timeout=self._deadline(),
                metadata=self._metadata,
            ),
        )
        return {
            "sequence": msg.sequence,
            "uptime_seconds": msg.uptime_seconds,
            "busy": msg.busy,
            "cached_models": msg.cached_models,
            "agent_version": msg.agent_version,
            "interval_seconds": msg.interval_seconds,
        }

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Block until the agent answers (after a start or a restart)."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise DeviceUnavailable(
                f"{self.name}: agent not reachable within {timeout_s} s"
            ) from None

    def close(self) -> None:
        self._channel.close()
