"""BioNetExplorer's genetic algorithms on DEAP: the shared loop (one subclass per selection).

- `roulette`, `tournament` (weighted_cost): single objective, BioNetExplorer's weighted cost
  (objectives.Normaliser), offspring replace the population;
- `nsga2`, `spea2`: multi-objective on the objectives themselves, (mu + lambda) selection.

Constraints are handled by feasibility, not folded into the objective: NSGA-II, SPEA-2 and
the tournament apply Deb's rules (a feasible candidate beats an infeasible one, and of two
infeasible ones the smaller violation wins); roulette selection gives infeasible candidates
DEAP's delta penalty (fitness 0, as BioNetExplorer gives invalid chromosomes), and every
infeasible candidate is recorded as such with the constraints it breaks.

Determinism: DEAP's operators draw from Python's global `random`; training (Keras seeds it)
may run in another thread between generations, so each strategy keeps its own generator
state and swaps it in only while it draws. With the same seed and the same evaluations
(from the store on a resumed run), a strategy makes exactly the same choices.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from deap import algorithms, base, tools

from host.errors import ConfigError
from host.search.pipeline import Status
from host.search.strategies.base import (
    EvaluateFn,
    RecordFn,
    Scored,
    SearchContext,
    Strategy,
)

WORST = 1e12  # stands for an unknown cost in a minimised objective

# How often an offspring is mutated again, at most, to make it a network the run has not
# evaluated yet (strategy.duplicates = "remutate"). One mutation moves a chromosome to a
# neighbour, so a few tries find a new network unless the neighbourhood is exhausted; the
# limit only bounds the work once the space itself is nearly exhausted.
MAX_REMUTATIONS = 50


class Individual(list[int]):
    fitness: Any
    violation: float = 0.0


@contextmanager
def own_random(state: list[Any]) -> Iterator[None]:
    """Swap a strategy's generator state into the global `random` module while it draws."""
    outer = random.getstate()
    random.setstate(state[0])
    try:
        yield
    finally:
        state[0] = random.getstate()
        random.setstate(outer)


class GeneticStrategy(Strategy):
    """The GA loop of BioNetExplorer; subclasses choose the selection (`select`)."""

    #: roulette gives an infeasible candidate DEAP's delta penalty (fitness 0)
    infeasible_scores_zero = False

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        s = self.settings
        self.normaliser = ctx.normaliser
        if s.duplicates == "remutate" and ctx.key_of is None:
            raise ConfigError("strategy.duplicates = 'remutate' needs the space's keys")
        self.key_of = ctx.key_of
        self.prescreen = ctx.prescreen  # the runner gives one when strategy.surrogate is set
        self.seen: set[str] = set()  # networks this run has evaluated (for "remutate")
        self.single = self.weighted_cost
        self._state = [random.Random(ctx.seed).getstate()]
        self.toolbox = base.Toolbox()
        if self.single:
            weights: tuple[float, ...] = (1.0,)
        else:
            weights = tuple(1.0 if o.maximise else -1.0 for o in self.cfg.objectives)
        self.fitness_cls = type("Fitness", (base.Fitness,), {"weights": weights})
        # The initial population is drawn from the bounded space (a valid chromosome each);
        # crossover and mutation may then leave it, and such offspring score as invalid.
        space = self.space
        self.toolbox.register("genome", lambda: ctx.encode(space.draw(random)))
        if s.encoding == "binary":
            length = space.chromosome_length
            self.toolbox.register("mate", tools.cxTwoPoint)
            self.toolbox.register("mutate", tools.mutFlipBit, indpb=1.0 / length)
        else:
            bounds = space.int_bounds()
            low, up = [b[0] for b in bounds], [b[1] for b in bounds]
            self.toolbox.register("mate", tools.cxUniform, indpb=0.5)
            self.toolbox.register(
                "mutate", tools.mutUniformInt, low=low, up=up, indpb=1.0 / len(bounds)
            )

    # ------------------------------------------------------------------ fitness
    def _assign(self, ind: Individual, scored: Scored) -> None:
        ev = scored.evaluation
        if self.single:
            if ev is None or ev.status is Status.FAILED:
                ind.fitness.values = (0.0,)
                ind.violation = math.inf
            else:
                ind.violation = ev.violation
                fit = self.normaliser.weighted_fitness(
                    ev.objectives, self.cfg.cost.alpha, self.cfg.cost.beta
                )
                penalised = ev.violation > 0 and self.infeasible_scores_zero
                ind.fitness.values = (0.0 if penalised else fit,)
            return
        values = []
        for obj, value in zip(
            self.cfg.objectives,
            ev.objectives if ev else [None] * len(self.cfg.objectives),
            strict=True,
        ):
            if value is None:
                values.append(0.0 if obj.maximise else WORST)
            else:
                values.append(float(value))
        ind.fitness.values = tuple(values)
        ind.violation = math.inf if ev is None or ev.status is Status.FAILED else ev.violation

    # ------------------------------------------------------------------ selection
    @abstractmethod
    def select(self, individuals: Sequence[Individual], k: int) -> list[Individual]:
        """Choose `k` individuals (draws from the strategy's own generator)."""

    # ------------------------------------------------------------------ loop
    def run(self, evaluate: EvaluateFn, record: RecordFn) -> None:
        toolbox = self.toolbox
        mu = self.settings.population

        def new(genome: list[int]) -> Individual:
            ind = Individual(genome)
            ind.fitness = self.fitness_cls()
            return ind

        def score(individuals: list[Individual], generation: int) -> bool:
            self.seen.update(k for i in individuals if (k := self.key_of(list(i))))
            scored = evaluate([list(i) for i in individuals], generation)
            for ind, sc in zip(individuals, scored, strict=True):
                self._assign(ind, sc)
            return record(generation, scored)

        with own_random(self._state):
            population = [new(toolbox.genome()) for _ in range(mu)]
        if score(population, 0):
            return
        for generation in range(1, self.settings.generations + 1):
            with own_random(self._state):
                # Without a prescreener one round of variation is the generation; with one,
                # `surrogate_pool` rounds breed the pool the prescreener picks from.
                rounds = self.settings.surrogate_pool if self.prescreen is not None else 1
                offspring = []
                for _ in range(rounds):
                    offspring += self._breed(population, mu)
                if self.settings.duplicates == "remutate":
                    self._remutate_duplicates(offspring)
            if self.prescreen is not None:
                keys = [self.key_of(list(o)) for o in offspring]
                offspring = [offspring[i] for i in self.prescreen(keys, mu, generation)]
            stop = score(offspring, generation)
            with own_random(self._state):
                population = offspring if self.single else self.select(population + offspring, mu)
            if stop:
                return

    def _breed(self, population: list[Individual], mu: int) -> list[Individual]:
        """One round of DEAP variation: `mu` offspring (drawn from the strategy's state)."""
        toolbox = self.toolbox
        s = self.settings
        if self.single:
            parents = [self._copy(i) for i in self.select(population, mu)]
            offspring = algorithms.varAnd(parents, toolbox, s.crossover_prob, s.mutation_prob)
        else:
            offspring = algorithms.varOr(
                [self._copy(i) for i in population], toolbox, mu, s.crossover_prob,
                s.mutation_prob,
            )
        return [self._copy(o) for o in offspring]

    def _remutate_duplicates(self, offspring: list[Individual]) -> None:
        """Mutate each offspring again until it builds a network not evaluated so far.

        Siblings count as evaluated too, so one generation never proposes a network twice.
        Draws from the strategy's own generator (called inside `own_random`), so a resumed
        run makes the same choices. An offspring that finds no new network within
        MAX_REMUTATIONS tries (the space is nearly exhausted) is kept as it is.
        """
        claimed = set(self.seen)
        for child in offspring:
            key = self.key_of(list(child))
            for _ in range(MAX_REMUTATIONS):
                if key is not None and key not in claimed:
                    break
                (child,) = self.toolbox.mutate(child)
                key = self.key_of(list(child))
            if key is not None:
                claimed.add(key)

    def _copy(self, ind: Individual) -> Individual:
        out = Individual(list(ind))
        out.fitness = self.fitness_cls()
        if ind.fitness.valid:
            out.fitness.values = ind.fitness.values
        out.violation = ind.violation
        return out


def feasible_first(
    individuals: Sequence[Individual], k: int, select: Any
) -> list[Individual]:
    """Deb's rules around a Pareto selection.

    Feasible individuals first (chosen by `select`), then the least-violating infeasible ones.
    """
    feasible = [i for i in individuals if i.violation == 0]
    infeasible = sorted((i for i in individuals if i.violation > 0), key=lambda i: i.violation)
    if len(feasible) >= k:
        return list(select(feasible, k))
    return feasible + infeasible[: k - len(feasible)]
