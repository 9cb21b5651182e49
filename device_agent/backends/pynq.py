"""The "pynq" backend: runs generated DNNU accelerators on a PYNQ board's FPGA.

A model for this backend is an FPGA bundle: a zip holding `manifest.json` (written by
`hilnas export hls`), `dnnu.bit` and `dnnu.hwh` (from `make hls bitstream bundle` in the
generated project, with the user's Vivado). The backend loads the overlay with `pynq`,
moves each window through the AXI DMA, and times the DMA round trip on the board's ARM
cores (`time.perf_counter_ns`): those latencies are MEASURED. Where the board exposes PMBus
rails (Ultra96, ZCU10x) power is measured too (device_agent.power.pmbus); elsewhere it is
reported unavailable, never estimated here.

`pynq` is imported lazily. On a machine that is not a PYNQ board (no pynq, or pynq's
"No Devices Found"), constructing the backend raises DeviceUnavailable("no PYNQ device ...").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_agent import types
from device_agent.backends.base import Backend, register_backend
from device_agent.errors import CandidateRejected, DeviceUnavailable, MeasurementFailed
from device_agent.power.base import PowerSensor, power_stats, sensor_info

MEASURED = types.Source.MEASURED  # the board times every run itself
DEFAULT_LIMITS = types.Limits(max_model_bytes=64 * 1024 * 1024, max_request_seconds=120.0,
                        max_runs=100_000)


def import_pynq() -> Any:
    """Import pynq and check a device is there, or raise DeviceUnavailable."""
    try:
        import pynq
    except ImportError as exc:
        raise DeviceUnavailable(
            "no PYNQ device: the pynq package is not installed (this backend runs on a "
            "PYNQ board; use the hls-csim backend elsewhere)"
        ) from exc
    try:
        devices = pynq.Device.devices
    except RuntimeError as exc:  # "No Devices Found" on x86
        raise DeviceUnavailable(f"no PYNQ device: {exc}") from exc
    if not devices:
        raise DeviceUnavailable("no PYNQ device: pynq found no FPGA device")
    return pynq


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    bitfile: Path
    hwh: Path


def read_bundle(path: Path, into: Path) -> Bundle:
    """Unpack an FPGA bundle (zip of manifest.json, *.bit, *.hwh) or raise CandidateRejected."""
    if not zipfile.is_zipfile(path):
        raise CandidateRejected(
            "the pynq backend runs FPGA bundles (a zip of manifest.json, dnnu.bit, dnnu.hwh "
            "from `make bundle` in a generated HLS project), not this file"
        )
    with zipfile.ZipFile(path) as z:
        names = {Path(n).name: n for n in z.namelist()}
        bits = [n for n in names if n.endswith(".bit")]
        if "manifest.json" not in names or len(bits) != 1:
            raise CandidateRejected("FPGA bundle needs manifest.json and exactly one .bit")
        stem = bits[0][:-4]
        if f"{stem}.hwh" not in names:
            raise CandidateRejected(f"FPGA bundle lacks {stem}.hwh next to {stem}.bit")
        into.mkdir(parents=True, exist_ok=True)
        for n in ("manifest.json", f"{stem}.bit", f"{stem}.hwh"):
            (into / n).write_bytes(z.read(names[n]))
    manifest = json.loads((into / "manifest.json").read_text())
    for key in ("input_shape", "output_shape"):
        if key not in manifest:
            raise CandidateRejected(f"FPGA bundle manifest lacks {key}")
    return Bundle(manifest, into / f"{stem}.bit", into / f"{stem}.hwh")


@register_backend("pynq")
class PynqBackend(Backend):
    """Runs DNNU overlays on the FPGA of a PYNQ board (see module doc)."""

    def __init__(self, power_sensor: PowerSensor | None = None, name: str = "",
                 limits: types.Limits = DEFAULT_LIMITS, work_dir: str | Path | None = None) -> None:
        self.pynq = import_pynq()
        self.power_sensor = power_sensor
        self.device_name = name or "pynq"
        self.limits = limits
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="hilnas-pynq-"))
        self._loaded: tuple[str, Any, Bundle] | None = None

    def _overlay(self, model_path: Path, sha256: str) -> tuple[Any, Bundle]:
        if self._loaded and self._loaded[0] == sha256:
            return self._loaded[1], self._loaded[2]
        bundle = read_bundle(Path(model_path), self.work_dir / sha256[:16])
        try:
            overlay = self.pynq.Overlay(str(bundle.bitfile))
        except RuntimeError as exc:
            raise DeviceUnavailable(f"no PYNQ device: {exc}") from exc
        self._loaded = (sha256, overlay, bundle)
        return overlay, bundle

    def _runner(self, overlay: Any, bundle: Bundle) -> Any:
        n_in = int(np.prod(bundle.manifest["input_shape"]))
        n_out = int(np.prod(bundle.manifest["output_shape"]))
        dma = overlay.axi_dma_0
        in_buf = self.pynq.allocate(shape=(n_in,), dtype=np.int8)
        out_buf = self.pynq.allocate(shape=(n_out,), dtype=np.int8)

        def run(window: np.ndarray) -> tuple[np.ndarray, int]:
            in_buf[:] = np.asarray(window, dtype=np.int8).ravel()
            t0 = time.perf_counter_ns()
            dma.recvchannel.transfer(out_buf)
            dma.sendchannel.transfer(in_buf)
            dma.sendchannel.wait()
            dma.recvchannel.wait()
            dt = time.perf_counter_ns() - t0
            return np.array(out_buf, dtype=np.int8).reshape(bundle.manifest["output_shape"]), dt

        return run

    def _runtime(self) -> types.RuntimeInfo:
        return types.RuntimeInfo("pynq", getattr(self.pynq, "__version__", "?"))

    def check_model(self, model_path: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            read_bundle(Path(model_path), Path(tmp))

    def describe(self) -> types.DeviceInfo:
        import platform

        return self.device_info(
            name=self.device_name, kind="fpga", board=platform.node(),
            cpu=platform.processor() or platform.machine(), cpu_cores=1, ram_bytes=0,
            storage_bytes=0,
            runtimes=(self._runtime(),),
            power_sensor=sensor_info(self.power_sensor, "no PMBus rails"), limits=self.limits,
            is_stand_in=False,
        )

    def validate(self, model_path: Path, sha256: str, inputs: Sequence[types.Sample],
                 threads: int = 1) -> list[types.Sample]:
        overlay, bundle = self._overlay(model_path, sha256)
        run = self._runner(overlay, bundle)
        return [(run(sample[0])[0],) for sample in inputs]

    def measure(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.Measurement:
        settings = settings.validated(self.limits)
        overlay, bundle = self._overlay(model_path, sha256)
        run = self._runner(overlay, bundle)
        rng = np.random.default_rng(settings.seed)
        shape = tuple(bundle.manifest["input_shape"])
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        for _ in range(settings.warmup_runs):
            run(x)
        t_wall, started = time.perf_counter(), time.time()
        samples: list[float] = []
        if self.power_sensor is not None:
            self.power_sensor.start()
        trace, failure = None, ""
        try:
            while len(samples) < settings.max_runs:
                samples.append(run(x)[1] / 1000.0)
                if (len(samples) >= settings.min_runs
                        and time.perf_counter() - t_wall > settings.time_budget_seconds):
                    break
        except Exception as exc:
            raise MeasurementFailed(f"DMA run failed: {exc}") from exc
        finally:
            if self.power_sensor is not None:
                try:
                    trace = self.power_sensor.stop()
                except RuntimeError as exc:
                    failure = str(exc)
        compute = sum(samples) / 1e6
        lat = types.latency_stats(samples, source=MEASURED, timer="perf_counter_ns on the PS "
                            "(DMA round trip)", stop_reason="runs or time budget",
                            target_ci_relative=settings.target_ci_relative)
        power: types.PowerStats = power_stats(self.power_sensor, trace, inferences=len(samples),
                                        compute_seconds=compute, failure=failure)
        memory = types.MemoryStats(
            peak_rss_bytes=types.Figure.unavailable("weights and activations are on chip"),
            model_bytes=types.Figure.measured(bundle.bitfile.stat().st_size, "bitstream size"),
            arena_bytes=types.Figure.unavailable("activations live in on-chip FIFOs"),
            baseline_rss_bytes=types.Figure.unavailable("not applicable"),
        )
        return types.Measurement(sha256=sha256, latency=lat, memory=memory, power=power,
                           runtime=self._runtime(),
                           threads=1, started_unix=started,
                           wall_seconds=time.perf_counter() - t_wall, compute_seconds=compute,
                           device=self.device_name)

    def profile(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.OpProfile:
        m = self.measure(model_path, sha256, settings)
        op = types.OpTiming(0, "dnnu", m.latency.mean_us, m.latency.p50_us, 1.0, m.latency.n)
        return types.OpProfile(sha256=sha256, ops=(op,),
                               method="whole accelerator (layers overlap)",
                               whole_model_p50_us=m.latency.p50_us, source=MEASURED,
                               runtime=m.runtime)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("pynq backend")
        group.add_argument("--pynq-work-dir", default=None, help="where bundles are unpacked")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        from device_agent.power.base import get_sensor_class

        sensor_cls = get_sensor_class(getattr(args, "power_sensor", "none") or "none")
        sensor = sensor_cls.from_args(args) if sensor_cls is not None else None
        return cls(power_sensor=sensor, name=getattr(args, "name", "") or "",
                   work_dir=getattr(args, "pynq_work_dir", None))
