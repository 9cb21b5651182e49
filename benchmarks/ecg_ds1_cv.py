"""Choice data for the inter-patient ECG models (issue 18): grouped cross-validation over DS1.

Every choice behind `configs/ecg_dechazal.toml` and the demo's ECG options (RR feature set,
class weights, augmentation, rhythm-first training...) is made here, on de Chazal's DS1
patients only: the DS1 patients are dealt into k folds (`Splits.grouped_folds`, the same
folds as `[train] cv_folds`), one network is trained per fold, and the predictions on each
fold's held-out patients are pooled, so every DS1 patient is scored once by a network that
never saw them. DS2 is never loaded into a model: the dataset's test side is replaced by its
validation side before training, so no DS2 figure is even computed.

Early stopping needs validation patients of its own. By default (`--early-stopping inner`)
each fold's training patients give up a seeded fifth of themselves for it, so the scored
patients choose nothing, not even the epoch. `--early-stopping held-out` lets the scored
patients stop the training (restoring the epoch of their lowest loss), as the harness did
until 2026-12-03; that figure is biased upwards, and more for networks whose held-out
loss swings (docs/decisions.md, "Early stopping on the scored patients, a smaller
space and a refit").

It prints, per seed, the pooled normal-vs-anomalous balanced accuracy, the AAMI per-class
sensitivity, the confusion matrix (rows: true class) and the records with the most errors,
then the mean over seeds. A light setting (90 Hz, 64-sample windows, 150 beats per record)
takes about two minutes per seed on 2 cores:

    HILNAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/ecg_ds1_cv.py \\
        --seeds 0 1 2 [--rr-feature-names rr_prev_s,...] [--class-weights balanced_sqrt] \\
        [--augment '{"amplitude": 0.1}'] [--arch bionet-b0-x1-l32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: AAMI EC57 classes without Q, as configs/ecg_dechazal.toml, and the same beats in two
CLASSES = {
    "aami": ({"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F"}, ("V", "F", "S", "N")),
    "binary": ({"N": "NLRej", "anomalous": "AaJSVEF"}, ("anomalous", "N")),
}


def inner_split(fold: Any, share: float, seed: int) -> Any:
    """`fold` with a seeded `share` of its training patients moved to a validation side of
    their own (early stopping), and its validation patients moved to the test side.

    The fold's held-out patients are then scored by a network whose every choice, the
    epoch included, was made on other patients.
    """
    groups = sorted(set(fold.groups_train.tolist()))
    n_inner = max(1, round(share * len(groups)))
    inner = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))[:n_inner]]
    val = np.isin(fold.groups_train, inner)
    aux = fold.aux_train
    return replace(
        fold,
        x_train=fold.x_train[~val], y_train=fold.y_train[~val],
        groups_train=fold.groups_train[~val],
        aux_train=None if aux is None else aux[~val],
        x_val=fold.x_train[val], y_val=fold.y_train[val], groups_val=fold.groups_train[val],
        aux_val=None if aux is None else aux[val],
        x_test=fold.x_val, y_test=fold.y_val, aux_test=fold.aux_val,
        selection=f"early stopping on {', '.join(map(str, inner))}",
    )


def _cv_once(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    from host.data import load_ecg_dataset
    from host.data.dataset import EcgDatasetConfig
    from host.spaces.base import get_space
    from host.tasks.ecg import EcgClassification
    from host.train import TrainConfig, train_candidate
    from host.train.metrics import inter_patient_metrics
    from host.train.trainer import predict, refit_config

    rr_names = (tuple(n.strip() for n in args.rr_feature_names.split(",") if n.strip())
                if args.rr_feature_names else None)
    data_cfg = EcgDatasetConfig(
        preset="custom", custom=CLASSES[args.classes][0],
        custom_priority=CLASSES[args.classes][1], split="dechazal",
        val_fraction=0.2, alignment="beat", rr_features=not args.no_rr,
        rr_feature_names=rr_names, normalization=args.normalization,
        sample_rate=args.rate, window=args.window, max_windows_per_record=args.per_record,
        template_beats=args.template_beats, seed=seed,
    )
    task = EcgClassification(data_cfg)
    space = get_space("bionet", task=task)
    arch = space.from_key(args.arch)
    ds = load_ecg_dataset(data_cfg)
    # DS2 stays out: the test side becomes a copy of the validation side.
    ds = replace(ds, x_test=ds.x_val, y_test=ds.y_val, aux_test=ds.aux_val)
    train_cfg = TrainConfig(
        epochs=args.epochs, patience=3, aux_first_epochs=0 if args.no_rr else args.aux_first,
        class_weights=None if args.class_weights == "none" else args.class_weights,
        augment=json.loads(args.augment) if args.augment else None, seed=seed,
    )
    y_true: list[np.ndarray] = []
    y_pred: list[np.ndarray] = []
    p_normal: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    p_inner: list[np.ndarray] = []  # refit: the inner-stopped network's p(N), for pairing
    for i, fold in enumerate(ds.grouped_folds(args.folds, seed)):
        if args.early_stopping in ("inner", "refit"):
            nested = inner_split(fold, 1 / args.folds, seed * 100 + i)
            result = train_candidate(space, arch, task, nested, train_cfg)
            out = predict(result.model, nested.inputs("test"))
            p_inner.append(out[:, 0])
            if args.early_stopping == "refit":
                # The epochs the inner patients chose, then one training on every training
                # patient of the fold with no early stopping: the held-out side is passed
                # as validation only because Keras reports on it; nothing is chosen by it.
                result = train_candidate(space, arch, task, fold,
                                         refit_config(train_cfg, result.history))
                out = predict(result.model, fold.inputs("val"))
        else:
            result = train_candidate(space, arch, task, fold, train_cfg)
            out = predict(result.model, fold.inputs("val"))
        y_true.append(fold.y_val)
        y_pred.append(out.argmax(axis=-1))
        p_normal.append(out[:, 0])
        groups.append(np.asarray(fold.groups_val))
    yt, yp, g = np.concatenate(y_true), np.concatenate(y_pred), np.concatenate(groups)
    m = inter_patient_metrics(yt, yp, ds.class_names)
    # Normal against anomalous by the summed probability of every anomalous class, rather
    # than by the most probable single class.
    summed = inter_patient_metrics((yt > 0).astype(np.int64),
                                   (np.concatenate(p_normal) < 0.5).astype(np.int64),
                                   ("N", "anomalous"))
    before_refit = (inter_patient_metrics((yt > 0).astype(np.int64),
                                          (np.concatenate(p_inner) < 0.5).astype(np.int64),
                                          ("N", "anomalous"))["balanced_accuracy"]
                    if args.early_stopping == "refit" else None)
    cm = np.zeros((len(ds.class_names),) * 2, np.int64)
    np.add.at(cm, (yt, yp), 1)
    errors = {str(r): int(((yt != yp) & (g == r)).sum()) for r in np.unique(g)}
    worst = sorted(errors.items(), key=lambda kv: -kv[1])[:6]
    return {
        "seed": seed,
        "binary_ba": m["normal_vs_anomalous_balanced_accuracy"],
        "binary_ba_summed": summed["balanced_accuracy"],
        "aami_ba": m["balanced_accuracy"],
        "binary_ba_summed_before_refit": before_refit,
        "se": {c: v["sensitivity"] for c, v in m["per_class"].items()},
        "confusion": cm.tolist(),
        "worst_records": worst,
        "n": int(len(yt)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--arch", default="bionet-b0-x1-l32")
    p.add_argument("--classes", choices=sorted(CLASSES), default="aami",
                   help="AAMI N/S/V/F (default) or normal against every ectopic beat")
    p.add_argument("--rate", type=float, default=90.0)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--per-record", type=int, default=150)
    p.add_argument("--normalization", default="running")
    p.add_argument("--template-beats", type=int, default=0)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--aux-first", type=int, default=30)
    p.add_argument("--no-rr", action="store_true", help="windows only, no RR input")
    p.add_argument("--rr-feature-names", help="comma-separated (default: the default set)")
    p.add_argument("--class-weights", default="balanced",
                   choices=["balanced", "balanced_sqrt", "balanced_binary", "none"])
    p.add_argument("--augment", help="[train] augment as JSON")
    p.add_argument("--early-stopping", choices=["inner", "refit", "held-out"], default="inner",
                   help="which patients stop each fold's training: a fifth of its "
                        "training patients (default); 'refit': then train again on all of "
                        "them for the epochs those chose; 'held-out': the scored patients "
                        "themselves (biased)")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        r = _cv_once(args, seed)
        r["seconds"] = time.perf_counter() - t0
        runs.append(r)
        se = " ".join(f"{c} {v:.3f}" for c, v in r["se"].items())
        print(f"seed {seed}: binary BA {r['binary_ba']:.4f} "
              f"(summed {r['binary_ba_summed']:.4f}), AAMI BA {r['aami_ba']:.4f}; Se {se}; "
              f"{r['n']} beats, {r['seconds']:.0f} s", flush=True)
        if r["binary_ba_summed_before_refit"] is not None:
            print(f"  before the refit (inner early stopping, p(N) < 0.5): "
                  f"{r['binary_ba_summed_before_refit']:.4f}")
        print(f"  confusion (rows true N, S, V, F): {r['confusion']}")
        print(f"  most errors: {r['worst_records']}", flush=True)
    mean_binary = float(np.mean([r["binary_ba"] for r in runs]))
    mean_summed = float(np.mean([r["binary_ba_summed"] for r in runs]))
    mean_aami = float(np.mean([r["aami_ba"] for r in runs]))
    mean_se = {c: float(np.mean([r["se"][c] for r in runs])) for c in runs[0]["se"]}
    print(f"MEAN of {len(runs)} seeds: binary BA {mean_binary:.4f} (summed {mean_summed:.4f}), "
          f"AAMI BA {mean_aami:.4f}; "
          + " ".join(f"{c} Se {v:.3f}" for c, v in mean_se.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": vars(args), "runs": runs, "mean_binary_ba": mean_binary,
             "mean_aami_ba": mean_aami, "mean_se": mean_se}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
