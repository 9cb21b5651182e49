"""Runs inside a private mount namespace on a tiny tmpfs (tests/host/test_faults.py).

Fills the file system under a real run store and reports, as JSON on stdout, what the store
and the run's file writer did: the error each raised, what survived, and whether writing
works again once space returns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from host.errors import StoreError
from host.store.files import write_atomic
from host.store.sqlite import RunStore

METRICS = {"val": {"f1_macro": 0.8}, "padding": "x" * 2000}  # a realistic row's size


def main(folder: Path) -> int:
    store = RunStore(folder / "store.sqlite")
    committed = 0
    for i in range(5):
        store.add_training(f"key{i}", f"arch{i}", "d", "t", METRICS, 1.0, "trained")
        committed += 1
    # Fill the disk: one filler file, written until the kernel says ENOSPC.
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    store_error = ""
    for i in range(5, 2000):  # SQLite may still have free pages; write until it cannot
        try:
            store.add_training(f"key{i}", f"arch{i}", "d", "t", METRICS, 1.0, "trained")
            committed += 1
        except StoreError as exc:
            store_error = str(exc)
            break
    file_error = ""
    try:
        write_atomic(folder / "models" / "m.tflite", b"\1" * 200_000)
    except StoreError as exc:
        file_error = str(exc)
    leftovers = sorted(p.name for p in (folder / "models").glob("*")) if (
        folder / "models").exists() else []
    # A second connection on the full disk, as `hilnas runs` or a resume would open it:
    # every committed row is there, and nothing of the failed write.
    survived = RunStore(folder / "store.sqlite").count_trainings()
    filler.unlink()  # space returns
    store.add_training("after", "arch-after", "d", "t", METRICS, 1.0, "trained")
    write_atomic(folder / "models" / "m.tflite", b"\1" * 200_000)
    reopened = RunStore(folder / "store.sqlite")
    print(json.dumps({
        "committed": committed,
        "store_error": store_error,
        "file_error": file_error,
        "leftovers": leftovers,
        "survived": survived,
        "after_space_returns": reopened.count_trainings(),
        "model_bytes": (folder / "models" / "m.tflite").stat().st_size,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
