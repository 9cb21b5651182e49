"""One contract suite over every registered search space.

Everything a strategy, the surrogate, the store and the report rely on is checked here for
each space, in its default form and in a small, listable form. A new space is tested by
adding its small options to SMALL (a registered space without an entry fails).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from host.data import EcgDatasetConfig
from host.errors import ConfigError
from host.metrics import ANALYTIC_METRICS, MetricKind
from host.spaces.base import BuildOptions, InputSpec, Space, available_spaces
from host.spaces.base import get_space as _get_space
from host.tasks.ecg import EcgClassification

# Options that make each space small enough to list (exhaustive search, Bayesian ranking).
SMALL: dict[str, dict[str, Any]] = {
    "bionet": {"max_blocks": 1, "max_lstm_cells": 32},
    "half": {"kernels": [3], "strides": [2], "multipliers": [1], "filters": [4],
             "pool_strides": [2], "max_depth": 3},
    "data_aware": {"sample_rates": [360, 180], "max_layers": 2, "filters": [2, 4],
                   "kernels": [3], "activations": ["relu"], "dense_units": 4},
    # GOS's pulse-rate starting models: small grids without options (host/spaces/ppg.py)
    "ppg_peaks": {},
    "ppg_cnnlstm": {},
    "ppg_spectral": {},
}
#: the input a space built for the ppg task takes (it refuses any other task when bound)
PPG_INPUT = {"ppg_peaks": "spectral", "ppg_cnnlstm": "raw", "ppg_spectral": "spectral"}
INPUT = InputSpec(64, 1, 2)
TASK = EcgClassification(EcgDatasetConfig(window=64))
# Bytes per input sample a space counts in its input buffer: the int8 window, or the 16-bit
# samples a data-aware space's device buffers before its features.
BUFFER_BYTES_PER_SAMPLE = {"data_aware": 2}


def get_space(name: str, input: InputSpec | None = None, **options: Any) -> Space[Any]:
    """The space bound to an ECG task of `input`'s window (a no-op for most spaces).

    A space of the ppg task is bound to that task instead (bind checks the task only);
    its networks are still built for `input` with the ECG task's head, like every other.
    """
    input = input or InputSpec(256, 1, 2)
    task: Any = EcgClassification(EcgDatasetConfig(window=input.length))
    if name in PPG_INPUT:
        from host.tasks.ppg import PpgDatasetConfig, PulseRate

        task = PulseRate(PpgDatasetConfig(input=PPG_INPUT[name]))
    return _get_space(name, input, task=task, **options)


def test_every_registered_space_is_covered() -> None:
    assert set(available_spaces()) == set(SMALL), "add the new space's small options to SMALL"


@pytest.fixture(params=sorted(SMALL))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def small(name: str) -> Space[Any]:
    return get_space(name, INPUT, **SMALL[name])


def test_options_are_named_with_defaults(name: str) -> None:
    space = get_space(name, INPUT)
    assert space.name == name and set(space.options()) >= set(SMALL[name])
    with pytest.raises(ConfigError, match=f"unknown key space.bogus for space '{name}'"):
        get_space(name, INPUT, bogus=1)
    assert space.describe()["name"] == name


def test_listing_sampling_and_drawing(small: Space[Any]) -> None:
    assert small.enumerable
    archs = small.architectures()
    assert 1 < len(archs) <= small.size()
    assert all(small.contains(a) for a in archs)
    distinct = small.distinct_architectures()
    assert len({a.key() for a in distinct}) == len(distinct) <= len(archs)
    assert all(small.canonical(d) == d for d in distinct)
    sample = small.sample(2, seed=3)
    assert sample == small.sample(2, seed=3) and len(set(sample)) == 2
    with pytest.raises(ConfigError, match="asked for"):
        small.sample(len(archs) + 1)
    rng = random.Random(0)
    drawn = [small.draw(rng) for _ in range(10)]
    assert all(small.contains(a) for a in drawn)
    assert drawn == [small.draw(r) for r in [random.Random(0)] for _ in range(10)]


def test_a_large_space_is_sampled_not_listed(name: str) -> None:
    space = get_space(name, InputSpec(256, 1, 2), max_params=None) if name == "bionet" \
        else get_space(name, InputSpec(256, 1, 2))
    if space.enumerable:
        pytest.skip(f"{name}'s default space is small enough to list")
    with pytest.raises(ConfigError, match="cannot be listed"):
        space.architectures()
    sample = space.sample(5, seed=1)
    assert len(set(sample)) == 5 and all(space.contains(a) for a in sample)
    assert space.contains(space.draw(random.Random(2)))


def test_encodings_round_trip(small: Space[Any]) -> None:
    bounds = small.int_bounds()
    assert [(g.low, g.high) for g in small.genes()] == bounds
    for arch in small.architectures():
        genes = small.encode_int(arch)
        assert len(genes) == len(bounds)
        assert all(lo <= g <= hi for g, (lo, hi) in zip(genes, bounds, strict=True))
        assert small.canonical(small.decode_int(genes)) == small.canonical(arch)
        assert small.from_key(arch.key()) == arch
        if small.has_binary_encoding:
            bits = small.encode(arch)
            assert len(bits) == small.chromosome_length and set(bits) <= {0, 1}
            assert small.decode(bits) == arch
    if not small.has_binary_encoding:
        with pytest.raises(ConfigError, match="no binary chromosome"):
            small.encode(small.architectures()[0])
    with pytest.raises(ConfigError):
        small.from_key("not-a-key-of-any-space")


def test_analytic_costs_and_metrics(small: Space[Any]) -> None:
    names = {m.name for m in small.metrics()}
    assert {m.name for m in ANALYTIC_METRICS} <= names
    assert all(m.kind is MetricKind.ANALYTIC for m in small.metrics())
    for arch in small.architectures():
        c = small.costs(arch)
        assert c.params > 0 and c.macs > 0 and c.flops >= 2 * c.macs
        assert c.storage_float32_bytes == 4 * c.deployed_params
        samples = small.task_for(arch, TASK).input_spec().length
        per_sample = BUFFER_BYTES_PER_SAMPLE.get(small.name, 1)
        assert c.input_buffer_bytes == samples * INPUT.channels * per_sample
        figures = small.analytic(arch)
        assert names <= set(figures), f"{small.name}: metrics without a value"
        assert len(small.features(arch)) >= 3 + len(small.genes())


def test_models_match_costs_and_export_computes_the_same(small: Space[Any]) -> None:
    """The Keras model's parameters are the costs' count, and the exported inference graph
    (batch of one; HALF folds batch norm) computes what the trained model computes."""
    rng = np.random.default_rng(0)
    for arch in small.distinct_architectures()[:3]:
        model = small.build_model(arch, TASK, BuildOptions(seed=0, dropout=0.2))
        assert model.count_params() == small.costs(arch).params, arch.key()
        assert model.output_shape[-1] == INPUT.outputs
        for layer in model.layers:  # non-trivial batch-norm statistics, as after training
            if "BatchNormalization" in type(layer).__name__:
                g, b, mu, v = layer.get_weights()
                layer.set_weights([rng.uniform(0.5, 2, g.shape), rng.normal(0, 0.1, b.shape),
                                   rng.normal(0, 0.1, mu.shape), rng.uniform(0.5, 2, v.shape)])
        export = small.export_model(model, arch, TASK)
        assert export.input_shape[0] == 1
        x = rng.normal(size=(1, *model.input_shape[1:])).astype("float32")
        np.testing.assert_allclose(model(x, training=False).numpy(), export(x).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_strategies_state_what_they_need(name: str) -> None:
    """A strategy that lists the space refuses one that cannot be listed, naming both."""
    from host.search.config import StrategyConfig
    from host.search.strategies import available_strategies, strategy_class

    big = get_space(name, InputSpec(256, 1, 2))
    for strategy in available_strategies():
        cls = strategy_class(strategy)
        settings = StrategyConfig(name=strategy, encoding="integer")
        own_operators = strategy == "danas"  # breeds with the space's mutate and crossover
        if (cls.needs_listing and not big.enumerable) or (own_operators
                                                           and not hasattr(big, "mutate")):
            with pytest.raises(ConfigError, match=f"strategy '{strategy}'.*space '{name}'"):
                cls.check(settings, big)
            continue
        cls.check(settings, big)
        cls.check(settings, get_space(name, INPUT, **SMALL[name]))
