"""Running a search: set-up, the strategy loop, records, the front, and resumption.

Resumption replays the run: the stored configuration and seed are used again, and the
strategy asks for the same candidates in the same order, while every training and
measurement that finished before the interruption comes from the store instead of being
repeated (strategies keep their own random state; see strategies.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_agent.errors import ConfigError
from host.search.config import ANALYTIC_METRICS, SearchConfig, load_config, parse_config
from host.search.evaluator import Evaluation, Evaluator, Tabular
from host.search.objectives import Normaliser
from host.search.pareto import hypervolume, pareto_front
from host.search.strategies import (
    GeneticStrategy,
    PrescreenFn,
    Scored,
    run_baseline,
    run_bayesian,
)
from host.store.sqlite import RunStore

log = logging.getLogger(__name__)
STORE_NAME = "store.sqlite"


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a search: the run is stored as interrupted and `run_id` resumes it."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    front: list[dict[str, Any]]
    trainings: int
    hypervolume: float


def _costs_fn(cfg: SearchConfig, space: Any) -> Callable[[str], dict[str, float]]:
    from host.hw.costs import analytic_costs

    n_classes = len(cfg.data.dataset_config(cfg.run.seed).scheme().classes)
    by_key = {a.key(): a for a in space.architectures(bounded=False)}
    cache: dict[str, dict[str, float]] = {}

    def costs(key: str) -> dict[str, float]:
        if key not in cache:
            c = analytic_costs(by_key[key], cfg.data.window, n_classes)
            cache[key] = {m: float(getattr(c, m)) for m in ANALYTIC_METRICS}
        return cache[key]

    return costs


def _open_devices(cfg: SearchConfig) -> dict[str, Any]:
    from device_agent.auth import load_token
    from host.fleet import open_device

    devices = {}
    for d in cfg.devices:
        token = os.environ.get(d.token_env) if d.token_env else load_token()
        devices[d.name] = open_device(d.address, token=token, name=d.name, timeout_s=d.timeout_s)
    return devices


class SearchRun:
    def __init__(
        self, cfg: SearchConfig, store: RunStore, run_id: str, *, progress: bool = True
    ) -> None:
        from host.spaces import get_space

        self.cfg, self.store, self.run_id = cfg, store, run_id
        out = Path(cfg.run.out_dir)
        self.run_dir = out / run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.space: Any = get_space(cfg.space.name, **dict(cfg.space.bounds))
        self.costs = _costs_fn(cfg, self.space)
        # Genes that build the same network map to one key: it is trained and measured once.
        self.canonical = {
            a.key(): self.space.canonical(a).key() for a in self.space.architectures(bounded=False)
        }
        self.bounded_keys = {
            self.canonical[a.key()] for a in self.space.architectures(bounded=True)
        }
        self.progress = progress
        self.tabular = Tabular(Path(cfg.tabular)) if cfg.tabular else None
        if self.tabular is None:
            from host.search.jobs import load_dataset

            # Load (and cache) the dataset now: a missing or wrong dataset stops the run
            # here with its own error, before any device or training is set up.
            load_dataset(cfg.data.dataset_config(cfg.run.seed))
        # With a table, device objectives come from it and no device is contacted.
        self.devices = _open_devices(cfg) if not self.tabular else {}
        self.executor = None
        if self.tabular is None:
            from host.executors import make_executor

            self.executor = make_executor(
                cfg.executor.kind, cfg.executor.workers, cfg.executor.ray_address
            )
        self.evaluator = Evaluator(
            cfg,
            store,
            run_id,
            self.space,
            executor=self.executor,
            devices=self.devices,
            table_devices=[d.name for d in cfg.devices],
            models_dir=out / "models",
            costs=self.costs,
            tabular=self.tabular,
            on_progress=self._tick,
        )
        self.normaliser = Normaliser(cfg.objectives, self._references())
        self.strategy_trained: set[str] = set()
        self.explored: dict[str, Evaluation] = {}
        self._bar: Any = None

    # ------------------------------------------------------------------ helpers
    def _tick(self, message: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(message[-40:], refresh=True)

    def _references(self) -> dict[str, float]:
        refs = dict(self.cfg.cost.references)
        archs = self.space.architectures(bounded=True)
        for obj in self.cfg.objectives:
            if obj.maximise or obj.label in refs:
                continue
            if obj.metric in ANALYTIC_METRICS:
                refs[obj.label] = max(self.costs(a.key())[obj.metric] for a in archs) or 1.0
        return refs

    def _complete_references(self, evaluations: list[Evaluation]) -> None:
        """Device objectives without a configured reference: twice the first batch's maximum.

        Fixed after generation 0 so that hypervolumes of later generations are comparable;
        the same on a resumed run, because the first batch's figures come from the store.
        """
        for i, obj in enumerate(self.cfg.objectives):
            if obj.maximise or obj.label in self.normaliser.references:
                continue
            seen = [v for e in evaluations if (v := e.objectives[i]) is not None]
            self.normaliser.references[obj.label] = 2 * max(seen) if seen else 1.0

    def _evaluate(self, genomes: list[list[int]], generation: int) -> list[Scored]:
        keys = [self.genome_key(g) for g in genomes]
        valid = [k for k in keys if k is not None]
        budget = self.cfg.budget.max_trainings
        if budget is not None:
            new = [k for k in dict.fromkeys(valid) if k not in self.strategy_trained]
            room = max(budget - len(self.strategy_trained), 0)
            if len(new) > room:
                skipped = set(new[room:])
                keys = [None if k in skipped else k for k in keys]
                valid = [k for k in keys if k is not None]
        results = self.evaluator.evaluate(valid)
        scored = []
        for idx, (genome, key) in enumerate(zip(genomes, keys, strict=True)):
            ev = results.get(key) if key else None
            if ev is not None:
                self.explored[key] = ev  # type: ignore[index]
                if ev.train_key and not ev.detail.startswith("before training"):
                    self.strategy_trained.add(key)  # type: ignore[arg-type]
            self.store.add_evaluation(
                self.run_id,
                self.cfg.strategy.name,
                generation,
                idx,
                key,
                genome,
                {
                    o.label: v
                    for o, v in zip(
                        self.cfg.objectives,
                        ev.objectives if ev else [None] * len(self.cfg.objectives),
                        strict=True,
                    )
                },
                ev.violation if ev else float("inf"),
                ev.status if ev else "invalid",
                ev.detail if ev else "chromosome outside the space",
                ev.train_key if ev else None,
                ev.sha256 if ev else None,
            )
            scored.append(Scored(genome, ev))
        if self._bar is not None:
            self._bar.update(len(genomes))
        return scored

    def genome_key(self, genome: list[int]) -> str | None:
        """The canonical key of the network a chromosome builds; None when it is invalid."""
        space: Any = self.space
        decode = space.decode if self.cfg.strategy.encoding == "binary" else space.decode_int
        arch = decode(genome)
        return self.canonical[arch.key()] if arch is not None else None

    def candidate_key(self, genome: list[int]) -> str | None:
        """The canonical key of the network `genome` builds, if it is in the bounded space."""
        key = self.genome_key(genome)
        return key if key in self.bounded_keys else None

    def front_indices(self) -> tuple[list[Evaluation], list[int]]:
        feasible = [e for e in self.explored.values() if e.feasible]
        points = [self.normaliser.normalise(e.objectives) for e in feasible]
        return feasible, pareto_front(points)

    def current_hypervolume(self) -> float:
        feasible, front = self.front_indices()
        return hypervolume([self.normaliser.normalise(feasible[i].objectives) for i in front])

    def _record(self, generation: int, scored: list[Scored]) -> bool:
        if generation == 0:
            self._complete_references([s.evaluation for s in scored if s.evaluation])
        feasible, front = self.front_indices()
        hv = self.current_hypervolume()
        self.store.add_generation(
            self.run_id,
            self.cfg.strategy.name,
            generation,
            hv,
            len(self.strategy_trained),
            len(front),
        )
        if self._outer is not None:
            self._outer.update(1)
            self._outer.set_postfix(
                hv=f"{hv:.3f}", trained=len(self.strategy_trained), front=len(front)
            )
        budget = self.cfg.budget.max_trainings
        return budget is not None and len(self.strategy_trained) >= budget

    # ------------------------------------------------------------------ run
    def execute(self) -> None:
        from tqdm import tqdm

        s = self.cfg.strategy
        if s.name in ("exhaustive", "random"):
            from host.search.strategies import baseline_batches

            batches = baseline_batches(self.cfg, self.space, self.cfg.run.seed)
            total_gen, total_cand = len(batches), sum(len(b) for b in batches)
        else:
            total_gen, total_cand = s.generations + 1, s.population * (s.generations + 1)
        self.evaluator.describe_devices()
        disable = not self.progress
        with (
            tqdm(
                total=total_gen,
                desc=f"{s.name} generations",
                unit="gen",
                disable=disable,
                position=0,
            ) as outer,
            tqdm(
                total=total_cand,
                desc="candidates",
                unit="cand",
                disable=disable,
                position=1,
                leave=False,
            ) as bar,
        ):
            self._outer, self._bar = outer, bar
            try:
                if s.name in ("exhaustive", "random"):
                    run_baseline(
                        self.cfg, self.space, self.cfg.run.seed, self._evaluate, self._record
                    )
                elif s.name == "bayesian":
                    prescreen = self._prescreener()
                    assert prescreen is not None
                    run_bayesian(
                        self.cfg,
                        self.space,
                        self.cfg.run.seed,
                        self.candidate_key,
                        prescreen,
                        self._evaluate,
                        self._record,
                    )
                else:
                    GeneticStrategy(
                        self.cfg,
                        self.space,
                        self.normaliser,
                        self.cfg.run.seed,
                        key_of=self.candidate_key,
                        prescreen=self._prescreener(),
                    ).run(self._evaluate, self._record)
            finally:
                self._outer = self._bar = None

    _outer: Any = None

    def _prescreener(self) -> PrescreenFn | None:
        if self.cfg.strategy.surrogate == "none" and self.cfg.strategy.name != "bayesian":
            return None
        from host.search.surrogate import Prescreener, surrogate_features

        return Prescreener(
            self.cfg,
            self.normaliser,
            self.costs,
            surrogate_features(self.space, self.costs),
            lambda: self.explored,
        ).rank

    def close(self, cancel: bool = False) -> None:
        self.evaluator.close()
        if self.executor is not None:
            self.executor.shutdown(cancel=cancel)
        for device in self.devices.values():
            if device is not None:
                device.close()

    # ------------------------------------------------------------------ outputs
    def write_front(self) -> list[dict[str, Any]]:
        """front.json and the front's files (.tflite and C header) under RUN/front/."""
        from host.export.carray import write_c_array

        feasible, front = self.front_indices()
        front_dir = self.run_dir / "front"
        front_dir.mkdir(exist_ok=True)
        entries = []
        for i in sorted(front, key=lambda j: feasible[j].objectives[0] or 0, reverse=True):
            ev = feasible[i]
            entry: dict[str, Any] = {
                "arch": ev.arch_key,
                "objectives": {
                    o.label: v for o, v in zip(self.cfg.objectives, ev.objectives, strict=True)
                },
                "figures": {
                    label: {
                        "value": ev.figures.values[label],
                        "source": ev.figures.sources.get(label, ""),
                    }
                    for label in sorted(ev.figures.values)
                },
                "test_metrics": {
                    k: v for k, v in ev.test_metrics.items() if not isinstance(v, (dict, list))
                },
                "sha256": ev.sha256,
            }
            if ev.model_path and Path(ev.model_path).exists():
                tflite = front_dir / f"{ev.arch_key}.tflite"
                shutil.copyfile(ev.model_path, tflite)
                header = front_dir / f"{ev.arch_key}.h"
                symbol = "g_model_" + "".join(c if c.isalnum() else "_" for c in ev.arch_key)
                write_c_array(tflite.read_bytes(), header, symbol)
                entry["files"] = {"tflite": str(tflite), "c_header": str(header)}
            entries.append(entry)
        (self.run_dir / "front.json").write_text(
            json.dumps(
                {
                    "run": self.run_id,
                    "objectives": [o.label for o in self.cfg.objectives],
                    "front": entries,
                },
                indent=2,
                default=str,
            )
        )
        return entries


def _new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid() % 10000:04d}"


def run_search(
    cfg: SearchConfig | None = None,
    *,
    resume: str | None = None,
    out_dir: str | None = None,
    progress: bool = True,
    report: bool = True,
) -> RunResult:
    """Run (or resume) a search; returns the run's id, directory, status and front."""
    if resume:
        root = Path(out_dir or (cfg.run.out_dir if cfg else "runs"))
        store = RunStore(root / STORE_NAME)
        row = store.run(resume)
        if row is None:
            known = ", ".join(r.run_id for r in store.runs()) or "none"
            raise ConfigError(f"no run {resume!r} in {root / STORE_NAME}; runs there: {known}")
        if row.status == "done":
            log.info("run %s is already complete", resume)
        cfg = parse_config(row.config["source"])
        cfg = _with_out_dir(cfg, str(root))
        run_id = resume
        store.set_run_status(run_id, "running", "resumed")
    else:
        if cfg is None:
            raise ConfigError("a configuration is needed to start a search")
        if out_dir:
            cfg = _with_out_dir(cfg, out_dir)
        if cfg.tabular:
            cfg = _with_table_data(cfg)
        store = RunStore(Path(cfg.run.out_dir) / STORE_NAME)
        run_id = _new_run_id(cfg.run.name)
        store.create_run(run_id, cfg.run.name, {"source": _source_doc(cfg), **cfg.to_json()})
    run = SearchRun(cfg, store, run_id, progress=progress)
    try:
        run.execute()
    except KeyboardInterrupt:
        store.set_run_status(
            run_id, "interrupted", f"interrupted; continue with: hilnas search --resume {run_id}"
        )
        run.close(cancel=True)
        raise SearchInterrupted(run_id) from None
    except BaseException as exc:
        # Completed work is in the store whatever happened; say how to continue.
        store.set_run_status(
            run_id,
            "failed",
            f"{type(exc).__name__}: {exc}; completed work is stored, continue "
            f"with: hilnas search --resume {run_id}",
        )
        run.close(cancel=True)
        raise
    front = run.write_front()
    hv = run.current_hypervolume()
    trained = len(run.strategy_trained)
    missing = store.missing(run_id)
    message = f"{trained} trainings, front of {len(front)}, hypervolume {hv:.4f}"
    if missing:
        message += f"; {len(missing)} measurements missing (devices left the run)"
    store.set_run_status(run_id, "done", message)
    run.close()
    if report:
        from host.report import build_report

        build_report(store, run_id, run.run_dir)
    return RunResult(run_id, run.run_dir, "done", front, trained, hv)


def _source_doc(cfg: SearchConfig) -> dict[str, Any]:
    """The configuration as a TOML-shaped document (what parse_config reads back)."""
    doc = cfg.to_json()
    doc["objectives"] = [{k: v for k, v in o.items() if v is not None} for o in doc["objectives"]]
    doc["constraints"] = [{k: v for k, v in c.items() if v is not None} for c in doc["constraints"]]
    if doc.get("tabular") is None:
        doc.pop("tabular", None)
    for section in ("data",):
        doc[section] = {k: v for k, v in doc[section].items() if v is not None}
    return doc


def _with_table_data(cfg: SearchConfig) -> SearchConfig:
    """With a table, the table's data and training budget are the run's.

    Its qualities and latencies were obtained under them (a 128-sample window, say), so a
    run that stored the configuration's own [data] and [train] would misstate where its
    figures come from, and analytic costs that depend on the window (MACs) would not match
    the table's networks.
    """
    from dataclasses import replace

    meta = Tabular(Path(cfg.tabular)).meta if cfg.tabular else {}
    data, train = meta.get("data"), meta.get("budget")
    if not data or not train:
        return cfg  # an older table without them: nothing to align
    try:
        new_data = replace(cfg.data, **{k: v for k, v in data.items() if k != "data_dir"})
        new_train = replace(cfg.train, **train)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(
            f"the tabular benchmark {cfg.tabular} has unreadable meta: {exc}"
        ) from None
    if (new_data, new_train) != (cfg.data, cfg.train):
        log.info("tabular: using the table's [data] and [train] (%s)", cfg.tabular)
    return replace(cfg, data=new_data, train=new_train)


def _with_out_dir(cfg: SearchConfig, out_dir: str) -> SearchConfig:
    from dataclasses import replace

    return replace(cfg, run=replace(cfg.run, out_dir=out_dir))


__all__ = ["RunResult", "STORE_NAME", "load_config", "run_search"]
