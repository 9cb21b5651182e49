"""Authentication for the agent: a bearer token checked on every call, and TLS settings."""

from __future__ import annotations

import hmac
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from device_agent.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_ENV = "HILNAS_AGENT_TOKEN"
ERROR_METADATA_KEY = "hilnas-error"


def load_token(token_file: Path | None = None, env: str = TOKEN_ENV) -> str | None:
    """The token from a file (first line) or the environment; None when neither is set."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file}: {exc}") from exc
        if not token:
            raise ConfigError(f"the token file {token_file} is empty")
        _warn_if_readable_by_others(Path(token_file))
        return token
    token = os.environ.get(env, "").strip()
    return token or None


def _warn_if_readable_by_others(path: Path) -> None:
    """Log a warning when the group or others may read or write the token file (POSIX)."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "the token file %s has mode %04o: other users of this machine can read or change "
            "the agent's token; restrict it with `chmod 600 %s`",
            path,
            mode,
            path,
        )


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Rejects every call whose `authorization` metadata is not `Bearer <token>`."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.set_trailing_metadata(((ERROR_METADATA_KEY, "AuthenticationFailed"),))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong agent token")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_unary_rpc_method_handler(deny)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        metadata = dict(handler_call_details.invocation_metadata or ())
        supplied = metadata.get("authorization", "")
        supplied_bytes = supplied.encode() if isinstance(supplied, str) else supplied
        if hmac.compare_digest(supplied_bytes, self._expected):
            return continuation(handler_call_details)
        if handler_call_details.method.endswith("/UploadModel"):
            return self._deny_stream
        return self._deny_unary


@dataclass(frozen=True)
class TlsConfig:
    """Server TLS: certificate and key; with `client_ca`, clients must present a certificate."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    def server_credentials(self) -> grpc.ServerCredentials:
        def read(path: Path, what: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read the TLS {what} {path}: {exc}") from exc

        client_ca = read(self.client_ca_file, "client CA") if self.client_ca_file else None
        return grpc.ssl_server_credentials(
            [(read(self.key_file, "key"), read(self.cert_file, "certificate"))],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
