"""LiteRT backend: runs .tflite models on a Linux device.

That is a Raspberry Pi, the ARM cores of a PYNQ board, or this machine as a local device.

Models run in an isolated worker process (device_agent.isolation); this class turns the
worker's raw results into the domain types and drives the power sensor around the timed
runs, in the agent's process, so that sampling does not steal time from the timed loop.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Sequence
from pathlib import Path

from device_agent import sysinfo, types
from device_agent.backends.base import Backend, register_backend
from device_agent.errors import MeasurementFailed
from device_agent.isolation import IsolatedWorker
from device_agent.power.base import (
    PowerSensor,
    PowerTrace,
    get_sensor_class,
    power_stats,
    sensor_info,
)

DEFAULT_LIMITS = types.Limits(
    max_model_bytes=64 * 1024 * 1024, max_request_seconds=120.0, max_runs=10_000
)
# Time allowed beyond the measurement's own budget for loading the model and reporting.
DEADLINE_SLACK_S = 30.0


@register_backend("litert")
class LiteRTBackend(Backend):
    """A Linux board running LiteRT (or tflite_runtime / tensorflow.lite as fall-backs)."""

    def __init__(
        self,
        *,
        name: str = "local",
        runtime: str | None = None,
        power_sensor: PowerSensor | None = None,
        memory_limit_bytes: int | None = None,
        limits: types.Limits = DEFAULT_LIMITS,
        storage_path: str | Path = "/",
        deadline_slack_s: float = DEADLINE_SLACK_S,
    ) -> None:
        self.device_name = name
        self.worker = IsolatedWorker(runtime=runtime, memory_limit_bytes=memory_limit_bytes)
        self.power_sensor = power_sensor
        self.limits = limits
        self.storage_path = storage_path
        self.deadline_slack_s = deadline_slack_s
        self.runtime = self.worker.start()

    # ---------------------------------------------------------------------- describe
    def describe(self) -> types.DeviceInfo:
        return self.device_info(
            name=self.device_name,
            kind="linux",
            board=sysinfo.board_name(),
            cpu=sysinfo.cpu_model(),
            cpu_cores=sysinfo.cpu_cores(),
            ram_bytes=sysinfo.ram_bytes(),
            storage_bytes=sysinfo.storage_bytes(self.storage_path),
            runtimes=(self.runtime,),
            power_sensor=sensor_info(self.power_sensor),
            limits=self.limits,
            is_stand_in=False,
            extra={"python": platform.python_version(), "machine": platform.machine()},
        )

    # ---------------------------------------------------------------------- measure
    def _deadline(self, settings: types.MeasureSettings) -> float:
        return settings.time_budget_seconds + self.deadline_slack_s

    def check_model(self, model_path: Path) -> None:
        self.worker.call("check", timeout_s=self.deadline_slack_s, model_path=str(model_path))

    def measure(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.Measurement:
        started = time.time()
        t0 = time.perf_counter()
        trace: dict[str, PowerTrace | None] = {"trace": None}
        power_failure = ""

        def on_event(event: str) -> None:
            nonlocal power_failure
            if self.power_sensor is None:
                return
            try:
                if event == "timed_start":
                    self.power_sensor.start()
                elif event == "timed_end":
                    trace["trace"] = self.power_sensor.stop()
            except Exception as exc:  # a flaky sensor must not lose the latency figures
                power_failure = f"power sensor failed: {exc}"

        try:
            raw = self.worker.call(
                "measure",
                timeout_s=self._deadline(settings),
                on_event=on_event,
                model_path=str(model_path),
                settings=settings,
            )
        finally:
            if self.power_sensor is not None and trace["trace"] is None:
                try:
                    self.power_sensor.stop()
                except Exception:  # noqa: S110 - the sampler may not have started
                    pass
        latency = raw["latency"]
        notes = []
        if power_failure:
            notes.append(power_failure)
        if not latency.stable and settings.target_ci_relative > 0:
            notes.append(
                f"not stable: median 95% CI +/-{latency.median_ci95_relative:.1%} after "
                f"{latency.n} runs (target {settings.target_ci_relative:.1%}), "
                f"stopped by {latency.stop_reason}"
            )
        return types.Measurement(
            sha256=sha256,
            latency=latency,
            memory=types.MemoryStats(
                peak_rss_bytes=raw["peak_rss"],
                model_bytes=types.Figure.measured(raw["model_bytes"], "size of the .tflite file"),
                arena_bytes=types.Figure.unavailable(
                    f"{raw['runtime'].name} does not report its tensor arena"
                ),
                baseline_rss_bytes=raw["baseline_rss"],
            ),
            power=power_stats(
                self.power_sensor,
                trace["trace"],
                inferences=latency.n,
                compute_seconds=raw["compute_seconds"],
                failure=power_failure,
            ),
            runtime=raw["runtime"],
            threads=settings.threads,
            started_unix=started,
            wall_seconds=time.perf_counter() - t0,
            compute_seconds=raw["compute_seconds"],
            notes=tuple(notes),
            device=self.device_name,
        )

    def profile(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.OpProfile:
        # Every operator is timed on its own: allow a budget per operator on top.
        raw = self.worker.call(
            "profile",
            timeout_s=self._deadline(settings) * 4 + 60,
            model_path=str(model_path),
            settings=settings,
        )
        if not raw["ops"]:
            raise MeasurementFailed(
                "no operator of the model could be profiled: " + "; ".join(raw["notes"])
            )
        return types.OpProfile(
            sha256=sha256,
            ops=raw["ops"],
            method=raw["method"],
            whole_model_p50_us=raw["whole_p50_us"],
            source=types.Source.MEASURED,
            runtime=raw["runtime"],
            notes=tuple(raw["notes"]),
        )

    def validate(
        self, model_path: Path, sha256: str, inputs: Sequence[types.Sample], threads: int = 1
    ) -> list[types.Sample]:
        raw = self.worker.call(
            "validate",
            timeout_s=self.deadline_slack_s + 0.05 * len(inputs),
            model_path=str(model_path),
            samples=list(inputs),
            threads=threads,
        )
        outputs: list[types.Sample] = raw["outputs"]
        return outputs

    def close(self) -> None:
        self.worker.close()
        if self.power_sensor is not None:
            self.power_sensor.close()

    # ---------------------------------------------------------------------- CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("litert backend")
        group.add_argument(
            "--runtime",
            choices=("ai_edge_litert", "tflite_runtime", "tensorflow.lite"),
            help="force one TFLite runtime (default: the first one installed, in that order)",
        )
        group.add_argument(
            "--worker-memory-mb",
            type=int,
            default=None,
            help="memory a model may use beyond the loaded runtime; over it, the run fails",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        sensor_cls = get_sensor_class(args.power_sensor)
        sensor = sensor_cls.from_args(args) if sensor_cls is not None else None
        return cls(
            name=args.name,
            runtime=args.runtime,
            power_sensor=sensor,
            memory_limit_bytes=args.worker_memory_mb * 1024 * 1024
            if args.worker_memory_mb
            else None,
            limits=types.Limits(
                max_model_bytes=args.max_model_mb * 1024 * 1024,
                max_request_seconds=args.max_request_seconds,
                max_runs=DEFAULT_LIMITS.max_runs,
            ),
            storage_path=args.cache_dir or "/",
        )
