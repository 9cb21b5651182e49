"""`[compress] mode = "front"`: BioNetExplorer's second stage, per member of the final front.

Once a search's front is final, every member's trained network goes through the stages of
`compress_model` (float -> [channels] -> pruned -> clustered -> int8 -> LUT) at every point
of the grid `sparsity` x `clusters`. Per member, the smallest deployed configuration (the
bytes an MCU runs: the LUT file if it verified, else the int8 file) whose quality loss is at most
`max_quality_loss` percentage points is kept. The loss is the deployed stage's validation
quality (the run's quality metric) against the float stage's, so it includes what int8
quantization costs.

Each grid point of each trained network is one row of the store's `compressions` table,
keyed by the training, the `[compress]` settings other than the grid, and the point: a run
resumed after some points were compressed does not compress them again (nor does another run
of the same network under the same settings). Its files go under `MODELS/compressed/`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host.errors import ConfigError
from host.store.files import write_atomic
from host.store.sqlite import RunStore

#: Bumped when the stages change what they produce: older stored results are not reused.
FRONT_VERSION = 1
#: What a compression block's `loss_pp` is measured between.
LOSS_OF = ("the deployed stage (lut if it verified, else int8; LiteRT/TFLM) against the float "
           "stage (tf-keras), validation side, in percentage points")


def settings_hash(settings: Any, train: Any, channels: float | None = None) -> str:
    """What makes two compressions of one trained network the same, but the grid point.

    `channels`: the fraction of channels removed, when it is not the settings' one (a joint
    search's gene).
    """
    channels = float(settings.channels) if channels is None else float(channels)
    doc: dict[str, Any] = {
        "version": FRONT_VERSION,
        "scope": settings.scope,
        "fine_tune_epochs": settings.fine_tune_epochs,
        "verify_windows": settings.verify_windows,
        "batch_size": train.batch_size,
        "seed": train.seed,
    }
    if channels:
        # Only when set: runs stored before channel pruning existed keep their hash.
        doc["channels"] = channels
    # Fine-tuning settings other than the first ones (lr 1e-4, no distillation), likewise:
    # results stored under those keep their hash, and are never taken for these.
    if float(settings.learning_rate) != 1e-4:
        doc["learning_rate"] = float(settings.learning_rate)
    if float(settings.distill):
        doc["distill"] = float(settings.distill)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _point_name(sparsity: float, clusters: int) -> str:
    return f"s{sparsity:g}-k{clusters}"


def summarise_point(stored: dict[str, Any], metric: str) -> dict[str, Any]:
    """One grid point as front.json shows it: every stage's bytes, quality and sources."""
    r = stored["result"]
    stages = r["stages"]
    base = stages[0]["quality"].get(metric)
    rows = []
    for s in stages:
        q = s["quality"].get(metric)
        rows.append({
            "stage": s["stage"],
            "quality": q,
            "quality_source": s["quality_source"],
            "loss_pp": None if q is None or base is None else round(100 * (base - q), 3),
            "bytes": s["bytes"],
            "reduction_vs_float32": s.get("reduction_vs_float32", {}),
        })
    lut: dict[str, Any] = next((s for s in stages if s["stage"] == "lut"), {})
    mcu_file = r["storage_deployed_bytes"]["mcu"]["file"]
    deployed_stage = next(s for s in rows
                          if s["stage"] == ("lut" if mcu_file == "int8-lut.tflite" else "int8"))
    return {
        "sparsity": r["config"]["sparsity"],
        "clusters": r["config"]["clusters"],
        "channels": r["config"].get("channels", 0.0),
        "deployed_stage": deployed_stage["stage"],
        "quality": deployed_stage["quality"],
        "loss_pp": deployed_stage["loss_pp"],
        "stages": rows,
        **{k: r[k] for k in ("storage_float32_bytes", "storage_int8_bytes",
                             "storage_deployed_bytes", "storage_sparse_bytes")},
        "lut": (lut.get("lut") or {}).get("summary", ""),
        "files": stored.get("files", {}),
        "report": stored.get("report", ""),
        "computed": stored.get("created"),
        "seconds": stored.get("seconds"),
    }


def choose(points: list[dict[str, Any]], max_loss: float) -> tuple[dict[str, Any] | None, str]:
    """The smallest deployed (MCU) configuration within `max_loss`; ties: the smaller loss."""
    ok = [p for p in points if p["loss_pp"] is not None and p["loss_pp"] <= max_loss]
    if not ok:
        best = min((p for p in points if p["loss_pp"] is not None),
                   key=lambda p: p["loss_pp"], default=None)
        channels = (f"{best['channels']:g} of the channels removed, "
                    if best and best.get("channels") else "")
        why = (f"no grid point within {max_loss:g} pp (least loss: {best['loss_pp']:g} pp at "
               f"{channels}sparsity {best['sparsity']:g}, k={best['clusters']}); the "
               "uncompressed int8 model stays deployed") if best else \
            "no grid point has a quality figure"
        return None, why
    chosen = min(ok, key=lambda p: (p["storage_deployed_bytes"]["mcu"]["bytes"], p["loss_pp"]))
    return chosen, (f"smallest deployed MCU file among {len(ok)} of {len(points)} grid points "
                    f"within {max_loss:g} pp")


class FrontCompressor:
    """Compresses front members over the grid, one stored row per network and point."""

    def __init__(
        self,
        cfg: Any,
        store: RunStore,
        space: Any,
        task: Any,
        data: Any,
        out_dir: Path,
        *,
        say: Callable[[str], None] = print,
    ) -> None:
        self.cfg, self.store, self.space, self.task, self.data = cfg, store, space, task, data
        self.settings = cfg.compress
        self.metric = cfg.quality_objective.metric
        self.out_dir = out_dir
        self.say = say
        # In the joint mode `channels` is a gene (a list); each value has its own hash.
        self.hash = settings_hash(self.settings, cfg.train,
                                  channels=self.settings.channel_ladder[0])
        self.computed = 0  # grid points compressed by this object (not from the store)
        self.reused = 0

    def compress_config(self, sparsity: float, clusters: int,
                        channels: float | None = None) -> Any:
        from host.compress.stages import CompressConfig

        return CompressConfig(
            sparsity=sparsity, clusters=clusters, scope=self.settings.scope,
            epochs=self.settings.fine_tune_epochs, batch_size=self.cfg.train.batch_size,
            verify_windows=self.settings.verify_windows, seed=self.cfg.train.seed,
            channels=self.settings.channel_ladder[0] if channels is None else channels,
            distill=self.settings.distill, learning_rate=self.settings.learning_rate,
        )

    def member(self, arch_key: str, train_key: str, label: str = "") -> dict[str, Any]:
        """The compression block of one front member (computing what the store lacks)."""
        grid = self.settings.grid
        reuse: dict[Any, Any] = {}  # the float and pruned stages, shared across the grid
        stored_points = []
        for i, (s, k) in enumerate(grid, 1):
            where = f"{label}{arch_key} [{i}/{len(grid)}] sparsity {s:g}, k={k}"
            stored_points.append(self.point(arch_key, train_key, s, k, where=where,
                                            reuse=reuse))
        chosen, why = choose(stored_points, self.settings.max_quality_loss)
        return self.block(stored_points, chosen, why, self.hash,
                          self.settings.channel_ladder[0])

    def block(self, points: list[dict[str, Any]], chosen: dict[str, Any] | None, why: str,
              hash_: str, channels: float) -> dict[str, Any]:
        """A compression block as front.json and the report show it."""
        first = points[0]["stages"][0]
        return {
            "mode": self.settings.mode,
            "metric": self.metric,
            "max_quality_loss_pp": self.settings.max_quality_loss,
            "loss_of": LOSS_OF,
            "baseline": {"stage": "float", "quality": first["quality"],
                         "source": first["quality_source"]},
            "settings": {"scope": self.settings.scope,
                         "channels": channels,
                         "fine_tune_epochs": self.settings.fine_tune_epochs,
                         "learning_rate": self.settings.learning_rate,
                         "distill": self.settings.distill,
                         "verify_windows": self.settings.verify_windows,
                         "settings_hash": hash_},
            "chosen": chosen,
            "why": why,
            "grid": points,
        }

    def point(self, arch_key: str, train_key: str, sparsity: float, clusters: int, *,
              channels: float | None = None, where: str = "",
              reuse: dict[Any, Any] | None = None) -> dict[str, Any]:
        """One point of a trained network, summarised (from the store, or computed and stored).

        `channels`: the fraction of channels removed, when not the settings' one (a joint
        candidate's gene). `reuse` carries what one point of a member computed for the next:
        the trainable network (built only when a point is not in the store) and the float and
        pruned stages (`compress_model`'s cache).
        """
        hash_ = self.hash if channels is None else \
            settings_hash(self.settings, self.cfg.train, channels=channels)
        where = where or f"{arch_key} sparsity {sparsity:g}, k={clusters}"
        stored = self.store.compression(train_key, hash_, sparsity, clusters)
        if stored is not None and all(Path(p).exists()
                                      for p in stored["result"].get("paths", {}).values()):
            self.reused += 1
            self.say(f"compress {where}: from the store")
        else:
            reuse = {} if reuse is None else reuse
            if "trainable" not in reuse:
                reuse["trainable"] = self._trainable(arch_key, train_key)
            t0 = time.perf_counter()
            self.say(f"compress {where}: pruning, clustering, int8, LUT ...")
            ccfg = self.compress_config(sparsity, clusters, channels)
            result = self._compress(reuse["trainable"], arch_key, train_key, ccfg, hash_,
                                    reuse)
            self.store.add_compression(train_key, hash_, sparsity, clusters, result,
                                       time.perf_counter() - t0)
            self.computed += 1
            stored = self.store.compression(train_key, hash_, sparsity, clusters)
            assert stored is not None
        summary = summarise_point({**stored, "files": stored["result"].get("paths", {}),
                                   "report": stored["result"].get("report", "")}, self.metric)
        summary["settings_hash"] = hash_
        # Every quality figure of the deployed stage (the summary has the run's metric only).
        summary["deployed_quality"] = next(
            s["quality"] for s in stored["result"]["stages"]
            if s["stage"] == summary["deployed_stage"])
        self.say(f"  -> {summary['deployed_stage']}: "
                 f"{summary['storage_deployed_bytes']['mcu']['bytes']} B on an MCU "
                 f"({summary['storage_deployed_bytes']['mcu']['reduction_vs_float32']}x "
                 f"float32), loss {summary['loss_pp']} pp")
        return summary

    # ------------------------------------------------------------------ internals
    def _trainable(self, arch_key: str, train_key: str) -> Any:
        """The trained network, rebuilt as a trainable graph (the store keeps batch one)."""
        from host.train.tfenv import load_keras_model

        row = self.store.model_for(train_key, "keras")
        if row is None or not Path(row["path"]).exists():
            raise ConfigError(f"compress: no trained model of {arch_key} in the store "
                              f"({row['path'] if row else 'none recorded'})")
        stored = load_keras_model(row["path"])
        arch = self.space.from_key(arch_key)
        model = self.space.build_model(arch, self.task, self.cfg.train.build_options())
        if len(model.inputs) > 1:
            raise ConfigError("compress: the model has a second input; compression handles "
                              "one-input models only")
        try:
            model.set_weights(stored.get_weights())
        except ValueError as exc:
            raise ConfigError(f"compress: the stored network of {arch_key} does not match its "
                              f"trainable graph ({exc})") from None
        return model

    def _compress(self, model: Any, arch_key: str, train_key: str, ccfg: Any, hash_: str,
                  reuse: dict[Any, Any]) -> dict[str, Any]:
        from host.compress.stages import compress_model

        sparsity, clusters = ccfg.sparsity, ccfg.clusters
        metadata = {
            **self.data.metadata(),
            "arch": arch_key,
            "architecture": self.space.from_key(arch_key).to_json(),
            "space": self.space.describe(),
            "task": self.task.name,
            "train_key": train_key,
            "trained": True,
            "compression": {"sparsity": sparsity, "clusters": clusters,
                            "scope": ccfg.scope, "channels": ccfg.channels},
        }
        result = compress_model(model, self.data, self.task, ccfg, metadata=metadata,
                                log=lambda m: self.say(f"    [stage] {m}"), reuse=reuse)
        folder = self.out_dir / f"{_safe(arch_key)}-{train_key[:12]}-{hash_[:8]}" \
            / _point_name(sparsity, clusters)
        paths = {}
        for name, buf in result.files.items():
            write_atomic(folder / name, buf)
            paths[name] = str(folder / name)
        doc = result.to_json()
        write_atomic(folder / "compression.json", json.dumps(doc, indent=2, default=str))
        return {**doc, "paths": paths, "report": str(folder / "compression.json")}


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in key)
