"""Pulse rate, leave one subject out over TROIKA's 12 training recordings.

The published TROIKA figures the issue quotes as anchors (TROIKA 2.34 BPM, JOSS 1.28, GOS
1.03) are averages over the 12 training recordings, each recording scored by a method that
did not learn from it (the classical methods learn nothing; GOS's model is trained on the
others). hilnas's default split scores two subjects (train09, train10), which is too few to
compare. This benchmark is the comparable figure: for each subject in turn,

- the held-out subject is the fold's test subject, scored once;
- the two subjects that follow it (cyclically, fixed before any run) are the fold's
  validation subjects, which alone stop the training early;
- the other nine train.

Each fold is one `hilnas train --task ppg` (the real trainer, exporter and LiteRT int8
evaluation), so the figures are those a user gets. It prints each recording's AAE per
window (the model alone) and tracked (`PulseTracker`, causal), float and int8, and the mean
over the 12 recordings, which is how TROIKA and JOSS average. TROIKA's own test set
(`test_data`) is not touched here: `hilnas evaluate` scores it (docs/ppg.md).

    HILNAS_DATA_DIR=../shared/data python benchmarks/ppg_loso.py --out /tmp/loso \
        [--space ppg_spectral] [--arch KEY] [--seeds 0,1] [--subjects train01,...]

A fold whose `metrics.json` exists is read, not retrained, so an interrupted run resumes.
About 45 s a fold for the default `ppg_spectral` on 2 cores (12 folds: about 9 minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _util import run_hilnas  # type: ignore[import-not-found]

SUBJECTS = tuple(f"train{i:02d}" for i in range(1, 13))


def fold_subjects(held_out: str, subjects: tuple[str, ...] = SUBJECTS) -> tuple[str, str]:
    """The two validation subjects of `held_out`'s fold: the next two, cyclically."""
    i = subjects.index(held_out)
    return subjects[(i + 1) % len(subjects)], subjects[(i + 2) % len(subjects)]


def train_fold(held_out: str, seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    run = out / f"seed{seed}" / held_out
    metrics = run / "metrics.json"
    if not metrics.exists():
        val = fold_subjects(held_out)
        cmd = ["train", "--task", "ppg", "--space", args.space, "--val-subjects", ",".join(val),
               "--test-subjects", held_out, "--epochs", str(args.epochs),
               "--patience", str(args.patience), "--seed", str(seed), "--out", str(run)]
        if args.arch:
            cmd += ["--arch", args.arch]
        if args.restarts > 1:
            cmd += ["--restarts", str(args.restarts)]
        seconds = run_hilnas(cmd, out / f"seed{seed}-{held_out}.log")
        print(f"  seed {seed} {held_out}: trained in {seconds:.0f} s", flush=True)
    m = json.loads(metrics.read_text())
    int8 = m["tflite"]["int8"]["test"]
    return {"subject": held_out, "seed": seed, "val_subjects": list(fold_subjects(held_out)),
            "params": m["params"], "int8_bytes": m["tflite"]["int8"]["model_bytes"],
            "epochs_run": m["epochs_run"],
            "restarts": m.get("restarts", []),
            "float": {"window": m["test"]["aae_bpm"],
                      "tracked": m["test"]["tracked"]["aae_bpm"]},
            "int8": {"window": int8["aae_bpm"], "tracked": int8["tracked"]["aae_bpm"]},
            "per_activity": m["test"].get("per_activity", {})}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the folds' runs (reused)")
    p.add_argument("--space", default="ppg_spectral")
    p.add_argument("--arch", default="", help="architecture key (default: the space's)")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--subjects", default=",".join(SUBJECTS),
                   help="held-out subjects to run (default all 12)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--restarts", type=int, default=1,
                   help="per fold, train from this many seeds and keep the best by tracked "
                   "validation AAE ([train] restarts)")
    args = p.parse_args(argv)
    out = Path(args.out)
    held = [s.strip() for s in args.subjects.split(",") if s.strip()]
    unknown = [s for s in held if s not in SUBJECTS]
    if unknown:
        p.error(f"--subjects: {unknown} are not TROIKA training subjects ({SUBJECTS[0]}.."
                f"{SUBJECTS[-1]})")
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    rows = [train_fold(s, seed, args, out) for seed in seeds for s in held]
    _print(rows, seeds)
    summary = {"space": args.space, "arch": args.arch or "(space default)",
               "restarts": args.restarts, "folds": rows,
               "mean_over_recordings": {
                   f"{kind}_{how}": statistics.fmean(r[kind][how] for r in rows)
                   for kind in ("float", "int8") for how in ("window", "tracked")},
               "wall_seconds": time.perf_counter() - t0}
    # one file per seeds and restarts, so a second run beside the first does not replace it
    name = f"loso-seeds{'-'.join(map(str, seeds))}-restarts{args.restarts}.json"
    (out / name).write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {out / name} ({summary['wall_seconds']:.0f} s)")
    return 0


def _print(rows: list[dict[str, Any]], seeds: list[int]) -> None:
    print("\nleave one subject out on TROIKA's training recordings; AAE in BPM on the "
          "held-out subject, per window (tracked)")
    print(f"{'subject':<9} {'seed':>4} {'validation':<17} {'float':>15} {'int8':>15} "
          f"{'epochs':>6}")
    for r in rows:
        f, q = r["float"], r["int8"]
        print(f"{r['subject']:<9} {r['seed']:>4} {','.join(r['val_subjects']):<17} "
              f"{f['window']:>6.2f} ({f['tracked']:>5.2f}) {q['window']:>6.2f} "
              f"({q['tracked']:>5.2f}) {r['epochs_run']:>6}")
    for seed in seeds:
        rs = [r for r in rows if r["seed"] == seed]
        means = {k: statistics.fmean(r[k.split("_")[0]][k.split("_")[1]] for r in rs)
                 for k in ("float_window", "float_tracked", "int8_window", "int8_tracked")}
        med = statistics.median(r["int8"]["tracked"] for r in rs)
        print(f"seed {seed}: mean of {len(rs)} recordings: float {means['float_window']:.2f} "
              f"({means['float_tracked']:.2f}), int8 {means['int8_window']:.2f} "
              f"({means['int8_tracked']:.2f}); int8 tracked median {med:.2f}; "
              f"{rs[0]['params']:,} parameters, {rs[0]['int8_bytes']:,} B int8")
    print("anchors (the same 12 recordings): TROIKA 2.34, JOSS 1.28, GOS's adapted NAS-PPG 1.03")


if __name__ == "__main__":
    sys.exit(main())
