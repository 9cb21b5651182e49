"""BioNetExplorer's roulette-wheel GA: fitness-proportional selection on the weighted cost."""

from __future__ import annotations

from collections.abc import Sequence

from deap import tools

from host.search.strategies.base import register_strategy
from host.search.strategies.genetic import GeneticStrategy, Individual


@register_strategy("roulette")
class RouletteStrategy(GeneticStrategy):
    weighted_cost = True
    # Roulette cannot rank by feasibility, so an infeasible candidate gets fitness 0.
    infeasible_scores_zero = True

    def select(self, individuals: Sequence[Individual], k: int) -> list[Individual]:
        return list(tools.selRoulette(individuals, k))
