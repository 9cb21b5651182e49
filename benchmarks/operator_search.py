"""Grassroots Operator Search on TROIKA: speedup and AAE change of the starting models.

For each starting model (GOS's two: the spectral-peak MLP `ppg_peaks`, the CNN+LSTM
`ppg_cnnlstm`; and hilnas's convolutional spectral peak picker `ppg_spectral`; docs/ppg.md)
it trains the model with `hilnas train --task ppg`, adapts it with
`hilnas adapt` on the local LiteRT device (measured latency) and on the emulated Nano 33 BLE
(TFLite Micro; its latency is the cycle model's estimate, labelled so), and prints:

- the speedup of the adapted model over the original, per device, and its source;
- the change in validation AAE (every choice is made on the validation subjects) and in
  the run's test-subject AAE;
- the TROIKA test-set AAE (held-back recordings, scored once here with `hilnas evaluate`)
  of the original and adapted models, with parameter count and measured latency, per
  window (the model alone) and tracked across each recording's windows (`PulseTracker`).

    python benchmarks/operator_search.py --out /tmp/gos [--quick] [--devices local,...]

`--quick` is a few-minute configuration (population 4, one generation, one operator);
the default budget (about 40 minutes on 2 cores) is in `budget` below. Each step's output
folder is reused when it exists, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _util import run_hilnas  # type: ignore[import-not-found]

MODELS = {
    "ppg_peaks": ("ppg_peaks-p2-h64x2", "spectral"),
    "ppg_cnnlstm": ("ppg_cnnlstm-f32-k5-u32", "raw"),
    "ppg_spectral": ("ppg_spectral-f16-k9-d4", "spectral"),
}
DEVICES = {"local": "local", "nano33": "local:mcu-emulator"}


def hilnas(*args: str, log: Path) -> None:
    seconds = run_hilnas(list(args), log)
    print(f"    {' '.join(args[:2])} ... ({seconds:.0f} s, log {log})", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--devices", default=",".join(DEVICES))
    p.add_argument("--epochs", type=int, default=60, help="training epochs of the originals")
    p.add_argument("--max-layers", type=int, default=0,
                   help="operators adapted at most, for every model (default: the budget's 2; "
                   "hilnas adapt's own default is 3)")
    p.add_argument("--patience", type=int, default=10,
                   help="early-stopping patience of the originals: trained to convergence, "
                   "so that fine-tuning during the search is not counted as a gain")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quick = ["--population", "4", "--generations", "1", "--max-layers", "1", "--epochs", "3"]
    # the bench budget per model: an MLP candidate takes 1-2 s, a CNN+LSTM one 5-12 s
    budget = {"ppg_peaks": ["--population", "12", "--generations", "10", "--max-layers", "2",
                            "--epochs", "8"],
              "ppg_cnnlstm": ["--population", "8", "--generations", "5", "--max-layers", "2",
                              "--epochs", "8"],
              "ppg_spectral": ["--population", "8", "--generations", "5", "--max-layers", "2",
                               "--epochs", "8"]}
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        arch, input_kind = MODELS[name]
        trained = out / name
        print(f"[{name}] {arch}", flush=True)
        if not (trained / "metrics.json").exists():
            hilnas("train", "--task", "ppg", "--space", name, "--arch", arch, "--input",
                   input_kind, "--epochs", str(args.epochs), "--patience", str(args.patience),
                   "--out", str(trained),
                   log=out / f"{name}-train.log")
        for dev in args.devices.split(","):
            adapted = out / f"{name}-{dev}"
            if not (adapted / "adapt.json").exists():
                search = list(quick if args.quick else budget[name])
                if args.max_layers:
                    search[search.index("--max-layers") + 1] = str(args.max_layers)
                hilnas("adapt", str(trained), "--task", "ppg", "--device", DEVICES[dev],
                       *search, "--out", str(adapted),
                       log=out / f"{name}-{dev}-adapt.log")
            s = json.loads((adapted / "adapt.json").read_text())
            troika = {}
            for which in ("original", "adapted"):
                path = out / f"{name}-{dev}-{which}-troika.json"
                if not path.exists():
                    hilnas("evaluate", str(adapted / f"{which}-int8.tflite"), "--task", "ppg",
                           "--json", log=path)
                troika[which] = _last_json(path.read_text())
            rows.append({"model": name, "device": dev, "summary": s, "troika": troika})
    _print(rows)
    (out / "operator_search.json").write_text(json.dumps(
        [{"model": r["model"], "device": r["device"], "troika": r["troika"],
          **{k: r["summary"][k] for k in ("speedup", "base", "final", "steps", "test")}}
         for r in rows], indent=2, default=str))
    return 0


def _last_json(text: str) -> dict[str, Any]:
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {}


def _tracked(figures: dict[str, Any]) -> float:
    return float(figures.get("tracked", {}).get("aae_bpm", float("nan")))


def _print(rows: list[dict[str, Any]]) -> None:
    print("\nmodel        device  latency source  original µs  adapted µs  speedup  "
          "val AAE (orig -> adapted)  test-subject AAE  TROIKA test AAE (tracked)  params")
    for r in rows:
        s, t = r["summary"], r["troika"]
        test = s.get("test", {})
        print(f"{r['model']:<12} {r['device']:<7} {s['base']['latency_source']:<15} "
              f"{s['base']['latency_us']:>11.0f} {s['final']['latency_us']:>11.0f} "
              f"{s['speedup']:>7.2f}x  {s['base']['quality']:>6.2f} -> "
              f"{s['final']['quality']:<6.2f}"
              f"           {test.get('original', {}).get('aae_bpm', float('nan')):>5.2f} -> "
              f"{test.get('adapted', {}).get('aae_bpm', float('nan')):<5.2f}   "
              f"{t['original'].get('aae_bpm', float('nan')):>5.2f} -> "
              f"{t['adapted'].get('aae_bpm', float('nan')):<5.2f} "
              f"({_tracked(t['original']):.2f} -> {_tracked(t['adapted']):.2f})   "
              f"{s['final']['model_params']}")
        for st in s["steps"]:
            after = (st["after"] or {}).get("equation", "-")
            print(f"    step {st['step']} {','.join(st['operator'])}: {st['before']['equation']}"
                  f"  =>  {after if st['accepted'] else '(kept) ' + st['reason']}")
    print("\nlatency: 'measured' = LiteRT on this host through the local agent; 'estimated' = "
          "the emulated Nano 33 BLE's cycle model (a stand-in, not a board's figure).\n"
          "TROIKA test AAE: per window (the model alone), and in brackets tracked across each "
          "recording's windows (host/tasks/ppg.py PulseTracker, causal).")


if __name__ == "__main__":
    sys.exit(main())
