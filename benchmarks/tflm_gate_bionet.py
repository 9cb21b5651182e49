"""How many BioNetExplorer-space candidates the TFLM gate rejects for the Nano 33 BLE, and why.

    .venv/bin/python benchmarks/tflm_gate_bionet.py [--limit N] [--board nano33ble] [--json OUT]

Every distinct architecture of the bounded space (256-sample windows, 2 classes) is checked:

1. A candidate whose int8 weights alone (host.hw.costs storage_int8_bytes, which excludes the
   flatbuffer's overhead and so can only under-count) exceed the flash model slot is rejected
   for flash without converting it: no conversion could make it fit.
2. Every other candidate is built untrained with batch 1, converted to full int8 by
   host.export.tflite.convert, and passed through the real gate (host.hw.tflm_gate), which
   runs TFLM's memory planner on the host.

`--limit N` gates only the N smallest remaining candidates (by MACs) with TFLM, to bound the
run time on a small machine; the rest are reported as not checked.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default="nano33ble")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import numpy as np

    from device_agent.mcu.boards import load_board
    from host.hw.costs import analytic_costs
    from host.hw.tflm_gate import check_tflite
    from host.spaces.base import get_space
    from host.spaces.bionet import build_keras_model

    board = load_board(args.board)
    space = get_space("bionet")
    archs = space.distinct_architectures()
    print(
        f"BioNetExplorer space: {len(archs)} distinct bounded architectures; board {board.id}: "
        f"flash slot {board.model_slot_bytes} B, arena {board.arena_bytes} B"
    )
    rows = []
    to_convert = []
    for a in archs:
        c = analytic_costs(a, 256, 2, 1)
        if c.storage_int8_bytes > board.model_slot_bytes:
            rows.append(
                {
                    "arch": a.key(),
                    "ok": False,
                    "kinds": ["flash"],
                    "stage": "analytic",
                    "int8_weight_bytes": c.storage_int8_bytes,
                    "macs": c.macs,
                }
            )
        else:
            to_convert.append((c.macs, a, c))
    to_convert.sort(key=lambda t: t[0])
    if args.limit:
        skipped = to_convert[args.limit :]
        to_convert = to_convert[: args.limit]
    else:
        skipped = []
    from host.export.tflite import convert

    rng = np.random.default_rng(0)
    rep = rng.standard_normal((8, 256, 1)).astype(np.float32)
    t0 = time.monotonic()
    for i, (macs, a, c) in enumerate(to_convert):
        model = build_keras_model(a, 256, 1, 2, batch_size=1, seed=0)
        tfl = convert(model, "int8", representative=rep)
        r = check_tflite(tfl, board)
        rows.append(
            {
                "arch": a.key(),
                "ok": r.ok,
                "kinds": list(r.reason_kinds),
                "stage": "tflm",
                "reasons": list(r.reasons),
                "model_bytes": r.model_bytes,
                "arena_bytes": r.arena_bytes,
                "arena_cortex_m_estimate": r.arena_cortex_m_estimate,
                "macs": macs,
                "int8_weight_bytes": c.storage_int8_bytes,
            }
        )
        print(
            f"[{i + 1}/{len(to_convert)} {time.monotonic() - t0:.0f}s] {a.key()}: "
            f"{'ok' if r.ok else 'REJECT ' + '; '.join(r.reasons)} "
            f"(model {r.model_bytes} B, arena {r.arena_bytes} B)",
            flush=True,
        )
    for _, a, c in skipped:
        rows.append(
            {
                "arch": a.key(),
                "ok": None,
                "kinds": ["not checked"],
                "stage": "skipped",
                "macs": c.macs,
                "int8_weight_bytes": c.storage_int8_bytes,
            }
        )
    rejected = [r for r in rows if r["ok"] is False]
    kinds = collections.Counter("+".join(r["kinds"]) for r in rejected)
    print()
    print(
        f"candidates: {len(rows)}; accepted: {sum(1 for r in rows if r['ok'])}; "
        f"rejected: {len(rejected)}; not checked: {len(skipped)}"
    )
    for k, n in kinds.most_common():
        print(f"  rejected for {k}: {n}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
