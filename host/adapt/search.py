"""Grassroots Operator Search: adapt a trained model to a device, one operator at a time.

Each step (GOS Section 3, Figure 1):

1. the current model is exported to int8, measured and profiled on the device;
2. Algorithm 1 (host/adapt/select.py) picks the least efficient operator, or the N_o
   similar ones;
3. an evolutionary search (DEAP) over that operator's instruction graph
   (host/adapt/graph.py) looks for a faster variant. The population starts from the
   operator's own graph and mutations of it ("adaptation", GOS Figure 2b); each
   candidate is built into the model in place of the operator, only its weights are
   fine-tuned (the rest frozen, the unchanged nodes starting from their trained weights),
   then it is exported to int8 and run **on the device**: the latency of the whole model
   (Measure) and the quality on the validation windows (Validate) are the device's. The
   objectives are the whole model's latency and the operator's parameters (minimised;
   NSGA-II's crowding distance keeps the population spread, GOS equation 2), under the
   hard constraint that the validation quality is no worse than the original model's (as
   it came in, GOS's equation 2) by more than `quality_margin` (GOS's epsilon). A
   candidate that does not convert to TFLite builtins, that the device rejects, or that
   fails to train is recorded with
   the reason and gets no fitness; the run goes on;
4. the fastest feasible candidate replaces the operator if it is faster than the model
   before the step; otherwise the operator is kept, and it is not picked again.

Steps repeat until `max_layers` operators were picked, none is left, or `target_speedup`
is reached. Choices use the validation side only; the test side is scored once at the end.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from host.adapt.graph import OperatorGraph, crossover, mutate
from host.adapt.model import ChainModel
from host.adapt.select import Selection, latency_by_operator, select
from host.errors import ConfigError, DeviceUnavailable

#: penalty fitness of a candidate without a measurement (NSGA-II needs finite values)
NO_FITNESS = (1e12, 1e12)


def _us(value: float) -> str:
    """A latency in µs as a person reads it: 2817, 14.2, 1.44."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


@dataclass(frozen=True)
class AdaptConfig:
    """How to adapt (GOS Section 4.1 settings where they apply). Errors name the bad key.

    `quality_margin`: GOS's epsilon, in the unit of the task's quality metric (BPM for the
    PPG task): a candidate whose validation quality is worse than the original model's
    (before the first step) by more is infeasible. GOS uses 1% accuracy; 0.5 BPM is the PPG default.
    `population`, `generations`: per operator (GOS: 50 iterations; a bench run is minutes).
    `mutation_prob`, `crossover_prob`: GOS's 0.8 and 0.6.
    `n_similar`: GOS's N_o. `target_speedup`: stop once the model is this much faster.
    `min_gain`: a replacement must be at least this much faster than the model before the
    step (3%: a repeated measurement of one model on LiteRT here varies by 1-4%), so noise
    is never accepted as a speedup.
    `finetune_epochs`: epochs of fine-tuning of each candidate's operator (early stopping
    on the validation loss, best weights kept).
    """

    max_layers: int = 3
    population: int = 8
    generations: int = 3
    n_similar: int = 1
    mutation_prob: float = 0.8
    crossover_prob: float = 0.6
    quality_margin: float = 0.5
    finetune_epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3
    target_speedup: float | None = None
    measure_seconds: float = 4.0
    min_gain: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("max_layers", "population", "n_similar", "finetune_epochs", "batch_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, not {value!r}")
        if not isinstance(self.generations, int) or self.generations < 0:
            raise ConfigError(f"generations: must be an integer >= 0, not {self.generations!r}")
        if self.population % 4:
            raise ConfigError(
                f"population: must be a multiple of 4 (DEAP's crowding-distance tournament "
                f"pairs individuals), not {self.population}"
            )
        for name in ("mutation_prob", "crossover_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: must be in [0, 1], not {getattr(self, name)!r}")
        if self.quality_margin < 0:
            raise ConfigError(f"quality_margin: must be >= 0, not {self.quality_margin!r}")
        if self.target_speedup is not None and self.target_speedup <= 1.0:
            raise ConfigError(f"target_speedup: must be > 1, not {self.target_speedup!r}")
        if self.measure_seconds <= 0 or self.learning_rate <= 0:
            raise ConfigError("measure_seconds and learning_rate: must be > 0")
        if not 0.0 <= self.min_gain < 1.0:
            raise ConfigError(f"min_gain: must be in [0, 1), not {self.min_gain!r}")


@dataclass
class Evaluation:
    """One candidate operator, fine-tuned, exported and run on the device."""

    step: int
    key: str
    graph: OperatorGraph
    origin: str  # "original", or the mutation / crossover that made it
    operator_params: int
    model_params: int
    latency_us: float | None = None
    latency_source: str = ""
    quality: float | None = None
    quality_source: str = ""
    feasible: bool = False
    failure: str | None = None
    seconds: float = 0.0
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    model_bytes: bytes | None = field(default=None, repr=False)

    violation: float = 0.0  # how far over the quality limit (0 when feasible)

    @property
    def fitness(self) -> tuple[float, float]:
        """(latency, parameters) when feasible; else a penalty growing with the violation.

        Among infeasible candidates the nearest to feasible then survive (constraint
        domination) instead of a random one.
        """
        if self.latency_us is None or self.quality is None or not np.isfinite(self.quality):
            return NO_FITNESS
        if not self.feasible:
            penalty = 1e9 * (1.0 + min(self.violation, 1e3))
            return (penalty, penalty)
        return (self.latency_us, float(self.operator_params))

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step, "equation": self.graph.equation(), "origin": self.origin,
            "operator_params": self.operator_params, "model_params": self.model_params,
            "latency_us": self.latency_us, "latency_source": self.latency_source,
            "quality": self.quality, "quality_source": self.quality_source,
            "feasible": self.feasible, "failure": self.failure,
            "model_bytes": len(self.model_bytes) if self.model_bytes else None,
            "seconds": round(self.seconds, 2), "graph": self.graph.to_json(),
        }


@dataclass
class Step:
    """One adaptation step: the selection, the search, and the outcome."""

    index: int
    selection: Selection
    before_equation: str
    before_latency_us: float
    before_quality: float
    before_params: int
    chosen: Evaluation | None
    accepted: bool
    reason: str
    evaluations: int
    failures: int

    def to_json(self) -> dict[str, Any]:
        c = self.chosen
        return {
            "step": self.index, "selection": self.selection.to_json(),
            "operator": list(self.selection.operators),
            "before": {"equation": self.before_equation, "latency_us": self.before_latency_us,
                       "quality": self.before_quality, "model_params": self.before_params},
            "after": None if c is None else {
                "equation": c.graph.equation(), "latency_us": c.latency_us,
                "quality": c.quality, "model_params": c.model_params},
            "speedup": (self.before_latency_us / c.latency_us
                        if c is not None and c.latency_us and self.accepted else 1.0),
            "accepted": self.accepted, "reason": self.reason,
            "evaluations": self.evaluations, "failures": self.failures,
        }


@dataclass
class Baseline:
    """The current model as the device sees it: int8 bytes, latency, quality, profile."""

    model_bytes: bytes
    latency_us: float
    latency_source: str
    quality: float
    profile: Any  # OpProfile or None
    deployable: bool
    refusal: str | None = None


class Adapter:
    """Runs the GOS loop for one model, task and device (module docstring)."""

    def __init__(self, chain: ChainModel, task: Any, data: Any, device: Any,
                 config: AdaptConfig, *, metadata: Mapping[str, Any] | None = None,
                 progress: Callable[[str], None] = print) -> None:
        self.chain = chain
        self.task = task
        self.data = data
        self.device = device
        self.config = config
        self.metadata = dict(metadata or {})
        self.progress = progress
        self.quality_name = task.default_quality()
        spec = next((m for m in task.metrics() if m.name == self.quality_name), None)
        self.maximise = bool(spec.maximise) if spec is not None else True
        self.unit = spec.unit if spec is not None else ""
        self.representative = task.representative(data)
        self.evaluations: list[Evaluation] = []
        self.steps: list[Step] = []
        self.rng = random.Random(config.seed)
        self._ci: dict[str, float] = {}
        from host.train.tfenv import import_keras

        self.keras = import_keras()

    # ------------------------------------------------------------------ device side
    def _convert(self, model: Any, extra: Mapping[str, Any] | None = None) -> bytes:
        from host.export.tflite import convert

        meta = {**self.metadata, **(extra or {})}
        return convert(model, self.task.export_mode(), representative=self.representative,
                       metadata=meta, timeout=300.0)

    def _measure(self, model_bytes: bytes) -> tuple[float, str]:
        """The device's median latency (µs) and its source; remembers the median's CI."""
        from device_agent.types import MeasureSettings

        m = self.device.measure(model_bytes, MeasureSettings(
            warmup_runs=5, min_runs=20, max_runs=300,
            time_budget_seconds=self.config.measure_seconds))
        self._ci[hashlib.sha256(model_bytes).hexdigest()] = float(
            m.latency.median_ci95_relative or 0.0)
        return float(m.latency.p50_us), str(m.latency.source.value)

    def needed_gain(self, before: bytes, after: bytes) -> float:
        """The relative speedup a replacement must show.

        `min_gain`, or more where the two medians' 95% intervals are wider (a model of a
        few µs on a desktop CPU).
        """
        ci = [self._ci.get(hashlib.sha256(b).hexdigest(), 0.0) for b in (before, after)]
        return max(self.config.min_gain, sum(ci))

    def _quality(self, model_bytes: bytes) -> tuple[float, str]:
        from host.fleet.validation import validate_on_device

        v = validate_on_device(self.device, model_bytes, self.data.inputs("val"),
                               self.data.y_val, self.task, reference=False)
        return float(v.device_metrics[self.quality_name]), v.device_source

    def baseline(self, chain: ChainModel) -> Baseline:
        """Export, measure, validate and profile `chain` on the device."""
        from device_agent.errors import CandidateRejected

        model, _ = chain.build(self.keras)
        blob = self._convert(model)
        try:
            latency, source = self._measure(blob)
        except CandidateRejected as exc:  # too large for the device: Algorithm 1's first case
            return Baseline(blob, float("inf"), "unavailable", float("nan"), None, False,
                            str(exc))
        quality, _ = self._quality(blob)
        profile = self.device.profile(blob)
        return Baseline(blob, latency, source, quality, profile, True)

    # ------------------------------------------------------------------ one candidate
    def evaluate(self, step: int, names: list[str], graph: OperatorGraph, origin: str,
                 inherited: Mapping[str, list[np.ndarray]], limit: float,
                 start_key: str = "") -> Evaluation:
        """Fine-tune `graph` in place of operators `names`, export, run on the device.

        The operator's own graph (`start_key`) is not fine-tuned: it is the reference.
        """
        key = graph.key()
        for e in self.evaluations:
            if e.step == step and e.key == key:
                return e
        t0 = time.perf_counter()
        ev = Evaluation(step, key, graph, origin, graph.param_count() * len(names), 0)
        try:
            keras = self.keras
            keras.utils.set_random_seed(self.config.seed)
            model, built = self.chain.build(
                keras, train=names, candidate=(names, graph, dict(inherited)))
            ev.model_params = int(model.count_params())
            if key != start_key:  # the operator as it is keeps its trained weights
                self._finetune(model)
            first = built[names[0]]
            ev.weights = {uid: layer.get_weights() for uid, layer in first.items()}
            ev.model_bytes = self._convert(model, {"adapting": names, "candidate": key})
            ev.latency_us, ev.latency_source = self._measure(ev.model_bytes)
            ev.quality, ev.quality_source = self._quality(ev.model_bytes)
            worse = (limit - ev.quality) if self.maximise else (ev.quality - limit)
            ev.feasible = bool(worse <= 0)
            ev.violation = max(0.0, float(worse)) if np.isfinite(worse) else np.inf
            if not np.isfinite(ev.quality):
                ev.failure = f"the device's outputs give a {self.quality_name} of {ev.quality}"
            elif not ev.feasible:
                ev.failure = (f"quality {ev.quality:.3f} {self.unit} is worse than the limit "
                              f"{limit:.3f} (the accuracy constraint)")
        except DeviceUnavailable:
            raise  # the device is gone: the run stops (the CLI keeps what was measured)
        except Exception as exc:  # noqa: BLE001 - any candidate's failure is recorded
            # a graph that does not convert, a device that rejects it, a layer Keras cannot
            # build: recorded with the reason, no fitness, the search goes on
            lines = str(exc).strip().splitlines() or [""]
            ev.failure = f"{type(exc).__name__}: {lines[-1][:300]}"
            ev.feasible = False
        ev.seconds = time.perf_counter() - t0
        self.evaluations.append(ev)
        lat = f"{_us(ev.latency_us)} µs" if ev.latency_us is not None else "-"
        q = f"{ev.quality:.2f}" if ev.quality is not None else "-"
        state = "ok" if ev.feasible else f"no fitness: {ev.failure}"
        self.progress(f"      [{len(self.evaluations)}] {origin}: {graph.equation()} | "
                      f"{lat}, {self.quality_name} {q} | {state} ({ev.seconds:.0f} s)")
        return ev

    def _finetune(self, model: Any) -> None:
        """Train the trainable (candidate) layers; keep the start if no epoch beat it."""
        keras, cfg = self.keras, self.config
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=1.0),
                      loss=self.task.loss(keras))
        val = (self.data.inputs("val"), self.data.y_val)
        start = model.get_weights()
        start_loss = float(model.evaluate(*val, batch_size=256, verbose=0))
        hist = model.fit(self.data.inputs("train"), self.data.y_train, validation_data=val,
                         epochs=cfg.finetune_epochs, batch_size=cfg.batch_size, verbose=0,
                         callbacks=[keras.callbacks.EarlyStopping(
                             monitor="val_loss", patience=2, restore_best_weights=True)])
        if min(hist.history.get("val_loss", [np.inf])) > start_loss:
            model.set_weights(start)

    # ------------------------------------------------------------------ one operator
    def search_operator(self, step: int, names: list[str], limit: float) -> list[Evaluation]:
        """The evolutionary search over the graph of operators `names` (DEAP, NSGA-II)."""
        from deap import base, tools

        cfg = self.config
        op = self.chain.operators[self.chain.index(names[0])]
        start = op.current
        assert start is not None
        inherited = op.current_weights

        class Fitness(base.Fitness):
            weights = (-1.0, -1.0)

        class Individual:
            def __init__(self, graph: OperatorGraph, origin: str) -> None:
                self.graph, self.origin = graph, origin
                self.fitness = Fitness()

        def assess(ind: Individual) -> None:
            ev = self.evaluate(step, names, ind.graph, ind.origin, inherited, limit,
                               start.key())
            ind.fitness.values = ev.fitness

        population = [Individual(start, "original")]
        seen = {start.key()}
        tries = 0
        while len(population) < cfg.population:
            g, what = mutate(start, self.rng)
            tries += 1
            if g.key() in seen and tries < 20 * cfg.population:
                continue  # distinct starting variants (a repeat would only be a cache hit)
            seen.add(g.key())
            population.append(Individual(g, f"mutation: {what}"))
        for ind in population:
            assess(ind)
        population = tools.selNSGA2(population, len(population))
        for gen in range(cfg.generations):
            self.progress(f"    generation {gen + 1}/{cfg.generations}")
            parents = tools.selTournamentDCD(population, len(population))
            offspring = [Individual(p.graph, p.origin) for p in parents]
            for a, b in zip(offspring[::2], offspring[1::2], strict=True):
                if self.rng.random() < cfg.crossover_prob:
                    ga, gb = crossover(a.graph, b.graph, self.rng)
                    if ga.key() != a.graph.key():
                        a.graph, a.origin = ga, "crossover"
                    if gb.key() != b.graph.key():
                        b.graph, b.origin = gb, "crossover"
            for ind in offspring:
                if self.rng.random() < cfg.mutation_prob:
                    ind.graph, what = mutate(ind.graph, self.rng)
                    ind.origin = f"mutation: {what}"
            for ind in offspring:
                assess(ind)
            population = tools.selNSGA2(population + offspring, cfg.population)
        return [e for e in self.evaluations if e.step == step]

    # ------------------------------------------------------------------ the loop
    def run(self) -> AdaptResult:
        cfg = self.config
        t0 = time.perf_counter()
        self.progress("[base] export, measure, validate and profile the model on the device")
        base = current = self.baseline(self.chain)
        if not base.deployable:
            self.progress(f"      the device refused the model: {base.refusal}")
        else:
            self.progress(f"      {_us(base.latency_us)} µs ({base.latency_source}), "
                          f"{self.quality_name} {base.quality:.3f} {self.unit} (validation)")
        for step in range(1, cfg.max_layers + 1):
            per_op: dict[str, float] = {}
            unattributed = 0.0
            if current.profile is not None:
                per_op, unattributed = latency_by_operator(self.chain, current.model_bytes,
                                                           current.profile.ops)
            sel = select(self.chain, deployable=current.deployable, latency_us=per_op,
                         n_similar=cfg.n_similar, unattributed_us=unattributed,
                         profile_source=current.profile.source.value
                         if current.profile is not None else "none")
            if sel is None:
                self.progress("no operator left to adapt")
                break
            names = list(sel.operators)
            first = self.chain.operators[self.chain.index(names[0])]
            shares = ", ".join(f"{k} {_us(v)} µs" for k, v in
                               sorted(per_op.items(), key=lambda kv: -kv[1]) if v > 0)
            self.progress(f"[step {step}] {', '.join(names)} ({first.kind}; by {sel.criterion}"
                          f"{'; profile: ' + shares if shares else ''})")
            # GOS's equation 2 bounds the adapted model by the original model m: the margin
            # is relative to the model as it came in, so steps cannot add their losses up
            reference = base.quality if np.isfinite(base.quality) else current.quality
            limit = (reference - cfg.quality_margin if self.maximise
                     else reference + cfg.quality_margin)
            if not np.isfinite(reference):
                limit = -np.inf if self.maximise else np.inf
            before = first.current
            assert before is not None
            before_latency, before_quality = current.latency_us, current.quality
            before_params = self.chain.param_count()
            evals = self.search_operator(step, names, limit)
            feasible = [e for e in evals if e.feasible and e.latency_us is not None]
            best = min(feasible, key=lambda e: (e.latency_us or 0.0, e.operator_params),
                       default=None)
            failures = sum(1 for e in evals if e.failure and e.latency_us is None)
            accepted = (best is not None and best.key != before.key()
                        and (not current.deployable
                             or (best.latency_us or np.inf) < current.latency_us
                             * (1 - self.needed_gain(current.model_bytes,
                                                     best.model_bytes or b""))))
            if accepted and best is not None and best.latency_us is not None:
                self.chain = self.chain.with_replacement(names, best.graph, best.weights)
                assert best.model_bytes is not None
                reason = (f"{current.latency_us / best.latency_us:.2f}x faster within the "
                          "quality margin" if current.deployable else "the model now deploys")
                profile = self.device.profile(best.model_bytes)
                current = Baseline(best.model_bytes, best.latency_us, best.latency_source,
                                   float(best.quality or 0.0), profile, True)
            else:
                for name in names:
                    self.chain.operators[self.chain.index(name)].adapted = True
                reason = ("no feasible candidate" if best is None else
                          "no variant within the quality margin is faster by more than "
                          f"{self.needed_gain(current.model_bytes, best.model_bytes or b''):.0%}"
                          " (the minimum gain, or the measurements' spread)")
            self.steps.append(Step(step, sel, before.equation(), before_latency, before_quality,
                                   before_params, best, accepted, reason, len(evals),
                                   failures))
            self.progress(f"      {'replaced' if accepted else 'kept'}: {reason}")
            if (cfg.target_speedup and current.deployable and base.deployable
                    and base.latency_us / current.latency_us >= cfg.target_speedup):
                self.progress(f"target speedup {cfg.target_speedup}x reached")
                break
        return AdaptResult(self, base, current, time.perf_counter() - t0)


@dataclass
class AdaptResult:
    """The adapted model and everything the report needs."""

    adapter: Adapter
    base: Baseline
    final: Baseline
    seconds: float

    @property
    def speedup(self) -> float:
        if not (self.base.deployable and self.final.deployable):
            return float("nan")
        return self.base.latency_us / self.final.latency_us

    def front(self) -> list[Evaluation]:
        """Evaluations on the Pareto front of validation quality vs measured latency."""
        done = [e for e in self.adapter.evaluations
                if e.latency_us is not None and e.quality is not None]
        sign = -1.0 if self.adapter.maximise else 1.0
        front = []
        for e in done:
            assert e.latency_us is not None and e.quality is not None
            dominated = any(
                o.latency_us is not None and o.quality is not None
                and o.latency_us <= e.latency_us and sign * o.quality <= sign * e.quality
                and (o.latency_us < e.latency_us or sign * o.quality < sign * e.quality)
                for o in done)
            if not dominated:
                front.append(e)
        return sorted(front, key=lambda e: e.latency_us or 0.0)

    def to_json(self) -> dict[str, Any]:
        a = self.adapter
        return {
            "quality_metric": a.quality_name, "quality_unit": a.unit,
            "quality_side": "validation (device outputs)",
            "config": a.config.__dict__,
            "base": {"latency_us": self.base.latency_us, "latency_source":
                     self.base.latency_source, "quality": self.base.quality,
                     "deployable": self.base.deployable, "refusal": self.base.refusal,
                     "sha256": hashlib.sha256(self.base.model_bytes).hexdigest()},
            "final": {"latency_us": self.final.latency_us, "quality": self.final.quality,
                      "latency_source": self.final.latency_source,
                      "sha256": hashlib.sha256(self.final.model_bytes).hexdigest(),
                      "model_bytes": len(self.final.model_bytes),
                      "model_params": a.chain.param_count()},
            "speedup": self.speedup,
            "steps": [s.to_json() for s in a.steps],
            "operators": a.chain.describe(),
            "skipped": {op.name: op.skipped for op in a.chain.operators if op.skipped},
            "evaluations": [e.to_json() for e in a.evaluations],
            "front": [a.evaluations.index(e) for e in self.front()],
            "seconds": round(self.seconds, 1),
        }
