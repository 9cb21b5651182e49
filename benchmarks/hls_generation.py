"""HLS project generation time, C-simulation build time, and bit-exactness on ECG windows.

Trains the demo HALF-space model for one epoch on MIT-BIH windows (host.data), converts it
to int8 (host.export.tflite, child process), generates projects for each board and both
unrollings, builds the g++ testbench and compares its outputs with LiteRT's reference int8
kernels (and, for information, with LiteRT's optimized and XNNPACK kernels).

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/hls_generation.py
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from device_agent.fpga import generate, parse_tflite
from device_agent.fpga.reference import reference_outputs
from host.data import EcgDatasetConfig, load_ecg_dataset
from host.export.hls.demo import DEMO_ARCH, build_demo_tflite


def main() -> None:
    d = load_ecg_dataset(EcgDatasetConfig(records=("100", "106", "119", "208", "203"),
                                          max_windows_per_record=400, split="random"))
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        t0 = time.perf_counter()
        model = build_demo_tflite(t / "m.tflite", d.x_train, d.y_train, d.n_classes, epochs=1)
        print(f"demo model {DEMO_ARCH.key()}: train 1 epoch + int8 convert "
              f"{time.perf_counter() - t0:.1f} s, {model.stat().st_size} bytes")
        x = np.concatenate([d.x_train, d.x_val, d.x_test])
        xq = parse_tflite(model.read_bytes()).quantize_input(x)
        refs = {r: reference_outputs(model, xq, r) for r in
                ("BUILTIN_REF", "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "AUTO")}
        for board in ("pynq-z1", "ultra96-v2", "zcu102"):
            for unroll in ("min", "max"):
                out = t / f"{board}-{unroll}"
                t0 = time.perf_counter()
                generate(model, out, board=board, unroll=unroll)
                gen = time.perf_counter() - t0
                t0 = time.perf_counter()
                subprocess.run(["make", "-C", str(out), "csim-build"], check=True,
                               capture_output=True, timeout=600)
                build = time.perf_counter() - t0
                xq.tofile(out / "csim" / "input.bin")
                t0 = time.perf_counter()
                subprocess.run(["make", "-C", str(out), "csim"], check=True,
                               capture_output=True, timeout=600)
                run = time.perf_counter() - t0
                got = np.fromfile(out / "csim" / "output.bin", dtype=np.int8).reshape(len(x), -1)
                diffs = {r: int((got != ref).any(axis=1).sum()) for r, ref in refs.items()}
                print(f"{board:11s} unroll={unroll}: generate {gen * 1000:6.1f} ms, csim build "
                      f"{build:5.2f} s, csim run {len(x)} windows {run:5.2f} s; windows differing "
                      f"from LiteRT: reference {diffs['BUILTIN_REF']}, optimized "
                      f"{diffs['BUILTIN_WITHOUT_DEFAULT_DELEGATES']}, "
                      f"default/XNNPACK {diffs['AUTO']}")


if __name__ == "__main__":
    main()
