"""`hilnas report RUN`: (re)build a run's HTML report and plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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
    from host.cli._common import open_store
    from host.report import build_report

    store = open_store(args.out, [args.run, *args.compare])
    out = build_report(store, args.run, args.out / args.run, compare=args.compare)
    print(out)
    return 0
