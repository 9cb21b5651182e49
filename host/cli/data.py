"""`hilnas data build|download|presets`: fetch and prepare datasets (classes, windows, splits)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from host.errors import ConfigError


def add_dataset_options(p: argparse.ArgumentParser, *, for_eval: bool = False) -> None:
    """Add the options that describe an ECG dataset (shared with train and evaluate).

    Every default is EcgDatasetConfig's (one source of defaults, shared with `[data]` of a
    search configuration); an option left out takes it.
    """
    p.add_argument(
        "--data-dir",
        help="folder holding mitdb/ (default $HILNAS_DATA_DIR; if unset, the user cache "
        "~/.cache/hilnas or $HILNAS_CACHE_DIR, where missing records are downloaded)",
    )
    p.add_argument("--records", help="comma-separated record names, or 'all' (default all)")
    p.add_argument("--preset", help="normal-vs-anomalous (default), normal-vs-ectopic, aami5, "
                   "ventricular or custom")
    if for_eval:
        return
    p.add_argument(
        "--custom",
        help="for --preset custom: 'class=CODES;class=CODES', e.g. 'normal=N;lbbb=L;other=RVAF'",
    )
    p.add_argument("--custom-source", choices=["beat", "rhythm"], help="default beat")
    p.add_argument("--database", help="mitdb (default) or cudb")
    p.add_argument("--window", type=int, help="samples per window (default 256)")
    p.add_argument("--stride", type=int, help="samples between windows (default: the window)")
    p.add_argument("--lead", help="lead name or index (default MLII)")
    p.add_argument("--normalization",
                   help="zscore (default), minmax, record, running (per patient, the last "
                   "10 s) or none")
    p.add_argument("--alignment", choices=["fixed", "beat"],
                   help="fixed windows (default) or one window centred on each beat")
    p.add_argument("--rr-features", action="store_true", default=None,
                   help="with --alignment beat: RR-interval features as a second model input")
    p.add_argument("--rr-feature-names",
                   help="with --rr-features: comma-separated RR features (default: all 9 of "
                   "host.data.beats.RR_FEATURES; models before 2026-12-03 have the first 8, "
                   "without rr_irregularity)")
    p.add_argument("--template-beats", type=int,
                   help="with --alignment beat: subtract the median of the previous N beats' "
                   "windows (the patient's running beat template) from each window (0: off)")
    p.add_argument("--val-fraction", type=float,
                   help="share of patients held out for validation (default 0.1)")
    p.add_argument("--sample-rate", type=float, help="resample to this rate (Hz)")
    p.add_argument("--split", help="patient (default), dechazal or random")
    p.add_argument("--seed", type=int, default=0, help="seeds the split and training (0)")
    p.add_argument("--max-windows-per-record", type=int)
    p.add_argument("--cache-dir", help="where prepared datasets are cached")
    p.add_argument("--no-cache", action="store_true", help="rebuild, do not read or write cache")


def parse_records(text: str | None) -> tuple[str, ...] | None:
    """Return record names from '100,101' (None for 'all' or nothing)."""
    if not text or text.strip().lower() == "all":
        return None
    recs = tuple(r.strip() for r in text.split(",") if r.strip())
    if not recs:
        raise ConfigError(f"--records: no record names in {text!r}")
    return recs


def parse_custom(text: str | None) -> dict[str, list[str]] | None:
    """Return a custom mapping from 'normal=N;lbbb=L;other=R,V,A' (codes: symbols or lists)."""
    if not text:
        return None
    out: dict[str, list[str]] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"--custom: {part!r} is not 'class=CODES'")
        name, codes = (s.strip() for s in part.split("=", 1))
        out[name] = [c for c in codes.split(",") if c] if "," in codes else list(codes)
    return out


def _lead(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def config_from_args(args: argparse.Namespace) -> Any:
    """Return the EcgDatasetConfig described by the dataset options (its defaults elsewhere)."""
    from host.data import EcgDatasetConfig

    given = {
        "preset": args.preset,
        "custom": parse_custom(args.custom),
        "custom_source": args.custom_source,
        "database": args.database,
        "records": parse_records(args.records),
        "window": args.window,
        "stride": args.stride,
        "lead": _lead(args.lead) if args.lead is not None else None,
        "normalization": args.normalization,
        "alignment": args.alignment,
        "rr_features": args.rr_features,
        "rr_feature_names": (tuple(n.strip() for n in args.rr_feature_names.split(",") if n.strip())
                             if args.rr_feature_names else None),
        "template_beats": args.template_beats,
        "val_fraction": args.val_fraction,
        "sample_rate": args.sample_rate,
        "split": args.split,
        "seed": args.seed,
        "max_windows_per_record": args.max_windows_per_record,
        "data_dir": args.data_dir,
        "cache_dir": args.cache_dir,
    }
    return EcgDatasetConfig(
        **{k: v for k, v in given.items() if v is not None}, use_cache=not args.no_cache
    )


def register(sub: Any) -> None:
    parser = sub.add_parser("data", help="download and prepare datasets")
    dsub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    build = dsub.add_parser("build", help="build and cache a labelled, split dataset")
    add_dataset_options(build)
    build.add_argument("--json", action="store_true", help="print JSON")
    build.set_defaults(func=run)
    dl = dsub.add_parser(
        "download",
        help="download a dataset, checked against shipped SHA-256 sums (needs internet)",
        description=(
            "Download a dataset into DATA_DIR/DATABASE, verifying every file against the "
            "SHA-256 sums shipped with hilnas (host/data/checksums). Files already present "
            "and matching are kept; an interrupted download resumes on the next run. "
            "TROIKA is never downloaded (licence): the error says where to get it. "
            "See docs/data.md."
        ),
    )
    dl.add_argument(
        "--database",
        default="mitdb",
        choices=["mitdb", "cudb", "fsdd", "troika"],
        help="mitdb (default) and cudb from PhysioNet, fsdd (Free Spoken Digit Dataset) "
        "from its GitHub archive; troika only prints where to get it",
    )
    dl.add_argument(
        "--data-dir",
        default=None,
        help="folder that receives DATABASE/ (default $HILNAS_DATA_DIR, else the user cache "
        "$HILNAS_CACHE_DIR or ~/.cache/hilnas)",
    )
    dl.add_argument(
        "--records",
        default=None,
        help="comma-separated record names (mitdb: 100,101; fsdd: 0_george_0,...) "
        "or 'all' (default all)",
    )
    dl.add_argument(
        "--mirror",
        default=None,
        help="where to download from. PhysioNet: a URL or folder laid out like "
        "https://physionet.org/files/ (MIRROR/mitdb/1.0.0/100.hea; default "
        "$HILNAS_PHYSIONET_URL, else PhysioNet). fsdd: a .zip of the repository (URL or "
        "file) or a URL/folder holding recordings/ (default $HILNAS_FSDD_URL, else the "
        "GitHub archive of the pinned commit)",
    )
    dl.add_argument(
        "--no-verify",
        action="store_true",
        help="accept files that have no shipped sum (e.g. cudb); files that have one are "
        "still checked",
    )
    bar = dl.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar (default: only when stderr is a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    dl.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds without data before a request is retried or fails (default 30)",
    )
    dl.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries per file after a lost connection, resuming where it stopped (3)",
    )
    dl.set_defaults(func=run_download)
    presets = dsub.add_parser("presets", help="list the class presets")
    presets.set_defaults(func=run_presets)


def run(args: argparse.Namespace) -> int:
    from host.data import load_ecg_dataset

    cfg = config_from_args(args)
    ds = load_ecg_dataset(cfg, progress=sys.stderr.isatty())
    summary = {
        "config_hash": ds.config_hash,
        "classes": list(ds.class_names),
        "split": ds.split_description,
        "counts": ds.counts(),
        "window": ds.window,
        "sample_rate": ds.sample_rate,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"dataset {ds.config_hash}: {cfg.preset}, "
        f"{ds.window}-sample windows at {ds.sample_rate:g} Hz"
    )
    print(f"split: {ds.split_description}")
    width = max(len(c) for c in ds.class_names)
    print(f"{'class':<{width}}  {'train':>7} {'val':>7} {'test':>7}")
    counts = ds.counts()
    for c in ds.class_names:
        print(f"{c:<{width}}  {counts['train'][c]:>7} {counts['val'][c]:>7} {counts['test'][c]:>7}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from host.data.download import download

    result = download(
        args.database,
        args.data_dir,
        parse_records(args.records),
        mirror=args.mirror,
        verify=not args.no_verify,
        progress=args.progress,
        timeout=(min(10.0, args.timeout), args.timeout),
        retries=args.retries,
    )
    print(result.summary())
    return 0


def run_presets(args: argparse.Namespace) -> int:
    from host.data import PRESETS

    for scheme in PRESETS.values():
        groups: dict[str, list[str]] = {c: [] for c in scheme.classes}
        for code, cls in scheme.mapping:
            groups[cls].append(code)
        desc = "; ".join(f"{c}: {' '.join(g)}" for c, g in groups.items())
        print(f"{scheme.name} ({scheme.source}): {desc}")
    return 0
