"""The compression pipeline: float -> [channels] -> pruned -> clustered -> int8 -> LUT.

BioNetExplorer's order (pruning, weight sharing, quantization), with TFLM's LUT compression
last and, optionally first, structured pruning (`channels`): the one step that makes the
file a device runs smaller by removing weights rather than by coding them in fewer bits.

Each stage is a named step that returns a `Stage`: its quality on the validation side (the
task's metrics, with where they were measured), its bytes (with their source) and what it did.
`compress_model` chains them; `CompressionResult.to_json` is what `hilnas compress` writes as
compression.json.

Quantization: full-integer post-training quantization (PTQ) through the repository's converter
(`host.export.tflite.convert_many`). TFMOT's collaborative optimization (PQAT/CQAT/PCQAT,
`tfmot.experimental.combine` schemes on top of `quantize_apply`) needs every layer in TFMOT's
default 8-bit registry, which has neither Conv1D nor LSTM (both are commented out there as
unverified), so it cannot wrap a BioNet. PTQ is used instead and the int8 file is checked for
what survived: the pruned zeros (exact: symmetric int8 weights map 0.0 to 0) and at most k
distinct values per channel of each kernel (rounding can merge two cluster values, never
split one). `qat_support` records which layers blocked QAT.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from host.compress.channels import check_channel_fraction, prune_channels
from host.compress.cluster import (
    SPARSE_K2,
    TFMOT_MIN_SPARSE_CLUSTERS,
    ClusterReport,
    check_clusters,
    cluster,
)
from host.compress.lut import LutResult, lut_compress, strip_strings
from host.compress.prune import SCHEDULES, SCOPES, _keras, prune, tfmot
from host.compress.storage import sparse_bytes
from host.compress.weights import weight_summary, weight_tensors
from host.errors import ConfigError

QUALITY_KEYS = ("balanced_accuracy", "accuracy", "f1_macro")
DEVICE_KINDS = ("mcu", "linux")


@dataclass(frozen=True)
class CompressConfig:
    """How to compress. Validated on construction; errors name the command-line flag.

    `sparsity`: target fraction of zero kernel weights, in [0, 1). `channels`: fraction of
    the channels of every prunable channel group removed before that (structured pruning,
    `channels.py`; 0 skips the stage), in [0, 1). `clusters`: k of the
    k-means weight sharing (2..256), None to skip clustering. `scope`: "layer" (every layer
    to `sparsity`) or "global" (class-blind: one magnitude threshold). `epochs`: fine-tuning
    epochs after pruning and again after clustering (0: one-shot, no fine-tuning).
    `verify_windows`: validation windows the LUT model must reproduce bit-exactly in TFLM.
    `learning_rate`: of the fine-tuning. `distill`: in [0, 1), the weight of the trained
    (uncompressed) model's own outputs in the fine-tuning targets (knowledge distillation:
    (1 - distill) x one-hot label + distill x teacher probabilities; classification only;
    0: the labels alone). Defaults: 1e-3 and 0.7, chosen on validation.
    """

    sparsity: float = 0.5
    clusters: int | None = 16
    channels: float = 0.0
    scope: str = "layer"
    schedule: str = "constant"
    epochs: int = 2
    batch_size: int = 64
    # Defaults chosen on validation (docs/compression.md, "Fine-tuning"): lr 1e-3 with
    # distillation 0.7 lost 0.8 pp on average over four points of a BioNet where lr 1e-4
    # without distillation lost 20 pp.
    learning_rate: float = 1e-3
    verify_windows: int = 64
    seed: int = 0
    distill: float = 0.7

    def __post_init__(self) -> None:
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) or \
                not 0.0 <= float(self.sparsity) < 1.0:
            raise ConfigError(f"--prune: sparsity must be in [0, 1), not {self.sparsity!r}")
        check_channel_fraction(self.channels, "--channels")
        if self.clusters is not None:
            check_clusters(self.clusters)
            if self.clusters <= TFMOT_MIN_SPARSE_CLUSTERS and self.sparsity > 0:
                raise ConfigError(SPARSE_K2)
        if self.scope not in SCOPES:
            raise ConfigError(f"--scope: must be one of {list(SCOPES)}, not {self.scope!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule: must be one of {list(SCHEDULES)}, not "
                              f"{self.schedule!r}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"--epochs: must be an integer >= 0, not {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"--batch-size: must be a positive integer, not {self.batch_size!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"--learning-rate: must be positive, not {self.learning_rate!r}")
        check_distill(self.distill, "--distill")
        if not isinstance(self.verify_windows, int) or self.verify_windows < 1:
            raise ConfigError(f"--verify-windows: must be a positive integer, not "
                              f"{self.verify_windows!r}")


@dataclass
class Stage:
    """One stage's result: quality with its source, bytes with their sources, details."""

    name: str
    quality: dict[str, float]
    quality_source: str
    bytes: dict[str, dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "quality": self.quality,
            "quality_source": self.quality_source,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 1),
            **self.details,
        }


@dataclass
class CompressionResult:
    """Every stage, the storage figures, and the .tflite files (name -> bytes)."""

    config: CompressConfig
    stages: list[Stage]
    files: dict[str, bytes]
    storage: dict[str, Any]
    lut: LutResult | None = None

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "config": asdict(self.config),
            "order": [s.name for s in self.stages],
            "stages": [s.to_json() for s in self.stages],
            **self.storage,
            "files": {name: len(b) for name, b in self.files.items()},
        }


def qat_support(model: Any) -> dict[str, Any]:
    """Whether TFMOT's default 8-bit QAT (and so PQAT/CQAT/PCQAT) can wrap every layer."""
    tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as reg,
    )

    registry = reg.Default8BitQuantizeRegistry()
    blocked = sorted({f"{layer.name} ({type(layer).__name__})" for layer in model.layers
                      if layer.weights and not registry.supports(layer)})
    if blocked:
        return {
            "used": False,
            "method": "post-training full-integer quantization (PTQ)",
            "reason": "TFMOT's default 8-bit QAT registry (needed by PQAT/CQAT/PCQAT) does not "
            f"support: {', '.join(blocked)}",
        }
    return {
        "used": False,
        "method": "post-training full-integer quantization (PTQ)",
        "reason": "collaborative QAT is not implemented here: every hilnas space has Conv1D or "
        "LSTM layers, which TFMOT's 8-bit registry does not support",
    }


def _quality(task: Any, model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from host.train.trainer import predict

    m = task.score(y, predict(model, x))
    return {k: float(m[k]) for k in QUALITY_KEYS if k in m}


def check_distill(value: Any, name: str) -> None:
    """A distillation weight must be a number in [0, 1); `name` is the flag or key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name}: the weight of the teacher's outputs must be in [0, 1), "
                          f"not {value!r}")


def outputs_logits(model: Any) -> bool:
    """Whether a classifier's output layer has no activation (logits, not probabilities)."""
    activation = model.layers[-1].get_config().get("activation")
    return activation in (None, "linear")


def make_fit(
    data: Any, task: Any, config: CompressConfig, teacher: Any = None
) -> Callable[[Any, int, list[Any]], None]:
    """The fine-tuning function the channel, pruning and clustering stages call.

    With `config.distill` > 0 the targets mix the labels with `teacher`'s outputs on the
    training windows (computed once): the compressed network is fine-tuned towards what the
    trained one says, class probabilities and all, not only towards the label.
    """
    keras = _keras()
    # A network that outputs logits (HALF's accelerators return raw scores) is trained with a
    # loss on logits, and its teacher's outputs become probabilities by a softmax.
    logits = teacher is not None and outputs_logits(teacher)
    targets, loss = data.y_train, task.loss(keras, logits=logits)
    if config.distill > 0:
        classes = getattr(task, "class_names", None)
        if classes is None or teacher is None:
            raise ConfigError("--distill: knowledge distillation needs a classification task "
                              f"and the trained model ({task.name} is not one)")
        from host.train.trainer import predict

        n = len(classes())
        soft = np.asarray(predict(teacher, data.x_train), dtype=np.float32).reshape(-1, n)
        if logits:
            soft = np.exp(soft - soft.max(axis=1, keepdims=True))
            soft /= soft.sum(axis=1, keepdims=True)
        hard = np.eye(n, dtype=np.float32)[np.asarray(data.y_train, dtype=int)]
        targets = (1.0 - config.distill) * hard + config.distill * soft
        loss = keras.losses.CategoricalCrossentropy(from_logits=logits)

    def fit(model: Any, epochs: int, callbacks: list[Any]) -> None:
        keras.utils.set_random_seed(config.seed)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=1.0),
            loss=loss,
        )
        # class_weight with soft targets: tf-keras weighs each window by its argmax class.
        model.fit(data.x_train, targets, epochs=epochs, batch_size=config.batch_size,
                  callbacks=callbacks, shuffle=True, verbose=0,
                  **task.fit_options(data, "balanced"))

    return fit


def _file(buf: bytes, name: str) -> dict[str, Any]:
    return {"bytes": len(buf), "source": "file", "file": name}


def survival(int8_model: bytes, clusters: int | None, float_sparsity: float) -> dict[str, Any]:
    """What of pruning and clustering survived int8 quantization, counted in the file."""
    ws = weight_tensors(int8_model)
    s = weight_summary(int8_model)
    per_tensor = [
        {k: v for k, v in w.summary().items() if k != "name"} | {"name": w.name[:80]}
        for w in ws
    ]
    out: dict[str, Any] = {
        "counted_in": "the int8 .tflite flatbuffer's weight tensors",
        "float_sparsity": round(float_sparsity, 4),
        "int8_sparsity": s["sparsity"],
        "zeros_survived": s["sparsity"] >= float_sparsity - 1e-3,
        "max_unique_per_channel": s["max_unique_per_channel"],
        "tensors": per_tensor,
    }
    if clusters is not None:
        out["clusters"] = clusters
        out["at_most_k_per_channel"] = s["max_unique_per_channel"] <= clusters
    return out


def compress_model(
    model: Any,
    data: Any,
    task: Any,
    config: CompressConfig,
    *,
    metadata: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = lambda _m: None,
    reuse: dict[Any, Any] | None = None,
) -> CompressionResult:
    """Run float -> pruned -> clustered -> int8 -> LUT on a trained tf-keras `model`.

    `data`: the dataset it was trained on (train side fine-tunes and calibrates, validation
    side scores every stage and verifies the LUT model). `metadata` is stored in every
    .tflite (as `hilnas train` does). The caller's `model` is not changed.

    `reuse`: a dict the caller passes again to compress the same `model` (and data) at
    several grid points; the float stage, and the pruned stage of a sparsity already pruned
    with the same settings, are then taken from it instead of being computed again (the
    clustering stages fine-tune a clone, so the pruned model is not changed by them).
    """
    from host.export.evaluate import evaluate_tflite
    from host.export.tflite import convert, convert_many

    if getattr(data, "aux_train", None) is not None or len(getattr(model, "inputs", ())) > 1:
        raise ConfigError(
            "model: it has a second input (the RR features of [data] rr_features); compression "
            "handles one-input models only (its stages feed one window tensor)"
        )
    if len(data.x_val) == 0:
        raise ConfigError("data: the validation side is empty; every stage is scored on it")
    fit = make_fit(data, task, config, teacher=model) if config.epochs > 0 else None
    steps = int(np.ceil(len(data.x_train) / config.batch_size))
    rep = task.representative(data)
    files: dict[str, bytes] = {}
    stages: list[Stage] = []
    keras_src = "tf-keras model, validation side"

    cache: dict[Any, Any] = {} if reuse is None else reuse
    if "float" in cache:
        log("float: as computed for an earlier grid point")
        files["float32.tflite"], float_stage = cache["float"]
    else:
        t = time.perf_counter()
        log("float: converting the trained model (float32 .tflite)")
        files["float32.tflite"] = convert(model, "float32", metadata=metadata)
        float_stage = Stage("float", _quality(task, model, data.x_val, data.y_val), keras_src,
                            {"float32": _file(files["float32.tflite"], "float32.tflite")},
                            seconds=time.perf_counter() - t)
        cache["float"] = (files["float32.tflite"], float_stage)
    stages.append(copy.deepcopy(float_stage))

    base = model
    channel_key = ("channels", float(config.channels), config.epochs, config.batch_size,
                   config.learning_rate, config.seed, config.distill)
    if config.channels > 0:
        if channel_key in cache:
            log(f"channels: {config.channels:g} of each group's channels removed, as computed "
                "for an earlier grid point")
        else:
            t = time.perf_counter()
            log(f"channels: removing {config.channels:g} of each group's channels, "
                f"{config.epochs} epochs")
            narrow, chrep = prune_channels(model, float(config.channels), data.x_train,
                                           fit=fit, epochs=config.epochs)
            narrow_file = convert(narrow, "float32", metadata=metadata)
            cache[channel_key] = (narrow, narrow_file, Stage(
                "channels", _quality(task, narrow, data.x_val, data.y_val), keras_src,
                {"float32": _file(narrow_file, "channels-float32.tflite")},
                {"channels": chrep.to_json()}, seconds=time.perf_counter() - t,
            ))
        base, files["channels-float32.tflite"], channel_stage = cache[channel_key]
        stages.append(copy.deepcopy(channel_stage))

    prune_key = ("pruned", float(config.sparsity), config.scope, config.schedule,
                 config.epochs, config.batch_size, config.learning_rate, config.seed,
                 float(config.channels), config.distill)
    if prune_key in cache:
        log(f"pruned: {config.scope} sparsity {config.sparsity}, as computed for an earlier "
            "grid point")
        pruned, prep, files["pruned-float32.tflite"], pruned_stage = cache[prune_key]
    else:
        t = time.perf_counter()
        log(f"pruned: {config.scope} sparsity {config.sparsity}, {config.epochs} epochs")
        pruned, prep = prune(base, float(config.sparsity), scope=config.scope,
                             schedule=config.schedule, fit=fit, epochs=config.epochs,
                             steps_per_epoch=steps)
        files["pruned-float32.tflite"] = convert(pruned, "float32", metadata=metadata)
        pruned_stage = Stage(
            "pruned", _quality(task, pruned, data.x_val, data.y_val), keras_src,
            {"float32": _file(files["pruned-float32.tflite"], "pruned-float32.tflite"),
             "sparse": sparse_bytes(files["pruned-float32.tflite"])},
            {"pruning": prep.to_json()}, seconds=time.perf_counter() - t,
        )
        cache[prune_key] = (pruned, prep, files["pruned-float32.tflite"], pruned_stage)
    stages.append(copy.deepcopy(pruned_stage))

    current: Any = pruned
    creport: ClusterReport | None = None
    if config.clusters is not None:
        t = time.perf_counter()
        log(f"clustered: k={config.clusters}, {config.epochs} epochs")
        current, creport = cluster(pruned, config.clusters, fit=fit, epochs=config.epochs)
    t_conv = time.perf_counter()
    log("int8: full-integer post-training quantization")
    bufs = convert_many(current, ["float32", "int8"], rep, metadata=metadata)
    files["int8.tflite"] = bufs["int8"]
    if creport is not None:
        files["clustered-float32.tflite"] = bufs["float32"]
        stages.append(Stage(
            "clustered", _quality(task, current, data.x_val, data.y_val), keras_src,
            {"float32": _file(bufs["float32"], "clustered-float32.tflite"),
             "sparse": sparse_bytes(bufs["float32"], clustered=True)},
            {"clustering": creport.to_json()}, seconds=t_conv - t,
        ))
    t = time.perf_counter()
    q8 = evaluate_tflite(bufs["int8"], data, side="val")
    stages.append(Stage(
        "int8", {k: float(q8[k]) for k in QUALITY_KEYS}, "LiteRT on the int8 .tflite, "
        "validation side",
        {"int8": _file(bufs["int8"], "int8.tflite"),
         "sparse": sparse_bytes(bufs["int8"], clustered=config.clusters is not None)},
        {"quantization": qat_support(current),
         "survived": survival(bufs["int8"], config.clusters, prep.overall)},
        seconds=time.perf_counter() - t,
    ))

    t = time.perf_counter()
    n = min(config.verify_windows, len(data.x_val))
    log(f"lut: TFLM LUT compression, verified on {n} validation windows")
    lut = lut_compress(bufs["int8"], data.x_val[:n])
    lut_bytes: dict[str, dict[str, Any]] = {}
    if lut.verified:
        assert lut.model is not None
        files["int8-lut.tflite"] = lut.model
        lut_bytes["lut"] = _file(lut.model, "int8-lut.tflite")
    stages.append(Stage(
        "lut",
        dict(stages[-1].quality) if lut.verified else {},
        (f"the int8 model's: the LUT model's TFLM outputs are bit-identical to the int8 "
         f"model's on {lut.windows} validation windows") if lut.verified
        else f"none: {lut.message}",
        lut_bytes, {"lut": lut.to_json()}, seconds=time.perf_counter() - t,
    ))
    storage = storage_figures(files, lut, sparse_bytes(
        bufs["int8"], clustered=config.clusters is not None))
    for s in stages:
        s.details["reduction_vs_float32"] = {
            k: round(len(files["float32.tflite"]) / v["bytes"], 2) for k, v in s.bytes.items()
        }
    return CompressionResult(config, stages, files, storage, lut)


def storage_figures(
    files: Mapping[str, bytes], lut: LutResult | None, sparse: dict[str, Any]
) -> dict[str, Any]:
    """The storage figures of compression.json, each with its source."""
    f32 = len(files["float32.tflite"])
    i8 = len(files["int8.tflite"])
    lut_file = files.get("int8-lut.tflite")
    if lut is not None and lut.verified and lut_file is not None and len(lut_file) >= i8:
        # A network whose weights are few next to its graph (the LUT tables, the DECODE
        # operators and their metadata) can grow: the smaller file is the one to flash.
        mcu = {**_file(files["int8.tflite"], "int8.tflite"),
               "why": f"lut verified but not smaller ({len(lut_file)} B >= {i8} B): the int8 file"}
    elif lut is not None and lut.verified and lut_file is not None:
        mcu = {**_file(lut_file, "int8-lut.tflite"), "why": lut.message}
    else:
        why = lut.message if lut is not None else "lut: not run"
        mcu = {**_file(files["int8.tflite"], "int8.tflite"), "why": why}
    deployed = {
        "mcu": mcu,
        "linux": {**_file(files["int8.tflite"], "int8.tflite"),
                  "why": "LiteRT has no DECODE operator: the int8 file"},
    }
    f32_stripped = len(strip_strings(files["float32.tflite"]))
    for d in deployed.values():
        d["reduction_vs_float32"] = round(f32 / d["bytes"], 2)
    mcu["reduction_vs_float32_stripped"] = round(f32_stripped / mcu["bytes"], 2)
    return {
        "storage_float32_bytes": {
            "bytes": f32, "source": "file", "file": "float32.tflite",
            # The LUT file is written without tensor names; the same file stripped alike is
            # the like-for-like baseline of its reduction.
            "stripped_bytes": f32_stripped,
        },
        "storage_int8_bytes": {"bytes": i8, "source": "file", "file": "int8.tflite",
                               "reduction_vs_float32": round(f32 / i8, 2)},
        "storage_deployed_bytes": deployed,
        "storage_sparse_bytes": {**sparse, "reduction_vs_float32": round(f32 / sparse["bytes"],
                                                                         2)},
    }
