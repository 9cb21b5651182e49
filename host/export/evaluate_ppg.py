"""Heart-rate error of an exported PPG model on TROIKA's held-back test set, with LiteRT.

The test recordings (`test_data`, references in `test_true_bpm`; 8 subjects no search has
seen) are prepared as the model's metadata says (input, resolution, sample rate;
host/tasks/ppg.py) and scored once: the average absolute error in BPM overall, per
recording and per activity (T01 arm exercise, T02 forearm movement), per window (the model
alone) and tracked across each recording's windows (`PulseTracker`, host/tasks/ppg.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def evaluate_troika_test(model: bytes, meta: dict[str, Any],
                         data_dir: str | None = None) -> dict[str, Any]:
    """AAE (BPM) of `model` on every recording of TROIKA's test set."""
    from host.data.troika import load_all
    from host.export.evaluate import tflite_outputs
    from host.tasks.ppg import PulseRate, prepare, recording_of, regression_metrics

    cfg = PulseRate.from_metadata(meta, data_dir=data_dir).config
    tracker = cfg.tracker()
    recordings = load_all(parts=("test",), data_dir=data_dir)
    per_recording = {}
    ys, ps, acts, names = [], [], [], []
    for rec in recordings:
        x, y, act = prepare([rec], cfg)
        out = tflite_outputs(model, x).reshape(len(y), -1)[:, 0]
        name = recording_of([rec])
        per_recording[rec.name] = regression_metrics(y, out, recordings=name, tracker=tracker)
        ys.append(y)
        ps.append(out)
        acts.append(act)
        names.append(name)
    y, p, a = np.concatenate(ys), np.concatenate(ps), np.concatenate(acts)
    overall = regression_metrics(y, p, a, np.concatenate(names), tracker)
    return {
        **overall,
        "per_recording": per_recording,
        "data": "TROIKA test set (test_data, test_true_bpm): 10 recordings of 8 subjects "
                "no search has seen",
        "quantization": meta.get("quantization"),
        "source": "LiteRT on this host (the model's own int8 graph)",
    }
