"""Build labelled, split ECG window datasets from PhysioNet records (with caching)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from host.data import cache as cache_mod
from host.data.beats import RR_FEATURES, check_rr_feature_names
from host.data.classes import ClassScheme, resolve_scheme
from host.data.download import ensure_records
from host.data.mitdb import (
    DATABASES,
    EcgRecord,
    available_records,
    data_root,
    database_dir,
    load_record,
)
from host.data.splits import (
    SPLITS,
    Splits,
    dechazal_split,
    patient_split,
    random_split,
    record_groups,
)
from host.data.windows import NORMALIZATIONS, make_beat_windows, make_windows
from host.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ALIGNMENTS = ("fixed", "beat")
#: with beat alignment and max_windows_per_record, each class keeps up to this share of a
#: record's budget (fixed windows keep a tenth)
BEAT_FLOOR_SHARE = 0.5
#: below this many validation patients, a warning says the quality figure will be noisy
MIN_VAL_PATIENTS = 5
#: beats a running template may span: a device keeps that many windows (at 360 Hz and 256
#: samples of int16, 200 beats are 100 KB, most of a Nano 33 BLE's RAM).
MAX_TEMPLATE_BEATS = 200


@dataclass(frozen=True)
class EcgDatasetConfig:
    """What dataset to build. Validated on construction; errors name the bad key.

    - `preset`: "normal-vs-anomalous", "normal-vs-ectopic" (AAMI N against S, V and F),
      "aami5", "ventricular" or "custom" (then `custom` maps class names to annotation
      codes, `custom_source` says beat or rhythm codes).
    - `records`: record names, or None for every record present.
    - `window`/`stride`: samples per window and between window starts (stride None = window).
    - `lead`: a signal name ("MLII") or index. With a name, records that lack it are skipped
      when `records` is None and are an error when named explicitly.
    - `alignment`: "fixed" (windows every `stride` samples, labelled by the beats inside)
      or "beat" (one window centred on each annotated beat, labelled by that beat; `stride`
      does not apply; host.data.beats).
    - `rr_features`: with beat alignment, give the model the beat's RR-interval features
      as a second input: `rr_feature_names` of host.data.beats.RR_FEATURE_CATALOG, None
      (default) for the default set host.data.beats.RR_FEATURES.
    - `template_beats`: with beat alignment, subtract from each window the median of the
      previous `template_beats` beats' windows, the patient's own running beat template
      (host.data.windows.subtract_template); 0 (default) keeps the windows whole.
    - `normalization`: "zscore" (per window), "minmax", "record" (per patient), "running"
      (per patient, causal: the last 10 s) or "none".
    - `sample_rate`: resample to this rate (None keeps the record's own, 360 Hz for mitdb).
    - `split`: "patient" (seeded hold-out of whole patients, default), "dechazal" (DS1/DS2)
      or "random" (the paper's 70/10/20 of windows; leaks patients into test).
    - `val_fraction`: the share of patients (patient-wise and de Chazal splits) held out for
      validation, which early stopping and the search's quality objective use. A handful of
      patients makes that figure swing from epoch to epoch; a warning names a split with
      fewer than `MIN_VAL_PATIENTS`.
    - `max_windows_per_record`: keep at most this many windows per record (for speed); the
      sample is seeded and every class present in a record keeps some windows.
    - `data_dir`/`cache_dir`: where the databases are and where prepared sets are cached;
      neither is part of the cache key. `data_dir` None means `$HILNAS_DATA_DIR`, else the
      user cache, into which the needed records are downloaded on first use (docs/data.md).
    """

    preset: str = "normal-vs-anomalous"
    custom: Mapping[str, str | Sequence[str]] | None = None
    custom_source: str = "beat"
    custom_priority: tuple[str, ...] | None = None
    database: str = "mitdb"
    records: tuple[str, ...] | None = None
    window: int = 256
    stride: int | None = None
    alignment: str = "fixed"
    rr_features: bool = False
    rr_feature_names: tuple[str, ...] | None = None
    template_beats: int = 0
    lead: str | int = "MLII"
    normalization: str = "zscore"
    sample_rate: float | None = None
    split: str = "patient"
    val_fraction: float = 0.1
    seed: int = 0
    max_windows_per_record: int | None = None
    data_dir: str | None = field(default=None, compare=False)
    cache_dir: str | None = field(default=None, compare=False)
    use_cache: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if self.custom is not None:
            frozen = tuple(
                (str(k), v if isinstance(v, str) else tuple(v)) for k, v in self.custom.items()
            )
            object.__setattr__(self, "custom", _FrozenMapping(frozen))
        if self.custom_priority is not None:
            object.__setattr__(self, "custom_priority", tuple(self.custom_priority))
        if self.records is not None:
            if isinstance(self.records, str):
                raise ConfigError("records: give a list of record names, not one string")
            object.__setattr__(self, "records", tuple(str(r) for r in self.records))
        if self.database not in DATABASES:
            raise ConfigError(f"database: unknown {self.database!r}; known: {sorted(DATABASES)}")
        if not isinstance(self.window, int) or self.window < 8:
            raise ConfigError(f"window: must be an integer >= 8, not {self.window!r}")
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise ConfigError(f"stride: must be a positive integer, not {self.stride!r}")
        if self.alignment not in ALIGNMENTS:
            raise ConfigError(
                f"alignment: unknown {self.alignment!r}; choose one of {list(ALIGNMENTS)}"
            )
        if self.alignment == "beat" and self.stride is not None:
            raise ConfigError("stride: beat-aligned windows have one window per beat; drop stride")
        if not isinstance(self.rr_features, bool):
            raise ConfigError(f"rr_features: must be true or false, not {self.rr_features!r}")
        if self.rr_features and self.alignment != "beat":
            raise ConfigError("rr_features: RR intervals need alignment = 'beat'")
        if self.rr_feature_names is not None:
            if isinstance(self.rr_feature_names, str):
                raise ConfigError("rr_feature_names: give a list of feature names, not one string")
            object.__setattr__(self, "rr_feature_names",
                               check_rr_feature_names(self.rr_feature_names))
            if not self.rr_features:
                raise ConfigError("rr_feature_names: needs rr_features = true")
        if (
            isinstance(self.template_beats, bool)
            or not isinstance(self.template_beats, int)
            or not 0 <= self.template_beats <= MAX_TEMPLATE_BEATS
        ):
            raise ConfigError(
                f"template_beats: must be an integer from 0 to {MAX_TEMPLATE_BEATS}, "
                f"not {self.template_beats!r}"
            )
        if self.template_beats and self.alignment != "beat":
            raise ConfigError("template_beats: a beat template needs alignment = 'beat'")
        if not isinstance(self.val_fraction, (int, float)) or not 0 < self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction: must be in (0, 0.5), not {self.val_fraction!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"normalization: unknown {self.normalization!r}; choose {list(NORMALIZATIONS)}"
            )
        if self.split not in SPLITS:
            raise ConfigError(f"split: unknown {self.split!r}; choose one of {list(SPLITS)}")
        if self.max_windows_per_record is not None and self.max_windows_per_record < 1:
            raise ConfigError("max_windows_per_record: must be positive")
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise ConfigError(f"sample_rate: must be positive, not {self.sample_rate}")
        scheme = self.scheme()  # unknown preset or bad custom mapping fails here, not later
        if self.alignment == "beat" and scheme.source != "beat":
            raise ConfigError(
                f"alignment: 'beat' needs a beat-code preset; {scheme.name!r} labels rhythms"
            )

    def scheme(self) -> ClassScheme:
        return resolve_scheme(self.preset, self.custom, self.custom_source, self.custom_priority)

    @property
    def n_aux_features(self) -> int:
        """Values of the second model input (0: the model has the window only)."""
        return len(self.rr_names) if self.rr_features else 0

    @property
    def rr_names(self) -> tuple[str, ...]:
        """The RR features the model gets, in order (the default set unless named)."""
        return self.rr_feature_names or RR_FEATURES

    def key_fields(self) -> dict[str, Any]:
        """Return the fields that change the prepared arrays (the cache key)."""
        d = asdict(self)
        # Fields added after datasets were cached: at their defaults they leave the key as it
        # was, so caches built before them stay valid.
        for name, default in (("alignment", "fixed"), ("rr_features", False),
                              ("val_fraction", 0.1), ("template_beats", 0)):
            if d[name] == default:
                d.pop(name)
        if self.alignment == "beat":
            d["subsample_floor_share"] = BEAT_FLOOR_SHARE
            d["rr_feature_names"] = list(self.rr_names)
        else:
            d.pop("rr_feature_names")
        for k in ("data_dir", "cache_dir", "use_cache"):
            d.pop(k)
        d["custom"] = dict(self.custom) if self.custom is not None else None
        d["custom_priority"] = list(self.custom_priority) if self.custom_priority else None
        d["scheme"] = self.scheme().to_json()
        return d


class _FrozenMapping(dict[str, Any]):
    """A dict that can be hashed, so configs with a custom mapping stay hashable."""

    def __init__(self, items: tuple[tuple[str, Any], ...]) -> None:
        super().__init__(items)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


@dataclass
class EcgDataset(Splits):
    """Prepared windows: x arrays (n, window, 1) float32, y int64 class indices."""

    class_names: tuple[str, ...]
    config_hash: str
    config: EcgDatasetConfig
    records: dict[str, list[str]]
    sample_rate: float

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def window(self) -> int:
        return int(self.x_train.shape[1])

    def counts(self) -> dict[str, dict[str, int]]:
        """Windows per class on each side."""
        out = {}
        for side, y in (("train", self.y_train), ("val", self.y_val), ("test", self.y_test)):
            out[side] = {n: int((y == i).sum()) for i, n in enumerate(self.class_names)}
        return out

    def metadata(self) -> dict[str, Any]:
        """Return what a model trained on this set needs to be evaluated the same way later."""
        cfg = self.config
        return {
            "preset": cfg.preset,
            "scheme": cfg.scheme().to_json(),
            "classes": list(self.class_names),
            "database": cfg.database,
            "window": cfg.window,
            "stride": cfg.stride,
            "sample_rate": self.sample_rate,
            "resample": cfg.sample_rate,
            "normalization": cfg.normalization,
            "alignment": cfg.alignment,
            "rr_features": list(cfg.rr_names) if cfg.rr_features else None,
            "template_beats": cfg.template_beats,
            "lead": cfg.lead,
            "split": self.split_description,
            "selection": self.selection,
            "split_kind": cfg.split,
            "seed": cfg.seed,
            "records": self.records,
            "dataset_hash": self.config_hash,
        }


def _subsample(
    y: np.ndarray, limit: int, rng: np.random.Generator, floor_share: float = 0.1
) -> np.ndarray:
    """Return indices of at most `limit` windows, roughly proportional, each class keeping some.

    Every class keeps at least `floor_share` of the limit (all of it when it has fewer).
    """
    if len(y) <= limit:
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    floor = max(1, int(limit * floor_share))
    quota = {
        c: min(n, max(floor, int(limit * n / len(y)))) for c, n in zip(classes, counts, strict=True)
    }
    chosen = [rng.choice(np.flatnonzero(y == c), quota[c], replace=False) for c in classes]
    return np.sort(np.concatenate(chosen))


def _resolve_records(cfg: EcgDatasetConfig) -> tuple[list[str], bool]:
    # First run (no data_dir, no HILNAS_DATA_DIR): fetch the records into the user cache.
    ensure_records(cfg.database, cfg.records, cfg.data_dir)
    present = available_records(cfg.database, cfg.data_dir)
    if not present:
        raise DataError(
            f"no {cfg.database} records found in {database_dir(cfg.database, cfg.data_dir)}; "
            f"`hilnas data download --database {cfg.database}` fetches them"
        )
    if cfg.records is None:
        return present, False
    missing = [r for r in cfg.records if r not in present]
    if missing:
        raise DataError(
            f"records: {', '.join(missing)} not present in {cfg.database} "
            f"(present: {', '.join(present)}); `hilnas data download --database "
            f"{cfg.database} --records {','.join(missing)} --data-dir "
            f"{data_root(cfg.data_dir)}` fetches them"
        )
    return list(cfg.records), True


def load_ecg_dataset(
    config: EcgDatasetConfig | None = None, progress: bool = False, **overrides: Any
) -> EcgDataset:
    """Build (or load from the cache) the dataset described by `config`.

    Raises DataError when the data folder or a record is missing, or when a class has no
    windows at all or none in training (the message names the class).
    """
    cfg = config or EcgDatasetConfig()
    if overrides:
        cfg = EcgDatasetConfig(**{**_fields(cfg), **overrides})
    scheme = cfg.scheme()
    records, explicit = _resolve_records(cfg)
    key = cache_mod.config_hash({**cfg.key_fields(), "resolved_records": records})
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else cache_mod.default_cache_dir()
    if cfg.use_cache:
        hit = cache_mod.load_cached(cache_dir, key)
        # An entry written before each window's patient was kept (grouped cross-validation
        # needs it) is rebuilt once, in place.
        if hit is not None and (cfg.split == "random" or "windows_per_record" in hit[1]):
            log.info("dataset %s loaded from cache %s", key, cache_dir)
            return _from_arrays(hit[0], hit[1], cfg, key)

    t0 = time.perf_counter()
    xs, ys, auxs, skipped, fs_out = _collect(cfg, scheme, records, explicit, progress)
    used = [r for r in records if r in ys]
    if not used:
        raise DataError(f"no labelled windows in records {', '.join(records)} for {scheme.name}")
    all_y = np.concatenate([ys[r] for r in used])
    empty = [c for i, c in enumerate(scheme.classes) if not (all_y == i).any()]
    if empty:
        raise DataError(
            f"class {', '.join(repr(c) for c in empty)} of preset {scheme.name!r} has no "
            f"examples in records {', '.join(used)}; add records that contain it or drop it"
        )

    if cfg.split == "random":
        x_all = np.concatenate([xs[r] for r in used])
        a_all = np.concatenate([auxs[r] for r in used]) if auxs else None
        tr, va, te = random_split(all_y, cfg.seed, (0.9 - cfg.val_fraction, cfg.val_fraction, 0.1)
                                  if cfg.val_fraction != 0.1 else (0.7, 0.1, 0.2))
        parts = [(x_all[i], all_y[i], None if a_all is None else a_all[i]) for i in (tr, va, te)]
        rec_sides = {"train": used, "val": used, "test": used}
        desc = (
            f"random 70/10/20 of windows (seed {cfg.seed}, {len(used)} records; "
            "patients appear on every side)"
        )
    else:
        classes_by_record = {r: set(np.unique(ys[r]).tolist()) for r in used}
        if cfg.split == "patient":
            test_fraction = 0.2
            sides = patient_split(used, classes_by_record, cfg.seed,
                                  (1 - cfg.val_fraction - test_fraction, cfg.val_fraction,
                                   test_fraction))
            desc = f"patient-wise hold-out (seed {cfg.seed})"
        else:
            sides = dechazal_split(used, cfg.seed, cfg.val_fraction)
            desc = f"de Chazal DS1/DS2 (202 in DS1; val seed {cfg.seed})"
        parts = []
        n_aux = cfg.n_aux_features
        for side in sides:
            if side:
                parts.append((
                    np.concatenate([xs[r] for r in side]),
                    np.concatenate([ys[r] for r in side]),
                    np.concatenate([auxs[r] for r in side]) if n_aux else None,
                ))
            else:
                parts.append((
                    np.zeros((0, xs[used[0]].shape[1]), np.float32),
                    np.zeros(0, np.int64),
                    np.zeros((0, n_aux), np.float32) if n_aux else None,
                ))
        rec_sides = dict(zip(("train", "val", "test"), sides, strict=True))
        desc += f"; train {','.join(sides[0])}; val {','.join(sides[1])}; test {','.join(sides[2])}"
    meta: dict[str, Any] = {
        "class_names": list(scheme.classes),
        "split_description": desc,
        "records": rec_sides,
        "skipped": skipped,
        "sample_rate": fs_out,
        "config": cfg.key_fields(),
        # In side order, so each window's patient is known (grouped cross-validation).
        "windows_per_record": {r: len(ys[r]) for r in used},
    }
    arrays: dict[str, np.ndarray] = {}
    for side_name, (x, y, aux) in zip(("train", "val", "test"), parts, strict=True):
        arrays[f"x_{side_name}"] = x[..., None].astype(np.float32)
        arrays[f"y_{side_name}"] = y.astype(np.int64)
        if aux is not None:
            arrays[f"aux_{side_name}"] = aux.astype(np.float32)
    log.info("dataset %s built in %.1f s", key, time.perf_counter() - t0)
    if cfg.use_cache:
        cache_mod.store(cache_dir, key, arrays, meta)
    return _from_arrays(arrays, meta, cfg, key)


def _collect(
    cfg: EcgDatasetConfig,
    scheme: ClassScheme,
    records: list[str],
    explicit: bool,
    progress: bool,
) -> tuple[
    dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], list[str], float
]:
    """Return windows, targets and RR features (with `rr_features`) per record.

    Also the records skipped for lacking the lead, and the sample rate.
    """
    xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    auxs: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    fs_out = float(cfg.sample_rate or 0.0)
    rng = np.random.default_rng(cfg.seed)
    for name, rec in _read_records(cfg, records, explicit, progress, skipped):
        aux: np.ndarray | None = None
        if cfg.alignment == "beat":
            x, y, aux, _ = make_beat_windows(rec, scheme, cfg.window, cfg.normalization,
                                             cfg.sample_rate,
                                             template_beats=cfg.template_beats,
                                             rr_names=cfg.rr_names)
        else:
            x, y = make_windows(rec, scheme, cfg.window, cfg.stride, cfg.normalization,
                                cfg.sample_rate)
        fs_out = cfg.sample_rate or rec.fs
        if cfg.max_windows_per_record is not None:
            # Beats: a record's few ectopic beats are what a model learns them from, so each
            # class keeps up to half the per-record budget (fixed windows: a tenth, as before).
            share = BEAT_FLOOR_SHARE if cfg.alignment == "beat" else 0.1
            keep = _subsample(y, cfg.max_windows_per_record, rng, share)
            x, y = x[keep], y[keep]
            aux = None if aux is None else aux[keep]
        if len(y):
            xs[name], ys[name] = x, y
            if cfg.rr_features and aux is not None:
                auxs[name] = aux
    return xs, ys, auxs, skipped, fs_out


@dataclass
class EcgWindows:
    """Every labelled window of some records, unsplit (what `hilnas evaluate` scores).

    `aux` holds the RR features of a model with a second input; `records` the records
    that gave windows and `per_record` how many windows each gave, in order. `beats` says
    where the beats came from ("reference annotations" or the detector) and `detection`
    the detector's own sensitivity and positive predictivity (host.data.beats.BeatMatch).
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    records: list[str]
    aux: np.ndarray | None = None
    per_record: list[int] = field(default_factory=list)
    beats: str = "reference annotations"
    detection: dict[str, Any] | None = None

    def inputs(self) -> np.ndarray | list[np.ndarray]:
        return self.x if self.aux is None else [self.x, self.aux]


def _read_records(
    cfg: EcgDatasetConfig, records: list[str], explicit: bool, progress: bool,
    skipped: list[str],
) -> Iterator[tuple[str, EcgRecord]]:
    """Each record's lead, in order.

    A record without the lead is skipped (and listed in `skipped`) when every record was
    asked for, and is an error when it was named.
    """
    iterator: Any = _progress(records, "records") if progress else records
    for name in iterator:
        try:
            rec = load_record(name, cfg.database, cfg.lead, cfg.data_dir)
        except DataError as exc:
            if explicit or "has no lead" not in str(exc):
                raise
            skipped.append(name)
            log.warning("skipping record %s: %s", name, exc)
            continue
        yield name, rec


def load_ecg_windows(
    config: EcgDatasetConfig, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], list[str]]:
    """Return every labelled window of `config.records` (no split, no cache).

    Used to evaluate a model on chosen records with the windowing it was trained with:
    x (n, window, 1), y (n,), the class names and the records that gave windows. A model
    with a second input needs `load_ecg_eval_windows` (which also gives the RR features).
    """
    w = load_ecg_eval_windows(config, progress=progress)
    return w.x, w.y, w.class_names, w.records


def load_ecg_eval_windows(
    config: EcgDatasetConfig, progress: bool = False, detect: bool = False
) -> EcgWindows:
    """Every labelled window of `config.records`, with RR features when the config has them.

    `detect`: find the beats with the QRS detector (wfdb's XQRS) instead of the reference
    annotations, as a device on a raw signal would; each detected beat takes the class of
    the reference beat it matches within 150 ms, and the detector's own sensitivity and
    positive predictivity over all records are reported. Beat alignment only.
    """
    scheme = config.scheme()
    records, explicit = _resolve_records(config)
    if not detect:
        xs, ys, auxs, _, _ = _collect(config, scheme, records, explicit, progress)
        used = [r for r in records if r in ys]
        if not used:
            raise DataError(
                f"no labelled windows in records {', '.join(records)} for {scheme.name}"
            )
        x = np.concatenate([xs[r] for r in used])[..., None].astype(np.float32)
        aux = np.concatenate([auxs[r] for r in used]) if config.rr_features else None
        return EcgWindows(x, np.concatenate([ys[r] for r in used]), scheme.classes, used, aux,
                          [len(ys[r]) for r in used])
    if config.alignment != "beat":
        raise ConfigError("detect: detected beats need a beat-aligned model (alignment = 'beat')")
    from host.data.beats import BeatMatch, annotated_beats, detect_beats, match_beats
    from host.data.windows import resample

    parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    n_ref = n_det = n_matched = 0
    for name, rec in _read_records(config, records, explicit, progress, []):
        signal, ann, fs = resample(rec, config.sample_rate)
        detected = detect_beats(signal, fs)
        match: BeatMatch = match_beats(annotated_beats(ann, rec.ann_symbols)[0], detected, fs)
        n_ref, n_det, n_matched = (n_ref + match.n_reference, n_det + match.n_detected,
                                   n_matched + match.matched)
        x, y, aux, _ = make_beat_windows(rec, scheme, config.window, config.normalization,
                                         config.sample_rate, beats=detected,
                                         template_beats=config.template_beats,
                                         rr_names=config.rr_names)
        if len(y):
            parts.append((name, x, y, aux))
    if not parts:
        raise DataError(f"no detected beats matched a labelled beat in {', '.join(records)}")
    detection = {
        "detector": "wfdb.processing.XQRS",
        "reference_beats": n_ref,
        "detected_beats": n_det,
        "matched_beats": n_matched,
        "sensitivity": n_matched / n_ref if n_ref else float("nan"),
        "positive_predictivity": n_matched / n_det if n_det else float("nan"),
        "note": "detected beats that match no reference beat are not scored",
    }
    return EcgWindows(
        np.concatenate([p[1] for p in parts])[..., None].astype(np.float32),
        np.concatenate([p[2] for p in parts]),
        scheme.classes,
        [p[0] for p in parts],
        np.concatenate([p[3] for p in parts]) if config.rr_features else None,
        [len(p[2]) for p in parts],
        beats="detected by wfdb XQRS (labels of the matching reference beats)",
        detection=detection,
    )


def _fields(cfg: EcgDatasetConfig) -> dict[str, Any]:
    return {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}


def _progress(items: list[str], what: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional at this level
        return items
    return tqdm(items, desc=what, unit="rec")


def _from_arrays(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], cfg: EcgDatasetConfig, key: str
) -> EcgDataset:
    ds = EcgDataset(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_val=arrays["x_val"],
        y_val=arrays["y_val"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        class_names=tuple(meta["class_names"]),
        split_description=meta["split_description"],
        config_hash=key,
        config=cfg,
        records={k: list(v) for k, v in meta["records"].items()},
        sample_rate=float(meta["sample_rate"]),
        aux_train=arrays.get("aux_train"),
        aux_val=arrays.get("aux_val"),
        aux_test=arrays.get("aux_test"),
        selection=_selection(cfg, meta),
    )
    if cfg.split != "random" and "windows_per_record" in meta:
        ds.groups_train, ds.groups_val = (
            _window_patients(ds.records.get(side, []), meta["windows_per_record"])
            for side in ("train", "val")
        )
    if cfg.rr_features and ds.aux_train is None:
        raise DataError(f"cached dataset {key} has no RR features; delete it from {cfg.cache_dir}")
    n_val = len(ds.records.get("val", [])) if cfg.split != "random" else 0
    if cfg.split != "random" and n_val < MIN_VAL_PATIENTS:
        log.warning(
            "validation side holds %d patient record(s) (%s): early stopping and the search's "
            "quality figure will swing from epoch to epoch; raise data.val_fraction, add records "
            "or let [train] cv_folds (grouped cross-validation) give the quality figure",
            n_val, ", ".join(ds.records.get("val", [])),
        )
    missing_train = [c for i, c in enumerate(ds.class_names) if not (ds.y_train == i).any()]
    if missing_train:
        raise DataError(
            f"class {', '.join(repr(c) for c in missing_train)} has no training examples with "
            f"split {ds.split_description!r}; use more records, another seed or split='random'"
        )
    for side, y in (("val", ds.y_val), ("test", ds.y_test)):
        absent = [c for i, c in enumerate(ds.class_names) if not (y == i).any()]
        if absent and len(y):
            log.warning("class %s has no %s examples (%s)", ", ".join(absent), side, cfg.split)
    return ds


def _window_patients(records: list[str], counts: dict[str, int]) -> np.ndarray:
    """Each window's patient, for windows concatenated in `records` order.

    Records 201 and 202 are one patient, "201+202".
    """
    patient = {r: "+".join(group) for group in record_groups(list(counts)) for r in group}
    if not records:
        return np.zeros(0, dtype="<U16")
    return np.concatenate([np.full(counts[r], patient[r], dtype="<U16") for r in records])


def _selection(cfg: EcgDatasetConfig, meta: dict[str, Any]) -> str:
    """What the validation side is, as quality figures name it."""
    if cfg.split == "random":
        return f"validation: a random {cfg.val_fraction:.0%} of windows (patients leak)"
    val = list(meta["records"].get("val", []))
    return f"validation: {len(val)} held-out patient records ({', '.join(val)})"


def records_for_evaluation(
    database: str = "mitdb", data_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """Every record present, for `hilnas evaluate --records all` (first run: downloaded)."""
    ensure_records(database, None, data_dir)
    return available_records(database, data_dir)
