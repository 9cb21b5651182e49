"""Grassroots Operator Search (host/adapt): graphs, Algorithm 1, and a real adaptation.

The graph tests build every instruction with real tf-keras layers; the end-to-end test
trains a small CNN+LSTM on real TROIKA windows and adapts it on the real local LiteRT agent.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from host.adapt.graph import (
    INPUT,
    INSTRUCTIONS,
    MAX_EDGES,
    MAX_NODES,
    GraphError,
    NotExpressible,
    OperatorGraph,
    crossover,
    graph_of_layer,
    mutate,
    node,
)
from host.adapt.model import ChainModel
from host.adapt.select import latency_by_operator, select
from host.errors import ConfigError


def conv_graph(t: int = 40, c: int = 5, f: int = 8) -> OperatorGraph:
    return OperatorGraph((t, c), (t, f), (
        node("w", "xcorr", [INPUT], filters=f, kernel=5, dilation=1, depthwise=False, bias=True),
        node("a", "act", ["w"], fn="relu", alpha=0.1)), "a").check()


def lstm_graph(t: int = 40, c: int = 8, u: int = 8) -> OperatorGraph:
    return OperatorGraph((t, c), (u,), (
        node("w", "recurrent", [INPUT], cell="lstm", units=u, sequences=False),), "w").check()


@pytest.fixture(scope="module")
def keras():
    from host.train.tfenv import import_keras

    return import_keras()


# ---------------------------------------------------------------------- the graph
def test_graph_checks_shapes_size_and_prunes_unused_nodes():
    g = conv_graph()
    assert g.n_nodes == 3 and g.n_edges == 2
    assert g.param_count() == 5 * 5 * 8 + 8
    assert g.equation() == "t0 = xcorr(x; W 5x5->8) + b; y = relu(t0)"
    # an unused branch is pruned
    dangling = OperatorGraph(g.in_shape, g.out_shape, (*g.nodes, node("u", "sqrt", ["w"])), "a")
    assert [n.uid for n in dangling.check().nodes] == ["w", "a"]
    # the output shape is fixed by the model
    wrong = OperatorGraph((40, 5), (40, 16), g.nodes, "a")
    with pytest.raises(GraphError, match=r"gives \(40, 8\).*needs \(40, 16\)"):
        wrong.check()
    # binary nodes need equal shapes
    bad = OperatorGraph((40, 5), (40, 8), (*g.nodes, node("b", "add", ["a", INPUT])), "b")
    with pytest.raises(GraphError, match="shapes differ"):
        bad.check()
    # GOS's size limits
    chain = [node("n0", "act", [INPUT], fn="relu", alpha=0.1)]
    for i in range(1, MAX_NODES):
        chain.append(node(f"n{i}", "act", [f"n{i - 1}"], fn="tanh", alpha=0.1))
    with pytest.raises(GraphError, match=f"1 < N <= {MAX_NODES}"):
        OperatorGraph((4, 2), (4, 2), tuple(chain), chain[-1].uid).check()
    assert MAX_EDGES == 25


def test_mutations_keep_graphs_valid_and_change_them():
    rng = random.Random(0)
    for start in (conv_graph(), lstm_graph()):
        population = [start]
        changed = 0
        for _ in range(150):
            g, what = mutate(rng.choice(population), rng)
            g.check()  # every mutant is a valid operator with the same shapes
            assert g.in_shape == start.in_shape and g.out_shape == start.out_shape
            changed += g.key() != start.key()
            population.append(g)
        assert changed > 100
        for _ in range(100):
            a, b = crossover(rng.choice(population), rng.choice(population), rng)
            assert a.is_valid() and b.is_valid()
    ops = {n.op for g in population for n in g.nodes}
    assert len(ops) >= 6  # the search reaches many instructions, not one


def test_replacing_a_vector_output_by_a_sequence_adds_an_aggregation():
    rng = random.Random(3)
    seen = set()
    for _ in range(300):
        g, what = mutate(lstm_graph(), rng)
        if what.startswith("replace recurrent by xcorr"):
            assert g.nodes[-1].op == "reduce"  # GOS's "reshape" to the fixed output shape
            seen.add(what)
    assert seen


def test_every_instruction_builds_and_keeps_the_declared_shape(keras):
    x_seq = keras.Input((12, 4))
    for name, ins in INSTRUCTIONS.items():
        params = {k: v[0] for k, v in ins.ladders.items()}
        if name == "xcorr":
            params["kernel"] = 3
        inputs = [INPUT] * ins.arity
        g0 = OperatorGraph((12, 4), (12, 4), (node("n", name, inputs, **params),), "n")
        shape = g0.shapes()["n"]
        g = OperatorGraph((12, 4), shape, g0.nodes, "n").check()
        y, layers = g.build(keras, x_seq, f"t_{name}")
        assert tuple(y.shape[1:]) == shape, name
        assert layers["n"] is not None


def test_original_graph_with_its_weights_computes_the_layer(keras):
    x = np.random.default_rng(0).normal(size=(3, 40, 5)).astype(np.float32)
    for layer in (keras.layers.Conv1D(8, 5, padding="same", activation="relu"),
                  keras.layers.Dense(6, activation="tanh"),
                  keras.layers.LSTM(8, return_sequences=True)):
        inp = keras.Input((40, 5))
        ref = keras.Model(inp, layer(inp))
        g, weights = graph_of_layer(layer, (40, 5), tuple(ref.output_shape[1:]))
        inp2 = keras.Input((40, 5))
        y, _ = g.build(keras, inp2, "copy", weights)
        np.testing.assert_allclose(keras.Model(inp2, y).predict(x, verbose=0),
                                   ref.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_a_node_whose_input_changed_upstream_starts_from_its_initializer(keras):
    """A matmul inserted before the original one keeps that node's uid but not its shape.

    Found in a Nano 33 BLE adaptation: `x @ W[500x32]; W[32x64]` was rejected with
    tf-keras's "weight shape (32, 64) is not compatible with provided weight shape
    (500, 64)" instead of being tried.
    """
    from dataclasses import replace

    dense = keras.layers.Dense(6, activation="tanh", name="d")
    inp = keras.Input((10,))
    keras.Model(inp, dense(inp))
    g, weights = graph_of_layer(dense, (10,), (6,))
    first = g.nodes[0]
    assert first.op == "matmul" and first.inputs == (INPUT,) and first.uid in weights
    pre = node("pre", "matmul", [INPUT], units=3, bias=False)
    moved = OperatorGraph((10,), (6,), (pre, replace(first, inputs=("pre",)), *g.nodes[1:]),
                          g.output).check()
    y, layers = moved.build(keras, keras.Input((10,)), "moved", weights)
    kernel = layers[first.uid].get_weights()[0]
    assert kernel.shape == (3, 6)  # built for what it now receives, from the initializer
    assert tuple(y.shape[1:]) == (6,)
    # an unchanged graph still inherits its weights
    _, same = g.build(keras, keras.Input((10,)), "same", weights)
    np.testing.assert_array_equal(same[first.uid].get_weights()[0], weights[first.uid][0])


def test_layers_without_a_graph_are_named_with_the_reason(keras):
    bn = keras.layers.BatchNormalization(name="bn")
    inp = keras.Input((10, 3))
    keras.Model(inp, bn(inp))
    with pytest.raises(NotExpressible, match="bn: no instruction graph for a BatchNormalization"):
        graph_of_layer(bn, (10, 3), (10, 3))
    strided = keras.layers.Conv1D(4, 3, strides=2, name="s2")
    keras.Model(inp, strided(inp))
    with pytest.raises(NotExpressible, match="s2: Conv1D with strides"):
        graph_of_layer(strided, (10, 3), (4, 4))


# ---------------------------------------------------------------------- Algorithm 1
def small_model(keras, with_bn: bool = False):
    inp = keras.Input((40, 5))
    x = keras.layers.Conv1D(8, 5, padding="same", activation="relu", name="conv")(inp)
    if with_bn:
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.LSTM(8, return_sequences=True, name="lstm1")(x)
    x = keras.layers.LSTM(8, name="lstm2")(x)
    x = keras.layers.Dense(1, name="out_unit")(x)
    return keras.Model(inp, keras.layers.Rescaling(60.0, offset=120.0, name="out")(x))


def test_chain_model_lists_operators_and_skips_with_reasons(keras):
    chain = ChainModel.of(small_model(keras, with_bn=True))
    names = [op.name for op in chain.operators]
    assert names == ["conv", "bn", "lstm1", "lstm2", "out_unit", "out"]
    by = {op.name: op for op in chain.operators}
    assert by["bn"].skipped and "BatchNormalization" in by["bn"].skipped
    assert by["out"].original is None and by["out"].skipped is None  # weightless: kept
    assert by["lstm2"].original.equation() == "y = LSTM8(x; last)"
    # not a chain: refused with the reason
    inp = keras.Input((10, 2))
    a = keras.layers.Dense(3, name="a")(inp)
    b = keras.layers.Dense(3, name="b")(inp)
    with pytest.raises(ConfigError, match="does not read the layer before it"):
        ChainModel.of(keras.Model(inp, keras.layers.Add()([a, b])))


@dataclass
class Timing:
    index: int
    op: str
    mean_us: float


def test_algorithm1_latency_then_parameters_then_never_twice(keras):
    chain = ChainModel.of(small_model(keras))
    lat = {"conv": 5.0, "lstm1": 100.0, "lstm2": 98.0, "out_unit": 1.0}
    s = select(chain, deployable=True, latency_us=lat)
    # lstm1 and lstm2 are within 5%: parameters decide (lstm1: 8*4*(5+... ) vs lstm2 same)
    assert s is not None and s.operators[0] in ("lstm1", "lstm2")
    assert "latency" in s.criterion
    lat2 = {"conv": 5.0, "lstm1": 100.0, "lstm2": 50.0, "out_unit": 1.0}
    assert select(chain, deployable=True, latency_us=lat2).operators == ("lstm1",)
    # N_o similar operators: the two LSTMs compute different things (sequence vs last)
    assert select(chain, deployable=True, latency_us=lat2, n_similar=2).operators == ("lstm1",)
    # a model that does not deploy: the operator with the most parameters
    s = select(chain, deployable=False, latency_us=None)
    params = {op.name: op.param_count() for op in chain.operators}
    assert s.operators == (max(params, key=params.get),) and "parameters" in s.criterion
    # an operator picked once is not picked again
    for op in chain.operators:
        if op.name == "lstm1":
            op.adapted = True
    assert select(chain, deployable=True, latency_us=lat2).operators == ("lstm2",)
    for op in chain.operators:
        op.adapted = True
    assert select(chain, deployable=True, latency_us=lat2) is None


@pytest.fixture(scope="module")
def ppg_raw():
    from host.tasks.ppg import PpgDatasetConfig, PulseRate

    task = PulseRate(PpgDatasetConfig(input="raw", sample_rate=10))
    return task, task.load()


def test_profile_time_is_charged_to_the_layers(keras, ppg_raw):
    from host.export.tflite import convert

    task, data = ppg_raw
    inp = keras.Input(data.x_train.shape[1:])
    x = keras.layers.Conv1D(8, 5, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.LSTM(8, return_sequences=True, name="lstm1")(x)
    x = keras.layers.LSTM(8, name="lstm2")(x)
    model = keras.Model(inp, task.head(keras, x))
    blob = convert(model, "int8", representative=data.x_train[:50])
    chain = ChainModel.of(model)
    from host.export.flatbuf import op_outputs

    kinds = [k for k, _ in op_outputs(blob)]
    timings = [Timing(i, k, 10.0 * (i + 1)) for i, k in enumerate(kinds)]
    per, unattributed = latency_by_operator(chain, blob, timings)
    lstm_times = [t.mean_us for t in timings if t.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert [per["lstm1"], per["lstm2"]] == lstm_times  # one fused LSTM each, in order
    assert per["conv"] > 0 and per["out_unit"] > 0
    assert sum(per.values()) + unattributed == pytest.approx(sum(t.mean_us for t in timings))


# ---------------------------------------------------------------------- end to end
def test_adapt_on_the_local_device_end_to_end(tmp_path: Path, keras, ppg_raw):
    """A trained CNN+LSTM adapted on the real local LiteRT agent: measured, not guessed."""
    from host.adapt.report import write_outputs
    from host.adapt.search import AdaptConfig, Adapter
    from host.fleet import open_device

    task, data = ppg_raw
    keras.utils.set_random_seed(0)
    inp = keras.Input(data.x_train.shape[1:])
    x = keras.layers.Conv1D(8, 5, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.LSTM(8, return_sequences=True, name="lstm1")(x)
    x = keras.layers.LSTM(8, name="lstm2")(x)
    model = keras.Model(inp, task.head(keras, x))
    model.compile(keras.optimizers.Adam(3e-3), task.loss(keras))
    model.fit(data.x_train, data.y_train, epochs=2, batch_size=64, verbose=0)
    lines: list[str] = []
    config = AdaptConfig(max_layers=1, population=4, generations=0, finetune_epochs=1,
                         quality_margin=100.0, measure_seconds=1.0)
    with open_device("local") as device:
        adapter = Adapter(ChainModel.of(model), task, data, device, config,
                          metadata={"task": task.name, "data": task.identity()},
                          progress=lines.append)
        result = adapter.run()
        summary = write_outputs(result, tmp_path)
    assert result.base.latency_source == "measured" and result.base.latency_us > 0
    step = summary["steps"][0]
    assert step["operator"][0] in ("lstm1", "lstm2")  # the LSTMs dominate the profile
    evs = summary["evaluations"]
    assert len(evs) == 4 and evs[0]["origin"] == "original"
    measured = [e for e in evs if e["latency_us"] is not None]
    assert measured and all(e["latency_source"] == "measured" for e in measured)
    for e in evs:  # a candidate either has device figures or a recorded reason
        assert e["latency_us"] is not None or e["failure"]
    # with a wide margin the fastest measured variant is taken if it beats the original
    if step["accepted"]:
        assert step["after"]["latency_us"] < step["before"]["latency_us"]
        assert summary["final"]["latency_us"] == step["after"]["latency_us"]
    for name in ("adapted.keras", "adapted-int8.tflite", "original-int8.tflite", "adapt.json",
                 "adapt.md", "front.png"):
        assert (tmp_path / name).stat().st_size > 0
    from host.export.flatbuf import read_metadata

    meta = read_metadata((tmp_path / "adapted-int8.tflite").read_bytes())
    assert meta["task"] == "ppg" and meta["adaptation"]["steps"][0]["operator"] == step["operator"]
    json.loads((tmp_path / "adapt.json").read_text())
    # the saved adapted model loads back (its Instruction layers are registered)
    from host.train.tfenv import load_keras_model

    reloaded = load_keras_model(tmp_path / "adapted.keras")
    assert reloaded.output_shape == (None, 1)


def test_adapt_config_names_the_bad_key():
    from host.adapt.search import AdaptConfig

    with pytest.raises(ConfigError, match="population: must be a multiple of 4"):
        AdaptConfig(population=6)
    with pytest.raises(ConfigError, match="max_layers"):
        AdaptConfig(max_layers=0)
    with pytest.raises(ConfigError, match="target_speedup"):
        AdaptConfig(target_speedup=0.5)


def test_a_sequence_may_shorten_where_every_later_layer_takes_any_length(keras):
    chain = ChainModel.of(small_model(keras))
    by = {op.name: op for op in chain.operators}
    # conv and lstm1 feed LSTMs up to lstm2, which aggregates over time: free length
    assert by["conv"].original.free_length and by["lstm1"].original.free_length
    assert not by["lstm2"].original.free_length  # a vector: nothing to shorten
    pooled = OperatorGraph(by["lstm1"].in_shape, by["lstm1"].out_shape, (
        node("p", "pool", [INPUT], kind="max", size=2),
        node("w", "recurrent", ["p"], cell="lstm", units=8, sequences=True)), "w",
        free_length=True).check()
    assert pooled.output_shape() == (20, 8)
    # a model with Flatten after the sequence: its length is fixed
    inp = keras.Input((40, 5))
    x = keras.layers.Conv1D(4, 3, padding="same", name="c")(inp)
    flat = ChainModel.of(keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(x))))
    assert not flat.operators[0].original.free_length
    with pytest.raises(GraphError, match=r"needs \(40, 4\)"):
        OperatorGraph((40, 5), (40, 4), (node("p", "pool", [INPUT], kind="max", size=2),
                                         node("w", "xcorr", ["p"], filters=4, kernel=3,
                                              dilation=1, depthwise=False, bias=True)),
                      "w").check()
    # replacing lstm1 by the pooled graph shortens what lstm2 sees; the chain follows
    adapted = chain.with_replacement(["lstm1"], pooled, {})
    after = {op.name: op for op in adapted.operators}
    assert after["lstm1"].out_shape == (20, 8) and after["lstm2"].in_shape == (20, 8)
    assert after["lstm2"].original.in_shape == (20, 8)
    model, _ = adapted.build(keras)
    assert model.output_shape == (None, 1)


def test_hilnas_adapt_command_on_a_trained_starting_model(tmp_path: Path, capsys):
    """`hilnas train --task ppg` then `hilnas adapt` on it, through the CLI, on LiteRT."""
    from host.cli import main

    trained = tmp_path / "peaks"
    assert main(["train", "--task", "ppg", "--space", "ppg_peaks", "--arch",
                 "ppg_peaks-p8-h16x1", "--epochs", "2", "--out", str(trained)]) == 0
    out = tmp_path / "gos"
    assert main(["adapt", str(trained), "--device", "local", "--population", "4",
                 "--generations", "1", "--max-layers", "1", "--epochs", "1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "adapt.json").read_text())
    assert summary["base"]["latency_source"] == "measured"
    assert summary["steps"][0]["operator"][0] in ("dense1", "out_unit")  # weighted layers only
    assert summary["test"]["side"].startswith("test")
    assert '"speedup"' in printed and "wrote" in printed
    # what the step did is readable
    assert "| 1 |" in (out / "adapt.md").read_text()
    # a wrong device address fails before any data is loaded, naming the forms
    with pytest.raises(ConfigError, match="unknown device 'nowhere'"):
        from host.cli.adapt import run as adapt_run

        class Args:
            device, model = "nowhere", str(trained)

        adapt_run(Args())  # type: ignore[arg-type]
