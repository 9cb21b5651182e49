"""`hilnas report RUN`: (re)build a run's HTML report and plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from device_agent.errors import ConfigError


def register(sub: Any) -> None:
    parser = sub.add_parser("report", help="build the HTML report of a run")
    parser.add_argument("run", help="the run id (see `hilnas runs`)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs directory")
    parser.add_argument(
        "--compare",
        nargs="*",
        default=[],
        help="other runs to plot beside it (e.g. a random baseline)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host.report import build_report
    from host.search.runner import STORE_NAME
    from host.store.sqlite import RunStore

    path = args.out / STORE_NAME
    if not path.exists():
        raise ConfigError(f"no run store at {path}")
    store = RunStore(path)
    for rid in [args.run, *args.compare]:
        if store.run(rid) is None:
            raise ConfigError(f"no run {rid!r} in {path}; see `hilnas runs --out {args.out}`")
    out = build_report(store, args.run, args.out / args.run, compare=args.compare)
    print(out)
    return 0
