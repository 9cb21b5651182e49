"""NSGA-II (Deb et al.) on the objectives themselves, with Deb's feasibility rules."""

from __future__ import annotations

from collections.abc import Sequence

from deap import tools

from host.search.strategies.base import register_strategy
from host.search.strategies.genetic import GeneticStrategy, Individual, feasible_first


@register_strategy("nsga2")
class Nsga2Strategy(GeneticStrategy):
    def select(self, individuals: Sequence[Individual], k: int) -> list[Individual]:
        return feasible_first(individuals, k, tools.selNSGA2)
