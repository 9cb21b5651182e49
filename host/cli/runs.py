"""`hilnas runs`: the runs in a runs directory, with their status."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from device_agent.errors import ConfigError


def register(sub: Any) -> None:
    parser = sub.add_parser("runs", help="list the runs in a runs directory")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs directory")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host.search.runner import STORE_NAME
    from host.store.sqlite import RunStore

    path = args.out / STORE_NAME
    if not path.exists():
        raise ConfigError(f"no run store at {path}; run `hilnas search CONFIG` first")
    store = RunStore(path)
    rows = store.runs()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "run": r.run_id,
                        "status": r.status,
                        "created": r.created,
                        "updated": r.updated,
                        "message": r.message,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    if not rows:
        print(f"no runs in {path}")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
        strategy = r.config.get("strategy", {}).get("name", "?")
        print(f"{r.run_id:<40} {r.status:<12} {strategy:<11} {when}  {r.message}")
    return 0
