"""Read PhysioNet ECG records (MIT-BIH, CUDB) with wfdb: signals, beat codes and rhythms."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from host.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# The MIT-BIH annotation codes (PhysioNet's table, wfdb's `ann_label_table`): symbol ->
# description. Kept here so labelling never depends on a wfdb internal that may move.
ANNOTATION_CODES: dict[str, str] = {
    "N": "Normal beat",
    "L": "Left bundle branch block beat",
    "R": "Right bundle branch block beat",
    "a": "Aberrated atrial premature beat",
    "V": "Premature ventricular contraction",
    "F": "Fusion of ventricular and normal beat",
    "J": "Nodal (junctional) premature beat",
    "A": "Atrial premature contraction",
    "S": "Premature or ectopic supraventricular beat",
    "E": "Ventricular escape beat",
    "j": "Nodal (junctional) escape beat",
    "/": "Paced beat",
    "Q": "Unclassifiable beat",
    "~": "Signal quality change",
    "|": "Isolated QRS-like artifact",
    "s": "ST change",
    "T": "T-wave change",
    "*": "Systole",
    "D": "Diastole",
    '"': "Comment annotation",
    "=": "Measurement annotation",
    "p": "P-wave peak",
    "B": "Left or right bundle branch block",
    "^": "Non-conducted pacer spike",
    "t": "T-wave peak",
    "+": "Rhythm change",
    "u": "U-wave peak",
    "?": "Learning",
    "!": "Ventricular flutter wave",
    "[": "Start of ventricular flutter/fibrillation",
    "]": "End of ventricular flutter/fibrillation",
    "e": "Atrial escape beat",
    "n": "Supraventricular escape beat",
    "@": "Link to external data (aux_note contains URL)",
    "x": "Non-conducted P-wave (blocked APB)",
    "f": "Fusion of paced and normal beat",
    "(": "Waveform onset",
    ")": "Waveform end",
    "r": "R-on-T premature ventricular contraction",
}

BEAT_CODES = frozenset("NLRaVFJASEj/QBenrf?")

# Rhythm labels found in MIT-BIH `aux_note` after a `+` annotation.
RHYTHM_CODES: dict[str, str] = {
    "(AB": "Atrial bigeminy",
    "(AFIB": "Atrial fibrillation",
    "(AFL": "Atrial flutter",
    "(B": "Ventricular bigeminy",
    "(BII": "2nd degree heart block",
    "(IVR": "Idioventricular rhythm",
    "(N": "Normal sinus rhythm",
    "(NOD": "Nodal (A-V junctional) rhythm",
    "(P": "Paced rhythm",
    "(PREX": "Pre-excitation (WPW)",
    "(SBR": "Sinus bradycardia",
    "(SVTA": "Supraventricular tachyarrhythmia",
    "(T": "Ventricular trigeminy",
    "(VFL": "Ventricular flutter",
    "(VT": "Ventricular tachycardia",
    "(VF": "Ventricular fibrillation",
}

# The PhysioNet ECG databases the loaders read (host.data.download fetches them, and FSDD).
DATABASES = {"mitdb": "mitdb", "cudb": "cudb"}
MITDB_RECORDS = tuple(
    "100 101 102 103 104 105 106 107 108 109 111 112 113 114 115 116 117 118 119 121 122 "
    "123 124 200 201 202 203 205 207 208 209 210 212 213 214 215 217 219 220 221 222 223 "
    "228 230 231 232 233 234".split()
)


@dataclass(frozen=True)
class EcgRecord:
    """One record: a single lead, its sample rate, and its annotations."""

    name: str
    database: str
    signal: np.ndarray  # float32, physical units (mV)
    fs: float
    lead: str
    ann_samples: np.ndarray  # int64 sample index of each annotation
    ann_symbols: tuple[str, ...]
    rhythm: np.ndarray  # per-annotation rhythm in effect ("" before the first one)


def user_data_root() -> Path:
    """The user cache that first-run downloads go to: `$HILNAS_CACHE_DIR`, else ~/.cache/hilnas.

    The same root as the prepared-dataset cache (`host.data.cache`, which uses its `ecg/`).
    """
    root = os.environ.get("HILNAS_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "hilnas"


def auto_download_enabled(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """True when no folder was chosen (`data_dir` None, `$HILNAS_DATA_DIR` unset or empty).

    Then the data lives in the user cache and loaders download what they need into it.
    """
    return data_dir is None and not os.environ.get("HILNAS_DATA_DIR")


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that holds the databases.

    `data_dir`, else `$HILNAS_DATA_DIR`, else the user cache (`user_data_root()`), where
    loaders download the records they need on first use (docs/data.md).
    """
    if data_dir is None:
        env = os.environ.get("HILNAS_DATA_DIR")
        return Path(env).expanduser() if env else user_data_root()
    return Path(data_dir).expanduser()


def database_dir(database: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder of one database, e.g. `$HILNAS_DATA_DIR/mitdb`."""
    if database not in DATABASES:
        raise ConfigError(f"database: unknown database {database!r}; known: {sorted(DATABASES)}")
    return data_root(data_dir) / database


def _download_hint(database: str, data_dir: str | os.PathLike[str] | None, records: str) -> str:
    return (
        f"`hilnas data download --database {database}{records} "
        f"--data-dir {data_root(data_dir)}` fetches it (needs internet; docs/data.md)"
    )


def available_records(database: str, data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Return records present on disk (a `.hea`, `.dat` and `.atr` each), sorted."""
    folder = database_dir(database, data_dir)
    if not folder.is_dir():
        raise DataError(
            f"dataset folder {folder} does not exist; set HILNAS_DATA_DIR or pass --data-dir, "
            f"or {_download_hint(database, data_dir, '')}"
        )
    names = sorted(p.stem for p in folder.glob("*.hea"))
    return [n for n in names if (folder / f"{n}.atr").exists() and (folder / f"{n}.dat").exists()]


def download_database(
    database: str,
    data_dir: str | os.PathLike[str] | None = None,
    records: list[str] | None = None,
    **options: Any,
) -> Path:
    """Fetch records (None or []: all) into `<data root>/<database>`, verified (download.py).

    `options` go to `host.data.download.download` (mirror, verify, progress, timeout...).
    """
    from host.data.download import download

    return download(database, data_dir, records or None, **options).folder


def _rhythm_per_annotation(symbols: list[str], aux: list[str]) -> np.ndarray:
    """Return the rhythm in effect at each annotation (MIT-BIH `+` aux notes, CUDB `[`/`]`)."""
    current = ""
    out = []
    for sym, note in zip(symbols, aux, strict=True):
        note = (note or "").rstrip("\x00").strip()
        if sym == "+" and note.startswith("("):
            current = note
        elif sym == "[":  # CUDB and MIT-BIH mark VF/VFL episodes with brackets
            current = "(VF" if current != "(VFL" else current
        elif sym == "]":
            current = "(N"
        out.append(current)
    return np.array(out, dtype=object)


def load_record(
    name: str,
    database: str = "mitdb",
    lead: str | int = "MLII",
    data_dir: str | os.PathLike[str] | None = None,
) -> EcgRecord:
    """Read one record's lead and its reference annotations (`atr`)."""
    import wfdb

    folder = database_dir(database, data_dir)
    path = folder / name
    if auto_download_enabled(data_dir):  # first run: fetch what is missing into the cache
        from host.data.download import ensure_records

        ensure_records(database, [name], data_dir)
    if not path.with_suffix(".hea").exists():
        present = available_records(database, data_dir)
        raise DataError(
            f"record {name!r} is not in {folder} (present: {', '.join(present) or 'none'}); "
            f"{_download_hint(database, data_dir, f' --records {name}')}"
        )
    try:
        rec = wfdb.rdrecord(str(path))
        ann = wfdb.rdann(str(path), "atr")
    except Exception as exc:  # corrupt or truncated files
        raise DataError(f"record {name!r} in {folder} cannot be read: {exc}") from exc
    names = list(rec.sig_name or [])
    if isinstance(lead, int):
        if not 0 <= lead < len(names):
            raise ConfigError(f"lead: record {name} has leads 0..{len(names) - 1}, not {lead}")
        idx = lead
    else:
        if lead not in names:
            raise DataError(f"record {name} has no lead {lead!r} (its leads: {', '.join(names)})")
        idx = names.index(lead)
    assert rec.p_signal is not None
    signal = np.nan_to_num(rec.p_signal[:, idx]).astype(np.float32)
    symbols = list(ann.symbol or [])
    aux = list(ann.aux_note or [""] * len(symbols))
    return EcgRecord(
        name=name,
        database=database,
        signal=signal,
        fs=float(rec.fs),
        lead=names[idx],
        ann_samples=np.asarray(ann.sample, dtype=np.int64),
        ann_symbols=tuple(symbols),
        rhythm=_rhythm_per_annotation(symbols, aux),
    )
