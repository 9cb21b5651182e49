"""Writing a run's files so that a kill or a full disk never leaves half a file behind."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from host.errors import StoreError


def describe_write_failure(path: Path, exc: BaseException, *, full: bool | None = None) -> str:
    """Why writing under `path` failed, with the free space of its file system."""
    if full is None:
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    try:
        free = shutil.disk_usage(path.parent if not path.is_dir() else path).free
        room = f"{free / 1e6:.1f} MB free on its file system"
    except OSError:
        room = "free space unknown"
    why = "the disk is full" if full else f"{type(exc).__name__}: {exc}"
    return f"{why} ({room})"



def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `path` whole or not at all (a temporary file, then a rename).

    A full disk or an unwritable folder is a StoreError that says what to do: the run stops,
    and everything stored before stays for `hilnas search --resume`.
    """
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(
            f"cannot write {path}: {describe_write_failure(path, exc)}; everything stored "
            "before is kept, and the run resumes (`hilnas search --resume RUN`) once this is "
            "fixed"
        ) from exc
