"""The "adb" backend: an Android phone driven by adb and LiteRT's `benchmark_model` binary.

The agent runs on the machine the phone is plugged into (a bridge). It pushes the user's
`benchmark_model` build to the phone once (by its SHA-256, so a new build is pushed again),
pushes each candidate by its hash into a cache directory on the phone, runs the binary,
and parses what it prints. That is how on-phone latency is measured in practice (the
binary is what nn-Meter and AI Benchmark use too).

Figures and their sources:

- latency: what the binary measures on the phone (count, avg, std, min, max of the timed
  runs). It prints no percentiles, so p50/p90/p99 are NaN unless the user asks for
  `--adb-latency-mode repeated`: many short invocations of one timed run each, whose
  single-run times then give real percentiles (the notes say which mode was used);
- memory: the binary's "Peak memory footprint" (or, in newer builds, the "delta from the
  start of the tool") in MB, which it calls approximate; the model file's size;
- power: the phone's battery gauge (device_agent.power.android_battery), with caveats;
- every figure is MEASURED on a phone, and REPLAYED when the phone is the test stand-in.

The stand-in (tests/device_agent/adb_standin) declares itself with the system property
`ro.hilnas.adb_stand_in=1`, which no real phone sets; Describe reports `is_stand_in` from
it. That is a self-declaration read from the device, the only thing a bridge can know.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import shlex
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from device_agent import types
from device_agent.adb.benchmark_output import BenchmarkOutput, parse_benchmark_output
from device_agent.adb.client import AdbClient
from device_agent.adb.hygiene import (
    Snapshot,
    cool_down,
    find_battery_node,
    pin_mask,
    snapshot,
    throttle_warnings,
)
from device_agent.backends.base import Backend, register_backend
from device_agent.errors import CandidateRejected, ConfigError, MeasurementFailed
from device_agent.power.base import (
    PowerSensor,
    PowerTrace,
    get_sensor_class,
    power_stats,
    sensor_info,
)
from device_agent.tflite_schema import model_ops

STAND_IN_PROPERTY = "ro.hilnas.adb_stand_in"
RUNTIME_NAME = "litert-benchmark_model"
DEFAULT_LIMITS = types.Limits(
    max_model_bytes=64 * 1024 * 1024, max_request_seconds=600.0, max_runs=5000
)
NAN = float("nan")
# Phrases in benchmark_model's output that mean the model, not the phone, is at fault.
_REJECT_PATTERNS = (
    "Didn't find op for builtin opcode",
    "Encountered unresolved custom op",
    "Failed to mmap model",
    "Failed to allocate tensors",
    "is not supported",
)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@register_backend("adb")
class AdbBackend(Backend):
    """An Android phone on adb, measured with LiteRT's benchmark_model binary."""

    def __init__(
        self,
        *,
        client: AdbClient,
        benchmark_binary: str | Path,
        name: str = "phone",
        device_dir: str = "/data/local/tmp/hilnas",
        pin: str = "none",
        cool_down_c: float | None = None,
        cool_down_max_s: float = 300.0,
        hot_c: float = 40.0,
        latency_mode: str = "summary",
        power_sensor: PowerSensor | None = None,
        power_min_seconds: float = 5.0,
        limits: types.Limits = DEFAULT_LIMITS,
        run_slack_s: float = 60.0,
    ) -> None:
        if latency_mode not in ("summary", "repeated"):
            raise ConfigError(
                f"--adb-latency-mode must be summary or repeated, not {latency_mode!r}"
            )
        self.client = client
        self.device_name = name
        self.device_dir = device_dir.rstrip("/")
        self.pin = pin
        self.cool_down_c = cool_down_c
        self.cool_down_max_s = cool_down_max_s
        self.hot_c = hot_c
        self.latency_mode = latency_mode
        self.power_sensor = power_sensor
        self.power_min_seconds = power_min_seconds
        self.limits = limits
        self.run_slack_s = run_slack_s

        self.binary_local = Path(benchmark_binary)
        if not self.binary_local.is_file():
            raise ConfigError(f"--benchmark-binary {self.binary_local} is not a file")
        self.serial = client.select()  # DeviceUnavailable for offline/unauthorized/ambiguous
        props = client.getprops()
        self.is_stand_in = props.get(STAND_IN_PROPERTY) == "1"
        self.source = types.Source.REPLAYED if self.is_stand_in else types.Source.MEASURED
        if power_sensor is not None and hasattr(power_sensor, "stand_in"):
            power_sensor.stand_in = self.is_stand_in
        self.battery_node = find_battery_node(client)

        client.shell_argv(["mkdir", "-p", f"{self.device_dir}/models", f"{self.device_dir}/io"])
        self._remote_models = set(self._ls(f"{self.device_dir}/models"))
        self.binary_sha256 = sha256_file(self.binary_local)
        self.binary_remote = f"{self.device_dir}/benchmark_model-{self.binary_sha256[:16]}"
        if Path(self.binary_remote).name not in self._ls(self.device_dir):
            client.push(self.binary_local, self.binary_remote, timeout_s=300)
            client.shell_argv(["chmod", "755", self.binary_remote])
        # The binary has no --version; its help lists the flags (what Validate needs), and
        # builds since about 2.13 print "Tensorflow Version : X" when they start.
        self.help_text = client.shell_argv(
            [self.binary_remote, "--help"], check=False, timeout_s=60
        )
        self.tool_version = parse_benchmark_output(self.help_text).version

    # ------------------------------------------------------------------ helpers
    def _ls(self, directory: str) -> list[str]:
        out = self.client.shell(f"ls {shlex.quote(directory)} 2>/dev/null", check=False)
        return [x.strip() for x in out.split() if x.strip()]

    def runtime(self) -> types.RuntimeInfo:
        version = self.tool_version or "version not printed by this build"
        binary = f"binary sha256 {self.binary_sha256[:12]}"
        return types.RuntimeInfo(RUNTIME_NAME, f"{version} ({binary})")

    def _push_model(self, model_path: Path, sha256: str) -> str:
        name = f"{sha256}.tflite"
        remote = f"{self.device_dir}/models/{name}"
        if name not in self._remote_models:
            self.client.push(model_path, remote, timeout_s=300)
            self._remote_models.add(name)
        return remote

    def check_model(self, model_path: Path) -> None:
        size = model_path.stat().st_size
        if size > self.limits.max_model_bytes:
            raise CandidateRejected(
                f"model is {size} bytes, over this phone's limit {self.limits.max_model_bytes}"
            )
        # Read it on the bridge before a phone gets it: a damaged flatbuffer is refused here
        # with a clear reason, not by benchmark_model's crash on the phone.
        try:
            model_ops(model_path.read_bytes())
        except ConfigError:  # no TFLite schema on the bridge: benchmark_model will say
            pass

    def _run_binary(
        self, flags: Sequence[str], *, mask: str | None, timeout_s: float
    ) -> tuple[BenchmarkOutput, str]:
        argv = (["taskset", mask] if mask else []) + [self.binary_remote, *flags]
        cmd = " ".join(shlex.quote(a) for a in argv) + " 2>&1"
        text = self.client.shell(cmd, timeout_s=timeout_s, check=False)
        parsed = parse_benchmark_output(text)
        if parsed.version:
            self.tool_version = parsed.version
        if parsed.failed:
            detail = "; ".join(parsed.errors[-4:]) or text.strip()[-300:]
            if any(p in text for p in _REJECT_PATTERNS):
                raise CandidateRejected(f"benchmark_model cannot run this model: {detail}")
            raise MeasurementFailed(f"benchmark_model failed on {self.serial}: {detail}")
        return parsed, text

    def _prepare(self) -> tuple[Snapshot, str | None, list[str]]:
        """Cool down if asked, take the 'before' snapshot and choose the pinning mask."""
        notes: list[str] = []
        if self.cool_down_c is not None:
            waited, before, warning = cool_down(
                self.client,
                self.battery_node,
                target_c=self.cool_down_c,
                max_wait_s=self.cool_down_max_s,
            )
            if waited:
                notes.append(f"waited {waited:.0f} s for the phone to cool down")
            if warning:
                notes.append(f"WARNING: {warning}")
        else:
            before = snapshot(self.client, self.battery_node)
        try:
            mask, how = pin_mask(self.pin, before)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        notes.append(how)
        return before, mask, notes

    def _after(self, before: Snapshot) -> list[str]:
        after = snapshot(self.client, self.battery_node)
        notes = [f"before: {before.describe()}", f"after: {after.describe()}"]
        notes += [f"WARNING: {w}" for w in throttle_warnings(before, after, hot_c=self.hot_c)]
        return notes

    def _base_flags(self, remote: str, settings: types.MeasureSettings) -> list[str]:
        return [f"--graph={remote}", f"--num_threads={settings.threads}"]

    # ------------------------------------------------------------------ describe
    def describe(self) -> types.DeviceInfo:
        props = self.client.getprops()
        meminfo = self.client.shell("cat /proc/meminfo", check=False)
        m = re.search(r"MemTotal:\s+(\d+)\s*kB", meminfo)
        ram = int(m.group(1)) * 1024 if m else 0
        possible = self.client.shell("cat /sys/devices/system/cpu/possible", check=False).strip()
        cores = _count_cpus(possible)
        df = self.client.shell("df -k /data", check=False).splitlines()
        storage = 0
        if len(df) >= 2 and len(df[-1].split()) >= 4 and df[-1].split()[1].isdigit():
            storage = int(df[-1].split()[1]) * 1024
        soc = (
            props.get("ro.soc.model")
            or props.get("ro.board.platform")
            or props.get("ro.hardware")
            or "unknown SoC"
        )
        vendor = props.get("ro.soc.manufacturer", "")
        model = props.get("ro.product.model", "unknown phone")
        maker = props.get("ro.product.manufacturer", "")
        return self.device_info(
            name=self.device_name,
            kind="android",
            board=f"{maker} {model}".strip(),
            cpu=f"{vendor} {soc}".strip(),
            cpu_cores=cores,
            ram_bytes=ram,
            storage_bytes=storage,
            runtimes=(self.runtime(),),
            power_sensor=sensor_info(self.power_sensor),
            limits=self.limits,
            is_stand_in=self.is_stand_in,
            extra={
                "serial": self.serial,
                "android_version": props.get("ro.build.version.release", ""),
                "sdk": props.get("ro.build.version.sdk", ""),
                "soc": soc,
                "abi": props.get("ro.product.cpu.abi", ""),
                "benchmark_binary_sha256": self.binary_sha256,
                "benchmark_version": self.tool_version or "not printed by this build",
                "stand_in_property": props.get(STAND_IN_PROPERTY, ""),
            },
        )

    # ------------------------------------------------------------------ measure
    def measure(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.Measurement:
        settings = settings.validated(self.limits)
        self.check_model(model_path)
        remote = self._push_model(model_path, sha256)
        started = time.time()
        t0 = time.perf_counter()
        before, mask, notes = self._prepare()
        if settings.input_source.value != "random":
            notes.append("benchmark_model fed random inputs (its default), not the requested ones")

        sensor = self.power_sensor
        idle: float | None = None
        trace: PowerTrace | None = None
        power_failure = ""
        if sensor is not None:
            idle = _call_quiet(getattr(sensor, "idle_mw", None))
            _call_quiet(getattr(sensor, "begin", None))
            sensor.start()
        try:
            if self.latency_mode == "summary":
                latency, compute_s, inferences, parsed, run_notes = self._measure_summary(
                    remote, settings, mask
                )
            else:
                latency, compute_s, inferences, parsed, run_notes = self._measure_repeated(
                    remote, settings, mask
                )
        finally:
            if sensor is not None:
                try:
                    trace = sensor.stop()
                except RuntimeError as exc:
                    power_failure = str(exc)
                _call_quiet(getattr(sensor, "end", None))
        notes += run_notes
        notes += self._after(before)
        power = self._power(sensor, trace, inferences, compute_s, idle, power_failure, notes)
        return types.Measurement(
            sha256=sha256,
            latency=latency,
            memory=self._memory(parsed, model_path),
            power=power,
            runtime=self.runtime(),
            threads=settings.threads,
            started_unix=started,
            wall_seconds=time.perf_counter() - t0,
            compute_seconds=compute_s,
            notes=tuple(notes),
            device=self.device_name,
        )

    def _measure_summary(
        self, remote: str, settings: types.MeasureSettings, mask: str | None
    ) -> tuple[types.LatencyStats, float, int, BenchmarkOutput, list[str]]:
        min_secs = self.power_min_seconds if self.power_sensor is not None else 0.0
        flags = self._base_flags(remote, settings) + [
            f"--warmup_runs={settings.warmup_runs}",
            "--warmup_min_secs=0",
            f"--num_runs={settings.min_runs}",
            f"--min_secs={min_secs:g}",
            f"--max_secs={settings.time_budget_seconds:g}",
        ]
        parsed, _ = self._run_binary(
            flags, mask=mask, timeout_s=settings.time_budget_seconds * 2 + self.run_slack_s
        )
        runs = parsed.inference
        if runs is None or runs.avg_us is None:
            raise MeasurementFailed("benchmark_model printed no statistics for the timed runs")
        std = runs.std_us if runs.std_us is not None else NAN
        latency = types.LatencyStats(
            n=runs.count,
            min_us=runs.min_us if runs.min_us is not None else NAN,
            p50_us=NAN,
            p90_us=NAN,
            p99_us=NAN,
            max_us=runs.max_us if runs.max_us is not None else NAN,
            mean_us=runs.avg_us,
            std_us=std,
            cv=std / runs.avg_us if runs.avg_us > 0 else NAN,
            median_ci95_relative=math.inf,
            stable=False,
            source=self.source,
            timer="benchmark_model on the phone (per-run wall clock, microseconds)",
            stop_reason=(
                f"benchmark_model ran {runs.count} timed runs (num_runs={settings.min_runs}, "
                f"min_secs={min_secs:g}, max_secs={settings.time_budget_seconds:g})"
            ),
        )
        notes = [
            "latency mode summary: benchmark_model reports count/avg/std/min/max only; "
            "p50/p90/p99 are NaN (not measured); use --adb-latency-mode repeated for "
            "percentiles from repeated short runs",
            f"init {_us(parsed.init_us)}, first inference {_us(parsed.first_inference_us)} "
            f"({parsed.first_inference_source}), warm-up avg {_us(parsed.warmup_avg_us)}",
        ]
        if parsed.errors:
            notes.append("benchmark_model reported: " + "; ".join(parsed.errors[-3:]))
        compute_s = runs.count * runs.avg_us / 1e6
        return latency, compute_s, runs.count, parsed, notes

    def _measure_repeated(
        self, remote: str, settings: types.MeasureSettings, mask: str | None
    ) -> tuple[types.LatencyStats, float, int, BenchmarkOutput, list[str]]:
        flags = self._base_flags(remote, settings) + [
            f"--warmup_runs={settings.warmup_runs}",
            "--warmup_min_secs=0",
            "--num_runs=1",
            "--min_secs=0",
        ]
        samples: list[float] = []
        deadline = time.monotonic() + settings.time_budget_seconds
        parsed: BenchmarkOutput | None = None
        stop = "run cap"
        while len(samples) < settings.min_runs:
            if time.monotonic() > deadline:
                stop = "time budget"
                break
            parsed, _ = self._run_binary(flags, mask=mask, timeout_s=self.run_slack_s + 60)
            value = parsed.inference.avg_us if parsed.inference else parsed.inference_avg_us
            if value is None:
                raise MeasurementFailed("benchmark_model printed no time for its timed run")
            samples.append(value)
        assert parsed is not None
        latency = types.latency_stats(
            samples,
            source=self.source,
            timer=(
                "benchmark_model on the phone: one timed run per invocation, after "
                f"{settings.warmup_runs} warm-up runs, {len(samples)} invocations"
            ),
            stop_reason=stop,
            target_ci_relative=settings.target_ci_relative,
        )
        notes = [
            f"latency mode repeated: percentiles over {len(samples)} separate "
            "benchmark_model invocations of one timed run each (each in a fresh process "
            "after its warm-up), not over one long run",
        ]
        return latency, sum(samples) / 1e6, len(samples), parsed, notes

    def _memory(self, parsed: BenchmarkOutput, model_path: Path) -> types.MemoryStats:
        model = types.Figure.measured(model_path.stat().st_size, "model file size (bytes)")
        arena = types.Figure.unavailable("benchmark_model does not report the tensor arena")
        if parsed.memory_overall_mb is None:
            peak = types.Figure.unavailable("this benchmark_model build prints no memory footprint")
            base = types.Figure.unavailable("this benchmark_model build prints no memory footprint")
        else:
            mib = 1024 * 1024
            what = (
                "peak memory footprint"
                if parsed.memory_kind == "peak"
                else "memory footprint delta from the tool's start (not absolute RSS)"
            )
            peak = types.Figure(
                parsed.memory_overall_mb * mib,
                self.source,
                f"benchmark_model {what}, overall; the tool calls it approximate",
            )
            base = types.Figure(
                (parsed.memory_init_mb or 0.0) * mib,
                self.source,
                f"benchmark_model {what} after initialisation",
            )
        return types.MemoryStats(peak_rss_bytes=peak, model_bytes=model, arena_bytes=arena,
                           baseline_rss_bytes=base)

    def _power(
        self,
        sensor: PowerSensor | None,
        trace: PowerTrace | None,
        inferences: int,
        compute_s: float,
        idle: float | None,
        failure: str,
        notes: list[str],
    ) -> types.PowerStats:
        if sensor is None:
            return types.PowerStats.unavailable("no power sensor configured (--power-sensor)")
        verdict = getattr(sensor, "verdict", None)
        if verdict is not None:
            why, caveats = verdict(trace)
            notes.extend(f"power: {c}" for c in caveats)
            if why:
                return types.PowerStats.unavailable(why, sensor.info().name)
        return power_stats(
            sensor, trace, inferences=inferences, compute_seconds=compute_s, idle_mw=idle,
            failure=failure,
        )

    # ------------------------------------------------------------------ profile
    def profile(
        self, model_path: Path, sha256: str, settings: types.MeasureSettings
    ) -> types.OpProfile:
        settings = settings.validated(self.limits)
        self.check_model(model_path)
        remote = self._push_model(model_path, sha256)
        before, mask, notes = self._prepare()
        flags = self._base_flags(remote, settings) + [
            f"--warmup_runs={settings.warmup_runs}",
            "--warmup_min_secs=0",
            f"--num_runs={settings.min_runs}",
            "--min_secs=0",
            f"--max_secs={settings.time_budget_seconds:g}",
            "--enable_op_profiling=true",
        ]
        parsed, _ = self._run_binary(
            flags, mask=mask, timeout_s=settings.time_budget_seconds * 2 + self.run_slack_s
        )
        notes += self._after(before)
        section = parsed.profile_runs
        if section is None or not section.run_order:
            raise MeasurementFailed(
                "benchmark_model printed no operator table; was it built without profiling?"
            )
        runs = section.timings.count if section.timings else (
            parsed.inference.count if parsed.inference else 0
        )
        total = sum(r.avg_ms for r in section.run_order) or 1.0
        ops = tuple(
            types.OpTiming(
                index=r.node_index if r.node_index is not None else i,
                op=r.node_type,
                mean_us=r.avg_ms * 1000.0,
                p50_us=NAN,
                fraction=r.avg_ms / total,
                runs=runs,
            )
            for i, r in enumerate(section.run_order)
        )
        whole = section.timings.avg_us if section.timings else parsed.inference_avg_us
        notes += [
            "benchmark_model --enable_op_profiling: per-operator averages over the timed runs; "
            "operator p50 and whole-model p50 are NaN (the tool gives averages only)",
            f"whole-model average with profiling on: {_us(whole)}",
        ]
        names = [r.name for r in section.run_order[:3]]
        if names:
            notes.append("first operators: " + ", ".join(names))
        if any(r.node_index is None for r in section.run_order):
            notes.append("this build prints no node indices; index is the run-order position")
        return types.OpProfile(
            sha256=sha256,
            ops=ops,
            method="litert benchmark_model --enable_op_profiling (Run Order table, avg ms)",
            whole_model_p50_us=NAN,
            source=self.source,
            runtime=self.runtime(),
            notes=tuple(notes),
        )

    # ------------------------------------------------------------------ validate
    def validate(
        self, model_path: Path, sha256: str, inputs: Sequence[types.Sample], threads: int = 1
    ) -> list[types.Sample]:
        missing = [
            f for f in ("input_layer_value_files", "output_filepath") if f not in self.help_text
        ]
        if missing:
            raise MeasurementFailed(
                "this benchmark_model build cannot run Validate: its --help lists no "
                + " and no ".join(f"--{f}" for f in missing)
                + " (outputs cannot be pulled back); use a LiteRT build that has them"
            )
        in_details, out_details = _tensor_details(model_path)
        remote = self._push_model(model_path, sha256)
        io = f"{self.device_dir}/io"
        results: list[types.Sample] = []
        with tempfile.TemporaryDirectory(prefix="hilnas-adb-") as tmp:
            for sample in inputs:
                if len(sample) != len(in_details):
                    raise CandidateRejected(
                        f"model has {len(in_details)} inputs, sample has {len(sample)}"
                    )
                names, shapes, files = [], [], []
                for j, (arr, det) in enumerate(zip(sample, in_details, strict=True)):
                    import numpy as np

                    data = np.ascontiguousarray(arr, dtype=det["dtype"]).reshape(det["shape"])
                    local = Path(tmp) / f"in{j}.bin"
                    local.write_bytes(data.tobytes())
                    self.client.push(local, f"{io}/in{j}.bin")
                    name = str(det["name"])
                    if "," in name:
                        raise MeasurementFailed(
                            f"input name {name!r} has a comma; --input_layer cannot express it"
                        )
                    names.append(name)
                    shapes.append(",".join(str(int(d)) for d in det["shape"]))
                    files.append(f"{name.replace(':', '::')}:{io}/in{j}.bin")
                flags = self._base_flags(remote, types.MeasureSettings(threads=threads)) + [
                    "--warmup_runs=0",
                    "--warmup_min_secs=0",
                    "--num_runs=1",
                    "--min_secs=0",
                    f"--input_layer={','.join(names)}",
                    f"--input_layer_shape={':'.join(shapes)}",
                    f"--input_layer_value_files={','.join(files)}",
                    f"--output_filepath={io}/out.bin",
                ]
                self._run_binary(flags, mask=None, timeout_s=self.run_slack_s + 60)
                local_out = Path(tmp) / "out.bin"
                self.client.pull(f"{io}/out.bin", local_out)
                results.append(_split_outputs(local_out.read_bytes(), out_details))
        return results

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self.power_sensor is not None:
            self.power_sensor.close()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("adb backend (Android phone)")
        g.add_argument("--adb-serial", default=None, help="serial of the phone (adb devices)")
        g.add_argument("--adb-path", default="adb", help="the adb executable (default: adb)")
        g.add_argument("--benchmark-binary", default=None,
                       help="LiteRT benchmark_model built for the phone's ABI (host path)")
        g.add_argument("--adb-device-dir", default="/data/local/tmp/hilnas",
                       help="working directory on the phone")
        g.add_argument("--adb-pin", default="none",
                       help="taskset pinning: none, big, little or a hex mask (e.g. f0)")
        g.add_argument("--adb-cool-down-c", type=float, default=None,
                       help="before each run wait until the battery is below this temperature")
        g.add_argument("--adb-cool-down-max-s", type=float, default=300.0,
                       help="longest cool-down wait before measuring anyway (with a warning)")
        g.add_argument("--adb-hot-c", type=float, default=40.0,
                       help="warn when the battery is this hot after a run")
        g.add_argument("--adb-latency-mode", choices=("summary", "repeated"), default="summary",
                       help="summary: one run, the tool's avg/std/min/max; repeated: "
                       "percentiles from many one-run invocations")
        g.add_argument("--battery-current-unit", choices=("auto", "uA", "mA"), default="auto",
                       help="unit of the phone's current_now (kernel ABI: uA)")
        g.add_argument("--adb-power-min-s", type=float, default=5.0,
                       help="with a power sensor, make the timed runs last at least this long")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        if not getattr(args, "benchmark_binary", None):
            raise ConfigError("the adb backend needs --benchmark-binary PATH")
        client = AdbClient(args.adb_path, args.adb_serial)
        sensor: PowerSensor | None = None
        sensor_name = getattr(args, "power_sensor", "none") or "none"
        if sensor_name == "android-battery":
            from device_agent.power.android_battery import AndroidBatterySensor

            sensor = AndroidBatterySensor(client, current_unit=args.battery_current_unit)
        else:
            sensor_cls = get_sensor_class(sensor_name)
            sensor = sensor_cls.from_args(args) if sensor_cls is not None else None
        max_mb = getattr(args, "max_model_mb", None)
        max_s = getattr(args, "max_request_seconds", None)
        limits = types.Limits(
            max_model_bytes=max_mb * 1024 * 1024 if max_mb else DEFAULT_LIMITS.max_model_bytes,
            max_request_seconds=max_s or DEFAULT_LIMITS.max_request_seconds,
            max_runs=DEFAULT_LIMITS.max_runs,
        )
        return cls(
            client=client,
            benchmark_binary=args.benchmark_binary,
            name=getattr(args, "name", None) or "phone",
            device_dir=args.adb_device_dir,
            pin=args.adb_pin,
            cool_down_c=args.adb_cool_down_c,
            cool_down_max_s=args.adb_cool_down_max_s,
            hot_c=args.adb_hot_c,
            latency_mode=args.adb_latency_mode,
            power_sensor=sensor,
            power_min_seconds=args.adb_power_min_s,
            limits=limits,
        )


def _count_cpus(possible: str) -> int:
    """Count CPUs in a sysfs range list such as "0-7" or "0-3,6"."""
    n = 0
    for part in possible.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        n += int(hi) - int(lo) + 1 if hi else 1
    return n


def _us(value: float | None) -> str:
    return f"{value:.0f} us" if value is not None else "not reported"


def _call_quiet(fn: Any) -> Any:
    """Call an optional sensor hook; a hook's failure must not lose the latency figure."""
    if fn is None:
        return None
    try:
        return fn()
    except Exception:  # noqa: BLE001 - reported as a missing figure, not a failed run
        return None


def _tensor_details(model_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Input and output names, shapes and dtypes, read with LiteRT on the bridge."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MeasurementFailed(
            "Validate on the adb bridge needs ai_edge_litert on the bridge machine to read the "
            "model's tensor names and shapes (pip install 'hilnas[agent]')"
        ) from None
    interp = Interpreter(model_path=str(model_path))
    return list(interp.get_input_details()), list(interp.get_output_details())


def _split_outputs(blob: bytes, details: list[dict[str, Any]]) -> types.Sample:
    """benchmark_model writes the output tensors' raw bytes one after another, in order."""
    import numpy as np

    arrays = []
    offset = 0
    for det in details:
        dtype = np.dtype(det["dtype"])
        count = int(np.prod(det["shape"])) if len(det["shape"]) else 1
        size = count * dtype.itemsize
        if offset + size > len(blob):
            raise MeasurementFailed(
                f"output file has {len(blob)} bytes; the model's outputs need "
                f"{sum(int(np.prod(d['shape'])) * np.dtype(d['dtype']).itemsize for d in details)}"
            )
        arrays.append(np.frombuffer(blob, dtype, count, offset).reshape(det["shape"]).copy())
        offset += size
    if offset != len(blob):
        raise MeasurementFailed(f"output file has {len(blob)} bytes, expected {offset}")
    return tuple(arrays)
