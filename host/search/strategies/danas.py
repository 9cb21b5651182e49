"""Data Aware NAS's evolutionary search (Njor et al., tinyML 2023; its v1.0.0 controller).

- A population of `population` (DANAS: 10), started "trivial" (random granularities with
  one-layer networks, DANAS's default) or "random" (random networks of any depth):
  `strategy.initial`.
- Each generation the population is cut, in order, into round(population x
  `update_ratio`) tournaments (DANAS: 0.5); each tournament's winner is kept as a breeder.
- The rest of the next population is bred from the breeders: a share `crossover_prob`
  (DANAS's crossover ratio, 0.2) by crossover (one parent's granularity, the other's
  network), the others by one of the space's DANAS mutations (never a no-op).
- Fitness is hilnas's weighted cost of the run's objectives (BioNetExplorer's alpha and
  beta over normalised objectives), where DANAS adds accuracy, precision, recall and
  exp(-size / 100000); constraints are handled by feasibility first, as in the other GAs.

The operators are the space's (`Space.mutate`, `crossover`, `trivial`), so any space that
defines them can be searched this way; `check` names a space that does not.
"""

from __future__ import annotations

import math
import random
from typing import Any

from host.errors import ConfigError
from host.search.pipeline import Status
from host.search.strategies.base import (
    EvaluateFn,
    RecordFn,
    Scored,
    SearchContext,
    Strategy,
    register_strategy,
)
from host.search.strategies.genetic import own_random

OPERATORS = ("mutate", "crossover", "trivial")


@register_strategy("danas")
class DanasStrategy(Strategy):
    weighted_cost = True

    @classmethod
    def check(cls, settings: Any, space: Any) -> None:
        super().check(settings, space)
        missing = [op for op in OPERATORS if not callable(getattr(space, op, None))]
        if missing:
            raise ConfigError(
                f"strategy 'danas' breeds with the space's own operators, and space "
                f"{space.name!r} has no {', '.join(missing)}; use the data_aware space or a "
                "DEAP strategy (nsga2, tournament, ...)"
            )

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        self._state = [random.Random(ctx.seed).getstate()]
        self.space_ops: Any = ctx.space

    def _fitness(self, scored: Scored) -> tuple[float, float]:
        """(violation, fitness): feasible first, then the larger weighted fitness."""
        ev = scored.evaluation
        if ev is None or ev.status is Status.FAILED:
            return math.inf, 0.0
        fit = self.ctx.normaliser.weighted_fitness(ev.objectives, self.cfg.cost.alpha,
                                                   self.cfg.cost.beta)
        return ev.violation, fit

    def run(self, evaluate: EvaluateFn, record: RecordFn) -> None:
        s = self.settings
        space = self.space_ops
        with own_random(self._state):
            start = space.trivial if s.initial == "trivial" else space.draw
            population = [start(random) for _ in range(s.population)]
        scored = evaluate([self.ctx.encode(a) for a in population], 0)
        if record(0, scored):
            return
        ranked = list(zip(population, scored, strict=True))
        for generation in range(1, s.generations + 1):
            with own_random(self._state):
                breeders = self._tournaments(ranked)
                n_new = max(0, s.population - len(breeders))
                n_cross = round(n_new * s.crossover_prob) if len(breeders) > 1 else 0
                children = [space.mutate(breeders[i % len(breeders)], random)
                            for i in range(n_new - n_cross)]
                for _ in range(n_cross):
                    a, b = random.sample(breeders, 2)
                    children.append(space.crossover(a, b, random))
            scored = evaluate([self.ctx.encode(c) for c in children], generation)
            stop = record(generation, scored)
            kept = [(a, sc) for a, sc in ranked if any(a is b for b in breeders)]
            ranked = kept + list(zip(children, scored, strict=True))
            if stop:
                return

    def _tournaments(self, ranked: list[tuple[Any, Scored]]) -> list[Any]:
        """DANAS's selection: the population in order, cut into tournaments; their winners."""
        k = max(1, round(len(ranked) * self.settings.update_ratio))
        size = math.ceil(len(ranked) / k)
        winners = []
        for start in range(0, len(ranked), size):
            group = ranked[start:start + size]
            best = min(group, key=lambda p: (self._fitness(p[1])[0], -self._fitness(p[1])[1]))
            winners.append(best[0])
        return winners
