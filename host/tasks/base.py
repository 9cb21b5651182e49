"""The task contract (what is learned and how it is scored) and its registry.

A task owns everything about the data and the output side of a network that a search must
not care about:

- its configuration (`config_type`, the `[data]` table of a search) and the dataset it
  builds from it: windows, splits, classes or targets (`load`);
- the input every network gets and the outputs it must produce (`input_spec`), known
  without loading the data, so a configuration is checked before anything is trained;
- the model's head and loss (`head`, `loss`, `fit_options`): a softmax over classes and
  cross-entropy for classification, a linear output and an absolute error for a regression
  such as heart rate in BPM;
- its metrics with their direction (`metrics`), computed from a model's raw outputs on the
  host or from a device's own outputs (`score`);
- the representative windows that calibrate int8 quantization (`representative`);
- optionally, its data granularity (`granularity`, `with_granularity`): the sample rate,
  window and representation a data-aware space (host/spaces/data_aware.py) searches with
  the network, and the feature front end that runs inside the model (`features`,
  `export_mode`).

A new task is one module that subclasses `Task` and registers itself.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from device_agent.registry import Registry
from host.data.splits import Splits
from host.errors import ConfigError
from host.metrics import MetricSpec
from host.spaces.base import InputSpec

#: The modes of `host.export.tflite.convert` a task's models are exported with: full int8,
#: or int8 with a float input for a float feature front end (RFFT has no int8 kernel).
EXPORT_MODES = ("int8", "int8-float-input")


@dataclass(frozen=True)
class Granularity:
    """How finely a task's input is sampled and represented (Data Aware NAS's data genes).

    `sample_rate` in Hz, `window_s` seconds per window, `representation` one of the task's
    `representations()`; `frame_ms`, `hop_ms`, `n_mels` and `n_mfcc` parametrise a spectral
    representation and are None where the representation has no such parameter.
    """

    sample_rate: int
    window_s: float
    representation: str = "raw"
    frame_ms: float | None = None
    hop_ms: float | None = None
    n_mels: int | None = None
    n_mfcc: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


#: bytes per raw sample a device buffers (16-bit PCM from the ADC)
RAW_SAMPLE_BYTES = 2


@dataclass(frozen=True)
class InputCosts:
    """One window's input as a device holds it (Data Aware NAS counts it as memory).

    `buffer_bytes`: the raw samples plus the feature map; `feature_buffer_bytes`: the
    feature map alone; `frontend_macs`: the front end's multiply-accumulates, an estimate
    (host.data.audio_features.frontend_cost).
    """

    buffer_bytes: int
    feature_buffer_bytes: int
    frontend_macs: int


#: A task's dataset: windows and targets on three sides, and its metadata.
TaskData = Splits


class Task(ABC):
    """One learning task (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    #: the frozen dataclass of the task's options (a search's `[data]` table)
    config_type: ClassVar[type[Any]]
    #: the activation `head` applies unless asked for logits (a space that sums several
    #: heads' logits applies it itself): "softmax" for classification, None for regression
    output_activation: ClassVar[str | None] = None

    def __init__(self, config: Any) -> None:
        if not isinstance(config, self.config_type):
            raise ConfigError(
                f"task {self.name!r} takes a {self.config_type.__name__}, not "
                f"{type(config).__name__}"
            )
        self.config = config

    @classmethod
    def from_table(cls, table: Mapping[str, Any], seed: int) -> Task:
        """The task of a `[data]` table; an unknown key or a bad value names itself."""
        fields = {f.name for f in dataclasses.fields(cls.config_type)}
        for key in table:
            if key not in fields:
                raise ConfigError(
                    f"unknown key data.{key} for task {cls.name!r}; allowed: "
                    f"{', '.join(['task', *sorted(fields)])}"
                )
        values = dict(table)
        if "seed" in fields:
            values.setdefault("seed", seed)
        try:
            return cls(cls.config_type(**values))
        except ConfigError as exc:
            raise ConfigError(f"[data] {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"[data] {exc}") from None

    # ------------------------------------------------------------------ shape and metrics
    @abstractmethod
    def input_spec(self) -> InputSpec:
        """The input window and the outputs, from the configuration alone."""

    @abstractmethod
    def metrics(self) -> tuple[MetricSpec, ...]:
        """The task's quality metrics, each with its direction."""

    @abstractmethod
    def default_quality(self) -> str:
        """The metric a search optimises when the configuration names none."""

    # ------------------------------------------------------------------ data
    @abstractmethod
    def load(self, progress: bool = False) -> TaskData:
        """Build (or read from the cache) the dataset; DataError names what is missing."""

    def representative(self, data: TaskData, n: int = 200) -> np.ndarray | list[np.ndarray]:
        """Inputs that calibrate int8 quantization (from the training side only).

        `n` training windows drawn with a fixed seed, so they spread over every recording
        and class rather than the first few; one array of windows, or [windows, aux] for a
        model with a second input.
        """
        idx = np.sort(np.random.default_rng(0).permutation(len(data.y_train))[:n])
        x = np.asarray(data.x_train[idx], dtype=np.float32)
        if data.aux_train is None:
            return x
        return [x, np.asarray(data.aux_train[idx], dtype=np.float32)]

    # ------------------------------------------------------------------ data granularity
    def granularity(self) -> Granularity | None:
        """The task's sample rate, window and representation (None: it has none to search)."""
        return None

    def native_rate(self) -> float | None:
        """The recordings' own sample rate (a data-aware search never goes above it)."""
        return None

    def representations(self) -> tuple[str, ...]:
        """The input representations the task can give a network."""
        return ("raw",)

    def with_granularity(self, granularity: Granularity) -> Task:
        """The same task at another granularity (ConfigError: this task has none)."""
        raise ConfigError(
            f"task {self.name!r} has no data granularity to search; a data-aware space needs "
            "a task with a sample rate and window (ecg, audio)"
        )

    def features(self, keras: Any, window: Any) -> Any:
        """The network's input features from the model's input window (a Keras tensor).

        A task whose representation is computed inside the model (an audio spectrogram,
        so that the device runs it and the measured latency includes it) applies its
        front end here; the default is the window itself.
        """
        return window

    def feature_shape(self) -> tuple[int, int, int]:
        """(time, bins, channels) of what `features` gives: a window is one bin wide."""
        spec = self.input_spec()
        return spec.length, 1, spec.channels

    def input_costs(self) -> InputCosts:
        """What a device holds and computes before the network, for one window.

        The default is a raw window of 16-bit samples; a task with a feature front end
        adds its feature map and its (estimated) multiply-accumulates.
        """
        spec = self.input_spec()
        return InputCosts(spec.length * spec.channels * RAW_SAMPLE_BYTES, 0, 0)

    def export_mode(self) -> str:
        """The conversion mode of this task's models (one of EXPORT_MODES)."""
        return "int8"

    def frontend_ops(self) -> frozenset[str]:
        """TFLite operators the task's front end adds to every exported model (none here).

        A device whose runtime lacks one is refused the candidate before it is trained.
        """
        return frozenset()

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], **overrides: Any) -> Task:
        """The task a model was trained on, from its metadata's `data` (`identity()`).

        Fields that are not part of the identity (paths) come from `overrides`, as do any
        others given; ConfigError when the model is not one of this task's.
        """
        data = meta.get("data")
        if meta.get("task") != cls.name or not isinstance(data, Mapping):
            raise ConfigError(f"model: its metadata does not describe a {cls.name!r} task's "
                              "data (exported before hilnas recorded it?)")
        names = {f.name for f in dataclasses.fields(cls.config_type)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                  if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(cls.config_type(**values))

    def identity(self) -> dict[str, Any]:
        """What makes two datasets the same (the store's key); paths are not part of it."""
        out = {"task": self.name}
        for f in dataclasses.fields(self.config):
            if f.compare:
                out[f.name] = _jsonable(getattr(self.config, f.name))
        return out

    # ------------------------------------------------------------------ model side
    @abstractmethod
    def head(self, keras: Any, features: Any, *, logits: bool = False, name: str = "out") -> Any:
        """The output layer applied to a network's features."""

    @abstractmethod
    def loss(self, keras: Any, *, logits: bool = False) -> Any:
        """The training loss (for a head with or without its final activation)."""

    def fit_options(self, data: TaskData, class_weights: str | None) -> dict[str, Any]:
        """Extra keyword arguments of `model.fit` (class weights for classification)."""
        return {}

    @abstractmethod
    def score(self, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        """The task's metrics of a model's raw outputs (logits, probabilities or values)."""

    def score_side(self, data: TaskData, side: str, outputs: np.ndarray) -> dict[str, Any]:
        """`score` of a model's outputs on one side ("val", "test") of `data`.

        A task whose figures need more than the labels (the pulse-rate task tracks each
        recording's windows in time order) reads it from the dataset here.
        """
        return self.score(getattr(data, f"y_{side}"), outputs)

    def restart_value(self, val_metrics: dict[str, Any]) -> float:
        """The validation figure that ranks restarts of one network (larger is better).

        `TrainConfig.restarts` trains a network from several seeds and keeps the one this
        ranks first; by default the task's `default_quality`, in its direction.
        """
        name = self.default_quality()
        spec = next((m for m in self.metrics() if m.name == name), None)
        value = float(val_metrics[name])
        return value if spec is None or spec.maximise else -value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------- registry
TASKS: Registry[type[Task]] = Registry("task", package="host.tasks")
#: Class decorator that makes a task available as `[data] task = "..."`.
register_task = TASKS.register
#: The task class registered as a name (ConfigError listing the known ones).
task_class = TASKS.get
available_tasks = TASKS.names
