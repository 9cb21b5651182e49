"""A spoken-digit model for a board whose runtime cannot run its feature front end.

TFLite Micro has no RFFT2D, REAL or IMAG (host.data.audio_features.TFLM_UNSUPPORTED_OPS),
so a microcontroller is given the features and runs the network alone. The network's
weights are the trained model's: the front end has none, so the same layers with the
features as input compute the same function. The front end's cost on the board is then an
estimate (`frontend_cost`), labelled so wherever it is shown.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from host.errors import ConfigError


def host_features_task(task: Any) -> Any:
    """The audio task at the same granularity, with the features computed on the host."""
    config = getattr(task, "config", None)
    if config is None or not hasattr(config, "preprocessing"):
        raise ConfigError(f"task {task.name!r} has no feature front end to move to the host")
    return type(task)(dataclasses.replace(config, preprocessing="host"))


def features_input_model(space: Any, arch: Any, task: Any, trained: Any) -> tuple[Any, Any]:
    """(Keras model taking features, its task): `trained`'s network without its front end."""
    host_task = host_features_task(space.task_for(arch, task))
    model = space.build_model(arch, host_task)
    weights = trained.get_weights()
    if [w.shape for w in model.get_weights()] != [w.shape for w in weights]:
        raise ConfigError(f"{arch.key()}: the features-input network's weights do not match "
                          "the trained model's")
    model.set_weights(weights)
    return model, host_task


def mcu_int8(model: Any, host_task: Any, data: Any, metadata: dict[str, Any]) -> bytes:
    """The features-input network as a full-int8 .tflite (calibrated on training features)."""
    from host.export.tflite import convert

    rep = host_task.representative(data)
    return convert(model, "int8", representative=np.asarray(rep, np.float32),
                   metadata={**metadata, "preprocessing": "host"})
