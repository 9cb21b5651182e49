"""ECG data: PhysioNet loaders, output classes, windows, patient-wise splits, cache."""

from host.data.classes import PRESETS, ClassScheme, custom_scheme, resolve_scheme
from host.data.dataset import EcgDataset, EcgDatasetConfig, load_ecg_dataset, load_ecg_windows
from host.data.download import DownloadResult, download, ensure_records, load_checksums
from host.data.mitdb import (
    ANNOTATION_CODES,
    RHYTHM_CODES,
    EcgRecord,
    available_records,
    data_root,
    download_database,
    load_record,
    user_data_root,
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
    "DownloadResult",
    "EcgDataset",
    "EcgDatasetConfig",
    "EcgRecord",
    "available_records",
    "custom_scheme",
    "data_root",
    "dechazal_split",
    "download",
    "download_database",
    "ensure_records",
    "load_ecg_dataset",
    "load_checksums",
    "load_ecg_windows",
    "load_record",
    "make_windows",
    "patient_split",
    "random_split",
    "resolve_scheme",
    "user_data_root",
]
