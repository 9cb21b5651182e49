"""Data Aware NAS's space: how the input is sampled and represented, searched with the network.

An architecture is a *data granularity* (sample rate, window, representation and its
parameters; host.tasks.base.Granularity) plus a small convolutional network (Njor et al.,
tinyML 2023: 1-5 Conv2D layers of 2-128 filters, kernel 3 or 5, ReLU or sigmoid, then a
dense layer and the task's head). The task is given its granularity per architecture
(`task_for`), so each network is trained, converted and measured on its own data, and the
input buffer the device must hold is one of its costs.

Where hilnas departs from DANAS, and why (docs/decisions.md, "Data-aware space"):

- the window and the representation's parameters (frame, mel bands, MFCC count) are genes
  too; DANAS fixes them (a 10 s window);
- convolutions are 'same'-padded and each is followed by a 2x max-pooling where the map is
  large enough. DANAS's unpooled 'valid' convolutions feed a Flatten whose dense layer then
  holds most of the weights, so the model size tracks the input size alone, and deep
  networks on short inputs have no valid shape at all;
- a batch normalization of the features comes first (log spectra span some 20 units, MFCCs
  over 100, far from the unit range sigmoid units expect). TFLite folds it into a
  multiply-add;
- two more genes, each a ladder that is one value (DANAS's choice) unless configured:
  `heads` ("flatten", DANAS's Flatten + dense layer, or "pool", a global average pooling
  whose weights do not grow with the input) and `feature_norms` ("batch", or "utterance":
  each window's mean over time is subtracted from its features first, cepstral mean
  normalization, which removes what the microphone and the speaker's voice add to every
  frame). On FSDD with whole speakers held out, the two with shifted training windows took
  the mean accuracy over five held-out speakers from 0.79 (two layers, Flatten) to 0.89
  (three layers, pooled); in a 35-candidate DANAS search they did not help, because its
  one-layer start rarely grows deep enough for a pooled head (docs/decisions.md, "Spoken
  digits on unseen speakers").

The genes are integers (no binary chromosome): indices into the configured ladders, the
number of layers, and per layer the filters, kernel and activation indices. The DANAS
mutation operators (`mutate`: add or remove a layer, a step of the filters or the kernel,
swap an activation, a step of the sample rate, swap the representation; hilnas adds steps
of the window and the representation's parameters) and its crossover are methods of the
space, used by the `danas` strategy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from host.errors import ConfigError
from host.hw.costs import BatchNormSpec, Conv2DSpec, Costs, DenseSpec, LayerSpec, layer_costs
from host.metrics import ANALYTIC_METRICS, MetricKind, MetricSpec
from host.spaces.base import BuildOptions, Gene, InputSpec, RandomSource, Space, register_space

if TYPE_CHECKING:
    from host.tasks.base import Granularity, Task

ACTIVATIONS = {"relu": "r", "sigmoid": "s", "tanh": "t"}
#: the network's head: DANAS's Flatten + dense layer, or a global average pooling
HEADS = ("flatten", "pool")
#: how the features are normalised before the convolutions (module docstring)
FEATURE_NORMS = ("batch", "utterance")
_CODES = {v: k for k, v in ACTIVATIONS.items()}
#: DANAS's halving ladder below the native rate, at most this many steps by default
DEFAULT_RATE_STEPS = 5
#: the hop is this share of the frame (DANAS: 512 of 2048 at 48 kHz; 0.5 is the usual
#: keyword-spotting choice and keeps one gene per spectral parameter)
HOP_FRACTION = 0.5
#: a drawn gene set that names no valid network is redrawn at most this often
MAX_DRAWS = 200

FRONTEND_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("frontend_macs", False, MetricKind.ANALYTIC, "MAC",
               "multiply-accumulates of the feature front end per window (estimated)"),
    MetricSpec("feature_buffer_bytes", False, MetricKind.ANALYTIC, "B",
               "float32 feature map of one window"),
)

Layer = tuple[int, int, str]  # filters, kernel, activation

_KEY = re.compile(
    r"^data_aware-r(?P<rate>\d+)-w(?P<window>[0-9.]+)-(?P<rep>raw|spectrogram|mel|mfcc)"
    r"(?:-f(?P<frame>[0-9.]+))?(?:-m(?P<mels>\d+))?(?:-c(?P<mfcc>\d+))?-L(?P<layers>[0-9krst_]+)"
    r"(?P<pool>-Hpool)?(?P<utt>-Nutt)?$"
)


@dataclass(frozen=True)
class DataAwareArch:
    """A data granularity and a convolutional network (see the module docstring).

    `frame_ms`, `n_mels` and `n_mfcc` are None where the representation has no such
    parameter (the canonical form: a raw input never differs by its frame).
    """

    sample_rate: int
    window_s: float
    representation: str
    frame_ms: float | None
    n_mels: int | None
    n_mfcc: int | None
    layers: tuple[Layer, ...]
    head: str = "flatten"
    feature_norm: str = "batch"

    def key(self) -> str:
        parts = [f"data_aware-r{self.sample_rate}-w{self.window_s:g}-{self.representation}"]
        if self.frame_ms is not None:
            parts.append(f"f{self.frame_ms:g}")
        if self.n_mels is not None:
            parts.append(f"m{self.n_mels}")
        if self.n_mfcc is not None:
            parts.append(f"c{self.n_mfcc}")
        layers = "_".join(f"{f}k{k}{ACTIVATIONS[a]}" for f, k, a in self.layers)
        # DANAS's head and normalization add nothing, so keys of earlier runs still hold
        extra = ("-Hpool" if self.head == "pool" else "") + (
            "-Nutt" if self.feature_norm == "utterance" else "")
        return "-".join(parts) + f"-L{layers}{extra}"

    @classmethod
    def from_key(cls, key: str) -> DataAwareArch:
        m = _KEY.match(key)
        if m is None:
            raise ConfigError(
                f"arch: {key!r} is not a data_aware key like "
                "'data_aware-r4000-w1-mfcc-f32-m40-c13-L8k3r'"
            )
        layers = []
        for part in m["layers"].split("_"):
            lm = re.fullmatch(r"(\d+)k(\d+)([rst])", part)
            if lm is None:
                raise ConfigError(f"arch: layer {part!r} of {key!r} is not like '8k3r'")
            layers.append((int(lm[1]), int(lm[2]), _CODES[lm[3]]))
        return cls(
            int(m["rate"]), float(m["window"]), m["rep"],
            float(m["frame"]) if m["frame"] else None,
            int(m["mels"]) if m["mels"] else None,
            int(m["mfcc"]) if m["mfcc"] else None,
            tuple(layers),
            "pool" if m["pool"] else "flatten",
            "utterance" if m["utt"] else "batch",
        )

    def granularity(self) -> Granularity:
        from host.tasks.base import Granularity

        return Granularity(
            self.sample_rate, self.window_s, self.representation,
            frame_ms=self.frame_ms,
            hop_ms=None if self.frame_ms is None else self.frame_ms * HOP_FRACTION,
            n_mels=self.n_mels, n_mfcc=self.n_mfcc,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "space": "data_aware",
            "key": self.key(),
            "granularity": self.granularity().to_json(),
            "layers": [{"filters": f, "kernel": k, "activation": a} for f, k, a in self.layers],
            "head": self.head,
            "feature_norm": self.feature_norm,
        }


@register_space("data_aware")
class DataAwareSpace(Space[DataAwareArch]):
    """Data granularity x DANAS convolutional networks; must be bound to a task (`bind`).

    Ladders (None: from the task): `sample_rates` (default: the native rate halved up to
    5 times), `windows_s` (default: the task's window), `representations` (default: every
    one the task offers), `frames_ms`, `n_mels`, `n_mfcc` (defaults: the task's own).
    Network: `min_layers`..`max_layers` Conv2D layers with `filters`, `kernels`,
    `activations`, then a ReLU dense layer of `dense_units` (DANAS's 10 for two classes).
    `heads` and `feature_norms` (module docstring) default to DANAS's ("flatten",) and
    ("batch",).
    """

    varies_task: ClassVar[bool] = True
    feature_masks: ClassVar[bool] = True

    def __init__(
        self,
        input: InputSpec,
        *,
        sample_rates: Sequence[int] | None = None,
        windows_s: Sequence[float] | None = None,
        representations: Sequence[str] | None = None,
        frames_ms: Sequence[float] | None = None,
        n_mels: Sequence[int] | None = None,
        n_mfcc: Sequence[int] | None = None,
        min_layers: int = 1,
        max_layers: int = 5,
        filters: Sequence[int] = (2, 4, 8, 16, 32, 64, 128),
        kernels: Sequence[int] = (3, 5),
        activations: Sequence[str] = ("relu", "sigmoid"),
        dense_units: int = 32,
        pool: int = 2,
        heads: Sequence[str] = ("flatten",),
        feature_norms: Sequence[str] = ("batch",),
    ) -> None:
        super().__init__(input)
        self.sample_rates = _ladder("sample_rates", sample_rates, int)
        self.windows_s = _ladder("windows_s", windows_s, float)
        self.representations = _ladder("representations", representations, str)
        self.frames_ms = _ladder("frames_ms", frames_ms, float)
        self.n_mels = _ladder("n_mels", n_mels, int)
        self.n_mfcc = _ladder("n_mfcc", n_mfcc, int)
        for name, value in (("min_layers", min_layers), ("max_layers", max_layers),
                            ("dense_units", dense_units), ("pool", pool)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: must be a positive integer, not {value!r}")
        if min_layers > max_layers:
            raise ConfigError(f"min_layers ({min_layers}) is above max_layers ({max_layers})")
        self.min_layers, self.max_layers = min_layers, max_layers
        self.filters = _ladder("filters", filters, int) or ()
        self.kernels = _ladder("kernels", kernels, int) or ()
        self.activations = _choices("activations", activations, tuple(ACTIVATIONS))
        if not self.filters or not self.kernels or not self.activations:
            raise ConfigError("filters, kernels and activations: each needs at least one value")
        self.dense_units, self.pool = dense_units, pool
        self.heads = _choices("heads", heads, HEADS)
        self.feature_norms = _choices("feature_norms", feature_norms, FEATURE_NORMS)
        self._task: Task | None = None
        self._tasks: dict[Granularity, Task | None] = {}
        #: why a granularity gives no valid input (the task's ConfigError), for the message
        self._invalid: dict[Granularity, str] = {}

    # ------------------------------------------------------------------ the task's data
    def bind(self, task: Task) -> None:
        """Resolve the ladders against the task and check each value (ConfigError)."""
        g = task.granularity()
        if g is None:
            raise ConfigError(
                f"space 'data_aware' searches the data's granularity, and task {task.name!r} "
                "has none (use the ecg or audio task)"
            )
        native = task.native_rate() or g.sample_rate
        rates = self.sample_rates or _halving(int(native))
        above = [r for r in rates if r > native]
        if above:
            raise ConfigError(
                f"sample_rates: {above} Hz above the recordings' {native:g} Hz; upsampling "
                "would invent granularity"
            )
        if any(r <= 0 for r in rates):
            raise ConfigError(f"sample_rates: must be positive, not {list(rates)}")
        reps = self.representations or task.representations()
        unknown = [r for r in reps if r not in task.representations()]
        if unknown:
            raise ConfigError(
                f"representations: task {task.name!r} cannot give {unknown}; it offers "
                f"{list(task.representations())}"
            )
        self.sample_rates = tuple(sorted(set(rates), reverse=True))
        self.windows_s = self.windows_s or (g.window_s,)
        self.representations = tuple(reps)
        self.frames_ms = self.frames_ms or (g.frame_ms or 32.0,)
        self.n_mels = self.n_mels or (g.n_mels or 40,)
        self.n_mfcc = self.n_mfcc or (g.n_mfcc or 13,)
        self._task = task
        self._tasks.clear()
        self._invalid.clear()
        if not any(self._task_of(a) is not None for a in self._data_choices()):
            raise ConfigError("data_aware: no combination of the ladders gives a valid input "
                              "(each window must hold at least one frame)")

    def task_for(self, arch: DataAwareArch, task: Task) -> Task:
        bound = self._valid_task(arch)
        if task is not self._task:
            return task.with_granularity(arch.granularity())
        return bound

    def _bound(self) -> Task:
        if self._task is None:
            raise ConfigError("space 'data_aware' is not bound to a task (get_space(..., task=))")
        return self._task

    def _task_of(self, arch: DataAwareArch) -> Task | None:
        """The task at `arch`'s granularity, None when that granularity is invalid."""
        g = arch.granularity()
        if g not in self._tasks:
            try:
                self._tasks[g] = self._bound().with_granularity(g)
            except ConfigError as exc:
                self._tasks[g] = None
                self._invalid[g] = str(exc)
        return self._tasks[g]

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({k: list(v) if isinstance(v, tuple) else v for k, v in out.items()})
        return out

    # ------------------------------------------------------------------ genes
    def _data_ladders(self) -> list[tuple[str, tuple[Any, ...]]]:
        self._bound()
        return [("sample_rate", self.sample_rates or ()), ("window_s", self.windows_s or ()),
                ("representation", self.representations or ()),
                ("frame_ms", self.frames_ms or ()), ("n_mels", self.n_mels or ()),
                ("n_mfcc", self.n_mfcc or ())]

    def genes(self) -> tuple[Gene, ...]:
        out = [Gene(name, 0, len(values) - 1) for name, values in self._data_ladders()]
        out.append(Gene("layers", self.min_layers, self.max_layers))
        for i in range(self.max_layers):
            out += [Gene(f"filters_{i}", 0, len(self.filters) - 1),
                    Gene(f"kernel_{i}", 0, len(self.kernels) - 1),
                    Gene(f"activation_{i}", 0, len(self.activations) - 1)]
        out += [Gene(name, 0, len(ladder) - 1) for name, ladder in self._network_choices()]
        return tuple(out)

    def _network_choices(self) -> list[tuple[str, tuple[str, ...]]]:
        """The head and normalization ladders that are genes: those with a choice.

        A ladder of DANAS's one value adds no gene, so such a run's chromosomes (and its
        seeded mutations) are what they were before these genes existed.
        """
        return [(name, ladder) for name, ladder in (("head", self.heads),
                                                    ("feature_norm", self.feature_norms))
                if len(ladder) > 1]

    def encode_int(self, arch: DataAwareArch) -> list[int]:
        values = (arch.sample_rate, arch.window_s, arch.representation, arch.frame_ms,
                  arch.n_mels, arch.n_mfcc)
        genes = [_index(ladder, v) for (_, ladder), v in zip(self._data_ladders(), values,
                                                               strict=True)]
        genes.append(len(arch.layers))
        for i in range(self.max_layers):
            if i < len(arch.layers):
                f, k, a = arch.layers[i]
                genes += [_index(self.filters, f), _index(self.kernels, k),
                          _index(self.activations, a)]
            else:
                genes += [0, 0, 0]
        genes += [_index(ladder, getattr(arch, name)) for name, ladder in self._network_choices()]
        return genes

    def decode_int(self, genes: Sequence[int]) -> DataAwareArch | None:
        ladders = self._data_ladders()
        choices = self._network_choices()
        if len(genes) != len(ladders) + 1 + 3 * self.max_layers + len(choices):
            return None
        bounds = self.int_bounds()
        if any(not lo <= int(g) <= hi for g, (lo, hi) in zip(genes, bounds, strict=True)):
            return None
        data = [ladder[int(g)] for (_, ladder), g in zip(ladders, genes, strict=False)]
        n = int(genes[len(ladders)])
        base = len(ladders) + 1
        layers = tuple(
            (self.filters[int(genes[base + 3 * i])], self.kernels[int(genes[base + 3 * i + 1])],
             self.activations[int(genes[base + 3 * i + 2])])
            for i in range(n)
        )
        chosen = {name: ladder[int(g)] for (name, ladder), g
                  in zip(choices, genes[len(genes) - len(choices):], strict=True)}
        arch = self.canonical(DataAwareArch(
            int(data[0]), float(data[1]), str(data[2]), float(data[3]), int(data[4]),
            int(data[5]), layers, chosen.get("head", self.heads[0]),
            chosen.get("feature_norm", self.feature_norms[0])))
        return arch if self._task_of(arch) is not None else None

    # ------------------------------------------------------------------ identity
    def from_key(self, key: str) -> DataAwareArch:
        return DataAwareArch.from_key(key)

    def canonical(self, arch: DataAwareArch) -> DataAwareArch:
        rep = arch.representation
        return replace(
            arch,
            frame_ms=arch.frame_ms if rep != "raw" else None,
            n_mels=arch.n_mels if rep in ("mel", "mfcc") else None,
            n_mfcc=arch.n_mfcc if rep == "mfcc" else None,
        )

    def contains(self, arch: Any) -> bool:
        if not isinstance(arch, DataAwareArch) or self.canonical(arch) != arch:
            return False
        ladders = dict(self._data_ladders())
        rep = arch.representation
        checks = [
            arch.sample_rate in ladders["sample_rate"],
            arch.window_s in ladders["window_s"],
            rep in ladders["representation"],
            rep == "raw" or arch.frame_ms in ladders["frame_ms"],
            rep not in ("mel", "mfcc") or arch.n_mels in ladders["n_mels"],
            rep != "mfcc" or arch.n_mfcc in ladders["n_mfcc"],
            self.min_layers <= len(arch.layers) <= self.max_layers,
            all(f in self.filters and k in self.kernels and a in self.activations
                for f, k, a in arch.layers),
            arch.head in self.heads,
            arch.feature_norm in self.feature_norms,
        ]
        return all(checks) and self._task_of(arch) is not None

    # ------------------------------------------------------------------ listing, sampling
    def _data_choices(self) -> list[DataAwareArch]:
        """One (layer-less) architecture per distinct, valid data granularity."""
        ladders = dict(self._data_ladders())
        seen: dict[str, DataAwareArch] = {}
        for rate in ladders["sample_rate"]:
            for window in ladders["window_s"]:
                for rep in ladders["representation"]:
                    for frame in ladders["frame_ms"]:
                        for mels in ladders["n_mels"]:
                            for mfcc in ladders["n_mfcc"]:
                                a = self.canonical(DataAwareArch(
                                    int(rate), float(window), str(rep), float(frame),
                                    int(mels), int(mfcc), ()))
                                seen.setdefault(a.key(), a)
        return list(seen.values())

    def _networks(self) -> int:
        per_layer = len(self.filters) * len(self.kernels) * len(self.activations)
        stacks = sum(per_layer**n for n in range(self.min_layers, self.max_layers + 1))
        return stacks * len(self.heads) * len(self.feature_norms)

    def size(self) -> int:
        return len(self._data_choices()) * self._networks()

    def architectures(self) -> list[DataAwareArch]:
        if not self.enumerable:
            return super().architectures()
        import itertools

        per_layer = list(itertools.product(self.filters, self.kernels, self.activations))
        nets = [tuple(c) for n in range(self.min_layers, self.max_layers + 1)
                for c in itertools.product(per_layer, repeat=n)]
        return [replace(d, layers=net, head=head, feature_norm=norm)
                for d in self._data_choices() if self._task_of(d)
                for net in nets for head in self.heads for norm in self.feature_norms]

    def sample(self, n: int, seed: int = 0) -> list[DataAwareArch]:
        if self.enumerable:
            return super().sample(n, seed)
        import random

        rng = random.Random(seed)
        out: dict[str, DataAwareArch] = {}
        for _ in range(MAX_DRAWS * max(1, n)):
            a = self.draw(rng)
            out.setdefault(a.key(), a)
            if len(out) == n:
                return list(out.values())
        raise ConfigError(f"sample: found only {len(out)} distinct networks of {n} asked for")

    def draw(self, rng: RandomSource) -> DataAwareArch:
        """A random granularity and a random network of 1..max_layers layers."""
        for _ in range(MAX_DRAWS):
            data = rng.choice(self._data_choices())
            n = rng.randint(self.min_layers, self.max_layers)
            arch = replace(data, layers=tuple(self._random_layer(rng) for _ in range(n)),
                           head=rng.choice(self.heads), feature_norm=rng.choice(self.feature_norms))
            if self._task_of(arch) is not None:
                return arch
        raise ConfigError("data_aware: no valid granularity drawn; check the ladders")

    def trivial(self, rng: RandomSource) -> DataAwareArch:
        """DANAS's trivial start: a random granularity with a one-layer network."""
        arch = self.draw(rng)
        return replace(arch, layers=(self._random_layer(rng),))

    def _random_layer(self, rng: RandomSource) -> Layer:
        return (rng.choice(self.filters), rng.choice(self.kernels), rng.choice(self.activations))

    # ------------------------------------------------------------------ DANAS operators
    def mutate(self, arch: DataAwareArch, rng: RandomSource) -> DataAwareArch:
        """One of DANAS's mutations (and hilnas's window and parameter steps), never a no-op.

        Returns `arch` itself only when no operator can change it (a one-point space).
        """
        for _ in range(MAX_DRAWS):
            child = self._mutate_once(arch, rng)
            if child != arch and self._task_of(child) is not None:
                return child
        return arch

    def _mutate_once(self, arch: DataAwareArch, rng: RandomSource) -> DataAwareArch:
        layers = list(arch.layers)
        choices = self._network_choices()
        op = rng.randint(0, 10 if choices else 9)
        if op == 10:  # another head or normalization (hilnas's genes, where configured)
            name, ladder = rng.choice(choices)
            return replace(arch, **{name: rng.choice(ladder)})
        if op == 0 and len(layers) < self.max_layers:  # a new layer at the end
            layers.append(self._random_layer(rng))
        elif op == 1 and len(layers) > self.min_layers:  # remove one
            del layers[rng.randint(0, len(layers) - 1)]
        elif op in (2, 3, 4) and layers:  # a step of the filters or kernel, or swap activation
            i = rng.randint(0, len(layers) - 1)
            f, k, a = layers[i]
            if op == 2:
                f = _step(self.filters, f, rng)
            elif op == 3:
                k = _step(self.kernels, k, rng)
            else:
                a = rng.choice(self.activations)
            layers[i] = (f, k, a)
        elif op == 5:  # the sample rate one step up or down (DANAS)
            return replace(arch, sample_rate=int(_step(self.sample_rates or (), arch.sample_rate,
                                                       rng)))
        elif op == 6:  # another representation (DANAS)
            rep = rng.choice(self.representations or ())
            g = self._data_defaults(arch)
            return self.canonical(replace(arch, representation=rep, frame_ms=g[0], n_mels=g[1],
                                          n_mfcc=g[2]))
        elif op == 7:  # the window one step (hilnas: DANAS fixes it)
            return replace(arch, window_s=float(_step(self.windows_s or (), arch.window_s, rng)))
        elif op == 8 and arch.frame_ms is not None:  # the frame one step
            return replace(arch, frame_ms=float(_step(self.frames_ms or (), arch.frame_ms, rng)))
        elif op == 9 and arch.n_mels is not None:  # mel bands, or MFCC count, one step
            if arch.n_mfcc is not None and rng.random() < 0.5:
                return replace(arch, n_mfcc=int(_step(self.n_mfcc or (), arch.n_mfcc, rng)))
            return replace(arch, n_mels=int(_step(self.n_mels or (), arch.n_mels, rng)))
        return replace(arch, layers=tuple(layers))

    def _data_defaults(self, arch: DataAwareArch) -> tuple[float, int, int]:
        """Spectral parameters for a representation swap: keep `arch`'s, else the first."""
        return (arch.frame_ms or (self.frames_ms or (32.0,))[0],
                arch.n_mels or (self.n_mels or (40,))[0],
                arch.n_mfcc or (self.n_mfcc or (13,))[0])

    def crossover(self, a: DataAwareArch, b: DataAwareArch,
                  rng: RandomSource) -> DataAwareArch:
        """A child with one parent's granularity and the other's network (DANAS's split)."""
        data, net = (a, b) if rng.random() < 0.5 else (b, a)
        child = replace(data, layers=net.layers, head=net.head, feature_norm=net.feature_norm)
        return child if self._task_of(child) is not None else data

    # ------------------------------------------------------------------ costs
    def layer_specs(self, arch: DataAwareArch) -> list[LayerSpec]:
        time, bins, channels = self._feature_shape(arch)
        specs: list[LayerSpec] = [BatchNormSpec(time * bins, channels)]
        for f, k, _ in arch.layers:
            kw = min(k, bins) if bins > 1 else 1
            specs.append(Conv2DSpec(time, bins, channels, f, k, kw))
            time, bins = _pooled(time, self.pool), _pooled(bins, self.pool)
            channels = f
        # the pooled head averages (time x bins) positions: adds, no weights (counted in
        # the dense layer's inputs otherwise)
        flat = channels if arch.head == "pool" else time * bins * channels
        specs.append(DenseSpec(flat, self.dense_units))
        specs.append(DenseSpec(self.dense_units, self.input.outputs))
        return specs

    def _feature_shape(self, arch: DataAwareArch) -> tuple[int, int, int]:
        return self._valid_task(arch).feature_shape()

    def _valid_task(self, arch: DataAwareArch) -> Task:
        task = self._task_of(arch)
        if task is None:
            why = self._invalid.get(arch.granularity(), "")
            raise ConfigError(f"arch {arch.key()}: its granularity gives the task no valid input"
                              + (f" ({why})" if why else ""))
        return task

    def costs(self, arch: DataAwareArch) -> Costs:
        c = layer_costs(self.layer_specs(arch))
        return replace(c, input_buffer_bytes=self._valid_task(arch).input_costs().buffer_bytes)

    def metrics(self) -> tuple[MetricSpec, ...]:
        return (*ANALYTIC_METRICS, *FRONTEND_METRICS)

    def estimates(self, arch: DataAwareArch) -> dict[str, float]:
        c = self._valid_task(arch).input_costs()
        return {"frontend_macs": float(c.frontend_macs),
                "feature_buffer_bytes": float(c.feature_buffer_bytes)}

    def estimate_source(self) -> str:
        return "estimated (analytic front-end model)"

    def features(self, arch: DataAwareArch) -> list[float]:
        c = self.costs(arch)
        return [math.log1p(c.params), math.log1p(c.macs), math.log1p(c.storage_int8_bytes),
                math.log1p(c.input_buffer_bytes), *map(float, self.encode_int(arch))]

    # ------------------------------------------------------------------ models
    def build_model(self, arch: DataAwareArch, task: Task,
                    options: BuildOptions | None = None) -> Any:
        """Input window -> the task's features -> BN -> Conv2D/pool stack -> dense -> head."""
        from host.train.tfenv import import_keras

        keras = import_keras()
        opts = options or BuildOptions()
        task = self.task_for(arch, task)
        spec = task.input_spec()

        def init(i: int) -> Any:  # one seeded initializer per layer (Keras warns on reuse)
            return keras.initializers.GlorotUniform(None if opts.seed is None else opts.seed + i)
        inp = keras.Input((spec.length, spec.channels), batch_size=opts.batch_size,
                          name="window")
        h = task.features(keras, inp)
        if len(h.shape) == 3:  # (time, channels): a raw window as a one-bin map
            h = keras.layers.Reshape((int(h.shape[1]), 1, int(h.shape[2])))(h)
        if arch.feature_norm == "utterance":
            # each window's mean over time, subtracted: AVERAGE_POOL_2D and a broadcast SUB,
            # both int8 builtins of TFLite and TFLite Micro
            mean = keras.layers.AveragePooling2D((int(h.shape[1]), 1), name="utterance_mean")(h)
            h = keras.layers.Subtract(name="utterance_norm")([h, mean])
        h = keras.layers.BatchNormalization(name="feature_norm")(h)
        # SpecAugment's masks as dropout of whole frames and whole bins (training only).
        # After the normalization a dropped value sits at the features' mean.
        frames, bins = int(h.shape[1]), int(h.shape[2])
        if opts.time_mask:
            h = keras.layers.Dropout(opts.time_mask, noise_shape=(None, frames, 1, 1),
                                     seed=opts.seed, name="time_mask")(h)
        if opts.bin_mask and bins > 1:
            h = keras.layers.Dropout(opts.bin_mask, noise_shape=(None, 1, bins, 1),
                                     seed=None if opts.seed is None else opts.seed + 1,
                                     name="bin_mask")(h)
        for i, (f, k, a) in enumerate(arch.layers):
            time, bins = int(h.shape[1]), int(h.shape[2])
            kernel = (k, min(k, bins) if bins > 1 else 1)
            h = keras.layers.Conv2D(f, kernel, padding="same", activation=a,
                                    kernel_initializer=init(i), name=f"conv{i}")(h)
            pool = (self.pool if time >= self.pool else 1, self.pool if bins >= self.pool else 1)
            if pool != (1, 1):
                h = keras.layers.MaxPooling2D(pool, name=f"pool{i}")(h)
        if arch.head == "pool":
            h = keras.layers.GlobalAveragePooling2D(name="global_pool")(h)
        else:
            h = keras.layers.Flatten()(h)
        if opts.dropout:
            h = keras.layers.Dropout(opts.dropout, seed=opts.seed)(h)
        h = keras.layers.Dense(self.dense_units, activation="relu",
                               kernel_initializer=init(len(arch.layers)),
                               name="dense")(h)
        return keras.Model(inp, task.head(keras, h), name=_model_name(arch))


def _model_name(arch: DataAwareArch) -> str:
    return "".join(c if c.isalnum() else "_" for c in arch.key())


def _pooled(size: int, pool: int) -> int:
    return size // pool if size >= pool else size


def _ladder(name: str, values: Sequence[Any] | None, kind: type) -> tuple[Any, ...] | None:
    if values is None:
        return None
    if isinstance(values, (str, int, float)):
        raise ConfigError(f"{name}: give a list, not {values!r}")
    try:
        out = tuple(kind(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if not out:
        raise ConfigError(f"{name}: give at least one value")
    if len(set(out)) != len(out):
        raise ConfigError(f"{name}: {list(values)} repeats a value")
    return out


def _choices(name: str, values: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    out = _ladder(name, values, str) or ()
    unknown = [v for v in out if v not in allowed]
    if unknown:
        raise ConfigError(f"{name}: unknown {unknown}; choose from {list(allowed)}")
    return out


def _halving(native: int) -> tuple[int, ...]:
    rates = [native]
    while len(rates) < DEFAULT_RATE_STEPS and rates[-1] % 2 == 0:
        rates.append(rates[-1] // 2)
    return tuple(rates)


def _index(ladder: Sequence[Any], value: Any) -> int:
    """Index of `value` in a ladder (0 for a parameter the representation does not have)."""
    if value is None:
        return 0
    try:
        return list(ladder).index(value)
    except ValueError:
        raise ConfigError(f"{value!r} is not in the space's ladder {list(ladder)}") from None


def _step(ladder: Sequence[Any], value: Any, rng: RandomSource) -> Any:
    """The ladder's neighbour of `value`, one step up or down (DANAS's increase/decrease)."""
    values = sorted(ladder)
    if len(values) < 2:
        return value
    i = values.index(value) if value in values else 0
    j = i + (1 if rng.random() < 0.5 else -1)
    j = min(max(j, 0), len(values) - 1)
    if j == i:
        j = i - 1 if i > 0 else i + 1
    return values[j]
