"""Security of the agent's edges: constant-time token checks, token-file permissions, and
clear, fast errors for TLS failures (wrong CA, expired certificate)."""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_agent import auth
from device_agent.auth import TlsConfig, load_token
from device_agent.backends.litert import LiteRTBackend
from device_agent.errors import AuthenticationFailed, DeviceUnavailable
from device_agent.server import AgentServer
from host.fleet.device import ModelBlob
from host.fleet.grpc_device import GrpcDevice, RetryPolicy, TlsHandshakeFailed

TOKEN = "s3cret-token-9d2e"


# ---------------------------------------------------------------------------- the token
@pytest.fixture(scope="module")
def token_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    server = AgentServer(
        LiteRTBackend(name="sec"), name="sec", token=TOKEN,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


def _client(agent: AgentServer, token: str | None) -> GrpcDevice:
    return GrpcDevice(agent.address, token=token, timeout_s=5, retry=RetryPolicy(attempts=1))


def test_token_is_compared_in_constant_time(
    token_agent: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    dev = _client(token_agent, TOKEN)
    try:
        assert dev.heartbeat()["agent_version"]
    finally:
        dev.close()
    assert (f"Bearer {TOKEN}".encode(), f"Bearer {TOKEN}".encode()) in calls
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong", TOKEN[:-1], TOKEN[:1], TOKEN + "x", TOKEN.upper(), " " + TOKEN],
    ids=["missing", "empty", "wrong", "prefix", "first-char", "longer", "case", "space"],
)
def test_wrong_missing_and_prefix_tokens_are_rejected(
    token_agent: AgentServer, token: str | None
) -> None:
    dev = _client(token_agent, token)
    try:
        with pytest.raises(AuthenticationFailed, match="token"):
            dev.describe()
        # the stream RPC too (the interceptor answers it with a stream handler)
        with pytest.raises(AuthenticationFailed):
            dev.upload(ModelBlob.of(b"\x1c\x00\x00\x00TFL3" + bytes(64)))
    finally:
        dev.close()


# ---------------------------------------------------------------------------- token file
@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_token_file_readable_by_others_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path = tmp_path / "token"
    path.write_text("abc\n")
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="device_agent.auth"):
        assert load_token(path) == "abc"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert str(path) in text and f"{mode:04o}" in text and "chmod 600" in text


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_private_token_file_is_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "token"
    path.write_text("abc\n")
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="device_agent.auth"):
        assert load_token(path) == "abc"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------------- TLS
x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _name(cn: str) -> Any:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: Any, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: Any, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(cn: str) -> tuple[Any, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_cert(ca_key: Any, ca_cert: Any, *, expired: bool) -> tuple[Any, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
        if expired
        else (now - dt.timedelta(days=1), now + dt.timedelta(days=2))
    )
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("hilnas-test-ca")
    _, other_ca = _ca("some-other-ca")
    files = {
        "ca": _write_cert(ca_cert, d / "ca.pem"),
        "other_ca": _write_cert(other_ca, d / "o.pem"),
    }
    for name, expired in (("good", False), ("expired", True)):
        key, cert = _server_cert(ca_key, ca_cert, expired=expired)
        files[f"{name}_key"] = _write_key(key, d / f"{name}.key")
        files[f"{name}_cert"] = _write_cert(cert, d / f"{name}.pem")
    return files


def _tls_agent(pki: dict[str, Path], which: str, tmp_path: Path) -> AgentServer:
    tls = TlsConfig(pki[f"{which}_cert"], pki[f"{which}_key"])
    server = AgentServer(LiteRTBackend(name="tls"), host="127.0.0.1", tls=tls, cache_dir=tmp_path)
    server.start()
    return server


@pytest.mark.parametrize(
    ("server_cert", "client_ca", "cause"),
    [
        ("good", "other_ca", "not signed by the CA this host trusts"),
        ("expired", "ca", "has expired"),
    ],
    ids=["wrong-ca", "expired"],
)
def test_tls_failures_are_clear_and_not_retried(
    pki: dict[str, Path], tmp_path: Path, server_cert: str, client_ca: str, cause: str
) -> None:
    server = _tls_agent(pki, server_cert, tmp_path)
    try:
        # The default retry policy: a handshake failure must not be retried for seconds.
        dev = GrpcDevice(server.address, root_certificates=pki[client_ca], timeout_s=10)
        t0 = time.monotonic()
        with pytest.raises(TlsHandshakeFailed) as info:
            dev.describe()
        assert time.monotonic() - t0 < 3.0
        message = str(info.value)
        assert "TLS" in message and server.address in message and cause in message
        assert "CERTIFICATE_VERIFY_FAILED" in message  # grpc's own words are kept
        assert isinstance(info.value, DeviceUnavailable)  # callers that handle it still do
        dev.close()
        # the right CA and a valid certificate work (the same agent when its cert is good)
        if server_cert == "good":
            ok = GrpcDevice(server.address, root_certificates=pki["ca"])
            assert ok.describe().backend == "litert"
            ok.close()
    finally:
        server.stop()


def test_tls_client_to_a_plaintext_agent_is_a_clear_error(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    server = AgentServer(LiteRTBackend(name="plain"), host="127.0.0.1", cache_dir=tmp_path)
    server.start()
    try:
        address = server.address.replace("grpc://", "grpcs://")
        dev = GrpcDevice(address, root_certificates=pki["ca"], timeout_s=5,
                         retry=RetryPolicy(attempts=2, initial_backoff_s=0.05))  # fmt: skip
        t0 = time.monotonic()
        with pytest.raises(DeviceUnavailable) as info:
            dev.describe()
        assert time.monotonic() - t0 < 6.0
        assert address in str(info.value) or server.address.split("//")[1] in str(info.value)
        dev.close()
    finally:
        server.stop()
