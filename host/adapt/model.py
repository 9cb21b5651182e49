"""A chain model as operators that can be swapped for instruction graphs (model surgery).

GOS replaces one operator of a trained model at a time and fine-tunes only the new
operator. `ChainModel` holds a trained tf-keras model whose layers form a chain (each
layer reads the previous one, as the PPG starting models and HALF's networks do) as a list
of `Operator`s: the original layer, its instruction graph when it has one (or why not),
and, once adapted, the graph that replaced it with that graph's trained weights. `build`
makes a tf-keras model from them: kept layers are the original (trained, frozen) layer
objects, replaced operators are new layers built from their graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from host.adapt.graph import NotExpressible, OperatorGraph, Shape, graph_of_layer
from host.errors import ConfigError

#: layers without weights: kept as they are and never picked (GOS adapts operators that
#: compute; these only reshape, scale or drop out)
WEIGHTLESS = ("Flatten", "Dropout", "Rescaling", "Reshape", "InputLayer", "Activation",
              "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
              "GlobalMaxPooling1D")


#: layers that take a sequence of any length and give one back (its length may change)
LENGTH_AGNOSTIC = ("Conv1D", "DepthwiseConv1D", "SeparableConv1D", "Activation", "Dropout",
                   "BatchNormalization", "LayerNormalization", "MaxPooling1D",
                   "AveragePooling1D", "Dense", "Rescaling", "LeakyReLU", "ReLU")
#: layers that aggregate a sequence of any length over time
TIME_AGGREGATES = ("GlobalAveragePooling1D", "GlobalMaxPooling1D")


def _free_length(layers_after: list[Any]) -> bool:
    """Whether the layers after an operator take a sequence of any length (see graph.py)."""
    for layer in layers_after:
        kind = type(layer).__name__
        if kind in ("LSTM", "GRU", "SimpleRNN"):
            if not layer.get_config().get("return_sequences"):
                return True
            continue
        if kind in TIME_AGGREGATES:
            return True
        if kind not in LENGTH_AGNOSTIC:
            return False  # Flatten, Reshape, ...: the length is baked into what follows
    return False  # the model's output would be a sequence of another length


@dataclass
class Operator:
    """One layer of the chain: kept, or replaced by `graph` (with `weights` per node uid)."""

    name: str
    layer: Any
    in_shape: Shape
    out_shape: Shape
    original: OperatorGraph | None = None
    original_weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    skipped: str | None = None  # why it has no graph (None: it has one, or is weightless)
    graph: OperatorGraph | None = None  # the replacement, once adapted
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    adapted: bool = False  # picked once already (GOS: never picked again)

    @property
    def kind(self) -> str:
        return type(self.layer).__name__

    @property
    def current(self) -> OperatorGraph | None:
        return self.graph if self.graph is not None else self.original

    @property
    def current_weights(self) -> dict[str, list[np.ndarray]]:
        return self.weights if self.graph is not None else self.original_weights

    @property
    def candidate(self) -> bool:
        """Can Algorithm 1 pick it: it has a graph and was not picked before."""
        return self.original is not None and not self.adapted

    def param_count(self) -> int:
        if self.graph is not None:
            return self.graph.param_count()
        return int(self.layer.count_params()) if self.layer.weights else 0

    def layer_names(self) -> set[str]:
        """The tf-keras layer names this operator has in a built model."""
        if self.graph is None:
            return {self.name}
        return {f"{self.prefix}_{n.uid}_{n.op}" for n in self.graph.pruned().nodes}

    @property
    def prefix(self) -> str:
        return f"{self.name}__g"


@dataclass
class ChainModel:
    """A trained chain model as operators (see module docstring)."""

    input_shape: Shape
    operators: list[Operator]

    @classmethod
    def of(cls, model: Any) -> ChainModel:
        """Split `model` into operators; ConfigError when its layers are not a chain."""
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ConfigError(
                f"model: hilnas adapts models with one input and one output; this one has "
                f"{len(model.inputs)} and {len(model.outputs)}"
            )
        layers = [lyr for lyr in model.layers if type(lyr).__name__ != "InputLayer"]
        prev = model.inputs[0]
        ops: list[Operator] = []
        for i, lyr in enumerate(layers):
            if lyr.input is not prev:
                raise ConfigError(
                    f"model: layer {lyr.name!r} does not read the layer before it; hilnas "
                    "adapts chain models (each layer reads the previous one)"
                )
            in_shape = tuple(int(d) for d in lyr.input_shape[1:])
            out_shape = tuple(int(d) for d in lyr.output_shape[1:])
            op = Operator(lyr.name, lyr, in_shape, out_shape)
            if lyr.weights or type(lyr).__name__ not in WEIGHTLESS:
                try:
                    op.original, op.original_weights = graph_of_layer(lyr, in_shape, out_shape)
                    if len(out_shape) == 2 and _free_length(layers[i + 1:]):
                        op.original = replace(op.original, free_length=True)
                except NotExpressible as exc:
                    op.skipped = str(exc)
            ops.append(op)
            prev = lyr.output
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        return cls(shape, ops)

    def index(self, name: str) -> int:
        for i, op in enumerate(self.operators):
            if op.name == name:
                return i
        raise KeyError(name)

    def with_replacement(self, names: list[str], graph: OperatorGraph,
                         weights: dict[str, list[np.ndarray]]) -> ChainModel:
        """A copy whose operators `names` are replaced by `graph` (one copy of it each)."""
        ops = [replace(op, graph=graph, weights=weights, adapted=True) if op.name in names
               else replace(op) for op in self.operators]
        return ChainModel(self.input_shape, ops).reshaped()

    def reshaped(self) -> ChainModel:
        """Shapes recomputed from the input on (a replacement may shorten a sequence)."""
        shape = self.input_shape
        for op in self.operators:
            op.in_shape = shape
            if op.graph is not None:
                if op.graph.in_shape != shape:
                    op.graph = op.graph.on_input(shape)
                shape = op.graph.output_shape()
            elif op.original is not None:
                if op.original.in_shape != shape:
                    op.original = op.original.on_input(shape)
                shape = op.original.output_shape()
            else:
                out = op.layer.compute_output_shape((None, *shape))
                shape = tuple(int(d) for d in list(out)[1:])
            op.out_shape = shape
        return self

    def param_count(self) -> int:
        return sum(op.param_count() for op in self.operators)

    def build(self, keras: Any, *, train: list[str] | None = None,
              candidate: tuple[list[str], OperatorGraph, dict[str, list[np.ndarray]]] | None
              = None, batch_size: int | None = None) -> tuple[Any, dict[str, dict[str, Any]]]:
        """(tf-keras model, {operator: {uid: layer}} of the graph-built operators).

        `candidate`: (operator names, graph, inherited weights) tried in place of those
        operators. Only the layers of `train` operators are trainable (the candidate's, in
        GOS's fine-tuning); every kept original layer is frozen.
        """
        train_set = set(train or [])
        x = inp = keras.Input(self.input_shape, batch_size=batch_size)
        built: dict[str, dict[str, Any]] = {}
        for op in self.operators:
            graph, weights = op.graph, op.weights
            if candidate is not None and op.name in candidate[0]:
                graph, weights = candidate[1], candidate[2]
            if graph is None:
                op.layer.trainable = False
                x = op.layer(x)
                continue
            x, layers = graph.build(keras, x, op.prefix, weights)
            for layer in layers.values():
                layer.trainable = op.name in train_set
            built[op.name] = layers
        return keras.Model(inp, x), built

    def describe(self) -> list[dict[str, Any]]:
        """Each operator: kind, shapes, parameters, its graph's equation or why it has none."""
        out = []
        for op in self.operators:
            g = op.current
            out.append({
                "name": op.name, "layer": op.kind, "in_shape": list(op.in_shape),
                "out_shape": list(op.out_shape), "params": op.param_count(),
                "equation": g.equation() if g is not None else None,
                "adapted": op.graph is not None,
                "skipped": op.skipped,
            })
        return out
