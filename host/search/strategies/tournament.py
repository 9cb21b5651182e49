"""BioNetExplorer's tournament GA: the best of `tournament_size` aspirants, Deb's rules."""

from __future__ import annotations

import random
from collections.abc import Sequence

from host.search.strategies.base import register_strategy
from host.search.strategies.genetic import GeneticStrategy, Individual


@register_strategy("tournament")
class TournamentStrategy(GeneticStrategy):
    weighted_cost = True

    def select(self, individuals: Sequence[Individual], k: int) -> list[Individual]:
        chosen = []
        for _ in range(k):
            aspirants = [random.choice(individuals) for _ in range(self.settings.tournament_size)]
            # Feasible beats infeasible, the smaller violation wins, then the fitter.
            chosen.append(min(aspirants, key=lambda i: (i.violation, -i.fitness.values[0])))
        return chosen
