"""The search-space contract, and the registry of spaces (`@register_space`, `get_space`).

A space is everything a strategy, the surrogate, the run store and the report need to know
about a family of networks, and nothing about how they are searched:

- **genes**: integer genes with inclusive bounds (`genes`, `encode_int`, `decode_int`), and
  the paper's binary chromosome where the paper defines one (`encode`, `decode`,
  `chromosome_length`; `has_binary_encoding`);
- **identity**: a stable `key()` per architecture, `from_key`, and `canonical` (genes that
  build the same network map to one architecture, trained and measured once);
- **listing and sampling**: `size`, `enumerable`, `architectures`, `distinct_architectures`,
  seeded `sample` and `draw` (one random member, for a GA's first population);
- **analytic costs**: parameters, MACs, storage and the input buffer (`costs`), plus any
  figures the space's own hardware model estimates (`estimates`, e.g. HALF's power);
- **models**: `build_model` for a task (the task gives the head) and `export_model`, the
  inference graph that is converted to int8 (static batch of one; HALF folds batch norm);
- **training and compression**: `network_key` (the network a candidate trains; candidates
  that differ only in their compression share it) and `compression` (how the pipeline
  compresses a candidate after training; only the joint-compression wrapper,
  host/compress/joint.py, says anything but None);
- **the task's data**, for a space whose genes include how the data is sampled (the
  data-aware space): `bind` gives it the run's task once, and `task_for` returns the task
  each architecture is trained and scored on (its own sample rate, window and
  representation). Every other space keeps the default: one task for all.

A new space is one module that subclasses `Space` and registers itself; the contract test
suite (tests/host/test_space_contract.py) runs over every registered space.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from device_agent.registry import Registry
from host.errors import ConfigError
from host.hw.costs import Costs
from host.metrics import ANALYTIC_METRICS, MetricSpec

if TYPE_CHECKING:
    from host.tasks.base import Task


class Architecture(Protocol):
    """What every architecture of every space is: a frozen, hashable value with a key."""

    def key(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


A = TypeVar("A", bound=Architecture)


class RandomSource(Protocol):
    """The draws a space makes for a strategy: Python's `random` module or a `Random`."""

    def random(self) -> float: ...

    def randint(self, a: int, b: int) -> int: ...

    def choice(self, seq: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class InputSpec:
    """What the networks of a space are built for: a window in, the task's outputs out.

    `length` samples of `channels` channels per window; `outputs` is the number of classes
    of a classification task or of targets of a regression task. `aux_features` > 0 adds a
    second input of that many values per window (a beat's RR intervals, host.data.beats),
    which a space joins to its features before the head, or refuses with a ConfigError
    that says why (`require_single_input`).
    """

    length: int
    channels: int = 1
    outputs: int = 2
    aux_features: int = 0

    def __post_init__(self) -> None:
        for name in ("length", "channels", "outputs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"input {name} must be a positive integer, not {value!r}")
        aux = self.aux_features
        if not isinstance(aux, int) or isinstance(aux, bool) or aux < 0:
            raise ConfigError(f"input aux_features must be an integer >= 0, not {aux!r}")

    def require_single_input(self, space: str, why: str) -> None:
        """ConfigError when the task gives a second input that `space` cannot take."""
        if self.aux_features:
            raise ConfigError(
                f"space {space!r} takes one input window, but the task adds "
                f"{self.aux_features} more values per window (data.rr_features): {why}; "
                "set data.rr_features = false or choose a space that takes them (bionet)"
            )


@dataclass(frozen=True)
class BuildOptions:
    """How to build a network.

    A static batch size (1 for the exported graph), the seed of its initialisers, the
    training's dropout rate (used by spaces that have dropout), and the shares of a
    spectral feature map's frames and bins dropped while training (`time_mask`,
    `bin_mask`: host.train.augment; only spaces with `feature_masks` take them).
    """

    batch_size: int | None = None
    seed: int | None = None
    dropout: float = 0.0
    time_mask: float = 0.0
    bin_mask: float = 0.0


@dataclass(frozen=True)
class Gene:
    """One integer gene: a name and inclusive bounds."""

    name: str
    low: int
    high: int


class Space(ABC, Generic[A]):
    """A family of networks for one input (see the module docstring for the contract).

    Subclasses take the task's `InputSpec` as their first argument and their options
    (bounds, grids, a board) as keyword arguments; `options()` names those keywords, so a
    configuration's `[space]` table is checked against them.
    """

    name: ClassVar[str] = ""
    #: whether the paper defines a binary chromosome (BioNetExplorer's 9 bits, HALF's slots)
    has_binary_encoding: ClassVar[bool] = False
    #: whether the exported network outputs logits (an accelerator that returns raw scores)
    #: rather than the task's own activation (a softmax for classification)
    output_logits: ClassVar[bool] = False
    #: whether `task_for` gives architectures tasks of their own (the data-aware space)
    varies_task: ClassVar[bool] = False
    #: whether its networks compute a spectral feature map that `augment.time_mask` and
    #: `augment.bin_mask` can drop frames and bins of (BuildOptions)
    feature_masks: ClassVar[bool] = False
    #: above this many networks a space is not listed, only sampled and encoded
    MAX_LISTED: ClassVar[int] = 1_000_000

    def __init__(self, input: InputSpec) -> None:
        self.input = input

    # ------------------------------------------------------------------ options
    @classmethod
    def options(cls) -> dict[str, Any]:
        """The keyword options of this space with their defaults (the `[space]` keys)."""
        params = inspect.signature(cls.__init__).parameters
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return {
            n: p.default
            for n, p in params.items()
            if n not in ("self", "input") and p.kind in kinds
        }

    def describe(self) -> dict[str, Any]:
        """The space's name and options, as a report shows them."""
        return {"name": self.name, **{k: getattr(self, k, v) for k, v in self.options().items()}}

    # ------------------------------------------------------------------ the task's data
    def bind(self, task: Task) -> None:
        """Check the run's task against this space (ConfigError naming what does not fit).

        Called once when a configuration is loaded; a space whose genes choose the data
        (sample rate, window, representation) keeps the task here. Default: nothing to do.
        """

    def task_for(self, arch: A, task: Task) -> Task:
        """The task `arch` is trained, exported and scored on (default: the run's task)."""
        return task

    # ------------------------------------------------------------------ training, compression
    def network_key(self, key: str) -> str:
        """The key of the network trained for architecture `key` (default: `key` itself).

        Candidates that differ only in how a trained network is compressed (a joint
        compression search, host/compress/joint.py) share one training.
        """
        return key

    def compression(self, arch: A) -> Any:
        """How the candidate pipeline compresses `arch` after training, or None.

        A `host.compress.joint.CompressionPoint`; None (default): the trained network is
        deployed as it is.
        """
        return None

    # ------------------------------------------------------------------ genes
    @abstractmethod
    def genes(self) -> tuple[Gene, ...]:
        """The integer genes, in chromosome order."""

    def int_bounds(self) -> list[tuple[int, int]]:
        """Inclusive range of each integer gene (what DEAP's integer operators take)."""
        return [(g.low, g.high) for g in self.genes()]

    @abstractmethod
    def encode_int(self, arch: A) -> list[int]:
        """The integer genes of an architecture."""

    @abstractmethod
    def decode_int(self, genes: Sequence[int]) -> A | None:
        """The architecture of integer genes, or None when they name none of this space."""

    @property
    def chromosome_length(self) -> int:
        """Bits of the paper's binary chromosome."""
        raise self._no_binary()

    def encode(self, arch: A) -> list[int]:
        """The paper's binary chromosome of an architecture."""
        raise self._no_binary()

    def decode(self, bits: Sequence[int]) -> A | None:
        """The architecture of a binary chromosome, or None when it names none."""
        raise self._no_binary()

    def _no_binary(self) -> ConfigError:
        return ConfigError(
            f"space {self.name!r} has no binary chromosome; use strategy.encoding = 'integer'"
        )

    def encoder(self, encoding: str) -> tuple[Callable[[A], list[int]], Callable[..., A | None]]:
        """(encode, decode) of `encoding`: "binary" (the paper's) or "integer"."""
        if encoding == "binary":
            return self.encode, self.decode
        if encoding == "integer":
            return self.encode_int, self.decode_int
        raise ConfigError(f"encoding {encoding!r} is not 'binary' or 'integer'")

    # ------------------------------------------------------------------ identity
    @abstractmethod
    def from_key(self, key: str) -> A:
        """The architecture of a `key()` (ConfigError naming the key when it is not one)."""

    def canonical(self, arch: A) -> A:
        """The one architecture that stands for every gene set building the same network.

        A search trains and measures each network once; spaces whose genes can describe the
        same network twice override this. Default: the architecture itself.
        """
        return arch

    @abstractmethod
    def contains(self, arch: Any) -> bool:
        """Whether `arch` is a network of this (bounded) space."""

    # ------------------------------------------------------------------ listing, sampling
    @abstractmethod
    def size(self) -> int:
        """Networks in the bounded space (gene combinations; an upper bound if not listed)."""

    @property
    def enumerable(self) -> bool:
        """Whether `architectures()` can list the space (exhaustive search, Bayesian ranking)."""
        return self.size() <= self.MAX_LISTED

    def architectures(self) -> list[A]:
        """Every architecture of the bounded space, in a stable order."""
        raise ConfigError(
            f"space {self.name!r} has ~{self.size():.3g} networks and cannot be listed; "
            "bound it further, or use a genetic strategy"
        )

    def distinct_architectures(self) -> list[A]:
        """One architecture per distinct network (the canonical one), in listing order."""
        seen: dict[str, A] = {}
        for arch in self.architectures():
            canon = self.canonical(arch)
            seen.setdefault(canon.key(), canon)
        return list(seen.values())

    def sample(self, n: int, seed: int = 0) -> list[A]:
        """`n` distinct architectures drawn uniformly from the bounded space (seeded)."""
        archs = self.architectures()
        if n > len(archs):
            raise ConfigError(f"sample: asked for {n} of a space of {len(archs)}")
        idx = np.random.default_rng(seed).choice(len(archs), size=n, replace=False)
        return [archs[int(i)] for i in idx]

    def draw(self, rng: RandomSource) -> A:
        """One architecture of the bounded space, drawn with `rng` (a GA's first population)."""
        return rng.choice(self._listed())

    def _listed(self) -> list[A]:
        cached: list[A] | None = getattr(self, "_listed_cache", None)
        if cached is None:
            cached = self.architectures()
            self._listed_cache = cached
        return cached

    # ------------------------------------------------------------------ costs
    @abstractmethod
    def costs(self, arch: A) -> Costs:
        """Parameters, storage, MACs and the input buffer of `arch` for this space's input."""

    def metrics(self) -> tuple[MetricSpec, ...]:
        """The analytic metrics this space gives: the common costs plus its own estimates."""
        return ANALYTIC_METRICS

    def estimates(self, arch: A) -> dict[str, float]:
        """Figures of the space's own hardware model (labelled by `estimate_source`)."""
        return {}

    def estimate_source(self) -> str:
        """How `estimates` are obtained (shown beside every such figure)."""
        return "estimated"

    def analytic(self, arch: A) -> dict[str, float]:
        """Every analytic metric of `arch`: the costs and the space's estimates."""
        c = self.costs(arch)
        out = {m.name: float(getattr(c, m.name)) for m in ANALYTIC_METRICS}
        out.update(self.estimates(arch))
        return out

    def features(self, arch: A) -> list[float]:
        """Inputs of the surrogate: log costs and the integer genes (no training needed)."""
        c = self.costs(arch)
        logs = [math.log1p(c.params), math.log1p(c.macs), math.log1p(c.storage_int8_bytes)]
        return logs + [float(g) for g in self.encode_int(arch)]

    # ------------------------------------------------------------------ models
    @abstractmethod
    def build_model(self, arch: A, task: Task, options: BuildOptions | None = None) -> Any:
        """An uncompiled tf-keras model of `arch` with the task's head (see BuildOptions)."""

    def aux_branch(self, model: Any, task: Task) -> tuple[Any, list[Any]] | None:
        """The model's second-input branch alone, for `[train] aux_first_epochs`.

        Returns a tf-keras model from the auxiliary input to the task's output that shares
        its layers with `model`, and those shared layers (which the trainer freezes after
        fitting them), or None when this space's models have no such branch.
        """
        return None

    def export_model(self, trained: Any, arch: A, task: Task) -> Any:
        """The inference graph of a trained model: the same network at a static batch of one.

        Static shapes are what give TFLite a fused int8 UNIDIRECTIONAL_SEQUENCE_LSTM; spaces
        whose deployed graph differs from the trained one (HALF folds batch norm) override.
        """
        model = self.build_model(arch, task, BuildOptions(batch_size=1))
        model.set_weights(trained.get_weights())
        return model


# --------------------------------------------------------------------------- registry
SPACES: Registry[type[Space[Any]]] = Registry("space", package="host.spaces")
#: Class decorator that makes a space available as `[space] name = "..."`.
register_space = SPACES.register
#: The space class registered as a name (ConfigError listing the known ones).
space_class = SPACES.get
available_spaces = SPACES.names


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ConfigError naming an option that space `name` does not take."""
    allowed = space_class(name).options()
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"unknown key space.{key} for space {name!r}; allowed: "
                f"{', '.join(['name', *sorted(allowed)])}"
            )


def get_space(
    name: str, input: InputSpec | None = None, task: Task | None = None, **options: Any
) -> Space[Any]:
    """The space registered as `name`, for `input` (default: a 256-sample, 2-class window).

    With `task`, the space is also bound to it (`Space.bind`), and `input` defaults to the
    task's.
    """
    check_options(name, options)
    if input is None and task is not None:
        input = task.input_spec()
    space = space_class(name)(input or InputSpec(256, 1, 2), **options)
    if task is not None:
        space.bind(task)
    return space
