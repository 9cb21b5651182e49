"""A warm TFLite converter process (run by device_agent.isolation.IsolatedWorker).

Importing TensorFlow costs several seconds; a search exports one model per candidate, so
the converter stays loaded between conversions. It still runs in its own process, because
the converter can crash (a signal, not an exception): the caller then gets a
`ConversionError` and the next conversion starts a fresh converter.

It speaks the worker pipe protocol (device_agent.pipe) with one request, "convert", whose
argument is a JSON request file, the same as `python -m host.export.tflite REQUEST.json`.
"""

from __future__ import annotations

import sys

from device_agent import pipe
from device_agent.types import RuntimeInfo


def _setup(ctx: pipe.WorkerContext) -> tuple[RuntimeInfo, pipe.Handlers]:
    from host.export.tflite import run_request
    from host.train.tfenv import import_tf

    tf = import_tf()
    return RuntimeInfo("tensorflow", tf.__version__), {"convert": run_request}


def main() -> int:
    return pipe.run_worker(_setup)


if __name__ == "__main__":
    sys.exit(main())
