"""Fidelity of measurement through the agent: p50 via gRPC agent / p50 in-process.

Three models (int8 Conv1D, int8 Conv1D+LSTM with a fused LSTM, float ~1 MB), the same
runtime (LiteRT) and thread count on both sides, in one run. Rounds alternate agent and
in-process so slow drifts of the machine hit both alike. Target: 0.97 to 1.03.

    .venv/bin/python benchmarks/agent_fidelity.py [--rounds 5] [--runs 400] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
from _util import build_reference_models, machine_line

from device_agent.measure import make_inputs, run_timed
from device_agent.runtimes import load_runtime
from device_agent.types import MeasureSettings
from host.fleet.local import LocalDevice


def in_process_p50(path: Path, settings: MeasureSettings) -> float:
    runtime = load_runtime()
    interp = runtime.interpreter_class(model_path=str(path), num_threads=settings.threads)
    interp.allocate_tensors()
    for detail, array in zip(
        interp.get_input_details(), make_inputs(interp.get_input_details(), settings), strict=True
    ):
        interp.set_tensor(detail["index"], array)
    return float(np.median(run_timed(interp.invoke, settings).samples_us))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin this process and the agent's worker to one core")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=Path, default=None, help="directory of cached models")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    models_dir = args.models or Path(tempfile.mkdtemp(prefix="hilnas-fidelity-"))
    models = build_reference_models(models_dir)
    settings = MeasureSettings(
        warmup_runs=args.warmup,
        min_runs=args.runs,
        max_runs=args.runs,
        time_budget_seconds=60,
        target_ci_relative=0.0,
        threads=args.threads,
    )
    print(machine_line())
    print(
        f"settings: {args.runs} timed runs after {args.warmup} warm-up runs, "
        f"{args.threads} thread(s), {args.rounds} alternating rounds, pinned to cpu "
          f"{args.cpu if args.cpu is not None else '(none)'}; runtime "
        f"{load_runtime().info.name} {load_runtime().info.version}"
    )
    print(
        f"{'model':<16}{'bytes':>9}{'agent p50 us':>14}{'in-proc p50 us':>16}"
        f"{'ratio':>8}  per-round ratios"
    )
    ok = True
    with LocalDevice(name="fidelity") as device:
        for name in ("int8_conv1d", "int8_conv_lstm", "float_1mb"):
            path = models[name]
            device.ensure_model(path)
            agent_p50s, local_p50s = [], []
            for _ in range(args.rounds):
                agent_p50s.append(device.measure(path, settings).latency.p50_us)
                local_p50s.append(in_process_p50(path, settings))
            ratios = [a / b for a, b in zip(agent_p50s, local_p50s, strict=True)]
            agent_p50, local_p50 = statistics.median(agent_p50s), statistics.median(local_p50s)
            ratio = statistics.median(ratios)
            ok &= 0.97 <= ratio <= 1.03
            print(
                f"{name:<16}{path.stat().st_size:>9}{agent_p50:>14.1f}{local_p50:>16.1f}"
                f"{ratio:>8.3f}  {' '.join(f'{r:.3f}' for r in ratios)}"
            )
    print(f"target 0.97..1.03: {'met' if ok else 'NOT met'} for all models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
