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
- the representative windows that calibrate int8 quantization (`representative`).

A new task is one module that subclasses `Task` and registers itself.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from device_agent.registry import Registry
from host.data.splits import Splits
from host.errors import ConfigError
from host.metrics import MetricSpec
from host.spaces.base import InputSpec

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

        One array of windows, or [windows, aux] for a model with a second input.
        """
        x = np.asarray(data.x_train[:n], dtype=np.float32)
        if data.aux_train is None:
            return x
        return [x, np.asarray(data.aux_train[:n], dtype=np.float32)]

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
