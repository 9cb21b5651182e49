"""Pre-screening: which of a pool of untrained candidates to train (`strategy.surrogate`).

A training costs minutes; breeding a candidate costs nothing. A prescreener ranks a pool of
candidates (a GA breeds `surrogate_pool` times its population; the Bayesian strategy offers
every untrained network) and the strategy trains the best `population` of them:

- "none": no ranking, every offspring is trained (BioNetExplorer's GAs);
- "gp": a Gaussian process per objective predicts what is not known before training, and
  candidates are ranked by expected improvement (host/search/surrogate.py);
- "cheap": HALF's two-step selection: candidates are ranked on the objectives known before
  training alone (analytic costs and a space's own estimates, e.g. HALF's power and energy)
  by non-dominated sorting, and only the best are trained.

Every prescreener is deterministic, so a resumed run ranks exactly as before. A new one is
one class registered with `@register_prescreener`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from device_agent.registry import Registry
from host.errors import ConfigError
from host.search.objectives import Figures, Normaliser, total_violation

if TYPE_CHECKING:
    from host.search.config import Objective, SearchConfig
    from host.search.pipeline import Evaluation


class Prescreener(ABC):
    """Ranks candidates by network key; `rank` returns the indices to evaluate, best first."""

    name: ClassVar[str] = ""

    def __init__(
        self,
        cfg: SearchConfig,
        normaliser: Normaliser,
        analytic: Callable[[str], Mapping[str, float]],
        features: Callable[[str], list[float]],
        evaluated: Callable[[], Mapping[str, Evaluation]],
    ) -> None:
        """Rank for the run of `cfg`.

        `analytic(key)`: the figures known before training; `features(key)`: a model's
        inputs; `evaluated()`: this run's evaluations so far, by network key.
        """
        self.cfg, self.normaliser = cfg, normaliser
        self.analytic, self.features, self.evaluated = analytic, features, evaluated

    @classmethod  # noqa: B027 - an optional hook, not abstract
    def check(cls, objectives: Sequence[Objective]) -> None:
        """Raise ConfigError when the objectives give this prescreener nothing to rank on."""

    def rank(self, keys: Sequence[str | None], k: int, generation: int) -> list[int]:
        """Indices into `keys` of the (at most) `k` candidates to evaluate, best first.

        `None` stands for a candidate outside the bounded space; such candidates, and
        repeats of a network already in the pool or already evaluated, are never chosen
        over a new network. What is left fills the batch in breeding order (repeats and
        invalid chromosomes cost no training, and a GA keeps its population size).
        """
        known = dict(self.evaluated())
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key is not None and key not in first:
                first[key] = i
        new = [key for key in first if key not in known]
        chosen = [first[key] for key in self.pick(new, known, k, generation)] if new else []
        taken = set(chosen)
        rest = [i for i in range(len(keys)) if i not in taken]
        return (chosen + rest)[:k]

    @abstractmethod
    def pick(
        self, new: list[str], known: Mapping[str, Evaluation], k: int, generation: int
    ) -> list[str]:
        """The (at most) `k` best of the untrained networks `new`, best first."""

    def cheap_violation(self, key: str) -> float:
        """How far a network breaks the constraints known before training (0: it does not)."""
        figures = Figures()
        figures.add_many(self.analytic(key), "analytic")
        return total_violation(self.cfg, figures, cheap_only=True)


class NoPrescreening(Prescreener):
    """Every candidate, in breeding order (the paper's GAs)."""

    def pick(
        self, new: list[str], known: Mapping[str, Evaluation], k: int, generation: int
    ) -> list[str]:
        return new[:k]


class CheapObjectives(Prescreener):
    """HALF's two-step selection: rank on the objectives known before training.

    Non-dominated sorting of the normalised cheap objectives; within a front, the sum of
    per-objective ranks (scale-free); candidates that break a cheap constraint last.
    """

    @classmethod
    def check(cls, objectives: Sequence[Objective]) -> None:
        if not any(o.cheap for o in objectives):
            raise ConfigError(
                "strategy.surrogate = 'cheap' ranks on objectives known before training, "
                "and none of the objectives is (add an analytic one, e.g. storage_int8_bytes "
                "or a space's estimate such as fpga_energy_uj_max_unroll)"
            )

    def pick(
        self, new: list[str], known: Mapping[str, Evaluation], k: int, generation: int
    ) -> list[str]:
        from host.search.pareto import nondominated_order

        cheap = [j for j, o in enumerate(self.cfg.objectives) if o.cheap]
        rows = []
        for key in new:
            figures = self.analytic(key)
            values: list[float | None] = [None] * len(self.cfg.objectives)
            for j in cheap:
                values[j] = figures.get(self.cfg.objectives[j].metric)
            norm = self.normaliser.normalise(values)
            rows.append([norm[j] for j in cheap])
        order = nondominated_order(np.asarray(rows, dtype=float))
        ok = [i for i in order if self.cheap_violation(new[i]) == 0]
        broken = [i for i in order if i not in set(ok)]
        return [new[i] for i in (ok + broken)[:k]]


# "gp" lives in host/search/surrogate.py (it needs scikit-learn), imported when asked for.
PRESCREENERS: Registry[type[Prescreener]] = Registry(
    "prescreener", modules={"gp": "host.search.surrogate"}
)
#: Class decorator that makes a prescreener available as `strategy.surrogate = "..."`.
register_prescreener = PRESCREENERS.register
#: The prescreener class registered as a name (ConfigError listing the known ones).
prescreener_class = PRESCREENERS.get
available_prescreeners = PRESCREENERS.names
register_prescreener("none")(NoPrescreening)
register_prescreener("cheap")(CheapObjectives)


__all__ = [
    "CheapObjectives",
    "NoPrescreening",
    "Prescreener",
    "available_prescreeners",
    "prescreener_class",
    "register_prescreener",
]
