"""Overhead of one remote measurement: client wall time minus the timed runs' compute time.

A ~100 KB int8 model measured through a local agent over gRPC on loopback:
- first upload: a fresh agent cache (hash, HasModel, chunked upload, model check, Measure);
- cached: the agent holds the model (a new client: HasModel + Measure; a warm client: Measure).
Targets: at most 30 ms on first upload, at most 10 ms cached.

    .venv/bin/python benchmarks/agent_overhead.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _util import build_reference_models, machine_line

from device_agent.types import MeasureSettings
from host.fleet.grpc_device import GrpcDevice
from host.fleet.local import LocalDevice


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", type=Path, default=None)
    args = parser.parse_args()
    models_dir = args.models or Path(tempfile.mkdtemp(prefix="hilnas-overhead-"))
    models = build_reference_models(models_dir, {"int8_100k": "int8_sized(100_000)"})
    model = models["int8_100k"]
    settings = MeasureSettings(warmup_runs=5, min_runs=30, max_runs=30, target_ci_relative=0.0)
    print(machine_line())
    print(
        f"model: {model.name}, {model.stat().st_size} bytes; {settings.warmup_runs} warm-up + "
        f"{settings.max_runs} timed runs per measurement"
    )
    first, cached_new, cached_warm = [], [], []
    for i in range(args.repeats):
        # A fresh agent each time, so the first measurement really uploads.
        with LocalDevice(name=f"overhead{i}") as device:
            device.describe()  # connect before timing, as a search does once per device
            t0 = time.perf_counter()
            m = device.measure(model, settings)
            first.append((time.perf_counter() - t0 - m.compute_seconds) * 1000)
            other = GrpcDevice(device.address)
            other.describe()
            t0 = time.perf_counter()
            m = other.measure(model, settings)
            cached_new.append((time.perf_counter() - t0 - m.compute_seconds) * 1000)
            other.close()
            t0 = time.perf_counter()
            m = device.measure(model, settings)
            cached_warm.append((time.perf_counter() - t0 - m.compute_seconds) * 1000)
    for label, values, target in (
        ("first upload", first, 30.0),
        ("cached, new client (HasModel+Measure)", cached_new, 10.0),
        ("cached, warm client (Measure)", cached_warm, 10.0),
    ):
        med = statistics.median(values)
        print(
            f"{label:<40} median {med:6.2f} ms  min {min(values):6.2f}  max {max(values):6.2f}"
            f"  target <= {target:.0f} ms: {'met' if med <= target else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
