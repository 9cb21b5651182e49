"""On-disk cache of prepared datasets, keyed by a hash of their configuration."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

# Bump when windowing, labelling or splitting changes, so stale caches are not reused.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """`$HILNAS_CACHE_DIR/ecg`, else `~/.cache/hilnas/ecg`."""
    root = os.environ.get("HILNAS_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "hilnas"
    return base / "ecg"


def config_hash(payload: dict[str, Any]) -> str:
    """Return A short stable hash of a JSON-able configuration."""
    text = json.dumps({"format": CACHE_FORMAT, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_cached(cache_dir: Path, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """Return the arrays and metadata stored under `key`, or None (absent or unreadable)."""
    path = cache_dir / f"{key}.npz"
    meta_path = cache_dir / f"{key}.json"
    if not path.exists() or not meta_path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None  # a half-written or corrupt entry is rebuilt, not fatal
    return arrays, meta


def store(cache_dir: Path, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write an entry atomically (temporary file, then rename)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{key}.npz"
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    (cache_dir / f"{key}.json").write_text(json.dumps(meta, indent=1, default=str))
    return path
