"""The "serial" backend: a bridge from the gRPC contract to a board running the hilnas firmware.

Describe comes from the board's INFO; Measure uploads the model (skipped when the board's
flash already holds it), allocates it, and runs INVOKE batches timed on the board itself
with micros(): the latency reported is the board's own timing, never the host's clock
across USB. Validate sets inputs and reads outputs. The same class drives the emulated board
(device_agent.backends.mcu_emulator); what the board says about itself in INFO
(`latency_source`, `emulated`, `ptr_bytes`) decides how every figure is labelled.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from device_agent import types
from device_agent.backends.base import Backend, register_backend
from device_agent.errors import (
    CandidateRejected,
    ConfigError,
    DeviceUnavailable,
    MeasurementFailed,
)
from device_agent.power.base import sensor_info
from device_agent.serial_protocol import (
    MAX_TIMED_RUNS,
    Allocation,
    BoardClient,
    BoardInfo,
    SerialLink,
    TensorInfo,
    UploadReport,
    open_port,
)
from device_agent.tflite_schema import model_ops

#: One INVOKE batch should take about this long on the board: long enough that the serial
#: round trip is negligible, short enough that a hung board is noticed quickly.
BATCH_SECONDS = 1.0


def _add(parser: argparse.ArgumentParser, *flags: str, **kwargs: object) -> None:
    """Add an option unless another backend already added it (all backends share a parser)."""
    try:
        parser.add_argument(*flags, **kwargs)  # type: ignore[arg-type]
    except argparse.ArgumentError:
        pass


@register_backend("serial")
class SerialBridgeBackend(Backend):
    """A board on a serial port (USB CDC), e.g. an Arduino Nano 33 BLE with firmware/."""

    def __init__(
        self,
        port: str,
        *,
        baud: int = 115200,
        name: str | None = None,
        margin_s: float = 0.25,
    ) -> None:
        self.port = port
        self.baud = baud
        self._name = name
        self._link = SerialLink(open_port(port, baud), baud=baud, margin_s=margin_s)
        self.client = BoardClient(self._link)
        try:
            self.client.fetch_info(first=True)
        except DeviceUnavailable as exc:
            self._link.close()
            raise DeviceUnavailable(f"no hilnas board answers on {port}: {exc}") from exc
        except Exception:
            self._link.close()
            raise
        self._allocated_sha: str | None = None
        self._alloc: Allocation | None = None
        self.last_upload: UploadReport | None = None

    # ----------------------------------------------------------------------------- helpers
    @property
    def info(self) -> BoardInfo:
        return self.client.info

    @property
    def is_stand_in(self) -> bool:
        return self.info.emulated

    def _latency_source(self) -> types.Source:
        # Only a board that timed runs with its own clock is "measured"; the emulator says
        # `estimated` (cycle model) and is never promoted.
        if self.info.latency_source == "measured" and not self.info.emulated:
            return types.Source.MEASURED
        return types.Source.ESTIMATED

    def _arena_note(self, model: bytes) -> str:
        if self.info.ptr_bytes == 4:
            return "MicroInterpreter::arena_used_bytes() on the board"
        return (
            f"TFLM's arena planned on a {8 * self.info.ptr_bytes}-bit host (emulated board): "
            "pointer-sized structures are larger than on a 32-bit Cortex-M"
        )

    def _prepare(self, model_path: Path, sha256: str) -> None:
        """Upload (unless held) and allocate the model; cached per hash."""
        self.check_model(model_path)
        if self._allocated_sha == sha256 and self._alloc is not None:
            return
        model = model_path.read_bytes()
        self._allocated_sha = None
        self.last_upload = self.client.upload(model, sha256)
        self._alloc = self.client.allocate()
        self._allocated_sha = sha256

    def _invalidate(self) -> None:
        self._allocated_sha = None
        self._alloc = None

    @staticmethod
    def _input_bytes(t: TensorInfo, data: np.ndarray | None, rng: np.random.Generator) -> bytes:
        dtype = np.dtype(t.dtype)
        if data is None:
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                arr = rng.integers(info.min, info.max, size=t.shape, endpoint=True).astype(dtype)
            else:
                arr = rng.standard_normal(t.shape).astype(dtype)
        else:
            arr = np.asarray(data)
            if arr.size != int(np.prod(t.shape)):
                raise ConfigError(
                    f"input of shape {arr.shape} does not match the model's {t.shape}"
                )
            arr = arr.astype(dtype, copy=False).reshape(t.shape)
        raw = np.ascontiguousarray(arr).tobytes()
        if len(raw) != t.nbytes:
            raise ConfigError(f"input has {len(raw)} bytes, the model's tensor {t.nbytes}")
        return raw

    # ----------------------------------------------------------------------------- Backend
    def describe(self) -> types.DeviceInfo:
        info = self.client.fetch_info()
        extra = {
            "serial_port": self.port,
            "serial_protocol": f"{info.proto[0]}.{info.proto[1]}",
            "firmware": info.firmware_version,
            "clock_hz": str(info.clock_hz),
            "timer": info.timer,
            "latency_source": info.latency_source,
            "arena_bytes": str(info.arena_bytes),
            "model_slot_bytes": str(info.model_slot_bytes),
            "ops": ",".join(info.ops),
            "arena_ptr_bytes": str(info.ptr_bytes),
        }
        if info.emulated:
            extra["stand_in"] = (
                "emulated microcontroller: real TFLite Micro on the host; latency estimated by "
                f"the cycle model {info.raw.get('cycle_model', '')}"
            )
        return self.device_info(
            name=self._name or f"{info.board}@{self.port}",
            kind="mcu",
            board=info.board,
            cpu=info.cpu,
            cpu_cores=1,
            ram_bytes=info.ram_bytes,
            storage_bytes=info.flash_bytes,
            runtimes=(types.RuntimeInfo("tflite-micro", info.tflm_version),),
            power_sensor=sensor_info(None, "no sensor on the board"),
            limits=types.Limits(
                max_model_bytes=info.model_slot_bytes,
                max_request_seconds=600.0,
                max_runs=10_000,
                ram_budget_bytes=info.arena_bytes,
                flash_budget_bytes=info.model_slot_bytes,
            ),
            is_stand_in=info.emulated,
            extra=extra,
        )

    def check_model(self, model_path: Path) -> None:
        size = model_path.stat().st_size
        info = self.info
        if size > info.model_slot_bytes:
            raise CandidateRejected(
                f"model of {size} B does not fit the {info.board}'s flash model slot of "
                f"{info.model_slot_bytes} B"
            )
        try:
            # Custom operators by name, as the firmware's resolver registers them (TFLM's
            # DECODE in a LUT-compressed model is "TFLM_DECODE"); CandidateRejected if
            # unreadable.
            ops = model_ops(model_path.read_bytes(), custom_names=True)
        except ConfigError:  # no TFLite schema on the bridge host: the board will say
            return
        missing = sorted(set(ops) - set(info.ops))
        if missing:
            raise CandidateRejected(
                f"the {info.board} firmware's op resolver lacks {', '.join(missing)}"
            )

    def measure(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.Measurement:
        settings = settings.validated()
        started = time.time()
        t0 = time.monotonic()
        try:
            return self._measure(model_path, sha256, settings, started, t0)
        except DeviceUnavailable:
            self._invalidate()
            raise

    def _measure(
        self,
        model_path: Path,
        sha256: str,
        settings: types.MeasureSettings,
        started: float,
        t0: float,
    ) -> types.Measurement:
        self._prepare(model_path, sha256)
        alloc = self._alloc
        assert alloc is not None
        rng = np.random.default_rng(settings.seed)
        for i, t in enumerate(alloc.inputs):
            data: np.ndarray | None = None
            if settings.input_source is types.InputSource.PROVIDED and settings.inputs:
                data = settings.inputs[i]
            elif settings.input_source is types.InputSource.ZEROS:
                data = np.zeros(t.shape)
            self.client.set_input(i, self._input_bytes(t, data, rng))
        # A first run learns the latency, so batches can be sized to ~BATCH_SECONDS each.
        first = self.client.invoke(1, warmup=0, expected_s=30.0)
        per_run_s = max(first.max_us, 1) / 1e6
        samples: list[float] = []
        warmup = settings.warmup_runs
        stop_reason = "max_runs"
        compute_s = 0.0
        while len(samples) < settings.max_runs:
            if len(samples) >= settings.min_runs:
                stats = types.latency_stats(
                    samples,
                    source=types.Source.ESTIMATED,
                    timer="board",
                    stop_reason="",
                    target_ci_relative=settings.target_ci_relative,
                )
                if stats.stable:
                    stop_reason = "stable"
                    break
            elapsed = time.monotonic() - t0
            if elapsed >= settings.time_budget_seconds:
                stop_reason = "time_budget"
                break
            runs = int(
                min(
                    MAX_TIMED_RUNS,
                    settings.max_runs - len(samples),
                    max(1, int(BATCH_SECONDS / per_run_s)),
                )
            )
            expected = (runs + warmup) * per_run_s
            try:
                self.client.invoke(runs, warmup=warmup, expected_s=2 * expected + 1.0)
            except MeasurementFailed:
                self._invalidate()
                raise
            warmup = 0
            samples.extend(self.client.get_timings(runs))
            compute_s += expected
        source = self._latency_source()
        timer = (
            "micros() on the board"
            if source is types.Source.MEASURED
            else (f"cycle model {self.info.raw.get('cycle_model', '')} (estimated, not measured)")
        )
        lat = types.latency_stats(
            samples,
            source=source,
            timer=timer,
            stop_reason=stop_reason,
            target_ci_relative=settings.target_ci_relative,
        )
        size = model_path.stat().st_size
        memory = types.MemoryStats(
            peak_rss_bytes=types.Figure.unavailable("a microcontroller has no process RSS"),
            model_bytes=types.Figure.measured(size, "bytes in the board's flash model slot"),
            arena_bytes=types.Figure.measured(
                alloc.arena_used, self._arena_note(model_path.read_bytes())
            ),
            baseline_rss_bytes=types.Figure.unavailable("a microcontroller has no process RSS"),
        )
        notes = [
            f"arena {alloc.arena_used} of {alloc.arena_capacity} B",
            f"latency source: {source.value} ({timer})",
        ]
        if self.last_upload is not None:
            up = self.last_upload
            notes.append(
                "upload skipped: the board already held this model"
                if up.skipped
                else f"upload {up.bytes} B in {up.seconds:.2f} s"
            )
        if self.info.emulated:
            notes.append("stand-in: emulated microcontroller, not a board")
        return types.Measurement(
            sha256=sha256,
            latency=lat,
            memory=memory,
            power=types.PowerStats.unavailable("no power sensor on this board"),
            runtime=types.RuntimeInfo("tflite-micro", self.info.tflm_version),
            threads=1,
            started_unix=started,
            wall_seconds=time.monotonic() - t0,
            compute_seconds=compute_s if math.isfinite(compute_s) else 0.0,
            notes=tuple(notes),
            device=self._name or self.info.board,
        )

    def profile(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.OpProfile:
        raise MeasurementFailed(
            f"per-operator profiling is not supported by the hilnas firmware on the "
            f"{self.info.board} (serial protocol {self.info.proto[0]}.{self.info.proto[1]} times "
            "whole invocations only); use Measure"
        )

    def validate(
        self, model_path: Path, sha256: str, inputs: Sequence[types.Sample], threads: int = 1
    ) -> list[types.Sample]:
        try:
            self._prepare(model_path, sha256)
            alloc = self._alloc
            assert alloc is not None
            rng = np.random.default_rng(0)
            results: list[types.Sample] = []
            for sample in inputs:
                if len(sample) != len(alloc.inputs):
                    raise ConfigError(
                        f"sample has {len(sample)} arrays, the model {len(alloc.inputs)} inputs"
                    )
                for i, t in enumerate(alloc.inputs):
                    self.client.set_input(i, self._input_bytes(t, sample[i], rng))
                # Reset LSTM state before the run, so every sample is independent.
                self.client.invoke(1, reset_state=True, expected_s=30.0)
                outs = []
                for i, t in enumerate(alloc.outputs):
                    raw = self.client.get_output(i, t.nbytes)
                    outs.append(np.frombuffer(raw, dtype=t.dtype).reshape(t.shape).copy())
                results.append(tuple(outs))
            return results
        except DeviceUnavailable:
            self._invalidate()
            raise

    def close(self) -> None:
        self._link.close()

    # ---------------------------------------------------------------------------- CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        _add(parser, "--serial-port", default=None, help="serial: the board's port (/dev/ttyACM0)")
        _add(
            parser,
            "--baud",
            type=int,
            default=115200,
            help="serial: baud rate (USB CDC ignores it)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        port = getattr(args, "serial_port", None)
        if not port:
            raise ConfigError("--serial-port is required for --backend serial")
        return cls(port, baud=getattr(args, "baud", 115200), name=getattr(args, "name", None))
