"""The `hilnas-agent` command: serve one device over the hilnas.agent.v1 gRPC contract."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from device_agent.auth import TOKEN_ENV, TlsConfig, load_token
from device_agent.backends.base import BUILTIN_BACKENDS, available_backend_names, get_backend_class
from device_agent.errors import HilnasError
from device_agent.power.base import BUILTIN_SENSORS, get_sensor_class
from device_agent.versions import AGENT_VERSION, PROTOCOL_MAJOR, PROTOCOL_MINOR

log = logging.getLogger("hilnas-agent")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hilnas-agent" / "models"


def _add_plugin_arguments(parser: argparse.ArgumentParser) -> None:
    """Let every backend and sensor whose module imports here add its own options."""
    for name, module in {**BUILTIN_BACKENDS, **BUILTIN_SENSORS}.items():
        try:
            importlib.import_module(module)
        except Exception as exc:  # a broken or absent optional backend must not stop the agent
            log.debug("%s unavailable here: %s", name, exc)
    for name in available_backend_names():
        try:
            get_backend_class(name).add_arguments(parser)
        except (HilnasError, ImportError) as exc:
            log.debug("backend %s adds no options: %s", name, exc)
    for name in BUILTIN_SENSORS:
        try:
            cls = get_sensor_class(name)
        except (HilnasError, ImportError):
            continue
        if cls is not None:
            cls.add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilnas-agent",
        description="Serve a device (a board, or a bridge to one) to the hilnas host over gRPC.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"hilnas-agent {AGENT_VERSION} (protocol {PROTOCOL_MAJOR}.{PROTOCOL_MINOR})",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve one device until interrupted")
    serve.add_argument(
        "--backend",
        default="litert",
        choices=available_backend_names(),
        help="how this agent runs models (default: litert)",
    )
    serve.add_argument("--name", default=os.uname().nodename, help="the device's name in reports")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default loopback; use 0.0.0.0 with a token and TLS)",
    )
    serve.add_argument("--port", type=int, default=50051, help="port (0 picks a free one)")
    serve.add_argument(
        "--token-file", type=Path, help=f"file holding the bearer token (else ${TOKEN_ENV})"
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="allow calls without a token (only sensible on loopback)",
    )
    serve.add_argument("--tls-cert", type=Path, help="TLS certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    serve.add_argument(
        "--tls-client-ca", type=Path, help="require client certificates signed by this CA (PEM)"
    )
    serve.add_argument(
        "--cache-dir", type=Path, default=None, help=f"model cache (default {default_cache_dir()})"
    )
    serve.add_argument("--cache-max-mb", type=int, default=1024, help="model cache size")
    serve.add_argument("--max-model-mb", type=int, default=64, help="largest model accepted")
    serve.add_argument(
        "--max-request-seconds",
        type=float,
        default=120.0,
        help="longest measurement or upload a caller may ask for",
    )
    serve.add_argument(
        "--power-sensor",
        default="none",
        choices=sorted(BUILTIN_SENSORS),
        help="power sensor sampled during timed runs (default none)",
    )
    serve.add_argument(
        "--port-file",
        type=Path,
        help="write the bound port here once serving (for scripts using --port 0)",
    )
    _add_plugin_arguments(serve)
    serve.set_defaults(func=cmd_serve)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    from device_agent.server import AgentServer

    token = load_token(args.token_file)
    if token is None and not args.no_auth:
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            raise_config(
                f"refusing to serve on {args.host} without a token: set ${TOKEN_ENV} or "
                "--token-file (or pass --no-auth if this network is trusted)"
            )
        log.warning("no token configured: any local process may use this agent")
    tls = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise_config("--tls-cert and --tls-key go together")
        tls = TlsConfig(args.tls_cert, args.tls_key, args.tls_client_ca)
    elif args.tls_client_ca:
        raise_config("--tls-client-ca needs --tls-cert and --tls-key")

    args.cache_dir = args.cache_dir or default_cache_dir()
    backend = get_backend_class(args.backend).from_args(args)
    server = AgentServer(
        backend,
        name=args.name,
        host=args.host,
        port=args.port,
        token=token,
        tls=tls,
        cache_dir=args.cache_dir,
        cache_max_bytes=args.cache_max_mb * 1024 * 1024,
        max_model_bytes=args.max_model_mb * 1024 * 1024,
        max_request_seconds=args.max_request_seconds,
    )
    port = server.start()
    if args.port_file:
        args.port_file.write_text(f"{port}\n")
    print(
        f"hilnas-agent {AGENT_VERSION}: {args.backend} device {args.name!r} on {server.address}",
        flush=True,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    print("hilnas-agent: stopping", file=sys.stderr, flush=True)
    server.stop(grace=2.0)
    return 0


def raise_config(message: str) -> None:
    from device_agent.errors import ConfigError

    raise ConfigError(message)


def run_command(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv` and run the chosen subcommand (`args.func`), as both commands do.

    `-v` raises the log level; a HilnasError is one line naming its type (exit 2), Ctrl-C
    exits 130, and neither prints a traceback.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except HilnasError as exc:
        print(f"{prog}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("hilnas-agent", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
