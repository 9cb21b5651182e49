"""Accuracy of the online per-device latency predictor (host.predictor) on unseen networks.

    nice -n 10 .venv/bin/python benchmarks/predictor_accuracy.py [--cache DIR] [--n 100]

1. Build: `--n` distinct BioNet networks (the 90 distinct architectures of the bounded space
   on 256-sample windows, then seeded extra ones on 128-sample windows), untrained with
   seeded weights (latency does not depend on the weights), exported to full int8 with
   random-normal calibration windows. Cached as DIR/models/*.tflite.
2. Measure on the `local` device (a LiteRT agent on loopback): Measure (the target) and
   Profile (per-operator timing; its own whole-model median is a second measurement of the
   same model, which gives the measurement noise). A second pass re-measures a subset later,
   for the time-separated noise. Cached in DIR/dataset.json, so re-runs only evaluate.
3. The emulated Nano 33 BLE (`local:mcu-emulator?board=nano33ble`): its latency is the
   board's cycle model (an ESTIMATE, not a measurement). The networks that fit the board are
   measured and profiled through the emulator; the cycle model the emulator uses is also
   evaluated on the host for every network (checked equal on the ones that fit), so the
   predictor can be scored on all of them.
4. Evaluate: a fixed held-out test set of networks (seeded) is never shown to the predictor.
   The rest arrive one at a time (online order); after 10, 30 and 60 of them the predictor is
   fitted and scored on the test set: share of predictions within +/-10%, mean absolute %
   error, and how often the measured value lay inside the predicted interval. The regressor
   is chosen by cross-validation on the training pool only (never on the test networks).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "hilnas-predictor-bench"
EMULATOR_SPEC = "local:mcu-emulator?board=nano33ble"


# ------------------------------------------------------------------------------ build
def plan_networks(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """(arch key, window length) of the networks: distinct bounded archs at 256, then 128."""
    from host.spaces.base import get_space

    archs = [a.key() for a in get_space("bionet").distinct_architectures()]
    rng = random.Random(seed)
    first = [(k, 256) for k in archs]
    rng.shuffle(first)
    extra = [(k, 128) for k in archs]
    rng.shuffle(extra)
    return (first + extra)[:n]


def model_name(key: str, length: int) -> str:
    return f"{key}-w{length}"


def build_stage(cache: Path, n: int) -> None:
    """Convert the planned networks that are not cached yet (runs in a child process)."""
    import numpy as np

    from host.export.tflite import convert
    from host.spaces.bionet import BioNetArch, build_keras_model

    models = cache / "models"
    models.mkdir(parents=True, exist_ok=True)
    plan = plan_networks(n)
    t0 = time.monotonic()
    for i, (key, length) in enumerate(plan):
        path = models / f"{model_name(key, length)}.tflite"
        if path.exists():
            continue
        rep = np.random.default_rng(i).standard_normal((8, length, 1)).astype(np.float32)
        keras_model = build_keras_model(
            BioNetArch.from_key(key), length, 1, 2, batch_size=1, seed=i
        )
        data = convert(keras_model, "int8", representative=rep)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        print(
            f"  [{i + 1}/{len(plan)} {time.monotonic() - t0:.0f}s] built {path.name} "
            f"({len(data)} B)",
            flush=True,
        )


# ------------------------------------------------------------------------------ measure
def _load_dataset(path: Path) -> dict[str, Any]:
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    return {"local": {}, "local_repeat": {}, "emulator": {}, "emulator_check": {}}


def _save_dataset(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _profile_json(profile: Any) -> dict[str, Any]:
    return {
        "whole_model_p50_us": profile.whole_model_p50_us,
        "ops": [{"index": o.index, "op": o.op, "p50_us": o.p50_us, "mean_us": o.mean_us}
                for o in profile.ops],
        "source": profile.source.value,
        "runtime": f"{profile.runtime.name} {profile.runtime.version}",
    }


def measure_stage(cache: Path, names: list[str], repeat: int) -> dict[str, Any]:
    from device_agent.errors import HilnasError
    from device_agent.types import MeasureSettings
    from host.fleet import open_device

    ds_path = cache / "dataset.json"
    data = _load_dataset(ds_path)
    settings = MeasureSettings(
        warmup_runs=5, min_runs=30, max_runs=300, time_budget_seconds=6.0,
        target_ci_relative=0.02,
    )
    profile_settings = MeasureSettings(
        warmup_runs=3, min_runs=20, max_runs=100, time_budget_seconds=4.0,
        target_ci_relative=0.03,
    )
    names = [n for n in names if (cache / "models" / f"{n}.tflite").exists()]
    todo = [n for n in names if n not in data["local"]]
    if todo:
        print(f"measuring {len(todo)} networks on the local device", flush=True)
        t0 = time.monotonic()
        with open_device("local", name="local", timeout_s=60.0) as device:
            runtime = ""
            for i, name in enumerate(todo):
                path = cache / "models" / f"{name}.tflite"
                m = device.measure(path, settings)
                p = device.profile(path, profile_settings)
                runtime = f"{m.runtime.name} {m.runtime.version}"
                data["local"][name] = {
                    "p50_us": m.latency.p50_us,
                    "ci95_rel": m.latency.median_ci95_relative,
                    "runs": m.latency.n,
                    "runtime": runtime,
                    "profile": _profile_json(p),
                    "time": time.time(),
                }
                _save_dataset(ds_path, data)
                print(
                    f"  [{i + 1}/{len(todo)} {time.monotonic() - t0:.0f}s] {name}: "
                    f"p50 {m.latency.p50_us:.0f} us (profile whole {p.whole_model_p50_us:.0f} us,"
                    f" {len(p.ops)} ops)",
                    flush=True,
                )
    again = [n for n in names if n in data["local"] and n not in data["local_repeat"]]
    again = again[: max(0, repeat - len(data["local_repeat"]))]
    if again:
        print(f"re-measuring {len(again)} networks (time-separated noise)", flush=True)
        with open_device("local", name="local", timeout_s=60.0) as device:
            for name in again:
                m = device.measure(cache / "models" / f"{name}.tflite", settings)
                data["local_repeat"][name] = {"p50_us": m.latency.p50_us, "time": time.time()}
                _save_dataset(ds_path, data)

    # The emulated board: the cycle model on the host for all, the emulator for a check.
    from device_agent.mcu import cycle_model
    from device_agent.mcu.boards import load_board

    board = load_board("nano33ble")
    for name in names:
        if name in data["emulator"]:
            continue
        model = (cache / "models" / f"{name}.tflite").read_bytes()
        costs = cycle_model.op_costs(model, board.cycle_model)
        data["emulator"][name] = {
            "p50_us": sum(c.cycles for c in costs) / board.clock_hz * 1e6,
            "profile": {"ops": [{"index": c.index, "op": c.op,
                                 "p50_us": c.cycles / board.clock_hz * 1e6} for c in costs]},
        }
    _save_dataset(ds_path, data)
    if not data["emulator_check"]:
        small = sorted(names, key=lambda n: (cache / "models" / f"{n}.tflite").stat().st_size)
        print("checking the host cycle model against the emulated board", flush=True)
        est = MeasureSettings(warmup_runs=0, min_runs=6, max_runs=6, time_budget_seconds=60.0,
                              target_ci_relative=0.0)
        try:
            with open_device(EMULATOR_SPEC, name="nano33ble-emulated", timeout_s=120.0) as dev:
                for name in small[:12]:
                    try:
                        m = dev.measure(cache / "models" / f"{name}.tflite", est)
                        p = dev.profile(cache / "models" / f"{name}.tflite", est)
                    except HilnasError as exc:
                        data["emulator_check"][name] = {"rejected": str(exc)[:200]}
                        continue
                    data["emulator_check"][name] = {
                        "p50_us": m.latency.p50_us,
                        "source": m.latency.source.value,
                        "profile": _profile_json(p),
                    }
        except HilnasError as exc:
            data["emulator_check"]["_error"] = {"rejected": str(exc)[:300]}
        _save_dataset(ds_path, data)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--n", type=int, default=100, help="networks to build and measure")
    parser.add_argument("--test", type=int, default=30, help="held-out test networks")
    parser.add_argument("--repeat", type=int, default=20, help="networks re-measured later")
    parser.add_argument("--stage", choices=("all", "build", "measure", "evaluate"),
                        default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.stage == "build":
        build_stage(args.cache, args.n)
        return 0
    names = [model_name(k, w) for k, w in plan_networks(args.n)]
    if args.stage == "all" and not all(
        (args.cache / "models" / f"{n}.tflite").exists() for n in names
    ):
        # TensorFlow (the Keras build) stays out of the process that talks to LiteRT.
        print(f"building networks into {args.cache / 'models'}", flush=True)
        subprocess.run(
            [sys.executable, __file__, "--stage", "build", "--cache", str(args.cache),
             "--n", str(args.n)],
            check=True,
        )
    if args.stage in ("all", "measure"):
        data = measure_stage(args.cache, names, args.repeat)
    else:
        data = _load_dataset(args.cache / "dataset.json")
    if args.stage == "measure":
        return 0
    return evaluate_stage(args, names, data)


def _profile(entry: dict[str, Any], runtime: str) -> Any:
    from device_agent.types import OpProfile, OpTiming, RuntimeInfo, Source

    ops = tuple(
        OpTiming(index=o["index"], op=o["op"], mean_us=o.get("mean_us", o["p50_us"]),
                 p50_us=o["p50_us"], fraction=0.0, runs=0)
        for o in entry["profile"]["ops"]
    )
    name, _, version = runtime.partition(" ")
    return OpProfile(sha256="", ops=ops, method="cached", source=Source.MEASURED,
                     whole_model_p50_us=float(entry["profile"].get("whole_model_p50_us", 0.0)),
                     runtime=RuntimeInfo(name, version))


def _feed(pred: Any, models: dict[str, bytes], entries: dict[str, Any], names: list[str],
          runtime: str, profiles: bool) -> None:
    for name in names:
        if profiles:
            pred.observe_profile(models[name], _profile(entries[name], runtime))
        pred.observe_measure(models[name], entries[name]["p50_us"], runtime=runtime)


def _score(pred: Any, models: dict[str, bytes], entries: dict[str, Any],
           test: list[str]) -> dict[str, Any]:
    from host.predictor import audit

    preds = [pred.predict(models[n]) for n in test]
    measured = [entries[n]["p50_us"] for n in test]
    stats = audit(zip([p.p50_us for p in preds], measured, strict=True))
    inside = sum(p.low_us <= m <= p.high_us for p, m in zip(preds, measured, strict=True))
    return {**stats.to_json(), "inside_interval": inside / len(test),
            "mean_interval_width": float(
                sum((p.high_us - p.low_us) / p.p50_us for p in preds) / len(preds))}


def _cv_choice(kinds: tuple[str, ...], models: dict[str, bytes], entries: dict[str, Any],
               pool: list[str], runtime: str, profiles: bool) -> dict[str, Any]:
    """Grouped 5-fold CV of each kind on the training pool only (never the test set)."""
    from host.predictor import LatencyPredictor

    out = {}
    for kind in kinds:
        pred = LatencyPredictor("cv", kind=kind)
        _feed(pred, models, entries, pool, runtime, profiles)
        pred.fit()
        out[kind] = pred.cv_stats().to_json()
    return out


def evaluate_device(label: str, entries: dict[str, Any], cache: Path, test_n: int, seed: int,
                    runtime: str, budgets: tuple[int, ...] = (10, 20, 30, 60)) -> dict[str, Any]:
    from host.predictor import KINDS, LatencyPredictor, audit_entries

    names = sorted(entries)
    models = {n: (cache / "models" / f"{n}.tflite").read_bytes() for n in names}
    rng = random.Random(seed)
    test = sorted(rng.sample(names, min(test_n, len(names) // 3)))
    budgets = tuple(b for b in budgets if b <= len(names) - len(test)) or (len(names) - len(test),)
    pool = [n for n in names if n not in test]
    rng.shuffle(pool)  # the online order
    result: dict[str, Any] = {"networks": len(names), "test": len(test), "pool": len(pool)}
    print(f"\n== {label}: {len(names)} networks; {len(test)} held out for testing; the "
          f"other {len(pool)} arrive one at a time")

    cv_pool = pool[: max(budgets)]
    choice = _cv_choice(KINDS, models, entries, cv_pool, runtime, True)
    best = max(choice, key=lambda k: (round(choice[k]["within_10pct"], 3),
                                      -choice[k]["mean_abs_pct_error"]))
    result["selection"] = {"cv_on": len(cv_pool), "per_kind": choice, "chosen": best}
    print(f"regressor choice: grouped 5-fold CV on the first {len(cv_pool)} training-pool "
          "networks (test set untouched)")
    for kind, st in choice.items():
        mark = "  <- best" if kind == best else ""
        print(f"  {kind:<10} within +/-10%: {st['within_10pct']:6.1%}   mean abs err "
              f"{st['mean_abs_pct_error']:5.1f}%{mark}")

    header = (f"{'regressor':<22}{'networks':>9}{'within10':>10}{'MAPE %':>8}{'median %':>9}"
              f"{'max %':>8}{'in CI':>7}{'CI width':>9}{'fit s':>7}")
    print(header)
    table: list[dict[str, Any]] = []
    for kind in KINDS:
        for mode in ("per-kernel", "whole-model only"):
            if mode == "whole-model only" and kind not in (best, "linear"):
                continue
            for k in budgets:
                if k > len(pool):
                    continue
                pred = LatencyPredictor(label, kind=kind)
                _feed(pred, models, entries, pool[:k], runtime, mode == "per-kernel")
                t0 = time.perf_counter()
                pred.fit()
                fit_s = time.perf_counter() - t0
                row = {"kind": kind, "mode": mode, "networks": k, "fit_seconds": fit_s,
                       **_score(pred, models, entries, test)}
                table.append(row)
                tag = f"{kind}{'' if mode == 'per-kernel' else ' (whole)'}"
                tag += "*" if kind == best and mode == "per-kernel" else ""
                print(f"{tag:<22}{k:>9}{row['within_10pct']:>10.1%}"
                      f"{row['mean_abs_pct_error']:>8.1f}{row['median_abs_pct_error']:>9.1f}"
                      f"{row['max_abs_pct_error']:>8.1f}{row['inside_interval']:>7.0%}"
                      f"{row['mean_interval_width']:>9.2f}{fit_s:>7.2f}")
    result["table"] = table

    # The online audit: each pool network's prediction made before it was measured.
    pred = LatencyPredictor(label, kind=best)
    t_fit = []
    for i, name in enumerate(pool[: max(budgets)]):
        if i >= 3:
            t0 = time.perf_counter()
            pred.fit()
            t_fit.append(time.perf_counter() - t0)
            pred.predict(models[name])
        _feed(pred, models, entries, [name], runtime, True)
    later = [e for e in pred.audit_log if e.networks >= 10]
    stats = audit_entries(later)
    result["online_audit"] = {**stats.to_json(),
                              "inside_interval": sum(e.inside for e in later) / max(len(later), 1),
                              "max_fit_seconds": max(t_fit, default=0.0)}
    print(f"online audit ({best}, each prediction made before its measurement, after >= 10 "
          f"networks): {stats.line()}; measured inside the interval "
          f"{result['online_audit']['inside_interval']:.0%}; slowest fit "
          f"{max(t_fit, default=0.0):.2f} s")
    return result


def noise(data: dict[str, Any]) -> dict[str, Any]:
    """Repeat-measurement spread of the same model on the local device."""
    import numpy as np

    out: dict[str, Any] = {}
    local = data["local"]
    pairs = {
        "profile": [(v["p50_us"], v["profile"]["whole_model_p50_us"]) for v in local.values()
                    if v["profile"].get("whole_model_p50_us")],
        "later": [(local[n]["p50_us"], r["p50_us"]) for n, r in data["local_repeat"].items()
                  if n in local],
    }
    for key, ps in pairs.items():
        if not ps:
            continue
        d = np.array([abs(b - a) / a for a, b in ps]) * 100
        out[key] = {"n": len(ps), "median_abs_pct": float(np.median(d)),
                    "mean_abs_pct": float(d.mean()), "within_10pct": float((d <= 10).mean())}
    ci = np.array([v["ci95_rel"] for v in local.values() if v.get("ci95_rel") is not None])
    ci = ci[np.isfinite(ci)]
    if ci.size:
        out["median_ci95_rel_pct"] = float(np.median(ci) * 100)
    return out


def evaluate_stage(args: argparse.Namespace, names: list[str], data: dict[str, Any]) -> int:
    from _util import machine_line

    print(machine_line())
    results: dict[str, Any] = {}
    local = {n: data["local"][n] for n in names if n in data["local"]}
    runtime = next((v["runtime"] for v in local.values()), "")
    if len(local) >= 9:
        nz = noise(data)
        results["noise"] = nz
        print(f"\nmeasurement noise on the local device ({runtime}):")
        if "profile" in nz:
            p = nz["profile"]
            print(f"  same model measured twice minutes apart (Measure vs the Profile's whole-"
                  f"model run), n={p['n']}: median |diff| {p['median_abs_pct']:.1f}%, mean "
                  f"{p['mean_abs_pct']:.1f}%, pairs within 10%: {p['within_10pct']:.0%}")
        if "later" in nz:
            p = nz["later"]
            print(f"  same model re-measured after the whole set, n={p['n']}: median |diff| "
                  f"{p['median_abs_pct']:.1f}%, mean {p['mean_abs_pct']:.1f}%, pairs within "
                  f"10%: {p['within_10pct']:.0%}")
        if "median_ci95_rel_pct" in nz:
            print("  median 95% CI of one measurement's median: "
                  f"+/-{nz['median_ci95_rel_pct']:.1f}%")
        results["local"] = evaluate_device("local (LiteRT on this machine, MEASURED)", local,
                                           args.cache, args.test, args.seed, runtime)
    else:
        print(f"only {len(local)} networks measured on the local device; run --stage measure")
    emu = {n: data["emulator"][n] for n in names if n in data["emulator"]}
    checks = {k: v for k, v in data.get("emulator_check", {}).items() if "p50_us" in v}
    if checks:
        diffs = [abs(v["p50_us"] - emu[k]["p50_us"]) / emu[k]["p50_us"]
                 for k, v in checks.items() if k in emu]
        print(f"\nemulated Nano 33 BLE: {len(checks)} networks fit the board and were measured "
              f"through the emulator ({next(iter(checks.values()))['source']}); the host cycle "
              f"model agrees within {max(diffs, default=0) * 100:.3f}%")
    rejected = [k for k, v in data.get("emulator_check", {}).items() if "rejected" in v]
    if rejected:
        print(f"  {len(rejected)} checked networks were rejected by the board (too big)")
    if len(emu) >= 9:
        results["emulator"] = evaluate_device(
            "emulated Nano 33 BLE (cycle-model ESTIMATE, not a measurement)", emu, args.cache,
            args.test, args.seed, "tflite-micro cycle-model")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
