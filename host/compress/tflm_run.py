"""Run .tflite models in the TFLite Micro wheel's interpreter, in a child process.

`run_tflm` is what `host.compress.lut` verifies a compressed model with: every model runs the
same int8 windows (one invoke per window, each from a zero LSTM state, as the firmware does),
and its raw outputs, TFLM's arena report and the host's wall time per invoke come back.

It runs in a child process (`python -m host.compress.tflm_run REQUEST.json`) because the caller
usually has TensorFlow imported, and two TFLite runtimes in one process have crashed before
(docs/decisions.md); a crash of TFLM itself then becomes an error, not a dead host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from host.errors import HilnasError, MeasurementFailed

# Arena for finding out what a model needs: larger than any MCU's RAM, cheap on the host.
PROBE_ARENA_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TflmModelRun:
    """One model's run: outputs (n, values) in the output's own type, arena, host timing."""

    outputs: np.ndarray
    arena_bytes: int
    arena_cortex_m_estimate: int
    alt_decompression_bytes: int
    host_invoke_us: float


def run_tflm(
    models: list[tuple[bytes, int]],
    inputs: np.ndarray,
    *,
    timing_runs: int = 20,
    timeout_s: float = 900.0,
) -> list[TflmModelRun]:
    """Run each (model, alt_decompression_bytes) on `inputs` (already in the input's type).

    Raises MeasurementFailed when TFLM refuses a model or the child dies (the message says
    which and carries TFLM's last log line).
    """
    with tempfile.TemporaryDirectory(prefix="hilnas-tflm-") as tmp:
        d = Path(tmp)
        np.save(d / "inputs.npy", np.asarray(inputs))
        entries: list[dict[str, Any]] = []
        for i, (model, alt) in enumerate(models):
            (d / f"m{i}.tflite").write_bytes(model)
            entries.append({"path": str(d / f"m{i}.tflite"), "alt": int(alt),
                            "out": str(d / f"y{i}.npy")})
        req = {"models": entries, "inputs": str(d / "inputs.npy"), "timing_runs": timing_runs,
               "result": str(d / "result.json")}
        (d / "request.json").write_text(json.dumps(req))
        proc = subprocess.run(
            [sys.executable, "-m", "host.compress.tflm_run", str(d / "request.json")],
            capture_output=True, text=True, timeout=timeout_s, env=dict(os.environ),
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-4:])
            raise MeasurementFailed(f"TFLM run failed (exit {proc.returncode}): {tail}")
        result = json.loads((d / "result.json").read_text())
        return [
            TflmModelRun(
                outputs=np.load(e["out"]),
                arena_bytes=int(r["arena_bytes"]),
                arena_cortex_m_estimate=int(r["arena_cortex_m_estimate"]),
                alt_decompression_bytes=int(r["alt"]),
                host_invoke_us=float(r["host_invoke_us"]),
            )
            for e, r in zip(entries, result["models"], strict=True)
        ]


def _run_one(model: bytes, alt: int, inputs: np.ndarray, timing_runs: int) -> tuple[
    np.ndarray, dict[str, Any]
]:
    from device_agent.errors import CandidateRejected
    from device_agent.mcu import tflm_host

    try:
        host = tflm_host.allocate(model, PROBE_ARENA_BYTES, alt)
    except CandidateRejected as exc:
        raise HilnasError(str(exc)) from None
    interp = host.interpreter
    ind, outd = host.inputs[0], host.outputs[0]
    outs = []
    for x in inputs:
        interp.reset()  # each window from a zero LSTM state (the firmware resets per inference)
        interp.set_input(np.asarray(x, dtype=ind["dtype"]).reshape(ind["shape"]), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    y = np.stack(outs) if outs else np.zeros((0, int(np.prod(outd["shape"]))), outd["dtype"])
    # Host wall time per invoke, after one warm-up: the TFLM reference kernels on x86-64, not
    # a board's latency (the report labels it so).
    x0 = np.asarray(inputs[0], dtype=ind["dtype"]).reshape(ind["shape"])
    interp.reset()
    interp.set_input(x0, 0)
    interp.invoke()
    t0 = time.perf_counter()
    for _ in range(timing_runs):
        interp.reset()
        interp.set_input(x0, 0)
        interp.invoke()
    per_invoke = (time.perf_counter() - t0) / max(timing_runs, 1) * 1e6
    return y, {
        "arena_bytes": host.report.total,
        "arena_cortex_m_estimate": tflm_host.cortex_m_arena_estimate(host.report),
        "alt": alt,
        "host_invoke_us": per_invoke,
    }


def main(argv: list[str]) -> int:
    req = json.loads(Path(argv[0]).read_text())
    inputs = np.load(req["inputs"])
    results = []
    for e in req["models"]:
        y, info = _run_one(Path(e["path"]).read_bytes(), e["alt"], inputs, req["timing_runs"])
        np.save(e["out"], y)
        results.append(info)
    Path(req["result"]).write_text(json.dumps({"models": results}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as exc:  # reported to the parent through stderr and the exit code
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
