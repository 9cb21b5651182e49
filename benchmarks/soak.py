"""Soak: many Measure calls from concurrent clients against one agent; leaks and slow-downs.

A real agent (`hilnas-agent serve` in a subprocess, so its resident set is its own) takes
`--calls` Measure calls (default 10,000) from `--clients` threads (default 4), each with its
own GrpcDevice. Most calls measure models the agent already holds; every `--new-every`-th
call measures a model it has never seen (a fresh variant of two small int8 nets: Dense and
Conv1D, converted with TF once, made distinct by trailing bytes), which costs an upload and
a model check. Then the same, with 1,000 calls, through the emulated MCU
(`--backend mcu-emulator --board nano33ble`).

Printed: calls done and failed, whether the agent is still alive, the p50 per-call overhead
(client wall time minus the agent-reported compute time of the timed runs) of the first and
the last 1,000 calls, and the agent's VmRSS after warm-up, at the end and at its highest
(goal: growth <= 10%), sampled every 0.5 s.

    .venv/bin/python benchmarks/soak.py                          # the issue's sizes
    .venv/bin/python benchmarks/soak.py --calls 500 --clients 2  # quick
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine_line  # noqa: E402
from fuzz import AgentProcess, seed_models  # noqa: E402

from device_agent.errors import HilnasError  # noqa: E402
from device_agent.types import MeasureSettings  # noqa: E402
from host.fleet.grpc_device import GrpcDevice, RetryPolicy  # noqa: E402

SETTINGS = MeasureSettings(
    warmup_runs=1, min_runs=3, max_runs=3, time_budget_seconds=5.0, target_ci_relative=0.0
)


def variant(base: bytes, k: int) -> bytes:
    """A distinct model with the same graph: bytes after the flatbuffer are ignored."""
    return base + b"\0" * 4 + struct.pack("<Q", k)


@dataclass
class Run:
    records: list[tuple[int, float, float, bool]] = field(default_factory=list)  # i, wall, ...
    errors: Counter[str] = field(default_factory=Counter)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (t, kB)
    lock: threading.Lock = field(default_factory=threading.Lock)


def worker_rss_kb(agent_pid: int) -> int:
    """VmRSS of the agent's children (the model worker, or the emulated board)."""
    total = 0
    try:
        children = Path(f"/proc/{agent_pid}/task/{agent_pid}/children").read_text().split()
    except OSError:
        return 0
    for pid in children:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def soak(backend: str, calls: int, clients: int, new_every: int, workdir: Path) -> None:
    extra = ("--board", "nano33ble") if backend == "mcu-emulator" else ()
    agent = AgentProcess(workdir / backend, backend=backend, extra=extra,
                         max_request_seconds=60.0)  # fmt: skip
    bases = seed_models()
    print(f"\n== {backend}: {calls} Measure calls from {clients} clients, a new model every "
          f"{new_every} calls; agent pid {agent.pid}")  # fmt: skip
    run = Run()
    counter = iter(range(calls))
    counter_lock = threading.Lock()
    cached = [variant(b, 0) for b in bases]  # measured first, then "cached"
    stop = threading.Event()

    def sample_rss() -> None:
        t0 = time.monotonic()
        while not stop.is_set() and agent.alive():
            try:
                run.rss.append((time.monotonic() - t0, agent.rss_kb()))
            except OSError:
                break
            stop.wait(0.5)

    def client(c: int) -> None:
        dev = GrpcDevice(agent.address, name=f"client{c}", timeout_s=60,
                         retry=RetryPolicy(attempts=2, initial_backoff_s=0.1))  # fmt: skip
        try:
            while True:
                with counter_lock:
                    i = next(counter, None)
                if i is None:
                    return
                new = i % new_every == new_every - 1
                model = variant(bases[i % len(bases)], 1 + i) if new else cached[i % len(cached)]
                t0 = time.perf_counter()
                try:
                    m = dev.measure(model, SETTINGS)
                    wall = time.perf_counter() - t0
                    with run.lock:
                        run.records.append((i, wall, wall - m.compute_seconds, new))
                except HilnasError as exc:
                    with run.lock:
                        run.errors[f"{type(exc).__name__}: {str(exc)[:100]}"] += 1
        finally:
            dev.close()

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    stop.set()
    sampler.join(timeout=5)
    alive = agent.alive()
    end_rss = agent.rss_kb() if alive else 0
    children_rss = worker_rss_kb(agent.pid) if alive else 0
    cache_dir = workdir / backend / "cache"
    cached_files = list(cache_dir.glob("*.tflite"))
    code = agent.stop()

    done, failed = len(run.records), sum(run.errors.values())
    print(f"calls done {done}, failed {failed}, in {elapsed:.0f} s "
          f"({done / max(elapsed, 1e-9):.0f} calls/s); agent alive after the run: "
          f"{'yes' if alive else 'NO (crashed)'}; exit status after SIGTERM {code}")  # fmt: skip
    for err, n in run.errors.most_common(5):
        print(f"  {n} x {err}")
    ordered = sorted(run.records)  # by call index
    window = min(1000, max(1, len(ordered) // 2))

    def p50(rows: list[tuple[int, float, float, bool]], new: bool) -> str:
        values = [r[2] * 1000 for r in rows if r[3] == new]
        return f"{statistics.median(values):6.2f} ms (n={len(values)})" if values else "   n/a"

    first, last = ordered[:window], ordered[-window:]
    print(f"p50 overhead (client wall - agent compute), cached model: first {window} calls "
          f"{p50(first, False)}, last {window} {p50(last, False)}")  # fmt: skip
    print(f"p50 overhead, new model (upload + check): first {window} calls {p50(first, True)}, "
          f"last {window} {p50(last, True)}")  # fmt: skip
    print(f"  (the {clients} clients share one device: a call waits for the others' runs, "
          "so these include queueing)")  # fmt: skip
    if run.rss:
        warm_at = run.rss[min(len(run.rss) - 1, max(1, len(run.rss) // 10))]
        peak = max(kb for _, kb in run.rss)
        end = end_rss or run.rss[-1][1]
        growth = (end - warm_at[1]) / warm_at[1] * 100
        print(f"agent VmRSS: after warm-up (t={warm_at[0]:.0f} s) {warm_at[1] / 1024:.1f} MiB, "
              f"end {end / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB; growth {growth:+.1f}% "
              f"(goal <= 10%: {'met' if growth <= 10 else 'NOT met'}); "
              f"{len(run.rss)} samples")  # fmt: skip
        print(f"agent's child processes (model worker / emulated board) VmRSS at the end: "
              f"{children_rss / 1024:.1f} MiB")  # fmt: skip
    print(f"model cache on disk: {len(cached_files)} files, "
          f"{sum(p.stat().st_size for p in cached_files if p.exists()) / 1024:.0f} KiB "
          "(kept on disk, not in the agent's memory)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="LiteRT calls (default 10000)")
    parser.add_argument(
        "--mcu-calls", type=int, default=None,
        help="emulated-MCU calls (default 1000, or --calls if smaller)",
    )  # fmt: skip
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--new-every", type=int, default=50,
                        help="every Nth call measures a model the agent has not seen")  # fmt: skip
    parser.add_argument("--skip-mcu", action="store_true")
    args = parser.parse_args()
    mcu_calls = args.mcu_calls if args.mcu_calls is not None else min(1000, args.calls)
    print(machine_line())
    print(f"settings per call: {SETTINGS.warmup_runs} warm-up + {SETTINGS.max_runs} timed runs")
    with tempfile.TemporaryDirectory(prefix="hilnas-soak-") as tmp:
        soak("litert", args.calls, args.clients, args.new_every, Path(tmp))
        if not args.skip_mcu and mcu_calls > 0:
            soak("mcu-emulator", mcu_calls, args.clients, args.new_every, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
