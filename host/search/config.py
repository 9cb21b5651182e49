"""Search configuration: TOML validated into frozen dataclasses, with one source of defaults.

Every table and key is checked up front; an unknown key, a wrong type or a value outside
the allowed set is a `ConfigError` that names the key (`strategy.name`) and the allowed
values, before any data is loaded or any network trained. See `configs/*.toml` and
docs/configuration.md.

The sections that other commands share are not copied here but embedded: `[data]` is the
chosen task's own configuration (`EcgDatasetConfig` for "ecg"), `[train]` is
`host.train.TrainConfig` and `[measure]` is `device_agent.types.MeasureSettings`, so
`hilnas train`, `hilnas measure` and `hilnas search` take the same defaults from one place.
What makes a training or a measurement "the same" is `SearchConfig.fingerprint`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from device_agent.errors import ConfigError
from device_agent.types import MeasureSettings
from host.metrics import DEVICE_METRICS, MetricKind, MetricSpec, catalogue
from host.train.trainer import TrainConfig

EXECUTORS = ("inprocess", "process", "ray")


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            allowed_list = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown key {where}.{key}; allowed in [{where}]: {allowed_list}")


def table_keys(cls: type) -> set[str]:
    """The keys a `[section]` accepts: the dataclass's fields minus those set by the parser."""
    hidden = set(getattr(cls, "_not_configurable", ()))
    return {f.name for f in dataclasses.fields(cls) if f.name not in hidden}


def _build(cls: type, table: Mapping[str, Any] | None, where: str, **fixed: Any) -> Any:
    """A dataclass from a TOML table, naming the bad key on any error."""
    table = dict(table or {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table, not {table!r}")
    _check_keys(table, table_keys(cls), where)
    try:
        return cls(**{**fixed, **table})
    except ConfigError as exc:
        message = str(exc)  # name the table unless the message already does
        raise ConfigError(message if f"{where}." in message else f"[{where}] {message}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}] {exc}") from None


def _choice(value: Any, allowed: tuple[str, ...] | list[str], key: str) -> None:
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
class SpaceConfig:
    """`[space]`: a registered space's name and its options (bounds, grids, a board)."""

    name: str = "bionet"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyConfig:
    """The strategy and its settings; BioNetExplorer's GA defaults (30, 5, 0.4, 0.11)."""

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
    # Pre-screening of offspring before training (host/search/prescreen.py): "none" trains
    # every offspring, as BioNetExplorer does; "gp" breeds `surrogate_pool` times as many
    # and trains the `population` that a Gaussian process expects to improve the front (or
    # the weighted cost) most; "cheap" is HALF's two-step selection, on the objectives known
    # before training alone.
    surrogate: str = "none"
    surrogate_pool: int = 4
    # Data Aware NAS's GA (strategy "danas"): the share of the population kept as
    # tournament winners each generation, and how the first population is drawn: "trivial"
    # (one-layer networks, DANAS's default) or "random" (any depth).
    update_ratio: float = 0.5
    initial: str = "random"

    def __post_init__(self) -> None:
        from host.search.prescreen import available_prescreeners
        from host.search.strategies import available_strategies

        _choice(self.name, available_strategies(), "strategy.name")
        _choice(self.encoding, ("binary", "integer"), "strategy.encoding")
        _choice(self.duplicates, ("keep", "remutate"), "strategy.duplicates")
        _choice(self.surrogate, available_prescreeners(), "strategy.surrogate")
        _choice(self.initial, ("trivial", "random"), "strategy.initial")
        _positive(self.surrogate_pool, "strategy.surrogate_pool")
        _positive(self.population, "strategy.population")
        _positive(self.generations, "strategy.generations")
        _positive(self.tournament_size, "strategy.tournament_size")
        for key in ("crossover_prob", "mutation_prob", "random_fraction", "update_ratio"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"strategy.{key} must be in [0, 1], not {value!r}")


@dataclass(frozen=True)
class Objective:
    """One objective: a metric, on a device for figures a device gives.

    `maximise` and `kind` come from the metric catalogue of the run's task and space (the
    parser fills them in); they are not configuration keys.
    """

    metric: str
    device: str | None = None
    maximise: bool = False
    kind: MetricKind = MetricKind.ANALYTIC

    _not_configurable = ("maximise", "kind")

    @property
    def label(self) -> str:
        return f"{self.metric}@{self.device}" if self.device else self.metric

    @property
    def cheap(self) -> bool:
        """Known before training (an analytic cost or a space's own estimate)."""
        return self.kind is MetricKind.ANALYTIC

    def resolved(self, metrics: Mapping[str, MetricSpec], devices: list[str]) -> Objective:
        """Return the objective with its direction and kind, checked against the metrics."""
        spec = metrics.get(self.metric)
        if spec is None:
            raise ConfigError(
                f"{self.label}: unknown metric {self.metric!r}; this run's task and space "
                f"give: {', '.join(metrics)}"
            )
        if spec.kind is MetricKind.DEVICE and not self.device:
            raise ConfigError(f'{self.metric} is measured on a device: it needs a device = "NAME"')
        if spec.kind is MetricKind.ANALYTIC and self.device:
            raise ConfigError(f"{self.metric} is analytic, not measured on a device")
        if spec.kind is MetricKind.COMPRESSED and self.device:
            raise ConfigError(f"{self.metric} is the compressed file's size, not measured on a "
                              "device (a device's figure of that file is model_bytes@DEVICE)")
        if self.device and self.device not in devices:
            raise ConfigError(
                f"{self.label}: no device named {self.device!r}; configured devices: "
                f"{', '.join(devices) or 'none (add a [[devices]] table)'}"
            )
        return dataclasses.replace(self, maximise=spec.maximise, kind=spec.kind)


@dataclass(frozen=True)
class Constraint(Objective):
    """A hard limit: `metric` (on `device`) at most `max` and/or at least `min`."""

    max: float | None = None
    min: float | None = None

    def __post_init__(self) -> None:
        if self.max is None and self.min is None:
            raise ConfigError(f"constraint on {self.metric} needs max or min")

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
    by its `reference` value (clipped to [0, 1]); see docs/decisions.md, "Weighted cost".
    """

    alpha: float = 1.0
    beta: float = 0.5
    references: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _positive(self.alpha, "cost.alpha", integer=False, allow_zero=True)
        _positive(self.beta, "cost.beta", integer=False, allow_zero=True)
        for label, value in self.references.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"cost.references.{label} must be a positive number")


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    address: str = "local"
    token_env: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        from host.fleet import check_device_spec

        check_device_spec(self.address)


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "inprocess"
    workers: int = 1
    ray_address: str | None = None
    # Training threads for TensorFlow; 0 = leave one core free for a local device.
    tf_threads: int = 0
    # Ray: restarts of a training whose worker died (docs/cluster.md).
    max_retries: int = 1

    def __post_init__(self) -> None:
        _choice(self.kind, EXECUTORS, "executor.kind")
        _positive(self.workers, "executor.workers")
        _positive(self.max_retries, "executor.max_retries", allow_zero=True)


@dataclass(frozen=True)
class BudgetConfig:
    max_trainings: int | None = None
    device_retry_seconds: float = 60.0
    export_int8: bool = True


@dataclass(frozen=True)
class SearchSettings:
    """`[search]`: how device measurements steer the search (docs/decisions.md, "Device first").

    `measure_before_train`: export each candidate untrained (seeded weights, int8 calibrated
    on real windows) and measure it on the devices that have a constraint or an objective on
    latency, memory or energy, before any training; a candidate that breaks a device
    constraint is rejected there. None (the default) turns it on when a device constraint
    exists. `predict_latency`: learn each device's latency online (host/predictor) and skip
    measuring a candidate whose predicted latency is, even at the low end of its interval,
    more than `skip_margin` (relative) beyond a latency constraint; predictions are only
    trusted once `predictor_min_networks` networks have been measured on that device.
    `validate_front`: at the end, send the front's test windows through each device's
    Validate and record the quality of its own outputs and their agreement with the host.
    """

    measure_before_train: bool | None = None
    predict_latency: bool = True
    predictor_min_networks: int = 10
    skip_margin: float = 0.25
    validate_front: bool = True

    def __post_init__(self) -> None:
        _positive(self.predictor_min_networks, "search.predictor_min_networks")
        if not 0 <= self.skip_margin <= 10:
            raise ConfigError(
                f"search.skip_margin = {self.skip_margin}: must be in [0, 10] (relative)"
            )


COMPRESS_MODES = ("off", "front", "joint")
COMPRESS_SCOPES = ("layer", "global")
#: Quality figures every compression stage reports (host.compress.stages.QUALITY_KEYS).
COMPRESS_QUALITY = ("balanced_accuracy", "accuracy", "f1_macro")


@dataclass(frozen=True)
class CompressSettings:
    """`[compress]`: BioNetExplorer's compression stage (docs/compression.md).

    `mode`: "off" (default), "front" (the paper's second stage: every member of the final
    front is pruned, clustered, int8-quantized and LUT-compressed over the grid `sparsity` x
    `clusters`, and the smallest deployed configuration whose validation quality loss is at
    most `max_quality_loss` percentage points is kept) or "joint" (compression genes in the
    chromosome, host/compress/joint.py: every candidate is a network and a point of
    `channels` x `sparsity` x `clusters`, compressed in the candidate pipeline and measured
    as compressed). `scope`: "layer" or "global" (class-blind) pruning. `channels`: the
    fraction of every prunable channel group removed first (structured pruning, the one
    stage that removes weights from the file; 0: none); in the joint mode, a list of them.
    `fine_tune_epochs`: after each of the channel, pruning and clustering stages.
    `verify_windows`: validation windows the LUT model must reproduce bit-exactly in TFLM.
    `learning_rate`: the fine-tuning's. `distill`: the weight of the trained network's own
    outputs in the fine-tuning targets (knowledge distillation; 0: the labels alone).
    """

    mode: str = "off"
    sparsity: tuple[float, ...] = (0.5, 0.75)
    clusters: tuple[int, ...] = (4, 16)
    scope: str = "layer"
    channels: float | tuple[float, ...] = 0.0
    fine_tune_epochs: int = 2
    max_quality_loss: float = 0.2
    verify_windows: int = 64
    learning_rate: float = 1e-3
    distill: float = 0.7

    def __post_init__(self) -> None:
        _choice(self.mode, COMPRESS_MODES, "compress.mode")
        _choice(self.scope, COMPRESS_SCOPES, "compress.scope")
        for key in ("sparsity", "clusters"):
            value = getattr(self, key)
            if not isinstance(value, (list, tuple)) or not value:
                raise ConfigError(f"compress.{key} must be a non-empty list, not {value!r}")
            object.__setattr__(self, key, tuple(value))  # hashable, and equal after a reload
        for s in self.sparsity:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < 1:
                raise ConfigError(f"compress.sparsity: each value must be in [0, 1), not {s!r}")
        for k in self.clusters:
            if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 256:
                raise ConfigError(
                    f"compress.clusters: each value must be an integer in 2..256, not {k!r}"
                )
        if 2 in self.clusters and any(s > 0 for s in self.sparsity):
            raise ConfigError(
                "compress.clusters: k = 2 with a sparsity > 0 is not possible: TFMOT's "
                "sparsity-preserving clustering keeps zero as one of the k values and needs "
                "k > 2; use k >= 3, or only sparsity 0"
            )
        for key, values in (("sparsity", self.sparsity), ("clusters", self.clusters)):
            if len(set(values)) != len(values):
                raise ConfigError(f"compress.{key} lists a value twice: {list(values)}")
        from host.compress.channels import check_channel_fraction

        if isinstance(self.channels, (list, tuple)):
            if self.mode != "joint":
                raise ConfigError(
                    f"compress.channels = {list(self.channels)}: a list is the joint mode's "
                    'channel gene; mode = "front" takes one fraction'
                )
            if not self.channels or len(set(self.channels)) != len(self.channels):
                raise ConfigError("compress.channels must be a non-empty list without "
                                  f"repeats, not {list(self.channels)}")
            for c in self.channels:
                check_channel_fraction(c, "compress.channels")
            object.__setattr__(self, "channels", tuple(float(c) for c in self.channels))
        else:
            check_channel_fraction(self.channels, "compress.channels")
        from host.compress.stages import check_distill

        check_distill(self.distill, "compress.distill")
        _positive(self.learning_rate, "compress.learning_rate", integer=False)
        _positive(self.fine_tune_epochs, "compress.fine_tune_epochs", allow_zero=True)
        _positive(self.verify_windows, "compress.verify_windows")
        _positive(self.max_quality_loss, "compress.max_quality_loss", integer=False,
                  allow_zero=True)

    @property
    def grid(self) -> list[tuple[float, int]]:
        """Every (sparsity, clusters) point, in the configured order."""
        return [(float(s), int(k)) for s in self.sparsity for k in self.clusters]

    @property
    def channel_ladder(self) -> tuple[float, ...]:
        """The channel fractions: the joint mode's gene values, or the one fraction."""
        c = self.channels
        return tuple(c) if isinstance(c, tuple) else (float(c),)

    def wrap(self, space: Any) -> Any:
        """The run's space: with compression genes in the joint mode, else `space` itself."""
        if self.mode != "joint":
            return space
        from host.compress.joint import JointCompressionSpace

        return JointCompressionSpace(space, self.channel_ladder, self.sparsity, self.clusters)


def _check_compress(settings: CompressSettings, task: Any, space: Any,
                    objectives: tuple[Objective, ...], tabular: Any,
                    search: SearchSettings) -> None:
    """What `[compress]` needs from the rest of the run (ConfigErrors naming compress.mode).

    `space` is the configured space (before the joint mode adds its genes); `objectives`
    are the objectives and the constraints.
    """
    if settings.mode == "off":
        return
    where = f'compress.mode = "{settings.mode}"'
    if settings.mode == "joint":
        if search.measure_before_train:
            raise ConfigError(
                f"{where} with search.measure_before_train = true: the untrained network is "
                "measured uncompressed, so its figures would reject candidates that their "
                "compression makes fit; set measure_before_train = false"
            )
        sees = [o.label for o in objectives
                if o.kind in (MetricKind.COMPRESSED, MetricKind.DEVICE)]
        if not sees:
            raise ConfigError(
                f"{where}: no objective or constraint sees what compression saves (the "
                "compressed files' deployed_mcu_bytes, deployed_linux_bytes or "
                "compression_ratio_mcu, or a device's figures such as model_bytes@DEVICE); "
                "the search would only learn that compression costs quality"
            )
    if tabular is not None:
        raise ConfigError(f"{where}: a tabular run trains no networks, there is nothing to "
                          "compress")
    if task.input_spec().aux_features:
        raise ConfigError(
            f"{where}: the task gives the model a second input ([data] rr_features); "
            "compression handles one-input models only (its stages feed one window tensor)"
        )
    from host.spaces.base import Space

    if space.varies_task:
        raise ConfigError(
            f"{where}: space {space.name!r} gives each network its own data (granularity), "
            "and compression fine-tunes on the run's one dataset; compressing a data-aware "
            "front is not supported"
        )
    if type(space).export_model is not Space.export_model:
        raise ConfigError(
            f"{where}: space {space.name!r} deploys another graph than it trains (its "
            "export_model changes the weights, e.g. folds batch norm), so the stored network "
            "cannot be fine-tuned again; compression needs a space that deploys its trained "
            "weights (bionet)"
        )
    quality = next(o for o in objectives if o.kind is MetricKind.QUALITY)
    if quality.metric not in COMPRESS_QUALITY:
        raise ConfigError(
            f"{where}: the quality objective {quality.metric!r} is not one the compression "
            f"stages score ({', '.join(COMPRESS_QUALITY)})"
        )


# `[measure]` is MeasureSettings itself; its inputs are the agent's business, not a file's.
MEASURE_NOT_CONFIGURABLE = ("input_source", "inputs")


@dataclass(frozen=True)
class SearchConfig:
    run: RunConfig
    task: str
    data: Any  # the task's config_type (EcgDatasetConfig for "ecg")
    space: SpaceConfig
    train: TrainConfig
    strategy: StrategyConfig
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    cost: CostConfig
    devices: tuple[DeviceConfig, ...]
    measure: MeasureSettings
    executor: ExecutorConfig
    budget: BudgetConfig
    tabular: str | None = None
    search: SearchSettings = SearchSettings()
    compress: CompressSettings = CompressSettings()

    # ------------------------------------------------------------------ derived
    @property
    def measure_before_train(self) -> bool:
        """`[search] measure_before_train`, resolved: on by default with a device constraint."""
        if self.search.measure_before_train is not None:
            return self.search.measure_before_train
        # Not in a joint compression search: the untrained network is measured uncompressed.
        return any(c.device for c in self.constraints) and self.tabular is None \
            and self.compress.mode != "joint"

    @property
    def quality_objective(self) -> Objective:
        return next(o for o in self.objectives if o.kind is MetricKind.QUALITY)

    def make_task(self) -> Any:
        """The run's task (host.tasks), built from `[data]`."""
        from host.tasks import task_class

        return task_class(self.task)(self.data)

    def make_space(self, task: Any = None) -> Any:
        """The run's space for the task's input (host.spaces)."""
        from host.spaces.base import get_space
        from host.train.trainer import check_space

        task = task or self.make_task()
        space = get_space(self.space.name, task=task, **dict(self.space.options))
        check_space(space, self.train)
        return self.compress.wrap(space)

    def to_doc(self) -> dict[str, Any]:
        """The configuration as a TOML-shaped document (what `parse_config` reads back)."""
        doc: dict[str, Any] = {
            "run": dataclasses.asdict(self.run),
            "data": {"task": self.task, **_plain(self.data)},
            "space": {"name": self.space.name, **_plain(self.space.options)},
            "train": _plain(self.train),
            "strategy": dataclasses.asdict(self.strategy),
            "objectives": [_drop_none({"metric": o.metric, "device": o.device})
                           for o in self.objectives],
            "constraints": [
                _drop_none({"metric": c.metric, "device": c.device, "max": c.max, "min": c.min})
                for c in self.constraints
            ],
            "cost": _plain(self.cost),
            "devices": [_drop_none(dataclasses.asdict(d)) for d in self.devices],
            "measure": {k: v for k, v in _plain(self.measure).items()
                        if k not in MEASURE_NOT_CONFIGURABLE},
            "executor": _drop_none(dataclasses.asdict(self.executor)),
            "budget": _drop_none(dataclasses.asdict(self.budget)),
            "search": _drop_none(dataclasses.asdict(self.search)),
            "compress": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in dataclasses.asdict(self.compress).items()},
        }
        doc["data"] = _drop_none(doc["data"])
        # A None that is not the default (patience = None: no early stopping; class_weights
        # = None: a plain loss) must survive into the stored document, or a resumed run
        # would read the default back and train (and key) other networks.
        train_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        doc["train"] = {k: v for k, v in doc["train"].items()
                        if v is not None or train_defaults.get(k) is not None}
        if self.tabular is not None:
            doc["tabular"] = self.tabular
        return doc

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.to_doc(), default=str))

    def fingerprint(self, *sections: str) -> str:
        """Hash of the identity of some sections: what makes a training or measurement the same.

        Fields declared with `compare=False` (paths such as `data.data_dir`, verbosity) are
        not part of it: where a dataset lies does not change the network trained on it.
        """
        parts = {s: _identity(getattr(self, s)) for s in sections}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Enum):
        return obj.value
    return obj


def _identity(obj: Any) -> Any:
    """A dataclass as plain data, without the fields that do not change a result.

    A field added after runs were stored carries `metadata={"omit_at_default": True}`: at
    its default it is left out, so the stored trainings keep their hashes.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: _identity(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if f.compare and not (f.metadata.get("omit_at_default")
                                  and getattr(obj, f.name) == f.default)
        }
    return _plain(obj)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


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
    "search",
    "compress",
    "tabular",
}


def parse_config(doc: Mapping[str, Any]) -> SearchConfig:
    from host.search.prescreen import prescreener_class
    from host.search.strategies import strategy_class
    from host.spaces.base import check_options, get_space
    from host.tasks import task_class

    _check_keys(doc, TOP_LEVEL, "config")
    run = _build(RunConfig, doc.get("run"), "run")
    data_doc = dict(doc.get("data") or {})
    task_name = data_doc.pop("task", "ecg")
    task = task_class(task_name).from_table(data_doc, run.seed)

    space_doc = dict(doc.get("space") or {})
    space_name = space_doc.pop("name", "bionet")
    check_options(space_name, space_doc)
    space_cfg = SpaceConfig(space_name, space_doc)
    try:
        space = get_space(space_name, task=task, **space_doc)
    except ConfigError as exc:
        raise ConfigError(f"[space] {exc}") from None

    train = _build(TrainConfig, doc.get("train"), "train", seed=run.seed)
    executor = _build(ExecutorConfig, doc.get("executor"), "executor")
    strategy_doc = doc.get("strategy")
    if isinstance(strategy_doc, Mapping) and strategy_doc.get("name") == "bayesian":
        # The Bayesian strategy's batch defaults to one network per training worker: a
        # smaller batch leaves a worker idle, a larger one picks with less information
        # (its surrogate is refitted after every batch; docs/decisions.md, "Surrogate").
        strategy_doc = {"population": executor.workers, **strategy_doc}
    strategy = _build(StrategyConfig, strategy_doc, "strategy")

    devices = tuple(
        _build(DeviceConfig, d, f"devices[{i}]") for i, d in enumerate(doc.get("devices") or [])
    )
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise ConfigError(f"devices: names must be unique, got {names}")
    compress = _build(CompressSettings, doc.get("compress"), "compress")
    # The joint mode's compression genes, and the figures they give (host/compress/joint.py).
    searched = compress.wrap(space)
    strategy_class(strategy.name).check(strategy, searched)
    metrics = catalogue(task.metrics(), searched.metrics(), DEVICE_METRICS)
    default_objectives = [{"metric": task.default_quality()}, {"metric": "storage_int8_bytes"}]
    objectives = tuple(
        _build(Objective, o, f"objectives[{i}]").resolved(metrics, names)
        for i, o in enumerate(doc.get("objectives") or default_objectives)
    )
    if not any(o.kind is MetricKind.QUALITY for o in objectives):
        quality = ", ".join(m.name for m in task.metrics())
        raise ConfigError(f"objectives need a quality metric ({quality})")
    if len(objectives) < 2:
        raise ConfigError("objectives need a quality metric and at least one hardware metric")
    constraints = tuple(
        _build(Constraint, c, f"constraints[{i}]").resolved(metrics, names)
        for i, c in enumerate(doc.get("constraints") or [])
    )
    prescreener_class(strategy.surrogate).check(objectives)
    cost = _build(CostConfig, doc.get("cost"), "cost")
    labels = {o.label for o in objectives}
    for label in cost.references:
        if label not in labels:
            raise ConfigError(
                f"cost.references.{label}: not an objective; objectives: {', '.join(labels)}"
            )
    measure = _build(MeasureSettings, _not_inputs(doc.get("measure")), "measure")
    try:
        measure.validated()
    except ConfigError as exc:
        raise ConfigError(f"[measure] {exc}") from None
    tabular = doc.get("tabular")
    if tabular is not None and not isinstance(tabular, str):
        raise ConfigError(f"tabular must be a file path, not {tabular!r}")
    search_settings = _build(SearchSettings, doc.get("search"), "search")
    _check_compress(compress, task, space, objectives + constraints, tabular, search_settings)
    return SearchConfig(
        run=run,
        task=task_name,
        data=task.config,
        space=space_cfg,
        train=train,
        strategy=strategy,
        objectives=objectives,
        constraints=constraints,
        cost=cost,
        devices=devices,
        measure=measure,
        executor=executor,
        budget=_build(BudgetConfig, doc.get("budget"), "budget"),
        tabular=tabular,
        search=search_settings,
        compress=compress,
    )


def _not_inputs(table: Any) -> dict[str, Any]:
    table = dict(table or {})
    for key in MEASURE_NOT_CONFIGURABLE:
        if key in table:
            raise ConfigError(f"unknown key measure.{key}: the agent chooses a model's inputs")
    return table


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
