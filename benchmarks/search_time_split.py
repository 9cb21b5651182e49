"""Where a real NSGA-II search spends its time: training, export, measurement, and how
long the measuring device sits idle (the local device: LiteRT agent on this machine).

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/search_time_split.py \
        [--config configs/demo.toml]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from host.search.config import load_config
from host.search.runner import STORE_NAME, run_search
from host.store.sqlite import RunStore

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.toml")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="hilnas-timesplit-"))
    cfg = load_config(args.config, {"run.out_dir": str(out), "strategy.name": "nsga2"})
    t0 = time.perf_counter()
    result = run_search(cfg, progress=False, report=False)
    wall = time.perf_counter() - t0
    timings = RunStore(out / STORE_NAME).timings(result.run_id)
    phases: dict[str, float] = {}
    for t in timings:
        phases[t["phase"]] = phases.get(t["phase"], 0.0) + t["seconds"]
    print(f"config: {args.config}; run {result.run_id}: {result.trainings} trainings, "
          f"front of {len(result.front)}")
    print(f"wall time of the search: {wall:.1f} s")
    for phase, seconds in sorted(phases.items()):
        print(f"  {phase:<16} {seconds:8.1f} s  ({seconds / wall:6.1%} of wall)")
    other = wall - sum(phases.values())
    print(f"  {'other':<16} {other:8.1f} s  (set-up, data loading, selection, report; "
          "negative when phases overlap)")
    for device in cfg.devices:
        busy = phases.get(f"measure:{device.name}", 0.0)
        print(f"device {device.name}: busy {busy:.1f} s, idle fraction {1 - busy / wall:.1%} "
              "(it measures while the next candidates train)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
