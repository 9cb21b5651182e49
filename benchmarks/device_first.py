"""Device-first fitness, in figures: what measuring before training saves, and whether
weights change latency.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/device_first.py [--part ...]

Parts (all by default):
  rejections  configs/demo.toml with a latency limit on the local device, run twice with the
              same seed: measuring before training on, then off. Prints the networks
              proposed, trained, rejected before training, and both wall times. The same
              with a limit on the emulated Nano 33 BLE (its latency is estimated by its
              cycle model, and labelled so), measuring first only; the time saved there is
              the rejected networks times the run's mean training time (an estimate).
  weights     20 BioNet networks measured untrained (seeded weights, int8 calibrated on
              real windows) and trained, on the local device, through the search pipeline;
              each untrained model is measured a second time for the measurement's own
              spread. Prints the trained/untrained latency ratio (median, worst) beside the
              repeat/first ratio.

The predictor's accuracy is `benchmarks/predictor_accuracy.py`; on-device against host
quality is `benchmarks/device_validation.py`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine_line  # type: ignore[import-not-found]  # noqa: E402

from host.search.config import load_config  # noqa: E402
from host.search.runner import STORE_NAME, run_search  # noqa: E402
from host.store.sqlite import RunStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _search(overrides: dict[str, Any], out: Path) -> tuple[Any, RunStore, float]:
    cfg = load_config(REPO / "configs" / "demo.toml", {**overrides, "run.out_dir": str(out)})
    t0 = time.perf_counter()
    result = run_search(cfg, progress=False, report=False)
    return result, RunStore(out / STORE_NAME), time.perf_counter() - t0


def rejections(limit_local_us: float, limit_nano_us: float) -> None:
    print("\n== Trainings saved by measuring before training (configs/demo.toml) ==")
    base = {"search.predict_latency": False}
    local = {**base, "constraints": [
        {"metric": "storage_int8_bytes", "max": 500000},
        {"metric": "latency_p50_us", "device": "local", "max": limit_local_us}]}
    rows = []
    for first in (True, False):
        with tempfile.TemporaryDirectory(prefix="hilnas-df-") as tmp:
            result, store, wall = _search({**local, "search.measure_before_train": first},
                                          Path(tmp))
            summary = store.device_first_summary(result.run_id)
            rows.append((first, summary["proposed"], result.trainings,
                         summary["rejected_before_training"], wall, len(result.front)))
    print(f"limit: latency_p50_us@local <= {limit_local_us:g} us (measured)")
    print(f"{'measure first':<14}{'proposed':>9}{'trained':>9}{'rejected':>10}{'wall s':>9}"
          f"{'front':>7}")
    for first, proposed, trained, rejected, wall, front in rows:
        print(f"{'on' if first else 'off':<14}{proposed:>9}{trained:>9}{rejected:>10}"
              f"{wall:>9.0f}{front:>7}")
    on, off = rows
    print(f"trainings saved: {off[2] - on[2]} of {off[2]}; wall time saved: "
          f"{off[4] - on[4]:.0f} s ({(off[4] - on[4]) / off[4]:.0%})")

    nano = {**base, "search.measure_before_train": True,
            "devices": [{"name": "local", "address": "local"},
                        {"name": "nano33", "address": "local:mcu-emulator?board=nano33ble"}],
            "constraints": [{"metric": "storage_int8_bytes", "max": 500000},
                            {"metric": "latency_p50_us", "device": "nano33",
                             "max": limit_nano_us}]}
    with tempfile.TemporaryDirectory(prefix="hilnas-df-") as tmp:
        result, store, wall = _search(nano, Path(tmp))
        summary = store.device_first_summary(result.run_id)
        trains = [t["seconds"] for t in store.timings(result.run_id) if t["phase"] == "train"]
        mean_train = statistics.mean(trains) if trains else float("nan")
    saved = summary["rejected_before_training"] * mean_train
    print(f"\nlimit: latency_p50_us@nano33 <= {limit_nano_us:g} us (estimated by the board's "
          "cycle model)")
    print(f"proposed {summary['proposed']}, trained {result.trainings}, rejected before "
          f"training {summary['rejected_before_training']}, wall {wall:.0f} s; time saved "
          f"(estimated: rejected x mean training {mean_train:.0f} s): {saved:.0f} s")


def weights(n: int) -> None:
    print(f"\n== Untrained against trained latency, {n} BioNet networks, local device ==")
    from host.fleet import open_device

    with tempfile.TemporaryDirectory(prefix="hilnas-df-") as tmp:
        cfg = load_config(REPO / "configs" / "demo.toml", {
            "run.out_dir": tmp, "search.measure_before_train": True,
            "search.predict_latency": False, "strategy.name": "random",
            # n of the 48 networks with up to 3 blocks and 64 LSTM cells
            "strategy.random_fraction": n / 48, "strategy.population": 8,
            "space.max_blocks": 3, "space.max_lstm_cells": 64, "train.epochs": 2,
            "data.max_windows_per_record": 60, "constraints": [],
        })
        result = run_search(cfg, progress=False, report=False)
        store = RunStore(Path(tmp) / STORE_NAME)
        pairs = []
        for ev in {e["arch_key"]: e for e in store.evaluations(result.run_id)
                   if e["stage"] == "measure"}.values():
            values = ev["figures"]["values"]
            untrained = values.get("untrained:latency_p50_us@local")
            trained = values.get("latency_p50_us@local")
            if untrained and trained:
                pairs.append((ev["arch_key"], untrained, trained, ev["train_key"]))
        # The measurement's own spread: each untrained model measured again, same settings.
        repeat = {}
        with open_device("local") as device:
            for arch, _, _, train_key in pairs:
                row = store.model_for(train_key, "int8-untrained")
                if row:
                    repeat[arch] = device.measure(Path(row["path"]), cfg.measure).latency.p50_us
    ratios = [t / u for _, u, t, _ in pairs]
    noise = [repeat[a] / u for a, u, _, _ in pairs if a in repeat]
    print(f"{'network':<22}{'untrained us':>14}{'trained us':>12}{'ratio':>8}{'repeat':>9}")
    for arch, u, t, _ in pairs:
        rep = repeat.get(arch)
        print(f"{arch:<22}{u:>14.0f}{t:>12.0f}{t / u:>8.3f}"
              f"{(rep / u if rep else float('nan')):>9.3f}")

    def describe(values: list[float]) -> str:
        worst = max(values, key=lambda r: abs(r - 1))
        within = sum(abs(r - 1) <= 0.10 for r in values) / len(values)
        return (f"median {statistics.median(values):.3f}, worst {worst:.3f}, within ±10%: "
                f"{within:.0%}")

    if ratios:
        print(f"trained / untrained ({len(ratios)} networks): {describe(ratios)}")
    if noise:
        print(f"repeat / first measurement of the same untrained model: {describe(noise)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "rejections", "weights"), default="all")
    parser.add_argument("--limit-local-us", type=float, default=3000.0)
    parser.add_argument("--limit-nano-us", type=float, default=200_000.0)
    parser.add_argument("--networks", type=int, default=20)
    args = parser.parse_args()
    print(machine_line())
    if args.part in ("all", "weights"):
        weights(args.networks)
    if args.part in ("all", "rejections"):
        rejections(args.limit_local_us, args.limit_nano_us)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
