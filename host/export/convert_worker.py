"""A warm TFLite converter process (run by device_agent.isolation.IsolatedWorker).

Importing TensorFlow costs several seconds; a search exports one model per candidate, so
the converter stays loaded between conversions. It still runs in its own process, because
the converter can crash (a signal, not an exception): the caller then gets a
`ConversionError` and the next conversion starts a fresh converter.

Requests are the same JSON request files as `python -m host.export.tflite REQUEST.json`.
"""

from __future__ import annotations

import os
import sys
import traceback


def main() -> int:
    from device_agent.types import RuntimeInfo
    from device_agent.worker import read_frame, write_frame

    req_fd, resp_fd = int(sys.argv[1]), int(sys.argv[2])
    requests = os.fdopen(req_fd, "rb", buffering=0)
    responses = os.fdopen(resp_fd, "wb", buffering=0)
    from host.export.tflite import _child
    from host.train.tfenv import import_tf

    tf = import_tf()
    write_frame(
        responses, {"ok": True, "ready": True, "runtime": RuntimeInfo("tensorflow", tf.__version__)}
    )
    while True:
        try:
            request = read_frame(requests)
        except EOFError:
            return 0
        try:
            _child(request["request_path"])
            write_frame(responses, {"ok": True, "result": None})
        except Exception as exc:  # the conversion failed; the converter itself is fine
            write_frame(
                responses,
                {
                    "ok": False,
                    "error": "ConversionFailed",
                    "message": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=5),
                },
            )


if __name__ == "__main__":
    sys.exit(main())
