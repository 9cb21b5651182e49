"""A worker module for the pipe protocol tests: requests that succeed, fail, crash or hang.

Run by IsolatedWorker as `python -m pipe_test_worker` (the test puts this folder on
PYTHONPATH). `python -m pipe_test_worker ... broken` fails its setup instead.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from device_agent import pipe
from device_agent.errors import CandidateRejected, ConfigError
from device_agent.types import RuntimeInfo


def _setup(ctx: pipe.WorkerContext) -> tuple[RuntimeInfo, pipe.Handlers]:
    if ctx.runtime == "broken":
        raise ConfigError("this test worker was asked to fail its setup")

    def events(names: list[str]) -> str:
        for name in names:
            ctx.emit(name)
        return "done"

    def reject(why: str) -> None:
        raise CandidateRejected(why)

    def boom() -> None:
        raise ValueError("not a HilnasError")

    def kill(name: str) -> None:
        os.kill(os.getpid(), getattr(signal, name))

    handlers = {
        "echo": lambda **kw: kw,
        "pid": os.getpid,
        "events": events,
        "reject": reject,
        "boom": boom,
        "kill": kill,
        "sleep": lambda secs: time.sleep(secs),
    }
    return RuntimeInfo("pipe-test", "1"), handlers


if __name__ == "__main__":
    sys.exit(pipe.run_worker(_setup))
