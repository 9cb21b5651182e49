"""Quality of an exported spoken-digit model on a folder of WAV files, run with LiteRT.

The model's metadata says how it was trained (sample rate, window, representation, where
the front end runs, gain and crop; host/tasks/audio.py), so any folder of recordings named
like FSDD's (`<digit>_<speaker>_<n>.wav`) is prepared the same way: new recordings of a
front model are scored without the search that made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from host.errors import ConfigError


def evaluate_audio_folder(
    model: bytes, meta: dict[str, Any], folder: str | Path | None = None, *,
    speakers: tuple[str, ...] | None = None, on_bad: str = "skip",
) -> dict[str, Any]:
    """Accuracy, per-class and per-speaker figures of `model` on the WAV files of `folder`.

    `folder` None: the FSDD recordings of the model's own test speakers. `speakers` keeps
    only those speakers' files. Unreadable files are skipped and named (`on_bad` "skip")
    or stop the evaluation ("error").
    """
    from host.data.audio_features import featurize
    from host.data.fsdd import load_clips
    from host.export.evaluate import tflite_outputs
    from host.tasks.audio import SpokenDigits, peak_normalize, recordings_dir
    from host.train.metrics import classification_metrics

    cfg = SpokenDigits.from_metadata(meta, on_bad_file=on_bad).config
    if folder is None:
        folder = recordings_dir(None)
        speakers = speakers or tuple((meta.get("speakers") or {}).get("test") or ())
    clips = load_clips(folder, sample_rate=cfg.sample_rate, window_s=cfg.window_s,
                       on_bad=on_bad, crop=cfg.crop)
    keep = np.ones(len(clips.digits), bool)
    if speakers:
        unknown = sorted(set(speakers) - {str(s) for s in clips.speakers})
        if unknown:
            raise ConfigError(f"speakers: {unknown} have no recordings in {folder}")
        keep = np.isin(clips.speakers, list(speakers))
    audio = clips.x[keep]
    if cfg.gain == "peak":
        audio = peak_normalize(audio)
    if cfg.preprocessing == "host":
        feats = featurize(audio, cfg.feature_spec())
        x = feats.reshape(len(audio), feats.shape[1], -1)
    else:
        x = audio[..., None]
    outputs = tflite_outputs(model, x.astype(np.float32))
    y = clips.digits[keep]
    predicted = outputs.argmax(axis=1)
    classes = [str(d) for d in range(10)]
    metrics = classification_metrics(y, predicted, classes)
    per_speaker = {
        str(s): {"accuracy": float((predicted[clips.speakers[keep] == s]
                                    == y[clips.speakers[keep] == s]).mean()),
                 "n": int((clips.speakers[keep] == s).sum())}
        for s in sorted({str(v) for v in clips.speakers[keep]})
    }
    return {
        **{k: v for k, v in metrics.items() if k in ("accuracy", "balanced_accuracy",
                                                      "f1_macro", "per_class")},
        "n": int(len(y)),
        "folder": str(folder),
        "per_speaker": per_speaker,
        "skipped": [{"file": f, "reason": r} for f, r in clips.skipped],
        "granularity": {"sample_rate": cfg.sample_rate, "window_s": cfg.window_s,
                        "representation": cfg.representation,
                        "preprocessing": cfg.preprocessing},
        "quantization": meta.get("quantization"),
        "source": "LiteRT on this host (the model's own int8 graph)",
    }
