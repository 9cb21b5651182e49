"""Search strategies, one module each: BioNetExplorer's four GAs, two baselines, Bayesian."""

from host.search.strategies.base import (
    EvaluateFn,
    KeyFn,
    PrescreenFn,
    RecordFn,
    Scored,
    SearchContext,
    Strategy,
    available_strategies,
    register_strategy,
    strategy_class,
)

__all__ = [
    "EvaluateFn",
    "KeyFn",
    "PrescreenFn",
    "RecordFn",
    "Scored",
    "SearchContext",
    "Strategy",
    "available_strategies",
    "register_strategy",
    "strategy_class",
]
