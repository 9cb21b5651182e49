"""The search strategies: BioNetExplorer's four genetic algorithms (DEAP) and two baselines.

- `roulette`, `tournament`: single objective, the weighted cost (see objectives.Normaliser);
- `nsga2`, `spea2`: multi-objective on the objectives themselves;
- `exhaustive`: every architecture of the bounded space; `random`: a seeded fraction of it.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from deap import algorithms, base, tools

from device_agent.errors import ConfigError
from host.search.config import SINGLE_OBJECTIVE, SearchConfig
from host.search.evaluator import Evaluation
from host.search.objectives import Normaliser

WORST = 1e12  # stands for an unknown cost in a minimised objective


@dataclass
class Scored:
    """A genome with what its evaluation gave (None when the chromosome is invalid)."""

    genome: list[int]
    evaluation: Evaluation | None


# evaluate(genomes, generation) -> one Scored per genome, in order
EvaluateFn = Callable[[list[list[int]], int], list[Scored]]
# record(generation, scored of this generation) -> True to stop (budget reached)
RecordFn = Callable[[int, list[Scored]], bool]
# key_of(genome) -> the canonical key of the network it builds if that network is in the
# bounded space (a candidate that would be trained), else None
KeyFn = Callable[[list[int]], "str | None"]
# prescreen(keys of the bred pool, k, generation) -> indices of the k offspring to evaluate,
# best first (strategy.surrogate; see surrogate.Prescreener.rank)
PrescreenFn = Callable[[Sequence["str | None"], int, int], list[int]]

# How often an offspring is mutated again, at most, to make it a network the run has not
# evaluated yet (strategy.duplicates = "remutate"). One bit flip moves a chromosome to a
# neighbour, so a few tries find a new network unless the neighbourhood is exhausted; the
# limit only bounds the work once the space itself is nearly exhausted.
MAX_REMUTATIONS = 50


class _Individual(list[int]):
    fitness: Any
    violation: float = 0.0


@contextmanager
def _own_random(state: list[Any]) -> Iterator[None]:
    """Swap this strategy's generator state into the global `random` module."""
    outer = random.getstate()
    random.setstate(state[0])
    try:
        yield
    finally:
        state[0] = random.getstate()
        random.setstate(outer)


class GeneticStrategy:
    def __init__(
        self,
        cfg: SearchConfig,
        space: Any,
        normaliser: Normaliser,
        seed: int,
        key_of: KeyFn | None = None,
        prescreen: PrescreenFn | None = None,
    ) -> None:
        self.cfg, self.space, self.normaliser = cfg, space, normaliser
        if cfg.strategy.duplicates == "remutate" and key_of is None:
            raise ConfigError("strategy.duplicates = 'remutate' needs the space's keys")
        if prescreen is not None and key_of is None:
            raise ConfigError("strategy.surrogate needs the space's keys")
        self.key_of = key_of
        self.prescreen = prescreen  # the runner gives one when strategy.surrogate is set
        self.seen: set[str] = set()  # networks this run has evaluated (for "remutate")
        self.s = cfg.strategy
        self.single = self.s.name in SINGLE_OBJECTIVE
        rng = random.Random(seed)
        self._state = [rng.getstate()]
        self.toolbox = base.Toolbox()
        if self.single:
            weights: tuple[float, ...] = (1.0,)
        else:
            weights = tuple(1.0 if o.maximise else -1.0 for o in cfg.objectives)
        self.fitness_cls = type("Fitness", (base.Fitness,), {"weights": weights})
        # The initial population is drawn from the bounded space (a valid chromosome each);
        # crossover and mutation may then leave it, and such offspring score as invalid.
        members = space.architectures(bounded=True)
        encode = space.encode if self.s.encoding == "binary" else space.encode_int
        self.toolbox.register("genome", lambda: list(encode(random.choice(members))))
        if self.s.encoding == "binary":
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
    def _assign(self, ind: _Individual, scored: Scored) -> None:
        ev = scored.evaluation
        if self.single:
            if ev is None or ev.status == "failed":
                ind.fitness.values = (0.0,)
                ind.violation = math.inf
            else:
                ind.violation = ev.violation
                fit = self.normaliser.weighted_fitness(
                    ev.objectives, self.cfg.cost.alpha, self.cfg.cost.beta
                )
                # Roulette: DEAP-style delta penalty for infeasible candidates.
                ind.fitness.values = (
                    0.0 if (ev.violation > 0 and self.s.name == "roulette") else fit,
                )
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
        ind.violation = math.inf if ev is None or ev.status == "failed" else ev.violation

    # ------------------------------------------------------------------ selection
    def _select(self, individuals: Sequence[_Individual], k: int) -> list[_Individual]:
        if self.s.name == "roulette":
            return list(tools.selRoulette(individuals, k))
        if self.s.name == "tournament":
            chosen = []
            for _ in range(k):
                aspirants = [random.choice(individuals) for _ in range(self.s.tournament_size)]
                chosen.append(min(aspirants, key=lambda i: (i.violation, -i.fitness.values[0])))
            return chosen
        feasible = [i for i in individuals if i.violation == 0]
        infeasible = sorted((i for i in individuals if i.violation > 0), key=lambda i: i.violation)
        if len(feasible) >= k:
            select = tools.selNSGA2 if self.s.name == "nsga2" else tools.selSPEA2
            return list(select(feasible, k))
        return feasible + infeasible[: k - len(feasible)]

    # ------------------------------------------------------------------ loop
    def run(self, evaluate: EvaluateFn, record: RecordFn) -> None:
        toolbox = self.toolbox
        mu = self.s.population

        def new(genome: list[int]) -> _Individual:
            ind = _Individual(genome)
            ind.fitness = self.fitness_cls()
            return ind

        def score(individuals: list[_Individual], generation: int) -> bool:
            if self.key_of is not None:
                self.seen.update(k for i in individuals if (k := self.key_of(list(i))))
            scored = evaluate([list(i) for i in individuals], generation)
            for ind, sc in zip(individuals, scored, strict=True):
                self._assign(ind, sc)
            return record(generation, scored)

        with _own_random(self._state):
            population = [new(toolbox.genome()) for _ in range(mu)]
        if score(population, 0):
            return
        for generation in range(1, self.s.generations + 1):
            with _own_random(self._state):
                # Without a surrogate one round of variation is the generation; with one,
                # `surrogate_pool` rounds breed the pool the prescreener picks from.
                rounds = self.s.surrogate_pool if self.prescreen is not None else 1
                offspring = []
                for _ in range(rounds):
                    offspring += self._breed(population, mu)
                if self.s.duplicates == "remutate":
                    self._remutate_duplicates(offspring)
            if self.prescreen is not None:
                assert self.key_of is not None
                keys = [self.key_of(list(o)) for o in offspring]
                offspring = [offspring[i] for i in self.prescreen(keys, mu, generation)]
            stop = score(offspring, generation)
            with _own_random(self._state):
                population = offspring if self.single else self._select(population + offspring, mu)
            if stop:
                return

    def _breed(self, population: list[_Individual], mu: int) -> list[_Individual]:
        """One round of DEAP variation: `mu` offspring (drawn from the strategy's state)."""
        toolbox = self.toolbox
        if self.single:
            parents = [self._copy(i) for i in self._select(population, mu)]
            offspring = algorithms.varAnd(
                parents, toolbox, self.s.crossover_prob, self.s.mutation_prob
            )
        else:
            offspring = algorithms.varOr(
                [self._copy(i) for i in population],
                toolbox,
                mu,
                self.s.crossover_prob,
                self.s.mutation_prob,
            )
        return [self._copy(o) for o in offspring]

    def _remutate_duplicates(self, offspring: list[_Individual]) -> None:
        """Mutate each offspring again until it builds a network not evaluated so far.

        Siblings count as evaluated too, so one generation never proposes a network twice.
        Draws from the strategy's own generator (called inside `_own_random`), so a
        resumed run makes the same choices. An offspring that finds no new network within
        MAX_REMUTATIONS tries (the space is nearly exhausted) is kept as it is.
        """
        assert self.key_of is not None
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

    def _copy(self, ind: _Individual) -> _Individual:
        out = _Individual(list(ind))
        out.fitness = self.fitness_cls()
        if ind.fitness.valid:
            out.fitness.values = ind.fitness.values
        out.violation = ind.violation
        return out


def baseline_batches(cfg: SearchConfig, space: Any, seed: int) -> list[list[list[int]]]:
    """The genomes the exhaustive or random baseline evaluates, in batches of a population."""
    archs = space.architectures(bounded=True)
    if cfg.strategy.name == "random":
        n = max(1, round(cfg.strategy.random_fraction * len(archs)))
        archs = space.sample(n, seed=seed)
    elif cfg.strategy.name != "exhaustive":
        raise ConfigError(f"{cfg.strategy.name} is not a baseline")
    encode = space.encode if cfg.strategy.encoding == "binary" else space.encode_int
    genomes = [encode(a) for a in archs]
    size = cfg.strategy.population
    return [genomes[i : i + size] for i in range(0, len(genomes), size)]


def run_baseline(
    cfg: SearchConfig, space: Any, seed: int, evaluate: EvaluateFn, record: RecordFn
) -> None:
    for generation, batch in enumerate(baseline_batches(cfg, space, seed)):
        if record(generation, evaluate(batch, generation)):
            return


# The Bayesian strategy ranks every network of the bounded space that it has not evaluated;
# beyond this many it ranks a seeded sample of them each generation (ranking costs about a
# millisecond per network and pick).
MAX_RANKED = 2000


def run_bayesian(
    cfg: SearchConfig,
    space: Any,
    seed: int,
    key_of: KeyFn,
    prescreen: PrescreenFn,
    evaluate: EvaluateFn,
    record: RecordFn,
) -> None:
    """Multi-objective Bayesian optimisation over the bounded space (strategy "bayesian").

    Generation 0 is `population` networks drawn at random (the same draw as random
    search); each later generation trains the `population` untrained networks of highest
    expected hypervolume improvement under the Gaussian-process surrogate
    (surrogate.Prescreener), which is refitted to every result so far. It stops after
    `generations` generations, or when the bounded space is exhausted.
    """
    s = cfg.strategy
    encode = space.encode if s.encoding == "binary" else space.encode_int
    genomes: dict[str, list[int]] = {}
    for arch in space.distinct_architectures(bounded=True):
        genome = list(encode(arch))
        key = key_of(genome)
        if key is not None:
            genomes.setdefault(key, genome)
    first = [list(encode(a)) for a in space.sample(min(s.population, len(genomes)), seed=seed)]
    evaluated = {k for g in first if (k := key_of(g)) is not None}
    if record(0, evaluate(first, 0)):
        return
    for generation in range(1, s.generations + 1):
        untrained = [k for k in genomes if k not in evaluated]
        if not untrained:
            return
        if len(untrained) > MAX_RANKED:
            untrained = random.Random(seed * 100_003 + generation).sample(untrained, MAX_RANKED)
        picked = [untrained[i] for i in prescreen(untrained, s.population, generation)]
        evaluated.update(picked)
        if record(generation, evaluate([genomes[k] for k in picked], generation)):
            return
