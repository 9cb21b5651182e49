"""`[compress] mode = "joint"`: compression genes searched with the architecture.

BioNetExplorer compresses its front in a second stage (`mode = "front"`,
host/compress/front.py). In the joint mode the compression settings are genes of the
chromosome instead: every candidate is a network *and* how it is compressed, and the search
trades them off together, measured on the compressed files.

`JointCompressionSpace` wraps the run's space (any space whose deployed graph is its trained
one) and appends three genes, each an index into a configured ladder:

- `compress_channels`: the fraction of every prunable channel group removed (`[compress]
  channels`, a list in this mode; structured pruning, host/compress/channels.py);
- `compress_sparsity`: the magnitude-pruning target (`[compress] sparsity`);
- `compress_clusters`: the k of k-means weight sharing (`[compress] clusters`).

A candidate's key is its network's key plus its compression point
(`bionet-b1-x1-l16+c0.5-s0.5-k4`). Every candidate with the same network shares one training
(`network_key`); the candidate pipeline then compresses the trained network at the
candidate's point (`compression`), and the files a device runs are what the devices measure.
Strategies need nothing new: the genes are integers like the others, and with the paper's
binary chromosome each ladder index takes ceil(log2(len)) more bits (an index past the
ladder is an invalid chromosome, as the base space's own invalid codes are).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from host.errors import ConfigError
from host.hw.costs import Costs
from host.metrics import MetricKind, MetricSpec
from host.spaces.base import BuildOptions, Gene, RandomSource, Space

if TYPE_CHECKING:
    from host.tasks.base import Task

#: The figures the compression stage gives a joint candidate (objectives and constraints).
JOINT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("deployed_mcu_bytes", False, MetricKind.COMPRESSED, "B",
               "the compressed file an MCU runs (LUT if it verified in TFLM, else int8)"),
    MetricSpec("deployed_linux_bytes", False, MetricKind.COMPRESSED, "B",
               "the compressed int8 file LiteRT runs (Pi, phone, PYNQ's ARM)"),
    MetricSpec("compression_ratio_mcu", True, MetricKind.COMPRESSED, "x",
               "the float32 file's bytes over the MCU file's"),
)

_SUFFIX = re.compile(r"^(?P<base>.+)\+c(?P<c>[0-9.]+)-s(?P<s>[0-9.]+)-k(?P<k>[0-9]+)$")


@dataclass(frozen=True)
class CompressionPoint:
    """How one candidate is compressed: channels removed, sparsity, clusters."""

    channels: float
    sparsity: float
    clusters: int

    def suffix(self) -> str:
        return f"c{self.channels:g}-s{self.sparsity:g}-k{self.clusters}"

    def to_json(self) -> dict[str, Any]:
        return {"channels": self.channels, "sparsity": self.sparsity, "clusters": self.clusters}


@dataclass(frozen=True)
class CompressedArch:
    """A network of the base space with its compression point."""

    base: Any  # the base space's architecture
    point: CompressionPoint

    def key(self) -> str:
        return f"{self.base.key()}+{self.point.suffix()}"

    def to_json(self) -> dict[str, Any]:
        return {**self.base.to_json(), "compression": self.point.to_json()}


def _bits(n: int) -> int:
    """Bits of a binary gene that indexes a ladder of `n` values (0 for a single value)."""
    return math.ceil(math.log2(n)) if n > 1 else 0


class JointCompressionSpace(Space[CompressedArch]):
    """The run's space with compression genes appended (see the module docstring)."""

    def __init__(self, base: Space[Any], channels: Sequence[float],
                 sparsity: Sequence[float], clusters: Sequence[int]) -> None:
        super().__init__(base.input)
        self.base = base
        self.name = base.name  # type: ignore[misc]  # the trained networks are the base's
        self.has_binary_encoding = base.has_binary_encoding  # type: ignore[misc]
        self.output_logits = base.output_logits  # type: ignore[misc]
        self.varies_task = base.varies_task  # type: ignore[misc]
        self.feature_masks = base.feature_masks  # type: ignore[misc]
        self.ladders: dict[str, tuple[float | int, ...]] = {
            "channels": tuple(float(c) for c in channels),
            "sparsity": tuple(float(s) for s in sparsity),
            "clusters": tuple(int(k) for k in clusters),
        }
        for name, ladder in self.ladders.items():
            if not ladder:
                raise ConfigError(f"compress.{name}: a joint search needs at least one value")
        self.points = [
            CompressionPoint(float(c), float(s), int(k))
            for c in self.ladders["channels"] for s in self.ladders["sparsity"]
            for k in self.ladders["clusters"]
        ]

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(),
                "compression_genes": {k: list(v) for k, v in self.ladders.items()}}

    def bind(self, task: Task) -> None:
        self.base.bind(task)

    def task_for(self, arch: CompressedArch, task: Task) -> Task:
        return self.base.task_for(arch.base, task)

    # ------------------------------------------------------------------ the pipeline's hooks
    def network_key(self, key: str) -> str:
        return self.from_key(key).base.key()

    def compression(self, arch: CompressedArch) -> CompressionPoint | None:
        return arch.point

    # ------------------------------------------------------------------ genes
    def genes(self) -> tuple[Gene, ...]:
        return (*self.base.genes(),
                *(Gene(f"compress_{n}", 0, len(v) - 1) for n, v in self.ladders.items()))

    def _indices(self, point: CompressionPoint) -> list[int]:
        return [self.ladders["channels"].index(point.channels),
                self.ladders["sparsity"].index(point.sparsity),
                self.ladders["clusters"].index(point.clusters)]

    def _point(self, indices: Sequence[int]) -> CompressionPoint | None:
        values = []
        for i, ladder in zip(indices, self.ladders.values(), strict=True):
            if not 0 <= int(i) < len(ladder):
                return None
            values.append(ladder[int(i)])
        return CompressionPoint(float(values[0]), float(values[1]), int(values[2]))

    def encode_int(self, arch: CompressedArch) -> list[int]:
        return [*self.base.encode_int(arch.base), *self._indices(arch.point)]

    def decode_int(self, genes: Sequence[int]) -> CompressedArch | None:
        n = len(self.base.genes())
        base = self.base.decode_int(genes[:n])
        point = self._point(genes[n:])
        return None if base is None or point is None else CompressedArch(base, point)

    @property
    def chromosome_length(self) -> int:
        return self.base.chromosome_length + sum(_bits(len(v)) for v in self.ladders.values())

    def encode(self, arch: CompressedArch) -> list[int]:
        bits = list(self.base.encode(arch.base))
        for index, ladder in zip(self._indices(arch.point), self.ladders.values(), strict=True):
            width = _bits(len(ladder))
            bits += [(index >> (width - 1 - b)) & 1 for b in range(width)]
        return bits

    def decode(self, bits: Sequence[int]) -> CompressedArch | None:
        n = self.base.chromosome_length
        base = self.base.decode(bits[:n])
        indices, at = [], n
        for ladder in self.ladders.values():
            width = _bits(len(ladder))
            indices.append(int("".join(str(int(b)) for b in bits[at:at + width]) or "0", 2))
            at += width
        point = self._point(indices)
        return None if base is None or point is None else CompressedArch(base, point)

    # ------------------------------------------------------------------ identity
    def from_key(self, key: str) -> CompressedArch:
        m = _SUFFIX.match(key)
        if m is None:
            raise ConfigError(
                f"{key!r} is not a key of a joint compression search (NETWORK+cC-sS-kK, "
                "e.g. bionet-b1-x1-l16+c0.5-s0.5-k4)"
            )
        point = CompressionPoint(float(m["c"]), float(m["s"]), int(m["k"]))
        return CompressedArch(self.base.from_key(m["base"]), point)

    def canonical(self, arch: CompressedArch) -> CompressedArch:
        return CompressedArch(self.base.canonical(arch.base), arch.point)

    def contains(self, arch: Any) -> bool:
        return isinstance(arch, CompressedArch) and self.base.contains(arch.base) \
            and arch.point in self.points

    # ------------------------------------------------------------------ listing, sampling
    def size(self) -> int:
        return self.base.size() * len(self.points)

    def architectures(self) -> list[CompressedArch]:
        return [CompressedArch(a, p) for a in self.base.architectures() for p in self.points]

    def draw(self, rng: RandomSource) -> CompressedArch:
        return CompressedArch(self.base.draw(rng), rng.choice(self.points))

    # ------------------------------------------------------------------ costs (the network's)
    def costs(self, arch: CompressedArch) -> Costs:
        return self.base.costs(arch.base)

    def metrics(self) -> tuple[MetricSpec, ...]:
        return (*self.base.metrics(), *JOINT_METRICS)

    def estimates(self, arch: CompressedArch) -> dict[str, float]:
        return self.base.estimates(arch.base)

    def estimate_source(self) -> str:
        return self.base.estimate_source()

    def features(self, arch: CompressedArch) -> list[float]:
        return [*self.base.features(arch.base), *map(float, self._indices(arch.point))]

    # ------------------------------------------------------------------ models (the network's)
    def build_model(self, arch: CompressedArch, task: Task,
                    options: BuildOptions | None = None) -> Any:
        return self.base.build_model(arch.base, task, options)

    def aux_branch(self, model: Any, task: Task) -> tuple[Any, list[Any]] | None:
        return self.base.aux_branch(model, task)

    def export_model(self, trained: Any, arch: CompressedArch, task: Task) -> Any:
        return self.base.export_model(trained, arch.base, task)

