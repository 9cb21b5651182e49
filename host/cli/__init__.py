"""The `hilnas` command: one module per subcommand, each with `register(subparsers)`.

Subcommand modules import heavy dependencies (TensorFlow, DEAP, matplotlib) inside their
run functions, so `hilnas --help` and the device commands start quickly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order is the order of `hilnas --help`. A module that is not present is skipped, so the
# CLI works while commands are being added.
COMMAND_MODULES = (
    "devices",
    "measure",
    "data",
    "train",
    "evaluate",
    "compress",
    "adapt",
    "validate",
    "search",
    "runs",
    "report",
    "export",
    "predictor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilnas",
        description="Hardware-in-the-loop neural architecture search for bio-signal models.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"host.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"host.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from device_agent.cli import run_command

    return run_command("hilnas", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
