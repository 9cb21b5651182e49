"""Upload and measurement time of a ~50 KB model through the emulated Nano 33 BLE, and the arena
it reports against TFLM's own print_allocations() report.

    .venv/bin/python benchmarks/mcu_emulator.py

The model is tests/device_agent/mcu_models.py's "fc50k" (56,376 B: Dense 64-256-128-5, int8),
plus its "ecg" model (the BioNetExplorer network, 29,688 B). Everything goes through a real
pseudo-terminal and the hilnas serial protocol.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "device_agent"))


def main() -> None:
    from mcu_models import model_path
    from tflite_micro.python.tflite_micro import runtime

    from device_agent.mcu import tflm_host
    from device_agent.mcu.emulator import EmulatorProcess, LineFaults
    from device_agent.serial_protocol import BoardClient, SerialLink, open_port
    from device_agent.types import MeasureSettings

    for name in ("fc50k", "ecg"):
        path = model_path(name)
        model = path.read_bytes()
        sha = hashlib.sha256(model).hexdigest()
        print(f"== {name}: {len(model)} B")
        for faults in (LineFaults(), LineFaults(corrupt_rate=0.005, drop_rate=0.005, seed=1)):
            with EmulatorProcess(extra_args=faults.args()) as emu:
                link = SerialLink(open_port(emu.path), margin_s=0.15)
                client = BoardClient(link)
                client.fetch_info(first=True)
                t0 = time.monotonic()
                up = client.upload(model, sha, deadline_s=300)
                dt = time.monotonic() - t0
                label = (
                    "clean line"
                    if faults.corrupt_rate == 0
                    else "1% bytes damaged (0.5% corrupt + 0.5% dropped)"
                )
                print(
                    f"  upload over the pty, {label}: {dt * 1000:.1f} ms "
                    f"({len(model) / dt / 1024:.0f} KiB/s, {up.chunks_sent} chunks, "
                    f"{link.stats.resends + link.stats.naks + link.stats.bad_frames} "
                    "line errors recovered)"
                )
                link.close()
        from device_agent.backends.mcu_emulator import McuEmulatorBackend

        backend = McuEmulatorBackend("nano33ble")
        try:
            t0 = time.monotonic()
            m = backend.measure(path, sha, MeasureSettings())
            dt = time.monotonic() - t0
            print(
                f"  Measure (default settings, upload+allocate+invoke): {dt * 1000:.0f} ms wall, "
                f"{m.latency.n} runs, estimated latency {m.latency.p50_us / 1000:.2f} ms "
                f"({m.latency.source.value})"
            )
            t0 = time.monotonic()
            backend.measure(path, sha, MeasureSettings())
            print(
                "  Measure again (model held by the board): "
                f"{(time.monotonic() - t0) * 1000:.0f} ms"
            )
            reported = int(m.memory.arena_bytes.value or 0)
        finally:
            backend.close()
        interp = runtime.Interpreter.from_bytes(model, arena_size=196608)
        _, text = tflm_host.capture_stderr(interp.print_allocations)
        total = int(re.search(r"Arena allocation total (\d+) bytes", text).group(1))  # type: ignore[union-attr]
        est = tflm_host.cortex_m_arena_estimate(tflm_host.AllocationReport.parse(text))
        print(
            f"  arena reported by the emulated board: {reported} B; TFLM print_allocations(): "
            f"{total} B -> {'agree exactly' if reported == total else 'DISAGREE'}; "
            f"32-bit Cortex-M estimate {est} B"
        )


if __name__ == "__main__":
    main()
