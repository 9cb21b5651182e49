"""Search configuration: TOML validated into frozen dataclasses.

Every table and key is checked up front; an unknown key, a wrong type or a value outside
the allowed set is a `ConfigError` that names the key (`strategy.name`) and the allowed
values, before any data is loaded or any network trained. See `configs/*.toml`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_agent.errors import ConfigError

STRATEGIES = ("roulette", "tournament", "nsga2", "spea2", "bayesian", "exhaustive", "random")
SINGLE_OBJECTIVE = ("roulette", "tournament")
EXECUTORS = ("inprocess", "process", "ray")
# Quality metrics come from host.train.metrics (maximised); costs are minimised.
QUALITY_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro")
ANALYTIC_METRICS = ("storage_int8_bytes", "storage_float32_bytes", "params", "macs", "flops")
DEVICE_METRICS = (
    "latency_p50_us",
    "latency_p90_us",
    "peak_rss_bytes",
    "arena_bytes",
    "energy_per_inference_uj",
    "model_bytes",
)
ALL_METRICS = QUALITY_METRICS + ANALYTIC_METRICS + DEVICE_METRICS


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            allowed_list = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown key {where}.{key}; allowed in [{where}]: {allowed_list}")


def _build(cls: type, table: Mapping[str, Any] | None, where: str) -> Any:
    """A dataclass from a TOML table, naming the bad key on any error."""
    table = dict(table or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(table, set(fields), where)
    try:
        return cls(**table)
    except ConfigError as exc:
        message = str(exc)  # name the table unless the message already does
        raise ConfigError(message if f"{where}." in message else f"[{where}] {message}") from None
    except TypeError as exc:
        raise ConfigError(f"[{where}] {exc}") from None


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} = {value!r} is not one of: {', '.join(allowed)}")


def _positive(value: Any, key: str, *, integer: bool = True, allow_zero: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok_type or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(
            f"{key} must be a {'positive integer' if integer else 'positive number'}, not {value!r}"
        )


@dataclass(frozen=True)
class RunConfig:
    name: str = "search"
    seed: int = 0
    out_dir: str = "runs"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"name must be a non-empty name without '/', not {self.name!r}")


@dataclass(frozen=True)
class DataConfig:
    """The dataset (host.data.EcgDatasetConfig fields)."""

    task: str = "ecg"
    preset: str = "normal-vs-anomalous"
    records: tuple[str, ...] | None = None
    window: int = 256
    # Resample to this rate (Hz) before windowing; None keeps the record's own (360 Hz).
    sample_rate: int | None = None
    lead: str = "MLII"
    normalization: str = "zscore"
    split: str = "patient"
    max_windows_per_record: int | None = None
    custom: Mapping[str, Any] | None = None
    # Where mitdb/ is; default $HILNAS_DATA_DIR. Not part of what makes a training the same.
    data_dir: str | None = None

    def __post_init__(self) -> None:
        _choice(self.task, ("ecg",), "data.task")
        if self.records is not None:
            object.__setattr__(self, "records", tuple(str(r) for r in self.records))

    def dataset_config(self, seed: int) -> Any:
        from host.data import EcgDatasetConfig

        return EcgDatasetConfig(
            preset=self.preset,
            custom=self.custom,
            records=self.records,
            window=self.window,
            sample_rate=self.sample_rate,
            lead=self.lead,
            normalization=self.normalization,
            split=self.split,
            seed=seed,
            max_windows_per_record=self.max_windows_per_record,
            data_dir=self.data_dir,
        )


@dataclass(frozen=True)
class SpaceConfig:
    name: str = "bionet"
    bounds: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainSection:
    """host.train.TrainConfig fields."""

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    clipnorm: float | None = 1.0  # 0 turns gradient clipping off
    patience: int | None = 2
    class_weights: str | None = "balanced"
    dropout: float = 0.2

    def train_config(self, seed: int) -> Any:
        from host.train import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            clipnorm=self.clipnorm or None,
            patience=self.patience,
            class_weights=self.class_weights,
            dropout=self.dropout,
            seed=seed,
        )


@dataclass(frozen=True)
class StrategyConfig:
    """The GA settings; BioNetExplorer's defaults (population 30, 5 generations, 0.4, 0.11)."""

    name: str = "nsga2"
    population: int = 30
    generations: int = 5
    crossover_prob: float = 0.4
    mutation_prob: float = 0.11
    tournament_size: int = 3
    random_fraction: float = 0.1
    encoding: str = "binary"
    # What the GAs do with an offspring whose network this run has already evaluated (or
    # that is outside the bounded space): "keep" it, as BioNetExplorer's GAs do (it costs
    # no training, the result comes from the store, but the generation explores nothing
    # new), or "remutate" it until it is a new network of the space (pymoo's duplicate
    # elimination; see docs/decisions.md, "Duplicate offspring").
    duplicates: str = "keep"
    # Surrogate-assisted GA (docs/decisions.md, "Surrogate"): "none" trains
    # every offspring, as BioNetExplorer does; "gp" breeds `surrogate_pool` times as many
    # offspring per generation and trains the `population` of them that a Gaussian process
    # fitted to this run's results expects to improve the front (or the weighted cost) most.
    surrogate: str = "none"
    surrogate_pool: int = 4

    def __post_init__(self) -> None:
        _choice(self.name, STRATEGIES, "strategy.name")
        _choice(self.encoding, ("binary", "integer"), "strategy.encoding")
        _choice(self.duplicates, ("keep", "remutate"), "strategy.duplicates")
        _choice(self.surrogate, ("none", "gp"), "strategy.surrogate")
        _positive(self.surrogate_pool, "strategy.surrogate_pool")
        _positive(self.population, "strategy.population")
        _positive(self.generations, "strategy.generations")
        _positive(self.tournament_size, "strategy.tournament_size")
        for key in ("crossover_prob", "mutation_prob", "random_fraction"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"strategy.{key} must be in [0, 1], not {value!r}")


@dataclass(frozen=True)
class Objective:
    """One objective: a metric, on a device for device metrics."""

    metric: str
    device: str | None = None

    def __post_init__(self) -> None:
        _choice(self.metric, ALL_METRICS, "objectives.metric")
        if self.metric in DEVICE_METRICS and not self.device:
            raise ConfigError(f'objective {self.metric} needs a device = "NAME"')
        if self.metric not in DEVICE_METRICS and self.device:
            raise ConfigError(f"objective {self.metric} is not measured on a device")

    @property
    def maximise(self) -> bool:
        return self.metric in QUALITY_METRICS

    @property
    def label(self) -> str:
        return f"{self.metric}@{self.device}" if self.device else self.metric


@dataclass(frozen=True)
class Constraint:
    """A hard limit: `metric` (on `device`) at most `max` and/or at least `min`."""

    metric: str
    device: str | None = None
    max: float | None = None
    min: float | None = None

    def __post_init__(self) -> None:
        Objective(self.metric, self.device)  # same checks of the metric and device
        if self.max is None and self.min is None:
            raise ConfigError(f"constraint on {self.metric} needs max or min")

    @property
    def label(self) -> str:
        return f"{self.metric}@{self.device}" if self.device else self.metric

    @property
    def cheap(self) -> bool:
        """Decidable before training (analytic costs)."""
        return self.metric in ANALYTIC_METRICS

    def violation(self, value: float | None) -> float:
        """How far outside the limit (relative), 0 when satisfied; inf when unknown."""
        if value is None:
            return float("inf")
        v = 0.0
        if self.max is not None and value > self.max:
            v += (value - self.max) / max(abs(self.max), 1e-12)
        if self.min is not None and value < self.min:
            v += (self.min - value) / max(abs(self.min), 1e-12)
        return v


@dataclass(frozen=True)
class CostConfig:
    """The weighted cost of the single-objective strategies: alpha*(1-Q) + beta*H.

    Q is the first quality objective; H is the mean of the other objectives, each divided
    by its `reference` value (clipped to [0, 1]); see docs/decisions.md.
    """

    alpha: float = 1.0
    beta: float = 0.5
    references: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _positive(self.alpha, "cost.alpha", integer=False, allow_zero=True)
        _positive(self.beta, "cost.beta", integer=False, allow_zero=True)


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    address: str = "local"
    token_env: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class MeasureSection:
    warmup_runs: int = 10
    min_runs: int = 20
    max_runs: int = 200
    time_budget_seconds: float = 10.0
    threads: int = 1


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "inprocess"
    workers: int = 1
    ray_address: str | None = None
    # Training threads for TensorFlow; 0 = leave one core free for a local device.
    tf_threads: int = 0

    def __post_init__(self) -> None:
        _choice(self.kind, EXECUTORS, "executor.kind")
        _positive(self.workers, "executor.workers")


@dataclass(frozen=True)
class BudgetConfig:
    max_trainings: int | None = None
    device_retry_seconds: float = 60.0
    export_int8: bool = True


@dataclass(frozen=True)
class SearchConfig:
    run: RunConfig
    data: DataConfig
    space: SpaceConfig
    train: TrainSection
    strategy: StrategyConfig
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    cost: CostConfig
    devices: tuple[DeviceConfig, ...]
    measure: MeasureSection
    executor: ExecutorConfig
    budget: BudgetConfig
    tabular: str | None = None

    # ------------------------------------------------------------------ derived
    @property
    def quality_objective(self) -> Objective:
        return next(o for o in self.objectives if o.maximise)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def fingerprint(self, *sections: str) -> str:
        """Hash of some sections (what makes a training or a run the same)."""
        data = {s: self.to_json()[s] for s in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


TOP_LEVEL = {
    "run",
    "data",
    "space",
    "train",
    "strategy",
    "objectives",
    "constraints",
    "cost",
    "devices",
    "measure",
    "executor",
    "budget",
    "tabular",
}


def parse_config(doc: Mapping[str, Any]) -> SearchConfig:
    _check_keys(doc, TOP_LEVEL, "config")
    run = _build(RunConfig, doc.get("run"), "run")
    data = _build(DataConfig, doc.get("data"), "data")
    space = _build(SpaceConfig, doc.get("space"), "space")
    train = _build(TrainSection, doc.get("train"), "train")
    executor = _build(ExecutorConfig, doc.get("executor"), "executor")
    strategy_doc = doc.get("strategy")
    if isinstance(strategy_doc, Mapping) and strategy_doc.get("name") == "bayesian":
        # The Bayesian strategy's batch defaults to one network per training worker: a
        # smaller batch leaves a worker idle, a larger one picks with less information
        # (its surrogate is refitted after every batch; docs/decisions.md, "Surrogate").
        strategy_doc = {"population": executor.workers, **strategy_doc}
    strategy = _build(StrategyConfig, strategy_doc, "strategy")
    objectives = tuple(
        _build(Objective, o, f"objectives[{i}]")
        for i, o in enumerate(
            doc.get("objectives") or [{"metric": "f1_macro"}, {"metric": "storage_int8_bytes"}]
        )
    )
    if not any(o.maximise for o in objectives):
        raise ConfigError(f"objectives need a quality metric ({', '.join(QUALITY_METRICS)})")
    if len(objectives) < 2:
        raise ConfigError("objectives need a quality metric and at least one hardware metric")
    constraints = tuple(
        _build(Constraint, c, f"constraints[{i}]")
        for i, c in enumerate(doc.get("constraints") or [])
    )
    cost = _build(CostConfig, doc.get("cost"), "cost")
    devices = tuple(
        _build(DeviceConfig, d, f"devices[{i}]") for i, d in enumerate(doc.get("devices") or [])
    )
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise ConfigError(f"devices: names must be unique, got {names}")
    for item in (*objectives, *constraints):
        if item.device and item.device not in names:
            raise ConfigError(
                f"{item.label}: no device named {item.device!r}; configured devices: "
                f"{', '.join(names) or 'none (add a [[devices]] table)'}"
            )
    tabular = doc.get("tabular")
    if tabular is not None and not isinstance(tabular, str):
        raise ConfigError(f"tabular must be a file path, not {tabular!r}")
    return SearchConfig(
        run=run,
        data=data,
        space=space,
        train=train,
        strategy=strategy,
        objectives=objectives,
        constraints=constraints,
        cost=cost,
        devices=devices,
        measure=_build(MeasureSection, doc.get("measure"), "measure"),
        executor=executor,
        budget=_build(BudgetConfig, doc.get("budget"), "budget"),
        tabular=tabular,
    )


def load_config(path: Path | str, overrides: Mapping[str, Any] | None = None) -> SearchConfig:
    """Read and validate a TOML configuration (overrides: {"strategy.name": "random", ...})."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if not key:
            doc[section] = value
        else:
            doc.setdefault(section, {})[key] = value
    try:
        return parse_config(doc)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
