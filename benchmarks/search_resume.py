"""Resume after SIGKILL: kill a real search at random moments, resume it each time, and
check that no completed training was repeated and no result was lost.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/search_resume.py [--kills 5]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host.search.runner import STORE_NAME
from host.store.sqlite import RunStore

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.toml")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-s", type=float, default=20.0)
    parser.add_argument("--max-s", type=float, default=60.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = Path(tempfile.mkdtemp(prefix="hilnas-resume-"))
    store_path = out / STORE_NAME
    base = [sys.executable, "-m", "host.cli", "search", "--no-progress", "--no-report",
            "--out", str(out)]
    run_id = None
    completed_before: set[str] = set()
    for kill in range(args.kills + 1):
        cmd = base + (["--resume", run_id] if run_id else [str(args.config)])
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        if kill < args.kills:
            delay = rng.uniform(args.min_s, args.max_s)
            try:
                proc.wait(timeout=delay)
                print(f"run {kill}: finished before its kill at {delay:.0f} s")
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the search, its agent worker, converters
                proc.wait()
                print(f"run {kill}: SIGKILL after {delay:.0f} s")
        else:
            code = proc.wait(timeout=3600)
            print(f"final run: exit status {code}")
        if store_path.exists():
            store = RunStore(store_path)
            runs = store.runs()
            if runs:
                run_id = runs[0].run_id
            done = {r[0] for r in store._query("SELECT train_key FROM trainings")}
            lost = completed_before - done
            print(f"  trainings stored: {len(done)}; lost since the last check: {len(lost)}")
            completed_before = done
            time.sleep(0.5)
    assert run_id is not None
    store = RunStore(store_path)
    run = store.run(run_id)
    per_key = collections.Counter(t["key"] for t in store.timings(run_id) if t["phase"] == "train")
    repeated = {k: n for k, n in per_key.items() if n > 1}
    print(f"run {run_id}: status {run.status if run else '?'}; {len(per_key)} trainings done, "
          f"{len(repeated)} repeated; {store.count_measurements()} measurements")
    print("result: " + ("no completed training repeated, none lost" if not repeated
                        else f"REPEATED: {repeated}"))
    return 0 if not repeated and run and run.status == "done" else 1


if __name__ == "__main__":
    raise SystemExit(main())
