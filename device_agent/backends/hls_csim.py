"""The "hls-csim" backend: a generated HLS project served as a device (a stand-in).

It lets the whole FPGA loop run on a machine without a board or Vivado. For each model
(an int8 .tflite 1-D CNN) it generates the HLS project (device_agent.fpga), builds
the C-simulation testbench with g++ once (cached by the model's SHA-256), and then:

- `validate` returns the C simulation's outputs: real, and bit-exact with LiteRT's
  reference int8 kernels (tests/host/test_hls_generator.py);
- `measure` and `profile` return the HALF analytic model's latency, power and energy at
  the board's clock, every figure labelled ESTIMATED, never measured. The C simulation's
  own run time says nothing about the FPGA and is not reported as latency.

`describe()` sets `is_stand_in=True`. The generator is part of the agent package (it needs
LiteRT's flatbuffer schema, numpy and g++, not TensorFlow or the host package).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from device_agent import types
from device_agent.backends.base import Backend, register_backend
from device_agent.errors import CandidateRejected, ConfigError, MeasurementFailed
from device_agent.fpga import boards as fpga
from device_agent.fpga.generator import HlsProject, generate
from device_agent.fpga.parser import parse_tflite
from device_agent.versions import AGENT_VERSION

DEFAULT_LIMITS = types.Limits(max_model_bytes=16 * 1024 * 1024, max_request_seconds=600.0,
                        max_runs=100_000)
BUILD_TIMEOUT_S = 600.0
RUNTIME = types.RuntimeInfo("hilnas-hls-csim", AGENT_VERSION)
ESTIMATED = types.Source.ESTIMATED  # every figure of this stand-in is the HALF model's


@register_backend("hls-csim")
class HlsCsimBackend(Backend):
    """Serves generated HLS projects through their g++ C simulation (see module doc)."""

    def __init__(
        self,
        board: str = "pynq-z1",
        unroll: Literal["min", "max"] = "min",
        clock_mhz: float | None = None,
        work_dir: str | Path | None = None,
        name: str = "",
        limits: types.Limits = DEFAULT_LIMITS,
    ) -> None:
        if unroll not in ("min", "max"):
            raise ConfigError(f"hls-csim: unroll must be 'min' or 'max', not {unroll!r}")
        self.board = fpga.as_board(board, clock_mhz)
        self.unroll = unroll
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="hilnas-hls-csim-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.device_name = name or f"hls-csim-{self.board.name}"
        self.limits = limits
        self._lock = threading.Lock()
        self._projects: dict[str, HlsProject] = {}

    # ------------------------------------------------------------------ projects
    def _project(self, model_path: Path, sha256: str) -> HlsProject:
        with self._lock:
            if sha256 in self._projects:
                return self._projects[sha256]
            data = Path(model_path).read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise CandidateRejected("model bytes do not match their SHA-256")
            out = self.work_dir / sha256[:16]
            project = generate(data, out, board=self.board, unroll=self.unroll)
            try:
                subprocess.run(["make", "-C", str(out), "csim-build"], check=True,
                               capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except subprocess.CalledProcessError as exc:
                raise MeasurementFailed(f"C simulation build failed: {exc.stderr[-2000:]}") from exc
            self._projects[sha256] = project
            return project

    def check_model(self, model_path: Path) -> None:
        parse_tflite(Path(model_path).read_bytes())  # raises CandidateRejected

    def _run_csim(self, project: HlsProject, windows: np.ndarray) -> np.ndarray:
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            fin, fout = Path(tmp) / "input.bin", Path(tmp) / "output.bin"
            np.ascontiguousarray(windows, dtype=np.int8).tofile(fin)
            try:
                subprocess.run([str(project.path / "build" / "csim_tb"), str(fin), str(fout)],
                               check=True, capture_output=True, text=True,
                               timeout=self.limits.max_request_seconds)
            except subprocess.CalledProcessError as exc:
                raise MeasurementFailed(f"C simulation failed: {exc.stderr[-2000:]}") from exc
            out = np.fromfile(fout, dtype=np.int8)
        return out.reshape(len(windows), *project.model.output_shape)

    # ------------------------------------------------------------------ contract
    def describe(self) -> types.DeviceInfo:
        b = self.board
        return self.device_info(
            name=self.device_name,
            kind="fpga",
            board=b.name,
            cpu=platform.processor() or platform.machine(),
            cpu_cores=os.cpu_count() or 1,
            ram_bytes=0,
            storage_bytes=shutil.disk_usage(self.work_dir).free,
            runtimes=(RUNTIME,),
            power_sensor=types.PowerSensorInfo(
                "half-model", ("power", "energy"), ESTIMATED,
                "HALF analytic power model (Eq. 3), not a sensor",
            ),
            limits=self.limits,
            is_stand_in=True,
            extra={"part": b.part, "clock_mhz": f"{b.clock_mhz:g}", "unroll": self.unroll,
                   "outputs": "bit-exact C simulation", "figures": "estimated (HALF model)"},
        )

    def validate(
        self, model_path: Path, sha256: str, inputs: Sequence[types.Sample], threads: int = 1
    ) -> list[types.Sample]:
        project = self._project(model_path, sha256)
        shape = tuple(project.model.input_shape)
        windows = []
        for sample in inputs:
            if len(sample) != 1:
                raise CandidateRejected("the accelerator has exactly one input tensor")
            arr = np.asarray(sample[0])
            if arr.dtype != np.int8 or arr.size != project.model.input_size:
                raise CandidateRejected(
                    f"input must be int8 of shape {shape}, got {arr.dtype} {arr.shape}")
            windows.append(arr.reshape(shape))
        if not windows:
            return []
        outputs = self._run_csim(project, np.stack(windows))
        return [(o,) for o in outputs]

    def measure(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.Measurement:
        settings = settings.validated(self.limits)
        t0 = time.time()
        start = time.perf_counter()
        project = self._project(model_path, sha256)
        # One C-simulation run proves the design executes; its time is not the FPGA's.
        rng = np.random.default_rng(settings.seed)
        probe = rng.integers(-128, 128, size=(1, *project.model.input_shape), dtype=np.int8)
        self._run_csim(project, probe)
        est = project.estimate
        lat_us = (est.latency.value or 0.0) * 1e6
        note = est.latency.note
        latency = types.LatencyStats(
            n=1, min_us=lat_us, p50_us=lat_us, p90_us=lat_us, p99_us=lat_us, max_us=lat_us,
            mean_us=lat_us, std_us=0.0, cv=0.0, median_ci95_relative=0.0, stable=True,
            source=ESTIMATED, timer=f"HALF latency model ({note})",
            stop_reason="analytic model: no timed runs",
        )
        weight_bytes = sum(
            int(np.asarray(layer.weights).size) + 4 * int(np.asarray(layer.bias).size)
            for layer in project.model.layers if layer.weights is not None
        )
        memory = types.MemoryStats(
            peak_rss_bytes=types.Figure.unavailable("an FPGA accelerator has no process memory"),
            model_bytes=types.Figure(float(weight_bytes), ESTIMATED,
                               "on-chip weights (int8) and biases (int32)"),
            arena_bytes=types.Figure.unavailable("activations live in on-chip FIFOs"),
            baseline_rss_bytes=types.Figure.unavailable("not applicable"),
        )
        power = types.PowerStats(
            mean_power_mw=types.Figure((est.power.value or 0.0) * 1e3, ESTIMATED, est.power.note),
            energy_per_inference_uj=types.Figure((est.energy.value or 0.0) * 1e6, ESTIMATED,
                                           est.energy.note),
            idle_power_mw=types.Figure.unavailable("the model has no separate idle figure"),
            samples=0,
            sensor="half-model",
        )
        return types.Measurement(
            sha256=sha256, latency=latency, memory=memory, power=power,
            runtime=RUNTIME, threads=1,
            started_unix=t0, wall_seconds=time.perf_counter() - start, compute_seconds=0.0,
            notes=("stand-in: outputs from the bit-exact C simulation; latency, power and "
                   "energy estimated by the HALF model at "
                   f"{self.board.clock_mhz:g} MHz on {self.board.name}",
                   f"platform power incl. board: {est.platform_power.value:.3f} W (estimated)"),
            device=self.device_name,
        )

    def profile(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.OpProfile:
        project = self._project(model_path, sha256)
        est = project.estimate
        f_hz = est.clock_mhz * 1e6
        total = sum(layer.active_cycles for layer in est.layers) or 1
        ops = tuple(
            types.OpTiming(index=i, op=layer.layer.kind, mean_us=layer.active_cycles / f_hz * 1e6,
                     p50_us=layer.active_cycles / f_hz * 1e6,
                     fraction=layer.active_cycles / total, runs=0)
            for i, layer in enumerate(est.layers)
        )
        return types.OpProfile(
            sha256=sha256, ops=ops, method="HALF model: active cycles per layer",
            whole_model_p50_us=(est.latency.value or 0.0) * 1e6, source=ESTIMATED,
            runtime=RUNTIME,
            notes=("layers run concurrently; fractions are of summed active time",),
        )

    def close(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # ------------------------------------------------------------------ CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("hls-csim backend")
        group.add_argument("--hls-csim-board", default="pynq-z1",
                           help="board of the data file whose clock and constants to model")
        group.add_argument("--hls-csim-unroll", choices=("min", "max"), default="min",
                           help="unrolling of the generated accelerator")
        group.add_argument("--hls-csim-clock-mhz", type=float, default=None,
                           help="clock to model (default: the board's)")
        group.add_argument("--hls-csim-work-dir", default=None,
                           help="where generated projects are kept (default: a temp folder)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        return cls(board=args.hls_csim_board, unroll=args.hls_csim_unroll,
                   clock_mhz=args.hls_csim_clock_mhz, work_dir=args.hls_csim_work_dir,
                   name=getattr(args, "name", "") or "")
