"""`hilnas evaluate MODEL.tflite`: an exported model's quality on ECG records or WAVs.

Which one the model's metadata says: ECG records, or a folder of WAV files for a
spoken-digit model. Besides accuracy, balanced accuracy and F1, for an ECG model it
prints the inter-patient figures (AAMI per-class sensitivity and positive predictivity,
normal-vs-anomalous balanced accuracy, the j-index) and, for a beat-aligned model with
`--detect`, the scores on the beats that wfdb's XQRS detector finds, with the detector's
own sensitivity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from host.cli.data import add_dataset_options, parse_records

#: MIT-BIH's paced records: AAMI (and de Chazal's DS1/DS2) leave them out
PACED_RECORDS = ("102", "104", "107", "217")


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="quality of a .tflite model on ECG records or WAV "
                       "files (LiteRT)")
    p.add_argument("model", help="a .tflite exported by hilnas (its metadata sets windowing)")
    add_dataset_options(p, for_eval=True)
    p.add_argument(
        "--speakers",
        help="audio models: comma-separated speakers to keep (default: every speaker of "
        "--data-dir; without --data-dir, the model's own FSDD test speakers)",
    )
    p.add_argument("--on-bad-file", choices=["skip", "error"], default="skip",
                   help="audio models: skip an unreadable WAV (named) or stop (default skip)")
    p.add_argument("--task", choices=["ecg", "audio", "ppg"],
                   help="the model's task (default: its metadata's; a different one is an "
                   "error). ppg: the AAE in BPM on TROIKA's test set")
    p.add_argument(
        "--detect", action="store_true",
        help="beat-aligned models: score the beats wfdb's XQRS detector finds, not the "
        "annotated ones (reports the detector's sensitivity too)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def unseen_records(meta: dict[str, Any], data_dir: str | None) -> tuple[str, ...]:
    """Every present record outside the model's training and validation records.

    Paced records are left out as AAMI recommends; what is left is the run's test patients
    and the records the run never loaded.
    """
    from host.data.dataset import records_for_evaluation
    from host.errors import ConfigError

    sides = meta.get("records") or {}
    if not sides.get("train"):
        raise ConfigError("--records unseen: the model's metadata does not list its records")
    seen = set(sides.get("train", [])) | set(sides.get("val", []))
    present = records_for_evaluation(meta.get("database", "mitdb"), data_dir)
    return tuple(r for r in present if r not in seen and r not in PACED_RECORDS)


def run(args: argparse.Namespace) -> int:
    from host.errors import ConfigError
    from host.export.evaluate import config_from_metadata, evaluate_tflite
    from host.export.flatbuf import read_metadata

    path = Path(args.model)
    if not path.is_file():
        raise ConfigError(f"model: {path} does not exist")
    buf = path.read_bytes()
    meta = read_metadata(buf)
    task = meta.get("task") or "ecg"
    if args.task is not None and args.task != task:
        raise ConfigError(f"--task {args.task}: {path.name} is a {task!r} model (its metadata)")
    if task == "audio":
        return _run_audio(args, buf, meta)
    if task == "ppg":
        return _run_ppg(args, buf, meta)
    if args.records is not None and args.records.strip().lower() == "unseen":
        records: tuple[str, ...] | None = unseen_records(meta, args.data_dir)
    else:
        records = parse_records(args.records)
    if args.records is None:
        test = (meta.get("records") or {}).get("test")
        records = tuple(test) if test else None
    cfg = config_from_metadata(meta, preset=args.preset, records=records, data_dir=args.data_dir)
    metrics = evaluate_tflite(buf, cfg, progress=not args.json, detect=args.detect)
    if args.json:
        print(json.dumps(metrics, indent=2, default=str))
        return 0
    print(f"{path.name} ({metrics.get('quantization') or 'unknown'}, {len(buf)} bytes)")
    print(f"data: {metrics['data']}  (preset {cfg.preset}, {metrics['n']} windows)")
    if metrics.get("beats"):
        print(f"beats: {metrics['beats']}")
    det = metrics.get("detection")
    if det:
        print(
            f"detector {det['detector']}: sensitivity {det['sensitivity']:.4f}, positive "
            f"predictivity {det['positive_predictivity']:.4f} ({det['matched_beats']} of "
            f"{det['reference_beats']} reference beats, {det['detected_beats']} detections)"
        )
    print(
        f"accuracy {metrics['accuracy']:.4f}  balanced {metrics['balanced_accuracy']:.4f}  "
        f"F1 macro {metrics['f1_macro']:.4f}"
    )
    ip = metrics["inter_patient"]
    nva = ip["normal_vs_anomalous_balanced_accuracy"]
    line = f"normal-vs-anomalous balanced accuracy {nva:.4f}"
    if "j_index" in ip:
        line += f"  j-index {ip['j_index']:.4f}"
    print(line)
    for name, pc in metrics["per_class"].items():
        print(
            f"  {name:<12} sensitivity {pc['recall']:.3f} positive predictivity "
            f"{pc['precision']:.3f} F1 {pc['f1']:.3f} n={pc['support']}"
        )
    return 0


def _run_audio(args: argparse.Namespace, buf: bytes, meta: dict[str, Any]) -> int:
    """A spoken-digit model on `--data-dir` (any folder of `<digit>_<speaker>_<n>.wav`)."""
    from host.export.evaluate_audio import evaluate_audio_folder

    speakers = tuple(s.strip() for s in args.speakers.split(",") if s.strip()) \
        if args.speakers else None
    metrics = evaluate_audio_folder(buf, meta, args.data_dir, speakers=speakers,
                                    on_bad=args.on_bad_file)
    if args.json:
        print(json.dumps(metrics, indent=2, default=str))
        return 0
    g = metrics["granularity"]
    print(f"{Path(args.model).name} ({metrics.get('quantization') or 'unknown'}, {len(buf)} "
          f"bytes): {g['representation']} at {g['sample_rate']} Hz, {g['window_s']:g} s windows")
    print(f"data: {metrics['folder']} ({metrics['n']} recordings)")
    for item in metrics["skipped"]:
        print(f"  skipped {item['file']}: {item['reason']}")
    print(f"accuracy {metrics['accuracy']:.4f}  balanced {metrics['balanced_accuracy']:.4f}  "
          f"F1 macro {metrics['f1_macro']:.4f}")
    for name, s in metrics["per_speaker"].items():
        print(f"  {name:<12} accuracy {s['accuracy']:.3f} n={s['n']}")
    return 0


def _run_ppg(args: argparse.Namespace, buf: bytes, meta: dict[str, Any]) -> int:
    """A pulse-rate model on TROIKA's test set (the final figure; never a search's choice)."""
    from host.export.evaluate_ppg import evaluate_troika_test

    metrics = evaluate_troika_test(buf, meta, args.data_dir)
    if args.json:
        print(json.dumps(metrics, indent=2, default=str))
        return 0
    print(f"{Path(args.model).name} ({metrics.get('quantization') or 'unknown'}, {len(buf)} "
          f"bytes) on {metrics['data']}")
    tracked = metrics["tracked"]
    print(f"AAE {metrics['aae_bpm']:.2f} BPM per window, {tracked['aae_bpm']:.2f} tracked; "
          f"RMSE {metrics['rmse_bpm']:.2f} / {tracked['rmse_bpm']:.2f} BPM "
          f"({metrics['n']} windows; tracker {tracked['tracker']})")
    for name, value in metrics.get("per_activity", {}).items():
        print(f"  activity {name}: AAE {value:.2f} BPM per window, "
              f"{tracked['per_activity'][name]:.2f} tracked")
    for name, m in metrics["per_recording"].items():
        print(f"  {name:<14} AAE {m['aae_bpm']:.2f} / {m['tracked']['aae_bpm']:.2f} BPM  "
              f"n={m['n']}")
    return 0
