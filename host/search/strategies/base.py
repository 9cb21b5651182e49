"""The strategy contract and its registry (`@register_strategy`, `strategy_class`).

A strategy decides which genomes to evaluate; the runner does everything else. It is built
with a `SearchContext` and the runner calls one method, `run(evaluate, record)`:

- `evaluate(genomes, generation)` trains, exports and measures what needs it (or takes it
  from the store) and returns one `Scored` per genome, in order;
- `record(generation, scored)` stores the generation, updates the front and the progress,
  and returns True when the run's training budget is spent (the strategy then stops).

A strategy states what it needs from a space (`check`): the exhaustive baseline and the
Bayesian strategy list the space, a binary chromosome needs the paper's encoding. A
configuration that pairs a strategy with a space that lacks it is a ConfigError naming both.
A new strategy is one module in this package that subclasses `Strategy` and registers itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from device_agent.registry import Registry
from host.errors import ConfigError

if TYPE_CHECKING:
    from host.search.config import SearchConfig, StrategyConfig
    from host.search.objectives import Normaliser
    from host.search.pipeline import Evaluation
    from host.spaces.base import Space


@dataclass
class Scored:
    """A genome with what its evaluation gave (None when the chromosome is invalid)."""

    genome: list[int]
    evaluation: Evaluation | None


# evaluate(genomes, generation) -> one Scored per genome, in order
EvaluateFn = Callable[[list[list[int]], int], list[Scored]]
# record(generation, scored of this generation) -> True to stop (budget reached)
RecordFn = Callable[[int, list[Scored]], bool]
# key_of(genome) -> the canonical key of the network it builds if that network is in the
# bounded space (a candidate that would be trained), else None
KeyFn = Callable[[list[int]], "str | None"]
# prescreen(keys of a pool of candidates, k, generation) -> indices of the k to evaluate,
# best first (strategy.surrogate; see host/search/prescreen.py)
PrescreenFn = Callable[[Sequence["str | None"], int, int], list[int]]


@dataclass
class SearchContext:
    """What a strategy is given: the configuration, the space, and the runner's helpers."""

    cfg: SearchConfig
    space: Space[Any]
    normaliser: Normaliser
    seed: int
    key_of: KeyFn
    prescreen: PrescreenFn | None = None

    def encode(self, arch: Any) -> list[int]:
        """The genome of `arch` in the configured encoding."""
        return list(self.space.encoder(self.cfg.strategy.encoding)[0](arch))


class Strategy(ABC):
    """One way of choosing candidates (see the module docstring)."""

    name: ClassVar[str] = ""
    #: optimises BioNetExplorer's weighted cost rather than the Pareto front
    weighted_cost: ClassVar[bool] = False
    #: lists the bounded space (exhaustive, Bayesian)
    needs_listing: ClassVar[bool] = False
    #: the prescreener it uses when the configuration names none ("none": no prescreening)
    default_prescreener: ClassVar[str] = "none"

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.settings = ctx.cfg.strategy
        self.space = ctx.space

    @classmethod
    def check(cls, settings: StrategyConfig, space: Space[Any]) -> None:
        """Raise ConfigError, naming the strategy and the space, if they cannot work together."""
        if cls.needs_listing and not space.enumerable:
            raise ConfigError(
                f"strategy {cls.name!r} lists every network of the space, but space "
                f"{space.name!r} has ~{space.size():.3g}; bound the space (at most "
                f"{space.MAX_LISTED:,} networks) or use a genetic strategy"
            )
        if settings.encoding == "binary" and not space.has_binary_encoding:
            raise ConfigError(
                f"strategy {cls.name!r} with encoding 'binary' needs a binary chromosome, "
                f"which space {space.name!r} does not define; set strategy.encoding = 'integer'"
            )

    def totals(self) -> tuple[int, int]:
        """(generations, candidates) this run will evaluate at most, for progress bars."""
        s = self.settings
        return s.generations + 1, s.population * (s.generations + 1)

    @abstractmethod
    def run(self, evaluate: EvaluateFn, record: RecordFn) -> None:
        """Propose genomes until done, the budget is spent (`record` says so) or Ctrl-C."""


# --------------------------------------------------------------------------- registry
STRATEGIES: Registry[type[Strategy]] = Registry("strategy", package="host.search.strategies")
#: Class decorator that makes a strategy available as `[strategy] name = "..."`.
register_strategy = STRATEGIES.register
#: The strategy class registered as a name (ConfigError listing the known ones).
strategy_class = STRATEGIES.get
available_strategies = STRATEGIES.names
