"""Resume after SIGKILL, at moments spread over the whole search and chosen from its progress.

A real search (configs/demo.toml by default) is killed with SIGKILL, resumed, killed again,
and so on, each kill aimed at a stage read from the run store while it runs:

    after-training      a new training has just been committed
    during-export       a trained network is stored but its int8 model is not yet
    during-measurement  an int8 model is stored but not yet measured on its device
    during-report       the run is done and its report.html not yet written

After every kill it prints what the store holds and checks that stored work only grows, that
nothing stored is lost, and at the end that no training ran twice. A kill during the report
is followed by `hilnas report RUN`, which must rebuild the report from the store.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/search_resume.py
    ... --kills after-training,during-report     (a shorter sequence)
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.search.runner import STORE_NAME
from host.store.sqlite import RunStore

REPO = Path(__file__).resolve().parent.parent
DEFAULT_KILLS = "after-training,during-export,during-measurement,after-training,during-report"


@dataclass(frozen=True)
class Snapshot:
    """What the store holds at one moment (sets, so losses can be named)."""

    trainings: frozenset[str]
    keras: frozenset[str]
    int8: frozenset[str]
    measured: frozenset[tuple[str, str]]
    status: str
    run_id: str | None

    @classmethod
    def read(cls, store_path: Path) -> Snapshot:
        if not store_path.exists():
            return cls(frozenset(), frozenset(), frozenset(), frozenset(), "", None)
        store = RunStore(store_path)
        try:
            rows = store._query("SELECT train_key FROM trainings")
            models = store._query("SELECT sha256, kind FROM models")
            measured = store._query("SELECT sha256, device FROM measurements")
            runs = store.runs()
        finally:
            store.close()
        return cls(
            frozenset(r[0] for r in rows),
            frozenset(r[0] for r in models if r[1] == "keras"),
            frozenset(r[0] for r in models if r[1] == "int8"),
            frozenset((r[0], r[1]) for r in measured),
            runs[0].status if runs else "",
            runs[0].run_id if runs else None,
        )

    @property
    def work(self) -> int:
        return len(self.trainings) + len(self.int8) + len(self.measured)


def _condition(target: str, start: Snapshot, run_dir: Callable[[], Path | None]) -> Callable[
    [Snapshot], bool
]:
    def after_training(s: Snapshot) -> bool:
        return len(s.trainings) > len(start.trainings)

    def during_export(s: Snapshot) -> bool:
        # this process trained something whose int8 model is not stored yet
        return len(s.trainings) > len(start.trainings) and len(s.keras) > len(s.int8)

    def during_measurement(s: Snapshot) -> bool:
        measured = {sha for sha, _ in s.measured}
        return bool(s.int8 - start.int8) and bool(s.int8 - measured)

    def during_report(s: Snapshot) -> bool:
        folder = run_dir()
        return s.status == "done" and folder is not None and not (folder / "report.html").exists()

    table = {
        "after-training": after_training,
        "during-export": during_export,
        "during-measurement": during_measurement,
        "during-report": during_report,
    }
    if target not in table:
        raise SystemExit(f"--kills: unknown moment {target!r}; known: {', '.join(table)}")
    return table[target]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.toml")
    parser.add_argument("--kills", default=DEFAULT_KILLS,
                        help=f"comma-separated moments to kill at (default {DEFAULT_KILLS})")
    parser.add_argument("--poll-s", type=float, default=0.05)
    parser.add_argument("--stage-timeout-s", type=float, default=1800.0)
    args = parser.parse_args()
    targets = [t.strip() for t in args.kills.split(",") if t.strip()]
    out = Path(tempfile.mkdtemp(prefix="hilnas-resume-"))
    store_path = out / STORE_NAME
    base = [sys.executable, "-m", "host.cli", "search", "--no-progress", "--out", str(out)]
    previous = Snapshot.read(store_path)
    run_id: str | None = None
    failures: list[str] = []
    t_start = time.monotonic()

    def run_dir() -> Path | None:
        return out / run_id if run_id else None

    def check(after: Snapshot, label: str) -> None:
        nonlocal previous
        lost = {
            "trainings": previous.trainings - after.trainings,
            "int8 models": previous.int8 - after.int8,
            "measurements": previous.measured - after.measured,
        }
        lost_text = ", ".join(f"{len(v)} {k}" for k, v in lost.items() if v) or "nothing"
        print(f"  {label}: stored {len(after.trainings)} trainings, {len(after.int8)} int8 "
              f"models, {len(after.measured)} measurements; lost since the last check: "
              f"{lost_text}", flush=True)
        if any(lost.values()):
            failures.append(f"{label}: lost {lost_text}")
        previous = after

    for number, target in enumerate(targets, 1):
        start = Snapshot.read(store_path)
        cmd = base + (["--resume", run_id] if run_id else [str(args.config)])
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        ready = _condition(target, start, run_dir)
        t0 = time.monotonic()
        killed = False
        while proc.poll() is None and time.monotonic() - t0 < args.stage_timeout_s:
            snap = Snapshot.read(store_path)
            run_id = run_id or snap.run_id
            if ready(snap):
                os.killpg(proc.pid, signal.SIGKILL)  # the search, its agent, its converters
                proc.wait()
                killed = True
                break
            time.sleep(args.poll_s)
        if not killed and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            failures.append(f"kill {number}: {target} not reached in {args.stage_timeout_s} s")
        after = Snapshot.read(store_path)
        run_id = run_id or after.run_id
        what = (f"SIGKILL {target} after {time.monotonic() - t0:.0f} s" if killed
                else f"the run ended (exit {proc.returncode}) before '{target}'")
        print(f"kill {number}: {what}", flush=True)
        check(after, f"after kill {number}")
        if killed and after.work <= start.work and target != "during-report":
            # a kill that lands before anything new was stored is allowed, but say so
            print(f"  (no new work stored between the resume and kill {number})")

    if run_id is None:
        print("the search never created its run; nothing to check")
        return 1
    status = Snapshot.read(store_path).status
    if status != "done":
        final = subprocess.run(base + ["--resume", run_id], cwd=REPO, capture_output=True,
                               text=True, timeout=7200)
        print(f"final resume: exit status {final.returncode}")
        check(Snapshot.read(store_path), "after the final resume")
    page = out / run_id / "report.html"
    if not page.exists():
        rebuilt = subprocess.run([sys.executable, "-m", "host.cli", "report", run_id, "--out",
                                  str(out)], cwd=REPO, capture_output=True, text=True,
                                 timeout=600)
        ok = rebuilt.returncode == 0 and page.exists()
        print(f"`hilnas report {run_id}` after the interrupted report: "
              f"{'rebuilt' if ok else 'FAILED: ' + rebuilt.stderr[-500:]}")
        if not ok:
            failures.append("the report was not rebuilt")
    elif not page.read_text().rstrip().endswith("</html>"):
        failures.append("report.html is truncated")
    store = RunStore(store_path)
    run = store.run(run_id)
    per_key = collections.Counter(t["key"] for t in store.timings(run_id) if t["phase"] == "train")
    repeated = {k: n for k, n in per_key.items() if n > 1}
    if repeated:
        failures.append(f"trained twice: {repeated}")
    print(f"run {run_id}: status {run.status if run else '?'}; {len(per_key)} trainings, "
          f"{len(repeated)} repeated; {store.count_measurements()} measurements; "
          f"{len(targets)} kills; {time.monotonic() - t_start:.0f} s in all")
    if run is None or run.status != "done":
        failures.append(f"run status {run.status if run else 'missing'}, not done")
    print("result: " + ("nothing stored was lost, nothing trained twice, report rebuilt"
                        if not failures else "FAILED: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
