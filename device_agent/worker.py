"""The child process that runs candidate models (started by device_agent.isolation).

It loads the TFLite runtime once, then serves requests from the agent over the worker pipe
(device_agent.pipe): info, check, measure, profile and validate. A model that crashes or
hangs the runtime takes down only this process; the agent reports the failure and starts a
fresh worker.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device_agent import measure as m
from device_agent import pipe
from device_agent.errors import CandidateRejected, HilnasError, MeasurementFailed
from device_agent.op_profile import METHOD as PROFILE_METHOD
from device_agent.op_profile import split_operators
from device_agent.runtimes import TfliteRuntime, load_runtime
from device_agent.types import Figure, MeasureSettings, OpTiming, RuntimeInfo


def _tensor_bytes(interp: Any) -> int:
    """Bytes of all tensors of the model (an upper bound of what the arena must hold)."""
    total = 0
    for detail in interp.get_tensor_details():
        shape = detail.get("shape")
        if shape is None or len(shape) == 0:
            continue
        total += int(np.prod(shape, dtype=np.int64)) * np.dtype(detail["dtype"]).itemsize
    return total


class Worker:
    """The request handlers; `emit` sends an event to the agent during a request."""

    def __init__(self, runtime: TfliteRuntime, emit: Callable[[str], None]) -> None:
        self.runtime = runtime
        self._event = emit

    def handlers(self) -> pipe.Handlers:
        return {"info": self.info, "check": self.check, "measure": self.measure,
                "profile": self.profile, "validate": self.validate}

    def _interpreter(self, model: Path | bytes, threads: int) -> Any:
        kwargs: dict[str, Any] = {"num_threads": threads}
        if isinstance(model, bytes):
            kwargs["model_content"] = model
        else:
            kwargs["model_path"] = str(model)
        try:
            interp = self.runtime.interpreter_class(**kwargs)
        except (ValueError, RuntimeError) as exc:
            raise CandidateRejected(
                f"{self.runtime.info.name} cannot load the model: {exc}"
            ) from exc
        try:
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            text = str(exc).strip() or "no reason given by the runtime"
            needed = _tensor_bytes(interp)
            limit = int(os.environ.get("HILNAS_WORKER_MEMORY_LIMIT", "0"))
            # LiteRT's message for a failed allocation is often empty; judge by size.
            if "memory" in text.lower() or (limit and needed > limit // 2):
                raise MeasurementFailed(
                    f"out of memory allocating tensors: they need about {needed / 2**20:.0f} MiB"
                    + (f", the worker allows {limit / 2**20:.0f} MiB" if limit else "")
                    + f" ({text})"
                ) from exc
            raise CandidateRejected(f"cannot allocate tensors: {text}") from exc
        return interp

    # ----------------------------------------------------------------------- requests
    def info(self) -> dict[str, Any]:
        return {"runtime": self.runtime.info, "pid": os.getpid()}

    def check(self, model_path: str) -> dict[str, Any]:
        interp = self._interpreter(Path(model_path), 1)
        return {
            "inputs": [
                (d["name"], tuple(d["shape"]), np.dtype(d["dtype"]).name)
                for d in interp.get_input_details()
            ],
            "outputs": [
                (d["name"], tuple(d["shape"]), np.dtype(d["dtype"]).name)
                for d in interp.get_output_details()
            ],
        }

    def measure(self, model_path: str, settings: MeasureSettings) -> dict[str, Any]:
        reset_ok = m.reset_peak_rss()
        baseline = m.current_rss_bytes()
        interp = self._interpreter(Path(model_path), settings.threads)
        inputs = m.make_inputs(interp.get_input_details(), settings)
        for detail, array in zip(interp.get_input_details(), inputs, strict=True):
            interp.set_tensor(detail["index"], array)
        runs = m.run_timed(
            interp.invoke,
            settings,
            on_timed_start=lambda: self._event("timed_start"),
            on_timed_end=lambda: self._event("timed_end"),
        )
        peak = m.peak_rss_bytes()
        peak_note = "VmHWM of the worker process" + (
            ", reset before the model was loaded"
            if reset_ok
            else "; could not be reset, so it includes earlier models"
        )
        return {
            "latency": runs.stats(settings),
            "compute_seconds": runs.compute_seconds,
            "peak_rss": Figure.measured(peak, peak_note)
            if peak
            else Figure.unavailable("/proc/self/status is not readable"),
            "baseline_rss": Figure.measured(baseline, "VmRSS before loading the model")
            if baseline
            else Figure.unavailable("/proc/self/status is not readable"),
            "model_bytes": m.model_file_bytes(model_path),
            "runtime": self.runtime.info,
        }

    def profile(self, model_path: str, settings: MeasureSettings) -> dict[str, Any]:
        model_bytes = Path(model_path).read_bytes()
        whole = self.measure(model_path, settings)["latency"]
        timings = []
        per_op = MeasureSettings(
            warmup_runs=max(3, settings.warmup_runs // 2),
            min_runs=min(settings.min_runs, 20),
            max_runs=max(20, settings.max_runs // 2),
            time_budget_seconds=max(0.5, settings.time_budget_seconds / 4),
            target_ci_relative=max(settings.target_ci_relative, 0.03),
            threads=settings.threads,
            seed=settings.seed,
        )
        notes = []
        for single in split_operators(model_bytes):
            try:
                interp = self._interpreter(single.model_bytes, settings.threads)
            except HilnasError as exc:
                notes.append(f"op {single.index} {single.op_name} could not run alone: {exc}")
                continue
            for detail, array in zip(
                interp.get_input_details(),
                m.make_inputs(interp.get_input_details(), per_op),
                strict=True,
            ):
                interp.set_tensor(detail["index"], array)
            runs = m.run_timed(interp.invoke, per_op)
            timings.append((single, runs))
        total = sum(float(r.samples_us.mean()) for _, r in timings) or 1.0
        ops = tuple(
            OpTiming(
                index=single.index,
                op=single.op_name,
                mean_us=float(runs.samples_us.mean()),
                p50_us=float(np.median(runs.samples_us)),
                fraction=float(runs.samples_us.mean()) / total,
                runs=int(runs.samples_us.size),
            )
            for single, runs in timings
        )
        notes.append(
            f"sum of operator means {total:.1f} us vs whole-model p50 {whole.p50_us:.1f} us"
        )
        return {
            "ops": ops,
            "whole_p50_us": whole.p50_us,
            "notes": notes,
            "runtime": self.runtime.info,
            "method": PROFILE_METHOD,
        }

    def validate(
        self, model_path: str, samples: list[tuple[np.ndarray, ...]], threads: int
    ) -> dict[str, Any]:
        interp = self._interpreter(Path(model_path), threads)
        in_details = interp.get_input_details()
        out_details = interp.get_output_details()
        outputs = []
        for i, sample in enumerate(samples):
            # Each window from a clean state: LiteRT keeps an LSTM's state in variable
            # tensors between invokes, so without this a window's output depended on the
            # window before it (a board's firmware resets it per inference too).
            interp.reset_all_variables()
            if len(sample) != len(in_details):
                raise CandidateRejected(
                    f"sample {i} has {len(sample)} tensors; the model has {len(in_details)} inputs"
                )
            for detail, array in zip(in_details, sample, strict=True):
                shape = tuple(int(d) for d in detail["shape"])
                if tuple(array.shape) != shape or array.dtype != np.dtype(detail["dtype"]):
                    raise CandidateRejected(
                        f"sample {i}: input {detail['name']!r} wants {np.dtype(detail['dtype'])}"
                        f"{list(shape)}, got {array.dtype}{list(array.shape)}"
                    )
                interp.set_tensor(detail["index"], array)
            interp.invoke()
            outputs.append(tuple(np.array(interp.get_tensor(d["index"])) for d in out_details))
        return {"outputs": outputs, "runtime": self.runtime.info}


def _apply_memory_limit() -> None:
    """Cap the address space at what the loaded runtime uses plus the configured headroom.

    The headroom (HILNAS_WORKER_MEMORY_LIMIT, bytes) is what a model may add: a model that
    needs more fails its allocation here instead of pushing the board into swap or the OOM
    killer's path, and the agent reports it as a failed measurement.
    """
    headroom = os.environ.get("HILNAS_WORKER_MEMORY_LIMIT")
    if not headroom:
        return
    import resource

    vm_kb = m._status_kb("VmSize") or 0
    limit = vm_kb * 1024 + int(headroom)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _warm_up() -> None:
    """Pay numpy's first-call costs (lazy imports of random, percentile) before serving.

    Otherwise the first measurement after a worker start carries ~30 ms of them, which is
    the whole overhead budget of a cached remote measurement.
    """
    from device_agent.types import Source, latency_stats

    details = [
        {"name": "x", "shape": np.array([1, 4]), "dtype": np.int8},
        {"name": "y", "shape": np.array([1, 4]), "dtype": np.float32},
    ]
    m.make_inputs(details, MeasureSettings())
    stats = latency_stats(
        np.arange(1.0, 50.0),
        source=Source.MEASURED,
        timer="",
        stop_reason="",
        target_ci_relative=0.02,
    )
    pickle.dumps(stats)
    m.run_timed(lambda: None, MeasureSettings(warmup_runs=1, min_runs=20, max_runs=20))
    m.reset_peak_rss()
    m.peak_rss_bytes()


def _setup(ctx: pipe.WorkerContext) -> tuple[RuntimeInfo, pipe.Handlers]:
    runtime = load_runtime(ctx.runtime)
    _apply_memory_limit()
    _warm_up()
    return runtime.info, Worker(runtime, ctx.emit).handlers()


def main() -> int:
    return pipe.run_worker(_setup)


if __name__ == "__main__":
    sys.exit(main())
