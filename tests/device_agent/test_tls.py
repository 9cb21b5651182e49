"""TLS and client-certificate checking on a real agent (certificates made with openssl)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from device_agent.auth import TlsConfig
from device_agent.backends.litert import LiteRTBackend
from device_agent.errors import DeviceUnavailable
from device_agent.server import AgentServer
from host.fleet.grpc_device import GrpcDevice, RetryPolicy

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    for name, cn in (("server", "localhost"), ("client", "hilnas-host")):
        _run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(ext),
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    return d


def test_tls_with_client_certificates(pki: Path, tmp_path: Path) -> None:
    tls = TlsConfig(pki / "server.pem", pki / "server.key", client_ca_file=pki / "ca.pem")
    server = AgentServer(LiteRTBackend(), host="127.0.0.1", tls=tls, cache_dir=tmp_path)
    server.start()
    assert server.address.startswith("grpcs://")
    try:
        good = GrpcDevice(
            server.address,
            root_certificates=pki / "ca.pem",
            client_cert=(pki / "client.pem", pki / "client.key"),
        )
        assert good.describe().backend == "litert"
        good.close()
        # Without a client certificate the handshake fails: no call goes through.
        anonymous = GrpcDevice(
            server.address,
            root_certificates=pki / "ca.pem",
            timeout_s=3,
            retry=RetryPolicy(attempts=1),
        )
        with pytest.raises(DeviceUnavailable):
            anonymous.describe()
        anonymous.close()
        # A client that does not trust the server's CA refuses it.
        untrusting = GrpcDevice(
            server.address,
            root_certificates=pki / "client.pem",
            client_cert=(pki / "client.pem", pki / "client.key"),
            timeout_s=3,
            retry=RetryPolicy(attempts=1),
        )
        with pytest.raises(DeviceUnavailable):
            untrusting.describe()
        untrusting.close()
    finally:
        server.stop()
