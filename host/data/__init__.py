"""ECG data: PhysioNet loaders, output classes, windows, patient-wise splits, cache."""

from host.data.classes import PRESETS, ClassScheme, custom_scheme, resolve_scheme
from host.data.dataset import EcgDataset, EcgDatasetConfig, load_ecg_dataset, load_ecg_windows
from host.data.mitdb import (
    ANNOTATION_CODES,
    RHYTHM_CODES,
    EcgRecord,
    available_records,
    download_database,
    load_record,
)
from host.data.splits import DS1, DS2, dechazal_split, patient_split, random_split
from host.data.windows import make_windows

__all__ = [
    "ANNOTATION_CODES",
    "DS1",
    "DS2",
    "PRESETS",
    "RHYTHM_CODES",
    "ClassScheme",
    "EcgDataset",
    "EcgDatasetConfig",
    "EcgRecord",
    "available_records",
    "custom_scheme",
    "dechazal_split",
    "download_database",
    "load_ecg_dataset",
    "load_ecg_windows",
    "load_record",
    "make_windows",
    "patient_split",
    "random_split",
    "resolve_scheme",
]
