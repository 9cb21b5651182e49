"""Where a real NSGA-II search spends its time: training, export, measurement, and how
long the measuring device sits idle (the local device: LiteRT agent on this machine).

The figure of merit is the search's wall time over its training time (issue 12's goal:
at most 1.05): everything else (set-up, export, measurement, selection) should hide behind
training. "Training" is the sum of the candidates' training jobs (building the network,
fitting it, scoring it on validation and test, as the store's `train` stage records it);
the time in Keras's `fit` alone is printed too.

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
    store = RunStore(out / STORE_NAME)
    fit = sum(
        (store.training(e["train_key"]) or {}).get("metrics", {}).get("fit_seconds", 0.0)
        for e in {e["train_key"]: e for e in store.evaluations(result.run_id)
                  if e["train_key"]}.values()
    )
    print(f"config: {args.config}; run {result.run_id}: {result.trainings} trainings, "
          f"front of {len(result.front)}")
    print(f"wall time of the search: {wall:.1f} s")
    train = phases.get("train", 0.0)
    if train:
        print(f"wall / training time: {wall / train:.3f} (training jobs {train:.1f} s, "
              f"of which fit {fit:.1f} s; wall / fit {wall / fit if fit else float('nan'):.3f})")
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
