"""`hilnas train`: train one architecture of a space, export TFLite and C array, write metrics.

It trains exactly as a search's training job does: the same function
(`host.train.train_candidate`), the same `TrainConfig` defaults, the same inference graph
(`Space.export_model`). Every option left out takes the default of `[train]` and `[data]`
of a search configuration (docs/configuration.md).

`--task ppg` trains a heart-rate regressor on TROIKA instead (host/tasks/ppg.py; the GOS
starting models `ppg_peaks` and `ppg_cnnlstm`, docs/ppg.md): leave-subjects-out on
TROIKA's training recordings, the average absolute error in BPM of the Keras model and of
its int8 export (LiteRT) on the validation and test subjects. `hilnas evaluate MODEL --task
ppg` gives the final figure on TROIKA's own test set.

`--task audio` trains one network of the data-aware space on spoken digits (FSDD, whole
speakers held out; docs/data_aware.md): its key carries the input's granularity (rate,
window, representation), so `--arch` is required, typically a front model of a data-aware
search. The export has the feature front end inside (`hilnas evaluate` reads it back).

`--refit` trains the kept network once more on the training and validation sides together,
for the epochs its early stopping chose (`host.train.refit_network`): the network to deploy
once a search has chosen it. With `--cv-folds` its quality figure is the cross-validation
mean; without, the validation figure measured before the refit, and the report says so.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from host.cli.data import add_dataset_options, config_from_args

TASKS = ("ecg", "ppg", "audio")
#: options that describe MIT-BIH data (or a bionet by its genes): meaningless for --task ppg
ECG_ONLY = ("records", "preset", "custom", "custom_source", "database", "window", "stride",
            "lead", "normalization", "alignment", "rr_features", "rr_feature_names",
            "template_beats",
            "val_fraction", "split", "max_windows_per_record", "cache_dir", "no_cache", "blocks")
#: options of the ppg task: meaningless for --task ecg
PPG_ONLY = ("input", "val_subjects", "test_subjects", "resolution_bpm")
#: options that neither describe FSDD nor a data-aware network
NOT_AUDIO = (*ECG_ONLY, *PPG_ONLY, "sample_rate", "aux_first_epochs")


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train one architecture and export it")
    p.add_argument("--task", choices=TASKS, default="ecg",
                   help="ecg: MIT-BIH classes (default); ppg: heart rate (BPM) on TROIKA; "
                   "audio: spoken digits (FSDD) with a data_aware network")
    p.add_argument("--space", default=None,
                   help="the search space (default: bionet for ecg, ppg_peaks for ppg; also "
                   "half, ppg_cnnlstm, ppg_spectral)")
    p.add_argument(
        "--arch", help="architecture key, e.g. bionet-b2-x1-l32, half:s3.1.1.8-p2-s5.2.1.16 "
        "or ppg_peaks-p2-h64x2 (ppg: default, the space's default architecture)"
    )
    p.add_argument("--blocks", type=int, default=None, help="bionet: ResNet blocks (0-15)")
    p.add_argument("--filter-step", type=int, default=1, help="bionet: blocks per doubling")
    p.add_argument("--lstm-cells", type=int, default=32, help="bionet: LSTM cells (16-256)")
    add_dataset_options(p)
    ppg = p.add_argument_group("--task ppg (TROIKA; --data-dir, --seed and --sample-rate too)")
    ppg.add_argument("--input", choices=["spectral", "raw"],
                     help="spectra of the window or the raw signals (default: what the space "
                     "takes: spectral for ppg_peaks and ppg_spectral, raw for ppg_cnnlstm)")
    ppg.add_argument("--val-subjects",
                     help="comma-separated training subjects that choose the model "
                     "(default train11,train12)")
    ppg.add_argument("--test-subjects",
                     help="comma-separated training subjects of the run's test figure "
                     "(default train09,train10)")
    ppg.add_argument("--resolution-bpm", type=float,
                     help="spectral input: BPM per bin (default 1.0: 201 bins)")
    group = p.add_argument_group("training (defaults: [train] of a search configuration)")
    group.add_argument("--epochs", type=int)
    group.add_argument("--batch-size", type=int)
    group.add_argument("--learning-rate", type=float)
    group.add_argument("--clipnorm", type=float,
                       help="clip each gradient to this L2 norm (default 1.0; 0 turns it off)")
    group.add_argument("--patience", type=int, help="early-stopping patience (default 3)")
    group.add_argument("--class-weights",
                       choices=["balanced", "balanced_sqrt", "balanced_binary", "none"],
                       help="default balanced; balanced_sqrt: their square roots; "
                       "balanced_binary: the first class against all others together")
    group.add_argument("--dropout", type=float)
    group.add_argument("--cv-folds", type=int,
                       help="quality by grouped cross-validation over the training and "
                       "validation patients, this many folds (default 0: the validation side)")
    group.add_argument("--refit", action="store_true", default=None,
                       help="train the kept network again on training and validation "
                       "together, for the epochs its early stopping chose (the network to "
                       "deploy); its quality figure: the cross-validation mean with "
                       "--cv-folds, else the validation figure before the refit")
    group.add_argument("--restarts", type=int,
                       help="train from this many seeds (seed + 1000 r) and keep the best on "
                       "validation (default 1; ppg: by tracked AAE)")
    group.add_argument("--augment", metavar="JSON",
                       help="[train] augment as a JSON table, e.g. '{\"shift_fraction\": 0.1, "
                       "\"time_mask\": 0.1, \"bin_mask\": 0.1}' (the data-aware configurations' "
                       "shifts and feature masks; docs/configuration.md; default: none)")
    group.add_argument("--aux-first-epochs", type=int,
                       help="two-input models: fit the RR branch alone first for up to N "
                       "epochs, then freeze it (default 0: one joint fit)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-export", action="store_true", help="skip TFLite and C array export")
    p.set_defaults(func=run)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


#: why an option is refused, per task
_REFUSED_BECAUSE = {"ecg": "it describes TROIKA data", "ppg": "it describes MIT-BIH data",
                    "audio": "the network's key gives the input's granularity"}


def _refuse(args: argparse.Namespace, names: tuple[str, ...], task: str) -> None:
    """ConfigError naming the first option given that --task `task` does not take."""
    from host.errors import ConfigError

    for name in names:
        value = getattr(args, name, None)
        if value is not None and value is not False:
            raise ConfigError(f"{_option(name)}: not an option of --task {task} "
                              f"({_REFUSED_BECAUSE[task]})")


def train_config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig of the training options; what is left out takes TrainConfig's default."""
    from host.errors import ConfigError
    from host.train import TrainConfig

    given = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "clipnorm": args.clipnorm,
        "patience": args.patience,
        "dropout": args.dropout,
        "aux_first_epochs": args.aux_first_epochs,
        "cv_folds": args.cv_folds,
        # Without cross-validation the refit follows the training (`_train`): a search's
        # TrainConfig refuses it there, since its quality figure would not be measured.
        "refit": args.refit if (args.cv_folds or 0) >= 2 else None,
        "restarts": args.restarts,
    }
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if args.augment is not None:
        try:
            options["augment"] = json.loads(args.augment)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--augment: not a JSON table ({exc}): {args.augment!r}") from None
    if args.class_weights is not None:
        options["class_weights"] = None if args.class_weights == "none" else args.class_weights
    return TrainConfig(**options, seed=args.seed, verbose=2)


def _arch(args: argparse.Namespace, space: Any) -> Any:
    from host.errors import ConfigError
    from host.spaces import BioNetArch

    if args.arch:
        arch = space.from_key(args.arch)
    elif args.blocks is not None and space.name == "bionet":
        cells = args.lstm_cells
        if cells < 1 or cells & (cells - 1):
            raise ConfigError(f"--lstm-cells: must be a power of two in 16..256, not {cells}")
        arch = BioNetArch(args.blocks, args.filter_step, cells.bit_length() - 1)
    else:
        raise ConfigError("--arch (or, for bionet, --blocks): say which architecture to train")
    return arch


def _train(space: Any, arch: Any, task: Any, ds: Any, tcfg: Any,
           args: argparse.Namespace) -> Any:
    """`train_candidate`, then `--refit` where the TrainConfig did not do it (no CV)."""
    from host.train import refit_network, train_candidate

    result = train_candidate(space, arch, task, ds, tcfg)
    if args.refit and not tcfg.refit:
        print("      refitting on training and validation together (--refit)", flush=True)
        result = refit_network(space, arch, task, ds, tcfg, result)
    return result


def run(args: argparse.Namespace) -> int:
    if args.task == "ppg":
        return run_ppg(args)
    if args.task == "audio":
        return run_audio(args)
    _refuse(args, PPG_ONLY, "ecg")
    return run_ecg(args)


def run_ecg(args: argparse.Namespace) -> int:
    from host.data import load_ecg_dataset
    from host.export.carray import write_c_array
    from host.export.evaluate import evaluate_tflite
    from host.export.tflite import convert_many
    from host.spaces.base import get_space
    from host.tasks.ecg import EcgClassification

    task = EcgClassification(config_from_args(args))
    # bound as a search binds it: a space for another task (ppg_*) is a ConfigError naming
    # the fix
    space = get_space(args.space or "bionet", task=task)
    arch = _arch(args, space)
    tcfg = train_config_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = task.config
    print(f"[1/4] dataset ({cfg.preset}, split {cfg.split})", flush=True)
    ds = load_ecg_dataset(task.config, progress=True)
    print(f"      {ds.split_description}", flush=True)
    print(f"[2/4] training {arch.key()}", flush=True)
    result = _train(space, arch, task, ds, tcfg, args)
    result.model.save(str(out / "model.keras"), save_format="keras_v3")
    report: dict[str, Any] = {
        **result.summary(),
        "dataset": {"hash": ds.config_hash, "classes": list(ds.class_names), "counts": ds.counts()},
        "costs": space.costs(arch).to_json(),
    }
    if not args.no_export:
        print("[3/4] exporting float32, dynamic-range and int8 TFLite (child process)", flush=True)
        export_model = space.export_model(result.model, arch, task)
        meta = {
            **ds.metadata(),
            "architecture": arch.to_json(),
            "space": space.describe(),
            "created": time.time(),
        }
        models = convert_many(
            export_model, ["float32", "dynamic", "int8"], task.representative(ds), metadata=meta
        )
        for mode, buf in models.items():
            (out / f"model-{mode}.tflite").write_bytes(buf)
        write_c_array(models["int8"], out / "model_int8.h", "hilnas_model_int8")
        print("[4/4] quality of the .tflite models on the test side (LiteRT)", flush=True)
        report["tflite"] = {}
        for mode in ("float32", "int8"):
            m = evaluate_tflite(models[mode], ds, side="test")
            report["tflite"][mode] = {
                k: m[k] for k in ("accuracy", "balanced_accuracy", "f1_macro", "model_bytes")
            }
        report["tflite"]["int8_accuracy_drop_pp"] = 100 * (
            report["tflite"]["float32"]["accuracy"] - report["tflite"]["int8"]["accuracy"]
        )
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    t = result.test_metrics
    print(
        f"test ({ds.split_description.split(';')[0]}): accuracy {t['accuracy']:.4f}, "
        f"balanced {t['balanced_accuracy']:.4f}, F1 macro {t['f1_macro']:.4f}; "
        f"trained in {result.train_seconds:.1f} s"
    )
    _print_restarts(result, "the validation figure")
    if "tflite" in report:
        q = report["tflite"]
        print(
            f"tflite test accuracy: float32 {q['float32']['accuracy']:.4f}, "
            f"int8 {q['int8']['accuracy']:.4f} ({q['int8']['model_bytes']} bytes)"
        )
    print(f"wrote {out}/")
    return 0


def _print_restarts(result: Any, figure: str) -> None:
    """With `--restarts`: each seed's validation figure, and which one was kept."""
    if not result.restarts:
        return
    seeds = ", ".join(f"{r['seed']} {r['value']:.4g}" + (" (kept)" if r["kept"] else "")
                      for r in result.restarts)
    print(f"restarts, by {figure} (larger ranks first): {seeds}")


# --------------------------------------------------------------------------- --task ppg
def _subjects(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(s.strip() for s in text.split(",") if s.strip())


def ppg_config_from_args(args: argparse.Namespace, space_name: str) -> Any:
    """The PpgDatasetConfig of the ppg options; the input defaults to what the space takes."""
    from host.errors import ConfigError
    from host.spaces.base import space_class
    from host.tasks.ppg import PpgDatasetConfig

    rate = args.sample_rate
    if rate is not None:
        if not float(rate).is_integer():
            raise ConfigError(f"--sample-rate: the ppg task takes whole Hz, not {rate:g}")
        rate = int(rate)
    given = {
        "input": args.input or getattr(space_class(space_name), "input_kind", None) or None,
        "resolution_bpm": args.resolution_bpm,
        "sample_rate": rate,
        "val_subjects": _subjects(args.val_subjects),
        "test_subjects": _subjects(args.test_subjects),
        "seed": args.seed,
        "data_dir": args.data_dir,
    }
    return PpgDatasetConfig(**{k: v for k, v in given.items() if v is not None})


def _ppg_arch(args: argparse.Namespace, space: Any) -> Any:
    from host.errors import ConfigError

    if args.arch:
        return space.from_key(args.arch)
    default = getattr(space, "default_architecture", None)
    if default is None:
        raise ConfigError(f"--arch: say which architecture of space {space.name!r} to train")
    return default()


def run_ppg(args: argparse.Namespace) -> int:
    """`hilnas train --task ppg`: a heart-rate model on TROIKA, its int8 export and its AAE."""
    from host.errors import ConfigError
    from host.export.carray import write_c_array
    from host.export.evaluate import tflite_outputs
    from host.export.tflite import convert_many
    from host.spaces.base import get_space
    from host.tasks.ppg import PulseRate
    from host.train.trainer import predict

    _refuse(args, ECG_ONLY, "ppg")
    if args.class_weights == "balanced":
        raise ConfigError("--class-weights: the ppg task is a regression (BPM); class weights "
                          "apply to classification")
    space_name = args.space or "ppg_peaks"
    task = PulseRate(ppg_config_from_args(args, space_name))
    space = get_space(space_name, task=task)  # bind: ConfigError when the input does not fit
    arch = _ppg_arch(args, space)
    tcfg = replace(train_config_from_args(args), class_weights=None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = task.config
    print(f"[1/4] dataset (TROIKA, {cfg.input} input, validation {','.join(cfg.val_subjects)}, "
          f"test {','.join(cfg.test_subjects)})", flush=True)
    ds = task.load()
    print(f"      {len(ds.y_train)} / {len(ds.y_val)} / {len(ds.y_test)} windows "
          f"{tuple(ds.x_train.shape[1:])} (train / val / test)", flush=True)
    print(f"[2/4] training {arch.key()}", flush=True)
    result = _train(space, arch, task, ds, tcfg, args)
    result.model.save(str(out / "model.keras"), save_format="keras_v3")
    sides = ("val", "test")

    def scored(outputs: Any, side: str) -> dict[str, Any]:
        return ds.score(side, outputs)  # per window, and tracked over each recording

    keras = {s: scored(predict(result.model, ds.inputs(s), tcfg.eval_batch_size), s)
             for s in sides}
    report: dict[str, Any] = {
        **result.summary(),
        **keras,
        "task": task.name,
        "data": task.identity(),
        "dataset": {**ds.metadata(), "windows": {s: int(len(getattr(ds, f"y_{s}")))
                                                 for s in ("train", *sides)},
                    "shape": list(ds.x_train.shape[1:])},
        "params": int(result.model.count_params()),
        "costs": space.costs(arch).to_json(),
        "aae_bpm": {"keras": {s: keras[s]["aae_bpm"] for s in sides}},
        "aae_bpm_tracked": {"keras": {s: keras[s]["tracked"]["aae_bpm"] for s in sides}},
    }
    if not args.no_export:
        mode = task.export_mode()
        print(f"[3/4] exporting float32 and {mode} TFLite (child process)", flush=True)
        export_model = space.export_model(result.model, arch, task)
        meta = {
            **ds.metadata(),
            "task": task.name,
            "data": task.identity(),
            "arch": arch.key(),
            "architecture": arch.to_json(),
            "space": space.describe(),
            "created": time.time(),
        }
        models = convert_many(export_model, ["float32", mode], task.representative(ds),
                              metadata=meta)
        for m, buf in models.items():
            (out / f"model-{m}.tflite").write_bytes(buf)
        write_c_array(models[mode], out / "model_int8.h", "hilnas_model_int8")
        print(f"[4/4] AAE of the {mode} model on the validation and test subjects (LiteRT)",
              flush=True)
        quantized = {s: scored(tflite_outputs(models[mode], ds.inputs(s)), s) for s in sides}
        report["tflite"] = {
            "float32": {"model_bytes": len(models["float32"])},
            mode: {**quantized, "model_bytes": len(models[mode])},
        }
        report["aae_bpm"][mode] = {s: quantized[s]["aae_bpm"] for s in sides}
        report["aae_bpm_tracked"][mode] = {s: quantized[s]["tracked"]["aae_bpm"] for s in sides}
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    aae, tracked = report["aae_bpm"], report["aae_bpm_tracked"]
    lines = [f"{arch.key()}: {report['params']:,} parameters, trained in "
             f"{result.train_seconds:.1f} s ({result.epochs_run} epochs); AAE per window "
             "(tracked)"]
    for name, figures in aae.items():
        size = report.get("tflite", {}).get(name, {}).get("model_bytes")
        lines.append(
            f"  {name:<6} AAE val ({', '.join(cfg.val_subjects)}) {figures['val']:.2f} "
            f"({tracked[name]['val']:.2f}) BPM, test ({', '.join(cfg.test_subjects)}) "
            f"{figures['test']:.2f} ({tracked[name]['test']:.2f}) BPM"
            + (f" ({size:,} bytes)" if size else "")
        )
    print("\n".join(lines))
    _print_restarts(result, "minus the tracked validation AAE")
    print(f"wrote {out}/ (TROIKA's own test set: hilnas evaluate {out}/model-int8.tflite "
          "--task ppg)")
    return 0


# --------------------------------------------------------------------------- --task audio
def run_audio(args: argparse.Namespace) -> int:
    """`hilnas train --task audio`: one data-aware network on FSDD, exported with its front end."""
    from host.errors import ConfigError
    from host.export.carray import write_c_array
    from host.export.evaluate import tflite_outputs
    from host.export.tflite import convert_many
    from host.spaces.base import get_space
    from host.tasks.audio import AudioDatasetConfig, SpokenDigits

    _refuse(args, NOT_AUDIO, "audio")
    if not args.arch:
        raise ConfigError("--arch: say which data_aware network to train (its key carries the "
                          "input's granularity), e.g. "
                          "data_aware-r8000-w1-mfcc-f32-m40-c13-L16k3r_32k3r-Hpool-Nutt")
    if (args.space or "data_aware") != "data_aware":
        raise ConfigError(f"--space: --task audio trains data_aware networks (their key carries "
                          f"the input's granularity), not {args.space!r}")
    options = {"seed": args.seed, "data_dir": args.data_dir}
    run_task = SpokenDigits(AudioDatasetConfig(**{k: v for k, v in options.items()
                                                  if v is not None}))
    space = get_space("data_aware", task=run_task)
    arch = space.from_key(args.arch)
    task = space.task_for(arch, run_task)  # the network's own granularity
    tcfg = train_config_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/4] dataset (FSDD, {task.config.sample_rate} Hz, {task.config.window_s:g} s, "
          f"{task.config.representation})", flush=True)
    ds = task.load(progress=True)
    print(f"      {ds.split_description}: {len(ds.y_train)} / {len(ds.y_val)} / "
          f"{len(ds.y_test)} windows (train / val / test)", flush=True)
    print(f"[2/4] training {arch.key()}", flush=True)
    result = _train(space, arch, task, ds, tcfg, args)
    result.model.save(str(out / "model.keras"), save_format="keras_v3")
    report: dict[str, Any] = {
        **result.summary(),
        "task": task.name,
        "data": task.identity(),
        "dataset": ds.metadata(),
        "params": int(result.model.count_params()),
        "costs": space.costs(arch).to_json(),
    }
    if not args.no_export:
        mode = task.export_mode()
        print(f"[3/4] exporting float32 and {mode} TFLite, front end inside (child process)",
              flush=True)
        meta = {**ds.metadata(), "arch": arch.key(), "architecture": arch.to_json(),
                "space": space.describe(), "task": task.name, "data": task.identity(),
                "created": time.time()}
        models = convert_many(space.export_model(result.model, arch, task), ["float32", mode],
                              task.representative(ds), metadata=meta, batch_size=None)
        for m, buf in models.items():
            (out / f"model-{m}.tflite").write_bytes(buf)
        write_c_array(models[mode], out / "model_int8.h", "hilnas_model_int8")
        print("[4/4] accuracy of the .tflite models on the test speakers (LiteRT)", flush=True)
        report["tflite"] = {
            m: {"accuracy": float((tflite_outputs(buf, ds.x_test).argmax(axis=1)
                                   == ds.y_test).mean()),
                "model_bytes": len(buf)}
            for m, buf in models.items()
        }
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    v, t = result.val_metrics, result.test_metrics
    print(f"{arch.key()}: {report['params']:,} parameters, trained in "
          f"{result.train_seconds:.1f} s; accuracy val {v['accuracy']:.4f}, test "
          f"{t['accuracy']:.4f} ({result.selection})")
    for m, q in report.get("tflite", {}).items():
        print(f"  {m:<16} test accuracy {q['accuracy']:.4f} ({q['model_bytes']:,} bytes)")
    print(f"wrote {out}/ (other recordings: hilnas evaluate {out}/model-int8*.tflite "
          "--data-dir FOLDER)")
    return 0
