"""Multi-objective Bayesian optimisation over the bounded space (strategy "bayesian").

Generation 0 is `population` networks drawn at random (the same draw as random search);
each later generation trains the `population` untrained networks of highest expected
hypervolume improvement under the Gaussian-process surrogate (host/search/prescreen.py,
"gp"), which is refitted to every result so far. It stops after `generations` generations,
or when the bounded space is exhausted.
"""

from __future__ import annotations

import random

from host.search.strategies.base import EvaluateFn, RecordFn, Strategy, register_strategy

# The Bayesian strategy ranks every network of the bounded space that it has not evaluated;
# beyond this many it ranks a seeded sample of them each generation (ranking costs about a
# millisecond per network and pick).
MAX_RANKED = 2000


@register_strategy("bayesian")
class BayesianStrategy(Strategy):
    needs_listing = True
    default_prescreener = "gp"

    def run(self, evaluate: EvaluateFn, record: RecordFn) -> None:
        s, ctx = self.settings, self.ctx
        prescreen = ctx.prescreen
        assert prescreen is not None  # the runner gives one (default_prescreener)
        genomes: dict[str, list[int]] = {}
        for arch in self.space.distinct_architectures():
            genome = ctx.encode(arch)
            key = ctx.key_of(genome)
            if key is not None:
                genomes.setdefault(key, genome)
        first = [ctx.encode(a) for a in self.space.sample(min(s.population, len(genomes)),
                                                           seed=ctx.seed)]
        evaluated = {k for g in first if (k := ctx.key_of(g)) is not None}
        if record(0, evaluate(first, 0)):
            return
        for generation in range(1, s.generations + 1):
            untrained = [k for k in genomes if k not in evaluated]
            if not untrained:
                return
            if len(untrained) > MAX_RANKED:
                untrained = random.Random(ctx.seed * 100_003 + generation).sample(
                    untrained, MAX_RANKED
                )
            picked = [untrained[i] for i in prescreen(untrained, s.population, generation)]
            evaluated.update(picked)
            if record(generation, evaluate([genomes[k] for k in picked], generation)):
                return
