"""Data Aware NAS against a fixed-data search on FSDD, measured (issue 14).

1. Runs configs/danas_fsdd.toml (granularity searched) and configs/danas_fsdd_fixed.toml
   (8 kHz spectrogram, DANAS's "fixed data"), or reuses finished runs (`--aware-run`,
   `--fixed-run`). Same GA, budget, objectives and device.
2. For each front model: speaker-wise *test* accuracy (the held-out speaker; never used for
   a choice), the deployed model bytes (the .tflite the local LiteRT device ran), the input
   buffer (samples at the chosen rate, 16 bit, plus the feature map) and the measured arena.
3. The size ratios: for the fixed front's most accurate model (by validation accuracy), the
   smallest data-aware front model of equal or better validation accuracy; the ratio of
   their deployed bytes and of their model + input buffer bytes. Test accuracies are shown
   beside them.
4. The Arduino Nano 33 BLE: every data-aware front model as the board would run it (the
   features as input, since TFLite Micro has no RFFT; host/export/audio_mcu.py), its arena
   planned by the real TFLite Micro interpreter, model + input buffer + arena + the
   firmware's 64 KB reserve against the board's 256 KB of RAM and its flash slot; the
   smallest that fits, and the most accurate that fits by validation accuracy, each with
   its int8 validation and test accuracy (LiteRT on this host) and the front end's
   estimated cost.
5. The preprocessing's share of the latency: the full model (front end inside) against the
   network alone, both timed with LiteRT on this host (1 thread, median of 200 runs).
6. `--refit`: the two Nano models of part 4 as one would deploy them. Each is trained
   again as the search trained it (same seed and split, so its early stopping chooses the
   same epochs), then once more on the training and validation speakers together for
   those epochs (`host.train.refit_network`): five speakers instead of four, the
   validation speaker included, so its validation figure is the one before the refit.
   Converted as the board runs it, int8, scored once on the test speaker.

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/data_aware.py \
        [--aware-run runs/danas-fsdd-...] [--fixed-run runs/danas-fsdd-fixed-...] \
        [--config-aware C] [--config-fixed C] [--refit] [--ecg | --only-ecg] [--json out.json]

`--ecg` adds the same comparison on MIT-BIH (configs/danas_ecg.toml against
configs/danas_ecg_fixed.toml, 360 Hz and a 0.711 s window; validation balanced accuracy),
with `--ecg-aware-run` / `--ecg-fixed-run` to reuse finished runs.

Goals (issue 14): >= 10x smaller (deployed bytes, and model + buffer) at equal accuracy; the
smallest model that fits the Nano >= 95% speaker-wise accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NANO_RAM = 262144
NANO_RESERVE = 65536


def _run_search(config: Path, out: Path) -> Path:
    from _util import run_search

    return Path(run_search(config, out))


def _run_config(run_dir: Path) -> tuple[Any, Any]:
    """(store, the SearchConfig) of a finished run's folder."""
    from host.search.config import parse_config
    from host.store.sqlite import RunStore
    store = RunStore(run_dir.parent / "store.sqlite")
    run = store.run(run_dir.name)
    if run is None:
        raise SystemExit(f"{run_dir.name} is not in {store.path}")
    return store, parse_config(run.config["source"])


def _run_context(run_dir: Path) -> tuple[Any, Any, Any]:
    """(store, the run's task, its space) of a finished run's folder."""
    store, cfg = _run_config(run_dir)
    task = cfg.make_task()
    return store, task, cfg.make_space(task)


def _trained(store: Any, tflite: str) -> Any:
    """The stored Keras model of a front member's .tflite (None when not kept)."""
    from host.export.flatbuf import read_metadata
    from host.train.tfenv import load_keras_model

    meta = read_metadata(Path(tflite).read_bytes())
    row = store.model_for(meta["train_key"], "keras")
    if row is None or not Path(row["path"]).exists():
        return None
    return load_keras_model(row["path"])


def _front(run_dir: Path, quality: str = "accuracy") -> tuple[dict[str, Any],
                                                              list[dict[str, Any]]]:
    """The run's front.json and, per member, its figures (validation and test `quality`,
    deployed bytes, input buffer, arena)."""
    doc = json.loads((run_dir / "front.json").read_text())
    rows = []
    for entry in doc["front"]:
        fig = entry["figures"]

        def value(label: str, fig: dict[str, Any] = fig) -> float | None:
            item = fig.get(label)
            return None if item is None or item["value"] is None else float(item["value"])

        path = (entry.get("files") or {}).get("tflite")
        rows.append({
            "arch": entry["arch"],
            "val_quality": value(quality),
            "test_quality": entry.get("test_metrics", {}).get(quality),
            "model_bytes": value("model_bytes@local"),
            "model_bytes_source": (fig.get("model_bytes@local") or {}).get("source"),
            "input_buffer_bytes": value("input_buffer_bytes"),
            "arena_bytes": value("arena_bytes@local"),
            "latency_p50_us": value("latency_p50_us@local"),
            "ram_bytes": {label: value(label) for label in fig if label.startswith("ram_bytes@")},
            "tflite": path,
        })
    return doc, rows


def _ratios(aware: list[dict[str, Any]], fixed: list[dict[str, Any]]) -> dict[str, Any]:
    """The fixed front's best model (validation) against the smallest data-aware model that
    is at least as accurate on validation."""
    ok = [r for r in fixed if r["val_quality"] is not None and r["model_bytes"]]
    if not ok:
        return {"note": "the fixed-data front has no measured model"}
    ref = max(ok, key=lambda r: (r["val_quality"], -r["model_bytes"]))
    candidates = [r for r in aware if r["val_quality"] is not None and r["model_bytes"]
                  and r["val_quality"] >= ref["val_quality"]]
    out: dict[str, Any] = {"fixed": ref}
    if not candidates:
        best = max((r for r in aware if r["val_quality"] is not None),
                   key=lambda r: r["val_quality"], default=None)
        out["note"] = ("no data-aware front model reaches the fixed model's validation "
                       f"accuracy {ref['val_quality']:.3f}; the most accurate reaches "
                       f"{best['val_quality'] if best else float('nan'):.3f}")
        return out
    out["pairs"] = _pairs(aware, ok)
    small = min(candidates, key=lambda r: r["model_bytes"])
    both = min(candidates, key=lambda r: r["model_bytes"] + (r["input_buffer_bytes"] or 0))
    out.update({
        "aware_smallest_model": small,
        "aware_smallest_model_plus_buffer": both,
        "model_bytes_ratio": ref["model_bytes"] / small["model_bytes"],
        "model_plus_buffer_ratio": (ref["model_bytes"] + ref["input_buffer_bytes"])
        / (both["model_bytes"] + both["input_buffer_bytes"]),
    })
    return out


def _pairs(aware: list[dict[str, Any]], fixed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For every fixed-data front model, the smallest data-aware one at least as accurate
    (validation) and the ratios of their deployed bytes and model + input buffer."""
    out = []
    for f in sorted(fixed, key=lambda r: r["model_bytes"]):
        better = [a for a in aware if a["val_quality"] is not None and a["model_bytes"]
                  and a["val_quality"] >= f["val_quality"]]
        if not better:
            out.append({"fixed": f["arch"], "fixed_val": f["val_quality"], "aware": None})
            continue
        a = min(better, key=lambda r: r["model_bytes"])
        b = min(better, key=lambda r: r["model_bytes"] + (r["input_buffer_bytes"] or 0))
        out.append({
            "fixed": f["arch"], "fixed_val": f["val_quality"], "fixed_bytes": f["model_bytes"],
            "aware": a["arch"], "aware_val": a["val_quality"], "aware_bytes": a["model_bytes"],
            "model_bytes_ratio": f["model_bytes"] / a["model_bytes"],
            "model_plus_buffer_ratio": (f["model_bytes"] + (f["input_buffer_bytes"] or 0))
            / (b["model_bytes"] + (b["input_buffer_bytes"] or 0)),
        })
    return out


def _print_pairs(pairs: list[dict[str, Any]]) -> None:
    for p in pairs:
        if p["aware"] is None:
            print(f"  fixed {p['fixed']} (val {p['fixed_val']:.3f}): no data-aware model as "
                  "accurate")
            continue
        print(f"  fixed {p['fixed']} (val {p['fixed_val']:.3f}, {p['fixed_bytes']:.0f} B) vs "
              f"{p['aware']} (val {p['aware_val']:.3f}, {p['aware_bytes']:.0f} B): "
              f"{p['model_bytes_ratio']:.2f}x bytes, {p['model_plus_buffer_ratio']:.2f}x "
              "model + buffer")


def _print_fronts(groups: Any, memory: Any) -> None:
    """Each front's models, smallest first: validation and test quality, bytes, memory."""
    for name, rows in groups:
        print(f"-- {name}: {len(rows)} models")
        for r in sorted(rows, key=lambda r: r["model_bytes"] or 0):
            print(f"  {r['arch']:<60} val {r['val_quality'] or 0:.3f} test "
                  f"{r['test_quality'] or 0:.3f}  model {r['model_bytes'] or 0:>9.0f} B  "
                  f"buffer {r['input_buffer_bytes'] or 0:>7.0f} B  {memory(r)}")


def _latency_us(model: bytes, x: np.ndarray, runs: int = 200) -> float:
    from host.export.evaluate import _interpreter, quantize

    it = _interpreter(model)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    scale, zero = inp["quantization"]
    it.set_tensor(inp["index"], quantize(x[:1], inp["dtype"], scale, zero))
    for _ in range(10):
        it.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def _network_models(run_dir: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each front model's trained network with the features as input, converted to int8
    once (what a board without RFFT runs; host/export/audio_mcu.py)."""
    from host.export.audio_mcu import features_input_model, mcu_int8
    from host.search.jobs import load_dataset

    store, task, space = _run_context(run_dir)
    out = []
    for r in rows:
        if not r["tflite"]:
            continue
        trained = _trained(store, r["tflite"])
        if trained is None:
            out.append({"row": r, "note": "no stored Keras model"})
            continue
        arch = space.from_key(r["arch"])
        model, host_task = features_input_model(space, arch, task, trained)
        data = load_dataset(host_task)
        out.append({"row": r, "arch": arch, "data": data, "costs": space.costs(arch),
                    "estimates": space.estimates(arch),
                    "audio": load_dataset(space.task_for(arch, task)),
                    "blob": mcu_int8(model, host_task, data,
                                     {"arch": r["arch"], "task": "audio"})})
    return out


def _nano(networks: list[dict[str, Any]]) -> dict[str, Any]:
    """Every front model as the Nano runs it (features in), smallest fitting one first."""
    from host.export.evaluate import tflite_outputs
    from host.hw.tflm_gate import check_tflite

    results = []
    for n in networks:
        if "note" in n:
            results.append({"arch": n["row"]["arch"], "note": n["note"]})
            continue
        blob, data, costs = n["blob"], n["data"], n["costs"]
        gate = check_tflite(blob, "nano33ble")

        def accuracy_on(x: np.ndarray, y: np.ndarray, blob: bytes = blob) -> float:
            return float((tflite_outputs(blob, x).argmax(axis=1) == y).mean())

        accuracy = accuracy_on(data.x_test, data.y_test)
        val_accuracy = accuracy_on(data.x_val, data.y_val)
        ram = (gate.arena_bytes or 0) + costs.input_buffer_bytes + NANO_RESERVE
        results.append({
            "arch": n["row"]["arch"],
            "mcu_model_bytes": len(blob),
            "arena_bytes": gate.arena_bytes,
            "arena_source": "TFLite Micro's planner on this host (64-bit; errs high)",
            "input_buffer_bytes": costs.input_buffer_bytes,
            "ram_total_bytes": ram,
            "fits": bool(gate.ok and ram <= NANO_RAM),
            "gate_reasons": list(gate.reasons),
            "val_accuracy_int8": val_accuracy,
            "test_accuracy_int8": accuracy,
            "frontend_macs": n["estimates"].get("frontend_macs"),
            "frontend_source": "estimated (analytic front-end model)",
        })
    fitting = sorted((x for x in results if x.get("fits")),
                     key=lambda x: x["mcu_model_bytes"] + x["ram_total_bytes"])
    # chosen on the validation speaker; the test speaker's figure is only reported
    best = max(fitting, key=lambda x: x["val_accuracy_int8"], default=None)
    return {"members": results, "smallest_fitting": fitting[0] if fitting else None,
            "most_accurate_fitting": best}


def _refit_nano(run_dir: Path, nano: dict[str, Any]) -> list[dict[str, Any]]:
    """Part 6: the smallest and the most accurate Nano-fitting models, refitted."""
    from host.export.audio_mcu import features_input_model, mcu_int8
    from host.export.evaluate import tflite_outputs
    from host.search.jobs import load_dataset
    from host.train import refit_network, train_candidate

    _, cfg = _run_config(run_dir)
    task = cfg.make_task()
    space = cfg.make_space(task)
    chosen = [nano.get("smallest_fitting"), nano.get("most_accurate_fitting")]
    keys = list(dict.fromkeys(m["arch"] for m in chosen if m))
    print("\n== refitted on training + validation speakers (Nano, features in, int8) ==")
    out = []
    for key in keys:
        arch = space.from_key(key)
        own = space.task_for(arch, task)
        data = load_dataset(own)
        t0 = time.perf_counter()
        again = train_candidate(space, arch, own, data, cfg.train)
        refitted = refit_network(space, arch, own, data, cfg.train, again)
        row: dict[str, Any] = {"arch": key, "selection": refitted.selection,
                               "val_before_refit": again.val_metrics.get("accuracy"),
                               "seconds": time.perf_counter() - t0}
        for name, result in (("before", again), ("refitted", refitted)):
            model, host_task = features_input_model(space, arch, task, result.model)
            feats = load_dataset(host_task)
            blob = mcu_int8(model, host_task, feats, {"arch": key, "task": "audio"})
            pred = tflite_outputs(blob, feats.x_test).argmax(axis=1)
            row[f"test_accuracy_int8_{name}"] = float((pred == feats.y_test).mean())
            row[f"test_accuracy_float_{name}"] = result.test_metrics.get("accuracy")
        out.append(row)
        print(f"  {key}: val {row['val_before_refit']:.3f} (before the refit); test int8 "
              f"{row['test_accuracy_int8_before']:.3f} -> {row['test_accuracy_int8_refitted']:.3f}"
              f" refitted (float {row['test_accuracy_float_before']:.3f} -> "
              f"{row['test_accuracy_float_refitted']:.3f}), {row['seconds']:.0f} s")
    return out


def _preprocessing_share(networks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Latency of each front model with its front end, and of its network alone."""
    out = []
    for n in networks:
        if "note" in n or n["arch"].representation == "raw":
            continue
        t_full = _latency_us(Path(n["row"]["tflite"]).read_bytes(), n["audio"].x_test)
        t_net = _latency_us(n["blob"], n["data"].x_test)
        out.append({"arch": n["row"]["arch"], "full_us": t_full, "network_us": t_net,
                    "preprocessing_share": max(0.0, (t_full - t_net) / t_full),
                    "source": "measured (LiteRT on this host, 1 thread, median of 200)"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aware-run", type=Path)
    ap.add_argument("--fixed-run", type=Path)
    ap.add_argument("--config-aware", type=Path, default=REPO / "configs/danas_fsdd.toml")
    ap.add_argument("--config-fixed", type=Path, default=REPO / "configs/danas_fsdd_fixed.toml")
    ap.add_argument("--out", type=Path, default=REPO / "runs")
    ap.add_argument("--ecg", action="store_true",
                    help="also the ECG searches (configs/danas_ecg*.toml, or the runs below)")
    ap.add_argument("--only-ecg", action="store_true", help="the ECG part only")
    ap.add_argument("--ecg-aware-run", type=Path)
    ap.add_argument("--ecg-fixed-run", type=Path)
    ap.add_argument("--refit", action="store_true",
                    help="also the Nano models refitted on training + validation speakers")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report: dict[str, Any] = {}
    if not args.only_ecg:
        report["fsdd"] = _fsdd(args)
    if args.ecg or args.only_ecg:
        report["ecg"] = _ecg(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


def _ecg(args: argparse.Namespace) -> dict[str, Any]:
    """MIT-BIH: the data-aware front against the 360 Hz one, by validation balanced
    accuracy; RAM on the emulated Nano 33 BLE from the runs' own measurements."""
    aware_dir = args.ecg_aware_run or _run_search(REPO / "configs/danas_ecg.toml", args.out)
    fixed_dir = args.ecg_fixed_run or _run_search(REPO / "configs/danas_ecg_fixed.toml",
                                                  args.out)
    _, aware = _front(aware_dir, "balanced_accuracy")
    _, fixed = _front(fixed_dir, "balanced_accuracy")
    print("\n== ECG (MIT-BIH, normal vs ectopic beats, unseen test patients) ==")
    _print_fronts((("data-aware", aware), ("fixed 360 Hz, 0.711 s", fixed)),
                  lambda r: "RAM " + ", ".join(f"{k} {v:.0f} B"
                                               for k, v in r["ram_bytes"].items() if v))
    ratios = _ratios(aware, fixed)
    if "model_bytes_ratio" in ratios:
        print(f"at equal or better validation balanced accuracy: deployed bytes "
              f"{ratios['model_bytes_ratio']:.1f}x smaller, model + input buffer "
              f"{ratios['model_plus_buffer_ratio']:.1f}x smaller")
        _print_pairs(ratios["pairs"])
    else:
        print(ratios.get("note"))
    return {"aware_run": str(aware_dir), "fixed_run": str(fixed_dir), "aware_front": aware,
            "fixed_front": fixed, "ratios": ratios}


def _fsdd(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1-5 of the module docstring on FSDD."""
    aware_dir = args.aware_run or _run_search(args.config_aware, args.out)
    fixed_dir = args.fixed_run or _run_search(args.config_fixed, args.out)
    _, aware = _front(aware_dir)
    _, fixed = _front(fixed_dir)
    report: dict[str, Any] = {"aware_run": str(aware_dir), "fixed_run": str(fixed_dir),
                              "aware_front": aware, "fixed_front": fixed}

    print("\n== fronts (test = held-out speaker; choices on validation) ==")
    _print_fronts((("data-aware", aware), ("fixed 8 kHz spectrogram", fixed)),
                  lambda r: "arena " + ("unavailable (LiteRT)" if r["arena_bytes"] is None
                                        else f"{r['arena_bytes']:.0f} B"))

    ratios = _ratios(aware, fixed)
    report["ratios"] = ratios
    print("\n== size at equal or better validation accuracy ==")
    if "model_bytes_ratio" in ratios:
        f, a, b = (ratios["fixed"], ratios["aware_smallest_model"],
                   ratios["aware_smallest_model_plus_buffer"])
        print(f"fixed   {f['arch']}: val {f['val_quality']:.3f} test {f['test_quality']:.3f} "
              f"model {f['model_bytes']:.0f} B + buffer {f['input_buffer_bytes']:.0f} B")
        print(f"aware   {a['arch']}: val {a['val_quality']:.3f} test {a['test_quality']:.3f} "
              f"model {a['model_bytes']:.0f} B")
        print(f"aware   {b['arch']}: model + buffer "
              f"{b['model_bytes'] + b['input_buffer_bytes']:.0f} B")
        print(f"deployed model bytes: {ratios['model_bytes_ratio']:.1f}x smaller; model + "
              f"input buffer: {ratios['model_plus_buffer_ratio']:.1f}x smaller (goal >= 10x)")
        print("every fixed-data front model against the smallest data-aware one as accurate:")
        _print_pairs(ratios["pairs"])
    else:
        print(ratios.get("note"))

    networks = _network_models(aware_dir, aware)
    nano = _nano(networks)
    report["nano33ble"] = nano
    print("\n== Arduino Nano 33 BLE (features in; arena from TFLite Micro, front end "
          "estimated) ==")
    for m in nano["members"]:
        if "note" in m:
            print(f"  {m['arch']}: {m['note']}")
            continue
        print(f"  {m['arch']:<60} {m['mcu_model_bytes']:>8} B model, RAM "
              f"{m['ram_total_bytes']:>7} B ({'fits' if m['fits'] else 'does not fit'}), "
              f"val {m['val_accuracy_int8']:.3f} test {m['test_accuracy_int8']:.3f}")
    best = nano["smallest_fitting"]
    if best:
        print(f"smallest that fits: {best['arch']}: speaker-wise test accuracy "
              f"{best['test_accuracy_int8']:.3f} (goal >= 0.95), front end "
              f"{best['frontend_macs']:.0f} MACs ({best['frontend_source']})")
        top = nano["most_accurate_fitting"]
        print(f"most accurate that fits (by validation): {top['arch']}: val "
              f"{top['val_accuracy_int8']:.3f}, test {top['test_accuracy_int8']:.3f}, "
              f"{top['mcu_model_bytes']} B model, {top['ram_total_bytes']} B RAM")
    else:
        print("no front model fits the Nano 33 BLE")

    if args.refit:
        report["refit"] = _refit_nano(aware_dir, nano)

    share = _preprocessing_share(networks)
    report["preprocessing_latency"] = share
    print("\n== preprocessing share of the latency (LiteRT on this host) ==")
    for s in share:
        print(f"  {s['arch']:<60} full {s['full_us']:>8.1f} us, network {s['network_us']:>8.1f}"
              f" us: front end {100 * s['preprocessing_share']:.0f}%")
    return report


if __name__ == "__main__":
    raise SystemExit(main())
