"""`hilnas runs`: the runs in a runs directory, with their status."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("runs", help="list the runs in a runs directory")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs directory")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host.cli._common import open_store

    store = open_store(args.out)
    rows = store.runs()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "run": r.run_id,
                        "status": r.status,
                        "strategy": r.config.get("strategy", {}).get("name"),
                        "space": r.config.get("space", {}).get("name"),
                        "trainings": _trainings(store, r),
                        "front_size": r.front_size,
                        "hypervolume": r.hypervolume,
                        **store.device_first_summary(r.run_id),
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
        print(f"no runs in {store.path}")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
        strategy = r.config.get("strategy", {}).get("name", "?")
        front = "?" if r.front_size is None else r.front_size
        print(f"{r.run_id:<40} {r.status:<12} {strategy:<11} {when}  "
              f"trainings {_trainings(store, r)}, front {front}  {r.message}")
    return 0


def _trainings(store: Any, row: Any) -> int:
    """Distinct networks a run trained so far (its final count once it is done)."""
    if row.trainings is not None:
        return int(row.trainings)
    generations = store.generations(row.run_id)
    return max((g["trainings"] for g in generations), default=0)
