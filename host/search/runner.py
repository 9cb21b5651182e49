"""Running a search: set-up, the strategy, records, the front, and resumption.

The runner wires the plug-ins together (the task, the space, the strategy, the prescreener,
the devices) and never branches on their names. It hands the strategy two callbacks:
`_evaluate` (genomes -> the candidate pipeline -> scores) and `_record` (a generation's
results -> the store, the front, the progress bars, the training budget).

With `[compress] mode = "front"`, once the strategy ends the front's members are compressed
(`compress_front`, host/compress/front.py) and front.json gets their compression blocks.

Resumption replays the run: the stored configuration and seed are used again, and the
strategy asks for the same candidates in the same order, while every training and
measurement that finished before the interruption comes from the store instead of being
repeated (strategies keep their own random state; see strategies/genetic.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from host.errors import ConfigError, StoreError
from host.metrics import MetricKind
from host.search.config import SearchConfig, load_config, parse_config
from host.search.objectives import Normaliser
from host.search.pareto import hypervolume, pareto_front
from host.search.pipeline import CandidatePipeline, Evaluation, Status, Tabular
from host.search.prescreen import prescreener_class
from host.search.strategies import PrescreenFn, Scored, SearchContext, strategy_class
from host.store.files import write_atomic
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


def _open_devices(cfg: SearchConfig) -> dict[str, Any]:
    from device_agent.auth import load_token
    from host.fleet import open_device

    devices: dict[str, Any] = {}
    try:
        for d in cfg.devices:
            token = os.environ.get(d.token_env) if d.token_env else load_token()
            devices[d.name] = open_device(
                d.address, token=token, name=d.name, timeout_s=d.timeout_s
            )
    except BaseException:
        for device in devices.values():
            device.close()
        raise
    return devices


def _prewarm_converter() -> None:
    """Start the TFLite converter process now, in the background.

    Its TensorFlow import then overlaps the first training instead of delaying the first
    export.
    """

    def start() -> None:
        from host.export.tflite import warm_up

        try:
            warm_up()
        except Exception as exc:  # noqa: BLE001 - the first export reports it properly
            log.debug("converter warm-up failed: %s", exc)

    threading.Thread(target=start, name="converter-warm-up", daemon=True).start()


class SearchRun:
    def __init__(
        self, cfg: SearchConfig, store: RunStore, run_id: str, *, progress: bool = True
    ) -> None:
        from host.search.jobs import load_dataset

        self.cfg, self.store, self.run_id = cfg, store, run_id
        out = Path(cfg.run.out_dir)
        self.run_dir = out / run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.task = cfg.make_task()
        self.space = cfg.make_space(self.task)
        self.progress = progress
        self.tabular = Tabular(Path(cfg.tabular)) if cfg.tabular else None
        self.data = None
        self.devices: dict[str, Any] = {}
        self.executor = None
        if self.tabular is None:
            if cfg.devices or cfg.budget.export_int8:
                _prewarm_converter()
            # Load (and cache) the dataset now: a missing or wrong dataset stops the run
            # here with its own error, before any device or training is set up.
            self.data = load_dataset(self.task, progress=progress)
            # With a table, device objectives come from it and no device is contacted.
            self.devices = _open_devices(cfg)
            from host.executors import make_executor

            if cfg.executor.kind == "inprocess":
                # Training imports TensorFlow in this process: do it now, before the progress
                # bars, so that its native start-up output can be filtered (train/tfenv.py).
                from host.train.tfenv import import_tf

                import_tf()
            self.executor = make_executor(
                cfg.executor.kind, cfg.executor.workers, cfg.executor.ray_address,
                cfg.executor.max_retries,
            )
        self.pipeline = CandidatePipeline(
            cfg,
            store,
            run_id,
            self.space,
            self.task,
            executor=self.executor,
            devices=self.devices,
            models_dir=out / "models",
            data=self.data,
            tabular=self.tabular,
            on_progress=self._tick,
        )
        self.normaliser = Normaliser(cfg.objectives, self._references())
        self.strategy_trained: set[str] = set()  # train keys: the networks trained
        self.explored: dict[str, Evaluation] = {}
        self.strategy = strategy_class(cfg.strategy.name)(
            SearchContext(
                cfg, self.space, self.normaliser, cfg.run.seed, self.key_of, self._prescreener()
            )
        )
        self._bar: Any = None
        self._outer: Any = None
        #: [compress] mode = "front": arch key -> its compression block (front.json)
        self.compression: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ helpers
    def _tick(self, message: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(message[-40:], refresh=True)

    @cache  # noqa: B019 - one run, a bounded number of networks
    def analytic(self, key: str) -> dict[str, float]:
        """Every figure of network `key` known before training."""
        return self.space.analytic(self.space.from_key(key))

    @cache  # noqa: B019
    def features(self, key: str) -> list[float]:
        return self.space.features(self.space.from_key(key))

    def _references(self) -> dict[str, float]:
        """The weighted cost's references known before any evaluation.

        Configured ones, and for analytic objectives of a listable space the largest value
        in the bounded space (the rest: `Normaliser.observe`).
        """
        refs = dict(self.cfg.cost.references)
        if self.space.enumerable:
            keys = [a.key() for a in self.space.architectures()]
            for obj in self.cfg.objectives:
                if obj.kind is MetricKind.ANALYTIC and obj.label not in refs:
                    refs[obj.label] = max(self.analytic(k)[obj.metric] for k in keys) or 1.0
        return refs

    def key_of(self, genome: list[int]) -> str | None:
        """The canonical key of the network a chromosome builds (None: none of the space)."""
        decode = self.space.encoder(self.cfg.strategy.encoding)[1]
        arch = decode(genome)
        return self.space.canonical(arch).key() if arch is not None else None

    def _evaluate(self, genomes: list[list[int]], generation: int) -> list[Scored]:
        keys = [self.key_of(g) for g in genomes]
        valid = [k for k in keys if k is not None]
        budget = self.cfg.budget.max_trainings
        if budget is not None:
            # Counted in networks: candidates that share one (a joint compression search)
            # need one training.
            trains = {k: self.pipeline.train_key(k) for k in valid}
            new = [t for t in dict.fromkeys(trains.values()) if t not in self.strategy_trained]
            room = max(budget - len(self.strategy_trained), 0)
            if len(new) > room:
                skipped = set(new[room:])
                keys = [None if k is not None and trains[k] in skipped else k for k in keys]
                valid = [k for k in keys if k is not None]
        results = self.pipeline.evaluate(valid)
        # Objectives without a reference (figures measured on a device) get one from the
        # first batch that has values, before any strategy scores with it.
        self.normaliser.observe(ev.objectives for ev in results.values())
        scored = []
        for idx, (genome, key) in enumerate(zip(genomes, keys, strict=True)):
            ev = results.get(key) if key else None
            if ev is not None:
                self.explored[ev.arch_key] = ev
                if ev.trained and ev.train_key is not None:
                    self.strategy_trained.add(ev.train_key)
            self.store.add_evaluation(self.run_id, self.cfg.strategy.name, generation, idx,
                                      genome, self._evaluation_row(ev))
            scored.append(Scored(genome, ev))
        if self._bar is not None:
            self._bar.update(len(genomes))
        return scored

    def _evaluation_row(self, ev: Evaluation | None) -> dict[str, Any]:
        if ev is None:
            return {
                "arch_key": None,
                "objectives": {o.label: None for o in self.cfg.objectives},
                "violation": float("inf"),
                "status": Status.INVALID.value,
                "stage": "",
                "detail": "chromosome outside the space",
            }
        return {
            "arch_key": ev.arch_key,
            "objectives": {
                o.label: v for o, v in zip(self.cfg.objectives, ev.objectives, strict=True)
            },
            "violation": ev.violation,
            "status": ev.status.value,
            "stage": ev.stage.value,
            "detail": ev.detail,
            "train_key": ev.train_key,
            "sha256": ev.sha256,
            "figures": {"values": ev.figures.values, "sources": ev.figures.sources},
            "runs_on": ev.runs_on,
        }

    def front_indices(self) -> tuple[list[Evaluation], list[int]]:
        feasible = [e for e in self.explored.values() if e.feasible]
        points = [self.normaliser.normalise(e.objectives) for e in feasible]
        return feasible, pareto_front(points)

    def current_hypervolume(self) -> float:
        feasible, front = self.front_indices()
        return hypervolume([self.normaliser.normalise(feasible[i].objectives) for i in front])

    def _record(self, generation: int, scored: list[Scored]) -> bool:
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

    def _prescreener(self) -> PrescreenFn | None:
        name = self.cfg.strategy.surrogate
        if name == "none":
            name = strategy_class(self.cfg.strategy.name).default_prescreener
        if name == "none":
            return None
        return prescreener_class(name)(
            self.cfg, self.normaliser, self.analytic, self.features, lambda: self.explored
        ).rank

    # ------------------------------------------------------------------ run
    def execute(self) -> None:
        from tqdm import tqdm

        total_gen, total_cand = self.strategy.totals()
        self.pipeline.describe_devices()
        disable = not self.progress
        name = self.cfg.strategy.name
        with (
            tqdm(total=total_gen, desc=f"{name} generations", unit="gen", disable=disable,
                 position=0) as outer,
            tqdm(total=total_cand, desc="candidates", unit="cand", disable=disable,
                 position=1, leave=False) as bar,
        ):
            self._outer, self._bar = outer, bar
            try:
                self.strategy.run(self._evaluate, self._record)
            finally:
                self._outer = self._bar = None

    def _front_order(self) -> list[Evaluation]:
        """The front's evaluations, best quality first (front.json's order)."""
        feasible, front = self.front_indices()
        quality = next(i for i, o in enumerate(self.cfg.objectives) if o.kind is MetricKind.QUALITY)
        sign = 1 if self.cfg.objectives[quality].maximise else -1
        return [feasible[i] for i in sorted(
            front, key=lambda j: sign * (feasible[j].objectives[quality] or 0), reverse=True)]

    def _say(self, message: str) -> None:
        if self.progress:
            print(message, flush=True)
        else:
            log.info("%s", message)

    def compress_front(self) -> None:
        """`[compress] mode = "front"`: every front member over the grid (host.compress.front).

        What the store holds already (an earlier, interrupted run) is not compressed again.
        The chosen configuration's deployed files are then tried on each device of the run.
        """
        if self.cfg.compress.mode != "front" or self.data is None:
            return
        from host.compress.front import FrontCompressor

        compressor = FrontCompressor(self.cfg, self.store, self.space, self.task, self.data,
                                     self.run_dir.parent / "models" / "compressed",
                                     say=self._say)
        members = [ev for ev in self._front_order() if ev.train_key]
        grid = self.cfg.compress.grid
        self._say(f"compression: {len(members)} front members x {len(grid)} grid points "
                  f"(sparsity {list(self.cfg.compress.sparsity)} x clusters "
                  f"{list(self.cfg.compress.clusters)}, {self.cfg.compress.scope} scope"
                  + (f", after removing {self.cfg.compress.channels:g} of the channels"
                     if self.cfg.compress.channels else "") + ")")
        for n, ev in enumerate(members, 1):
            assert ev.train_key is not None
            t0, start = time.perf_counter(), time.time()
            block = compressor.member(ev.arch_key, ev.train_key, label=f"[{n}/{len(members)}] ")
            if block["chosen"] is not None:
                block["chosen"]["runs_on"] = self._compressed_runs_on(block["chosen"])
            self.compression[ev.arch_key] = block
            self.store.add_timing(self.run_id, "compress", ev.arch_key, start,
                                  time.perf_counter() - t0)
            chosen = block["chosen"]
            self._say(
                f"compression [{n}/{len(members)}] {ev.arch_key}: "
                + (f"sparsity {chosen['sparsity']:g}, k={chosen['clusters']}: "
                   f"{chosen['storage_deployed_bytes']['mcu']['bytes']} B on an MCU "
                   f"({chosen['storage_deployed_bytes']['mcu']['reduction_vs_float32']}x "
                   f"float32), loss {chosen['loss_pp']} pp" if chosen else block["why"])
            )
        self._say(f"compression: {compressor.computed} grid points compressed, "
                  f"{compressor.reused} from the store")

    def _compressed_runs_on(self, point: dict[str, Any]) -> dict[str, str]:
        """Whether each device runs the compressed model deployed on its kind.

        An MCU gets the MCU file (the LUT model if it verified), any other device the int8
        file (LiteRT has no DECODE). A device that cannot run it says so, as a candidate's
        `runs_on` does: "CandidateRejected: ..." naming the operator.
        """
        from device_agent.errors import DeviceUnavailable, HilnasError

        out: dict[str, str] = {}
        for name, device in self.devices.items():
            if device is None or name in self.pipeline.gone:
                continue
            try:
                kind = "mcu" if device.describe().kind == "mcu" else "linux"
            except DeviceUnavailable as exc:
                out[name] = f"missing ({exc})"
                continue
            file = point["storage_deployed_bytes"][kind]["file"]
            path = Path(point["files"][file])
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            runtime = self.pipeline.runtimes.get(name, "")
            settings = self.pipeline.settings_hash
            try:
                if self.store.measurement(sha, name, runtime, settings) is None:
                    t0 = time.perf_counter()
                    data = device.measure(path, self.cfg.measure).to_json()
                    self.store.add_measurement(sha, name, runtime, settings, data,
                                               time.perf_counter() - t0)
                out[name] = f"ok ({file})"
            except StoreError:
                raise
            except HilnasError as exc:  # CandidateRejected names the operator it lacks
                out[name] = f"{type(exc).__name__}: {exc} ({file})"
        return out

    def close(self, cancel: bool = False) -> None:
        self.pipeline.close()
        if self.executor is not None:
            self.executor.shutdown(cancel=cancel)
        for device in self.devices.values():
            if device is not None:
                device.close()

    # ------------------------------------------------------------------ outputs
    def write_front(self) -> list[dict[str, Any]]:
        """front.json and the front's files (.tflite and C header) under RUN/front/."""
        from host.export.carray import write_c_array

        front_dir = self.run_dir / "front"
        front_dir.mkdir(exist_ok=True)
        entries = []
        for ev in self._front_order():
            entry: dict[str, Any] = {
                "arch": ev.arch_key,
                "architecture": self.space.from_key(ev.arch_key).to_json(),
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
                "runs_on": ev.runs_on,
                "sha256": ev.sha256,
            }
            if ev.model_path and Path(ev.model_path).exists():
                tflite = front_dir / f"{_file_name(ev.arch_key)}.tflite"
                shutil.copyfile(ev.model_path, tflite)
                header = front_dir / f"{_file_name(ev.arch_key)}.h"
                symbol = "g_model_" + "".join(c if c.isalnum() else "_" for c in ev.arch_key)
                write_c_array(tflite.read_bytes(), header, symbol)
                entry["files"] = {"tflite": str(tflite), "c_header": str(header)}
            # front mode: compressed after the search; joint: in the candidate pipeline
            block = self.compression.get(ev.arch_key) or self.pipeline.compressed.get(ev.arch_key)
            if block is not None:
                if block["mode"] == "joint" and block["chosen"] is not None:
                    files = block["chosen"]["storage_deployed_bytes"]
                    block["chosen"]["runs_on"] = {
                        name: f"ok ({files[self.pipeline.deployed_kind(name)]['file']})"
                        if state == "ok" else state
                        for name, state in ev.runs_on.items()
                    }
                entry["compression"] = block
                chosen = block["chosen"]
                if chosen is not None:  # the deployed files of the chosen configuration
                    for kind, figure in chosen["storage_deployed_bytes"].items():
                        src = Path(chosen["files"][figure["file"]])
                        dst = front_dir / f"{_file_name(ev.arch_key)}-compressed-{kind}.tflite"
                        shutil.copyfile(src, dst)
                        entry.setdefault("files", {})[f"compressed_{kind}"] = str(dst)
            entries.append(entry)
        write_atomic(
            self.run_dir / "front.json",
            json.dumps(
                {
                    "run": self.run_id,
                    "space": self.space.describe(),
                    "task": self.task.name,
                    "objectives": [o.label for o in self.cfg.objectives],
                    "front": entries,
                },
                indent=2,
                default=str,
            )
        )
        return entries

    def validate_front(self, front: list[dict[str, Any]]) -> None:
        """The front's test windows through each device's Validate (field validation).

        Quality from the devices' own outputs next to the host's int8 reference, and how often
        the two agree, stored per model and device (a resumed run does not repeat it). A device
        without Validate, or gone, is recorded with the reason; the run goes on.
        """
        devices = {n: d for n, d in self.devices.items()
                   if d is not None and n not in self.pipeline.gone}
        if not self.cfg.search.validate_front or not devices or self.data is None:
            return
        from host.fleet.validation import validate_front

        done = self.store.front_validations(self.run_id)
        metric = self.cfg.quality_objective.metric
        for entry in front:
            path = (entry.get("files") or {}).get("tflite")
            todo = {n: d for n, d in devices.items() if n not in done.get(entry["arch"], {})}
            if not path or not todo:
                continue
            task, data = self.pipeline.task_of(entry["arch"]), self.pipeline.data_of(entry["arch"])
            results = validate_front(todo, [{"arch": entry["arch"], "model_path": path}],
                                     data.inputs("test"), data.y_test, task,
                                     progress=self._tick)
            for device, result in results.get(entry["arch"], {}).items():
                self.store.add_front_validation(self.run_id, entry["arch"], device,
                                                {**result, "metric": metric})


def _file_name(key: str) -> str:
    """A file name for an architecture key (HALF keys hold ':' and '.')."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in key)


def _new_run_id(name: str, attempt: int | None = None) -> str:
    """NAME-DATE-TIME-NNNN: NNNN is the process id (mod 10000), counted up on a clash."""
    suffix = os.getpid() % 10000 if attempt is None else attempt % 10000
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{suffix:04d}"


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
        try:
            cfg = parse_config(row.config["source"])
        except (ConfigError, KeyError) as exc:
            raise ConfigError(
                f"run {resume!r} was stored by an incompatible version of hilnas: {exc}"
            ) from None
        cfg = _with_out_dir(cfg, str(root.resolve()))
        run_id = resume
        store.set_run_status(run_id, "running", "resumed")
    else:
        if cfg is None:
            raise ConfigError("a configuration is needed to start a search")
        # Absolute, so the paths a run stores (front.json, the store's model files) still
        # lead to its files when it is read from another directory.
        cfg = _with_out_dir(cfg, str(Path(out_dir or cfg.run.out_dir).resolve()))
        if cfg.tabular:
            cfg = _with_table_data(cfg)
        store = RunStore(Path(cfg.run.out_dir) / STORE_NAME)
        run_id = _new_run_id(cfg.run.name)
        while store.run(run_id) is not None:  # two runs started in the same second
            run_id = _new_run_id(cfg.run.name, attempt=int(run_id.rsplit("-", 1)[-1]) + 1)
        store.create_run(run_id, cfg.run.name, {"source": cfg.to_doc(), **cfg.to_json()})
    try:
        run = SearchRun(cfg, store, run_id, progress=progress)
    except BaseException as exc:
        store.set_run_status(run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    try:
        run.execute()
        run.compress_front()
    except KeyboardInterrupt:
        store.set_run_status(
            run_id, "interrupted", f"interrupted; continue with: hilnas search --resume {run_id}"
        )
        run.close(cancel=True)
        raise SearchInterrupted(run_id) from None
    except BaseException as exc:
        # Completed work is in the store whatever happened; say how to continue.
        try:
            store.set_run_status(
                run_id,
                "failed",
                f"{type(exc).__name__}: {exc}; completed work is stored, continue "
                f"with: hilnas search --resume {run_id}",
            )
        except StoreError as store_exc:  # the store itself is what failed (a full disk)
            log.error("could not record the run's status: %s", store_exc)
        run.close(cancel=True)
        raise
    front = run.write_front()
    run.validate_front(front)
    hv = run.current_hypervolume()
    trained = len(run.strategy_trained)
    missing = store.missing(run_id)
    message = f"{trained} trainings, front of {len(front)}, hypervolume {hv:.4f}"
    if missing:
        message += f"; {len(missing)} measurements missing (devices left the run)"
    store.set_run_status(run_id, "done", message, trainings=trained, front_size=len(front),
                         hypervolume=hv)
    run.close()
    if report:
        from host.report import build_report

        build_report(store, run_id, run.run_dir)
    return RunResult(run_id, run.run_dir, "done", front, trained, hv)


def _with_table_data(cfg: SearchConfig) -> SearchConfig:
    """With a table, the table's data and training budget are the run's.

    Its qualities and latencies were obtained under them (a 128-sample window, say), so a
    run that stored the configuration's own [data] and [train] would misstate where its
    figures come from, and analytic costs that depend on the window (MACs) would not match
    the table's networks.
    """
    meta = Tabular(Path(cfg.tabular)).meta if cfg.tabular else {}
    data, train = meta.get("data"), meta.get("budget")
    if not data or not train:
        return cfg  # an older table without them: nothing to align
    doc = cfg.to_doc()
    doc["data"] = {k: v for k, v in data.items() if k != "data_dir" and v is not None}
    doc["train"] = dict(train)
    try:
        aligned = parse_config(doc)
    except ConfigError as exc:
        raise ConfigError(
            f"the tabular benchmark {cfg.tabular} has unreadable meta: {exc}"
        ) from None
    if (aligned.data, aligned.train) != (cfg.data, cfg.train):
        log.info("tabular: using the table's [data] and [train] (%s)", cfg.tabular)
    return aligned


def _with_out_dir(cfg: SearchConfig, out_dir: str) -> SearchConfig:
    return replace(cfg, run=replace(cfg.run, out_dir=out_dir))


__all__ = ["RunResult", "STORE_NAME", "SearchInterrupted", "load_config", "run_search"]
