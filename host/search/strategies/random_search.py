"""Random search: a seeded `random_fraction` of the bounded space, without replacement."""

from __future__ import annotations

from typing import Any

from host.search.strategies.base import register_strategy
from host.search.strategies.exhaustive import BaselineStrategy


@register_strategy("random")
class RandomStrategy(BaselineStrategy):
    def architectures(self) -> list[Any]:
        n = max(1, round(self.settings.random_fraction * len(self.space.architectures())))
        return self.space.sample(n, seed=self.ctx.seed)
