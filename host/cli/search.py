"""`hilnas search CONFIG.toml` (or `--resume RUN`): run a hardware-in-the-loop search."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from device_agent.errors import ConfigError


def register(sub: Any) -> None:
    parser = sub.add_parser("search", help="run (or resume) a search from a TOML configuration")
    parser.add_argument("config", nargs="?", type=Path, help="the search configuration (TOML)")
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    parser.add_argument(
        "--out", default=None, help="runs directory (default: the config's run.out_dir, or runs/)"
    )
    parser.add_argument("--strategy", help="override strategy.name")
    parser.add_argument("--seed", type=int, help="override run.seed")
    parser.add_argument(
        "--executor", choices=("inprocess", "process", "ray"), help="override executor.kind"
    )
    parser.add_argument("--workers", type=int, help="override executor.workers")
    parser.add_argument("--ray-address", help="Ray cluster address (with --executor ray)")
    parser.add_argument(
        "--tabular", type=Path, help="look trainings up in a tabular benchmark instead of training"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host.search.config import load_config
    from host.search.runner import run_search

    if args.resume and args.config:
        raise ConfigError("give a configuration or --resume RUN, not both")
    if not args.resume and not args.config:
        raise ConfigError("give a configuration file (or --resume RUN)")
    cfg = None
    if args.config:
        overrides: dict[str, Any] = {}
        for key, value in (
            ("strategy.name", args.strategy),
            ("run.seed", args.seed),
            ("executor.kind", args.executor),
            ("executor.workers", args.workers),
            ("executor.ray_address", args.ray_address),
        ):
            if value is not None:
                overrides[key] = value
        if args.tabular:
            overrides["tabular"] = str(args.tabular)
        cfg = load_config(args.config, overrides)
    try:
        result = run_search(
            cfg,
            resume=args.resume,
            out_dir=args.out,
            progress=not args.no_progress,
            report=not args.no_report,
        )
    except KeyboardInterrupt as exc:
        run_id = getattr(exc, "run_id", None) or "RUN"
        out = f" --out {args.out}" if args.out else ""
        print(
            "hilnas: search interrupted; completed work is stored. Resume with "
            f"`hilnas search --resume {run_id}{out}` (see `hilnas runs`).",
            flush=True,
        )
        # Every finished training and measurement is committed; do not wait for the
        # training in flight (interpreter exit would join its thread).
        os._exit(130)
    if args.json:
        print(
            json.dumps(
                {
                    "run": result.run_id,
                    "run_dir": str(result.run_dir),
                    "trainings": result.trainings,
                    "hypervolume": result.hypervolume,
                    "front": result.front,
                },
                indent=2,
                default=str,
            )
        )
        return 0
    print(
        f"run {result.run_id}: {result.trainings} trainings, front of {len(result.front)} "
        f"models, hypervolume {result.hypervolume:.4f}"
    )
    print(f"front:  {result.run_dir / 'front.json'}")
    if not args.no_report:
        print(f"report: {result.run_dir / 'report.html'}")
    return 0
