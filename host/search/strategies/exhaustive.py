"""The baselines of BioNetExplorer: every network of the bounded space, or a random share.

Both evaluate in batches of `population` (a batch is a "generation" in the store), so they
use the executor's workers and their progress is stored like a GA's.
"""

from __future__ import annotations

from typing import Any

from host.search.strategies.base import EvaluateFn, RecordFn, Strategy, register_strategy


class BaselineStrategy(Strategy):
    """Evaluates a fixed list of architectures, a population at a time."""

    needs_listing = True

    def architectures(self) -> list[Any]:
        raise NotImplementedError

    def batches(self) -> list[list[list[int]]]:
        genomes = [self.ctx.encode(a) for a in self.architectures()]
        size = self.settings.population
        return [genomes[i : i + size] for i in range(0, len(genomes), size)]

    def totals(self) -> tuple[int, int]:
        batches = self.batches()
        return len(batches), sum(len(b) for b in batches)

    def run(self, evaluate: EvaluateFn, record: RecordFn) -> None:
        for generation, batch in enumerate(self.batches()):
            if record(generation, evaluate(batch, generation)):
                return


@register_strategy("exhaustive")
class ExhaustiveStrategy(BaselineStrategy):
    """Every gene combination of the bounded space (equivalent ones trained once)."""

    def architectures(self) -> list[Any]:
        return self.space.architectures()
