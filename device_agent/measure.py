"""The measurement protocol: warm-up, timed runs until stable, memory readings.

Shared by every backend that times inferences in the agent's own process tree (LiteRT on a
Linux board) and by the benchmarks that compare the agent with an in-process baseline, so
both time exactly the same loop.

Stopping rule: after `warmup_runs` untimed runs, time single invocations until
- the 95% confidence interval of the median is within +/- `target_ci_relative` of the
  median (checked once `min_runs` runs are in), or
- `max_runs` runs are in, or
- the time budget (warm-up included) is spent; at least one timed run is always made.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.errors import ConfigError
from device_agent.types import (
    InputSource,
    LatencyStats,
    MeasureSettings,
    Source,
    latency_stats,
    median_ci95_relative,
)

HOST_TIMER = "time.perf_counter_ns around Interpreter.invoke, in the agent's worker process"


@dataclass
class TimedRuns:
    samples_us: np.ndarray
    stop_reason: str
    compute_seconds: float  # sum of the timed runs
    warmup_seconds: float

    def stats(self, settings: MeasureSettings, timer: str = HOST_TIMER) -> LatencyStats:
        return latency_stats(
            self.samples_us,
            source=Source.MEASURED,
            timer=timer,
            stop_reason=self.stop_reason,
            target_ci_relative=settings.target_ci_relative,
        )


def run_timed(
    invoke: Callable[[], Any],
    settings: MeasureSettings,
    *,
    on_timed_start: Callable[[], None] | None = None,
    on_timed_end: Callable[[], None] | None = None,
) -> TimedRuns:
    """Warm up, then time `invoke()` until the stopping rule says stop."""
    t_start = time.perf_counter()
    deadline = t_start + settings.time_budget_seconds
    for _ in range(settings.warmup_runs):
        invoke()
        if time.perf_counter() > deadline:
            break
    warmup_s = time.perf_counter() - t_start

    samples = np.empty(settings.max_runs, dtype=np.float64)
    n = 0
    stop_reason = "max_runs"
    # Checking the CI sorts the samples; doing it every run would add work between runs on
    # slow boards, so check at a stride that keeps the overshoot under ~10%.
    next_check = settings.min_runs
    if on_timed_start:
        on_timed_start()
    perf_ns = time.perf_counter_ns
    deadline_ns = int(deadline * 1e9)  # perf_counter and perf_counter_ns share one clock
    while n < settings.max_runs:
        t0 = perf_ns()
        invoke()
        t1 = perf_ns()
        samples[n] = (t1 - t0) / 1000.0
        n += 1
        if n >= next_check and settings.target_ci_relative > 0:
            if median_ci95_relative(np.sort(samples[:n])) <= settings.target_ci_relative:
                stop_reason = "stable"
                break
            next_check = n + max(1, n // 10)
        if t1 > deadline_ns:
            stop_reason = "time_budget"
            break
    if on_timed_end:
        on_timed_end()
    done = samples[:n]
    return TimedRuns(done, stop_reason, float(done.sum()) / 1e6, warmup_s)


# ---------------------------------------------------------------------------- inputs
def make_inputs(
    input_details: Sequence[dict[str, Any]], settings: MeasureSettings
) -> list[np.ndarray]:
    """One array per model input, as the settings ask (random, zeros or provided)."""
    if settings.input_source is InputSource.PROVIDED:
        assert settings.inputs is not None
        if len(settings.inputs) != len(input_details):
            raise ConfigError(
                f"the model has {len(input_details)} inputs, {len(settings.inputs)} were provided"
            )
        out = []
        for detail, array in zip(input_details, settings.inputs, strict=True):
            shape = tuple(int(d) for d in detail["shape"])
            if tuple(array.shape) != shape:
                raise ConfigError(
                    f"input {detail['name']!r} has shape {shape}, provided {tuple(array.shape)}"
                )
            out.append(np.asarray(array, dtype=detail["dtype"]))
        return out
    rng = np.random.default_rng(settings.seed)
    arrays = []
    for detail in input_details:
        shape = tuple(int(d) for d in detail["shape"])
        dtype = np.dtype(detail["dtype"])
        if settings.input_source is InputSource.ZEROS:
            arrays.append(np.zeros(shape, dtype))
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
        elif dtype == np.bool_:
            arrays.append(rng.integers(0, 1, size=shape, endpoint=True).astype(np.bool_))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


# ---------------------------------------------------------------------------- memory
_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_bytes() -> int | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024


def peak_rss_bytes() -> int | None:
    kb = _status_kb("VmHWM")
    return None if kb is None else kb * 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (Linux clear_refs "5"); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def model_file_bytes(path: Path | str) -> int:
    return os.path.getsize(path)
