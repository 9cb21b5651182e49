"""Options and output helpers shared by the device commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from device_agent.auth import TOKEN_ENV, load_token
from host.fleet.device import Device


def add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-file", type=Path, help=f"bearer token for the agent (default ${TOKEN_ENV})"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the agent on each call (default 10)",
    )


def device_from_args(spec: str, args: argparse.Namespace) -> Device:
    from host.fleet import open_device

    return open_device(spec, token=load_token(args.token_file), timeout_s=args.timeout)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def open_store(runs_dir: Path, runs: Sequence[str] = ()) -> Any:
    """The run store of a runs directory, checking that it holds `runs` (by id).

    A missing store or run is a ConfigError that says what to do (`hilnas runs`).
    """
    from host.errors import ConfigError
    from host.search.runner import STORE_NAME
    from host.store.sqlite import RunStore

    path = Path(runs_dir) / STORE_NAME
    if not path.exists():
        raise ConfigError(f"no run store at {path}; run `hilnas search CONFIG` first")
    store = RunStore(path)
    for run_id in runs:
        if store.run(run_id) is None:
            known = ", ".join(r.run_id for r in store.runs()) or "none"
            raise ConfigError(f"no run {run_id!r} in {path}; runs there: {known} "
                              f"(see `hilnas runs --out {runs_dir}`)")
    return store
