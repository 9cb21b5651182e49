"""An operator as a computation graph of mathematical instructions (GOS, Section 3.1).

Grassroots Operator Search (Benmeziane et al.) writes each operator of a model, a
convolution or a dense layer with its activation, as a directed acyclic graph whose nodes
are instructions of its Table 1, and evolves that graph. This module is the graph: the
instructions hilnas can compile to TFLite builtins, shape inference, the constraints
(1 < N <= 20 nodes, E <= 25 edges, every node on a path from the input to the output), a
readable equation, its parameter count, and the tf-keras layers it builds.

Tensors are 1-D signals: a sequence `(T, C)` or a vector `(C,)` (the batch axis is left
out). The graph's input and output shapes are fixed by the model around the operator.

The instructions (Table 1 rows that TFLite runs; the rest, such as inversions and
decompositions, have no TFLite builtin and are left out):

- `xcorr`: convolution (cross-correlation) over a sequence, with dilation, optionally
  depthwise (CONV_2D, DEPTHWISE_CONV_2D);
- `matmul`: matrix multiplication, plus a bias (matrix addition) (FULLY_CONNECTED);
- `act`: relu, relu6, tanh, sigmoid, leaky_relu(alpha);
- `pool`: max or average pooling, size = stride (MAX_POOL_2D, AVERAGE_POOL_2D);
- `reduce`: aggregation over time, sum, mean, max or min (a sequence becomes a vector);
- `sqrt`: square root of the positive part (SQRT);
- `add`, `sub`, `hadamard`: matrix addition, subtraction, Hadamard product of two equal
  shapes; `maximum`, `minimum`, `mean`: aggregation of two nodes; `concat`: channels;
- `recurrent`: not in Table 1, an LSTM or GRU cell over time (UNIDIRECTIONAL_SEQUENCE_LSTM,
  or a WHILE loop for a GRU).

`recurrent` is the one composite instruction: Table 1 has no recurrence, yet GOS's own PPG
result replaces NAS-PPG's LSTMs by GRUs (its Figure 6). Writing an LSTM as its gates would
give a graph of more than 20 nodes that TFLite would not fuse back into one operator, so the
cell is kept whole, its type and width mutable.

Each node carries its constants (filters, kernel, dilation, units, the activation, ...) as
hyper-parameters, which mutation changes. A node's `uid` names its trained weights: a
mutation that changes a node's instruction or constants gives it a new uid, so weights are
inherited only by nodes that are still what they were (see `build`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from host.errors import ConfigError, HilnasError

Shape = tuple[int, ...]
SEQ, VEC = "seq", "vec"
INPUT = "x"
MAX_NODES = 20  # GOS: 1 < N <= 20, counting the input node
MAX_EDGES = 25  # GOS: E <= 25

ACTIVATIONS = ("relu", "relu6", "tanh", "sigmoid", "leaky_relu")


class GraphError(HilnasError):
    """A computation graph that is not a valid operator (shapes, arity, size, reachability)."""


class NotExpressible(HilnasError):
    """A layer that hilnas cannot write as an instruction graph (the reason is the message)."""


@dataclass(frozen=True)
class Instruction:
    """One row of the instruction table: arity, what it takes, its mutable constants."""

    name: str
    table1: str  # the Table 1 category (or why it is not from Table 1)
    arity: int
    takes: frozenset[str]
    weighted: bool = False
    ladders: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


def _ins(name: str, table1: str, arity: int, takes: Iterable[str], weighted: bool = False,
         **ladders: tuple[Any, ...]) -> Instruction:
    return Instruction(name, table1, arity, frozenset(takes), weighted, ladders)


INSTRUCTIONS: dict[str, Instruction] = {
    i.name: i
    for i in (
        _ins("xcorr", "convolution: cross-correlation", 1, [SEQ], True,
             filters=(4, 8, 16, 32, 64), kernel=(1, 3, 5, 7, 9), dilation=(1, 2, 3, 4),
             depthwise=(False, True), bias=(True, False)),
        _ins("matmul", "linear algebra: matrix multiplication", 1, [SEQ, VEC], True,
             units=(1, 4, 8, 16, 32, 64, 128), bias=(True, False)),
        _ins("recurrent", "not in Table 1: a recurrent cell (GOS's LSTM->GRU)", 1, [SEQ], True,
             cell=("lstm", "gru"), units=(8, 16, 32, 64), sequences=(True, False)),
        _ins("act", "activation functions", 1, [SEQ, VEC], fn=ACTIVATIONS,
             alpha=(0.05, 0.1, 0.2, 0.3)),
        _ins("pool", "pooling", 1, [SEQ], kind=("max", "avg"), size=(2, 3, 4)),
        _ins("reduce", "aggregation over time", 1, [SEQ], agg=("sum", "mean", "max", "min")),
        _ins("sqrt", "aggregation: square root", 1, [SEQ, VEC]),
        _ins("add", "linear algebra: matrix addition", 2, [SEQ, VEC]),
        _ins("sub", "linear algebra: matrix subtraction", 2, [SEQ, VEC]),
        _ins("hadamard", "linear algebra: Hadamard product", 2, [SEQ, VEC]),
        _ins("maximum", "aggregation: maximum", 2, [SEQ, VEC]),
        _ins("minimum", "aggregation: minimum", 2, [SEQ, VEC]),
        _ins("mean", "aggregation: mean", 2, [SEQ, VEC]),
        _ins("concat", "aggregation: concatenation", 2, [SEQ, VEC]),
    )
}
#: The constants that set a node's output width (kept equal on replacement when possible).
WIDTH_PARAMS = {"xcorr": "filters", "matmul": "units", "recurrent": "units"}


def kind(shape: Shape) -> str:
    return SEQ if len(shape) == 2 else VEC


@dataclass(frozen=True)
class Node:
    """An instruction node: `op` applied to `inputs` (uids; `INPUT` is the operator's input)."""

    uid: str
    op: str
    inputs: tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def p(self) -> dict[str, Any]:
        return dict(self.params)

    def with_params(self, uid: str, **changes: Any) -> Node:
        return replace(self, uid=uid, params=tuple(sorted({**self.p, **changes}.items())))

    def to_json(self) -> dict[str, Any]:
        return {"uid": self.uid, "op": self.op, "inputs": list(self.inputs), "params": self.p}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Node:
        return cls(str(d["uid"]), str(d["op"]), tuple(d["inputs"]),
                   tuple(sorted(dict(d.get("params", {})).items())))


def node(uid: str, op: str, inputs: Sequence[str], **params: Any) -> Node:
    if op not in INSTRUCTIONS:
        raise GraphError(f"unknown instruction {op!r}; known: {sorted(INSTRUCTIONS)}")
    return Node(uid, op, tuple(inputs), tuple(sorted(params.items())))


def _matters(n: Node, param: str) -> bool:
    """Whether a constant changes what the node computes (alpha only for leaky_relu)."""
    return not (n.op == "act" and param == "alpha" and n.p.get("fn") != "leaky_relu")


def out_shape(n: Node, shapes: Sequence[Shape]) -> Shape:
    """The output shape of `n` on inputs of `shapes` (GraphError when it does not apply)."""
    ins = INSTRUCTIONS[n.op]
    if len(shapes) != ins.arity:
        raise GraphError(f"{n.uid}: {n.op} takes {ins.arity} input(s), has {len(shapes)}")
    for s in shapes:
        if kind(s) not in ins.takes:
            raise GraphError(f"{n.uid}: {n.op} does not take a {kind(s)} {s}")
    p, s = n.p, shapes[0]
    if ins.arity == 2:
        a, b = shapes
        if n.op == "concat":
            if a[:-1] != b[:-1]:
                raise GraphError(f"{n.uid}: concat of {a} and {b} (lengths differ)")
            return (*a[:-1], a[-1] + b[-1])
        if a != b:
            raise GraphError(f"{n.uid}: {n.op} of {a} and {b} (shapes differ)")
        return a
    if n.op == "xcorr":
        if p["kernel"] > 1 and (p["kernel"] - 1) * p["dilation"] + 1 > s[0]:
            raise GraphError(f"{n.uid}: a dilated kernel spans more than the {s[0]} steps")
        return (s[0], s[1] if p["depthwise"] else p["filters"])
    if n.op == "matmul":
        return (*s[:-1], p["units"])
    if n.op == "recurrent":
        return (s[0], p["units"]) if p["sequences"] else (p["units"],)
    if n.op == "pool":
        t = math.ceil(s[0] / p["size"])
        if t < 1 or s[0] < p["size"]:
            raise GraphError(f"{n.uid}: pooling {p['size']} of {s[0]} steps")
        return (t, s[1])
    if n.op == "reduce":
        return (s[1],)
    return s  # act, sqrt


@dataclass(frozen=True)
class OperatorGraph:
    """A DAG of instruction nodes from the input `x` (shape `in_shape`) to `output`."""

    in_shape: Shape
    out_shape: Shape
    nodes: tuple[Node, ...]  # topological order: a node's inputs come before it
    output: str
    #: the output sequence may be shorter than `out_shape` says (channels still fixed):
    #: true when every layer after the operator takes a sequence of any length, up to one
    #: that aggregates over time (host/adapt/model.py), as GOS's added poolings shrink
    #: feature maps
    free_length: bool = False

    # ------------------------------------------------------------------ structure
    def by_uid(self) -> dict[str, Node]:
        return {n.uid: n for n in self.nodes}

    @property
    def n_nodes(self) -> int:
        """N of GOS: the instruction nodes plus the input node."""
        return len(self.nodes) + 1

    @property
    def n_edges(self) -> int:
        return sum(len(n.inputs) for n in self.nodes)

    def shapes(self) -> dict[str, Shape]:
        """Each node's output shape (GraphError naming the first node that does not fit)."""
        shapes: dict[str, Shape] = {INPUT: self.in_shape}
        for n in self.nodes:
            missing = [i for i in n.inputs if i not in shapes]
            if missing:
                raise GraphError(f"{n.uid}: inputs {missing} are not earlier nodes")
            shapes[n.uid] = out_shape(n, [shapes[i] for i in n.inputs])
        return shapes

    def pruned(self) -> OperatorGraph:
        """Without the nodes that have no path to the output (GOS: unused nodes go)."""
        keep = _ancestors(self, self.output)
        return replace(self, nodes=tuple(n for n in self.nodes if n.uid in keep))

    def check(self) -> OperatorGraph:
        """The pruned graph, after checking size, uids, shapes and the output shape."""
        g = self.pruned()
        uids = [n.uid for n in g.nodes]
        if len(set(uids)) != len(uids) or INPUT in uids:
            raise GraphError(f"node uids repeat or shadow the input: {uids}")
        if not 1 < g.n_nodes <= MAX_NODES:
            raise GraphError(f"{g.n_nodes} nodes; an operator has 1 < N <= {MAX_NODES}")
        if g.n_edges > MAX_EDGES:
            raise GraphError(f"{g.n_edges} edges; an operator has E <= {MAX_EDGES}")
        if self.output not in {n.uid for n in g.nodes}:
            raise GraphError(f"output {self.output!r} is not a node")
        got = g.shapes()[g.output]
        shorter = (g.free_length and kind(got) == SEQ == kind(g.out_shape)
                   and got[1:] == g.out_shape[1:] and 1 <= got[0] <= g.out_shape[0])
        if got != g.out_shape and not shorter:
            need = (f"(<= {g.out_shape[0]}, {g.out_shape[1]})" if g.free_length
                    else str(g.out_shape))
            raise GraphError(f"the graph gives {got}, the model needs {need} there")
        return g

    def is_valid(self) -> bool:
        try:
            self.check()
        except GraphError:
            return False
        return True

    def key(self) -> str:
        """A canonical text of the graph's computation (uids left out): equal keys, equal ops."""
        names: dict[str, str] = {INPUT: "x"}
        parts = []
        for i, n in enumerate(self.pruned().nodes):
            names[n.uid] = f"t{i}"
            args = ",".join(names[u] for u in n.inputs)
            consts = ",".join(f"{k}={v}" for k, v in n.params if _matters(n, k))
            parts.append(f"{n.op}({args};{consts})")
        return "|".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                "output": self.output, "free_length": self.free_length,
                "nodes": [n.to_json() for n in self.nodes]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> OperatorGraph:
        return cls(tuple(d["in_shape"]), tuple(d["out_shape"]),
                   tuple(Node.from_json(n) for n in d["nodes"]), str(d["output"]),
                   bool(d.get("free_length", False)))

    def output_shape(self) -> Shape:
        """The shape the graph gives (shorter than `out_shape` with `free_length`)."""
        g = self.check()
        return g.shapes()[g.output]

    def on_input(self, in_shape: Shape) -> OperatorGraph:
        """The same computation on an input of another length (after an upstream change)."""
        g = replace(self, in_shape=tuple(in_shape), free_length=False)
        out = g.pruned().shapes()[g.output]
        return replace(g, out_shape=out, free_length=self.free_length).check()

    # ------------------------------------------------------------------ costs
    def param_count(self) -> int:
        """Trainable parameters of the operator (weights and biases of its weighted nodes)."""
        shapes = self.shapes()
        total = 0
        for n in self.pruned().nodes:
            p, s = n.p, shapes[n.inputs[0]]
            c_in = s[-1]
            if n.op == "xcorr":
                c_out = c_in if p["depthwise"] else p["filters"]
                weights = p["kernel"] * c_in * (1 if p["depthwise"] else c_out)
                total += weights + (c_out if p["bias"] else 0)
            elif n.op == "matmul":
                total += c_in * p["units"] + (p["units"] if p["bias"] else 0)
            elif n.op == "recurrent":
                u = p["units"]
                if p["cell"] == "lstm":
                    total += 4 * (u * (c_in + u) + u)
                else:  # tf-keras GRU, reset_after=True: two bias vectors per gate
                    total += 3 * (u * (c_in + u) + 2 * u)
        return total

    # ------------------------------------------------------------------ readable form
    def equation(self) -> str:
        """The operator as assignments, e.g. `t0 = xcorr(x; W 5x5->32, d=1) + b; y = relu(t0)`."""
        g = self.pruned()
        shapes = g.shapes()
        names: dict[str, str] = {INPUT: "x"}
        lines = []
        for i, n in enumerate(g.nodes):
            name = "y" if n.uid == g.output else f"t{i}"
            names[n.uid] = name
            lines.append(f"{name} = {_expr(n, [names[u] for u in n.inputs], shapes)}")
        return "; ".join(lines)

    # ------------------------------------------------------------------ tf-keras
    def build(self, keras: Any, x: Any, prefix: str,
              weights: Mapping[str, list[Any]] | None = None) -> tuple[Any, dict[str, Any]]:
        """Apply the graph to tensor `x`: (output tensor, {uid: layer}) of new layers.

        Layers are named `{prefix}_{uid}_{op}`; a weighted node whose uid is in `weights`
        starts from those arrays (the original operator's trained weights), the others
        from the layer's initializer. So does a node whose uid survived a mutation upstream
        that changed what it receives (a matmul inserted before it: W[500x64] now takes
        32 values): arrays of another shape would not fit, and tf-keras would raise.
        """
        g = self.check()
        tensors: dict[str, Any] = {INPUT: x}
        layers: dict[str, Any] = {}
        for n in g.nodes:
            layer = _layer(keras, n, f"{prefix}_{n.uid}_{n.op}")
            ins = [tensors[u] for u in n.inputs]
            tensors[n.uid] = layer(ins if len(ins) > 1 else ins[0])
            layers[n.uid] = layer
            if weights and n.uid in weights and layer.weights and _fits(layer, weights[n.uid]):
                layer.set_weights(weights[n.uid])
        return tensors[g.output], layers


def _fits(layer: Any, arrays: Sequence[Any]) -> bool:
    """Whether `arrays` have the shapes of `layer`'s weights, one for one."""
    shapes = [tuple(w.shape) for w in layer.weights]
    return len(shapes) == len(arrays) and all(
        tuple(a.shape) == s for a, s in zip(arrays, shapes, strict=True))


def _expr(n: Node, args: list[str], shapes: Mapping[str, Shape]) -> str:
    p = n.p
    a = args[0]
    if n.op == "xcorr":
        c_in = shapes[n.inputs[0]][-1]
        dil = f", d={p['dilation']}" if p["dilation"] > 1 else ""
        if p["depthwise"]:
            body = f"dwxcorr({a}; W {p['kernel']}x{c_in}{dil})"
        else:
            body = f"xcorr({a}; W {p['kernel']}x{c_in}->{p['filters']}{dil})"
        return body + (" + b" if p["bias"] else "")
    if n.op == "matmul":
        c_in = shapes[n.inputs[0]][-1]
        return f"{a} @ W[{c_in}x{p['units']}]" + (" + b" if p["bias"] else "")
    if n.op == "recurrent":
        return f"{p['cell'].upper()}{p['units']}({a}{'' if p['sequences'] else '; last'})"
    if n.op == "act":
        return (f"leaky_relu({a}, {p['alpha']})" if p["fn"] == "leaky_relu"
                else f"{p['fn']}({a})")
    if n.op == "pool":
        return f"{p['kind']}pool{p['size']}({a})"
    if n.op == "reduce":
        return f"{p['agg']}_t({a})"
    if n.op == "sqrt":
        return f"sqrt(max({a}, 0))"
    symbol = {"add": "+", "sub": "-", "hadamard": "⊙"}.get(n.op)
    if symbol:
        return f"{args[0]} {symbol} {args[1]}"
    return f"{n.op}({', '.join(args)})"


def _layer(keras: Any, n: Node, name: str) -> Any:
    """The tf-keras layer of one instruction node (built-ins, plus `Instruction` for the rest)."""
    L, p = keras.layers, n.p
    if n.op == "xcorr":
        if p["depthwise"]:
            return L.DepthwiseConv1D(p["kernel"], dilation_rate=p["dilation"], padding="same",
                                     use_bias=p["bias"], name=name)
        return L.Conv1D(p["filters"], p["kernel"], dilation_rate=p["dilation"], padding="same",
                        use_bias=p["bias"], name=name)
    if n.op == "matmul":
        return L.Dense(p["units"], use_bias=p["bias"], name=name)
    if n.op == "recurrent":
        cls = L.LSTM if p["cell"] == "lstm" else L.GRU
        return cls(p["units"], return_sequences=p["sequences"], name=name)
    if n.op == "act":
        if p["fn"] == "leaky_relu":
            return L.LeakyReLU(p["alpha"], name=name)
        return L.Activation(p["fn"], name=name)
    if n.op == "pool":
        cls = L.MaxPooling1D if p["kind"] == "max" else L.AveragePooling1D
        return cls(p["size"], strides=p["size"], padding="same", name=name)
    if n.op == "reduce" and p["agg"] in ("mean", "max"):
        cls = L.GlobalAveragePooling1D if p["agg"] == "mean" else L.GlobalMaxPooling1D
        return cls(name=name)
    binary = {"add": L.Add, "sub": L.Subtract, "hadamard": L.Multiply, "maximum": L.Maximum,
              "minimum": L.Minimum, "mean": L.Average}
    if n.op in binary:
        return binary[n.op](name=name)
    if n.op == "concat":
        return L.Concatenate(axis=-1, name=name)
    op = f"reduce_{p['agg']}" if n.op == "reduce" else n.op
    return instruction_layer(keras)(op=op, name=name)


_LAYER_CLASSES: dict[int, Any] = {}


def instruction_layer(keras: Any) -> Any:
    """The `Instruction` layer (registered "hilnas>Instruction"): sqrt, time sum and min.

    The instructions that tf-keras has no layer for. Registered so that a saved `.keras`
    adapted model loads in the converter's process (`host.train.tfenv.load_keras_model`).
    """
    cls = _LAYER_CLASSES.get(id(keras))
    if cls is not None:
        return cls
    from host.train.tfenv import import_tf

    tf = import_tf()

    class Instruction(keras.layers.Layer):
        """One weightless instruction: `sqrt` (of the positive part), `reduce_sum`, `reduce_min`."""

        OPS = ("sqrt", "reduce_sum", "reduce_min")

        def __init__(self, op: str, **kwargs: Any) -> None:
            if op not in self.OPS:
                raise ConfigError(f"Instruction: unknown op {op!r}; known: {self.OPS}")
            super().__init__(**kwargs)
            self.op = op

        def call(self, x: Any) -> Any:
            if self.op == "sqrt":
                return tf.sqrt(tf.nn.relu(x))
            if self.op == "reduce_sum":
                return tf.reduce_sum(x, axis=1)
            return tf.reduce_min(x, axis=1)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "op": self.op}

    cls = keras.utils.register_keras_serializable(package="hilnas")(Instruction)
    _LAYER_CLASSES[id(keras)] = cls
    return cls


# ---------------------------------------------------------------------- from a layer
def graph_of_layer(layer: Any, in_shape: Shape, out_shape: Shape) -> tuple[OperatorGraph,
                                                                           dict[str, list[Any]]]:
    """The operator graph of a trained tf-keras layer and the weights of its nodes.

    Conv1D (stride 1, 'same' padding, one group), DepthwiseConv1D, Dense, LSTM and GRU, each
    with its activation (a separate `act` node unless linear). Anything else raises
    NotExpressible with the reason, which the adaptation report carries.
    """
    cls = type(layer).__name__
    cfg = layer.get_config()
    act = cfg.get("activation", "linear")
    weighted = "w"
    if cls in ("Conv1D", "DepthwiseConv1D"):
        strides = tuple(cfg.get("strides", (1,)))
        if strides != (1,) or cfg.get("padding") != "same" or cfg.get("groups", 1) != 1:
            raise NotExpressible(
                f"{layer.name}: {cls} with strides {strides}, padding {cfg.get('padding')!r}, "
                f"groups {cfg.get('groups', 1)}: only stride 1, 'same' padding, one group"
            )
        dil = tuple(cfg.get("dilation_rate", (1,)))[0]
        if cls == "DepthwiseConv1D" and cfg.get("depth_multiplier", 1) != 1:
            raise NotExpressible(f"{layer.name}: a depth multiplier other than 1")
        first = node(weighted, "xcorr", [INPUT], filters=int(out_shape[-1]),
                     kernel=int(cfg["kernel_size"][0]), dilation=int(dil),
                     depthwise=cls == "DepthwiseConv1D", bias=bool(cfg["use_bias"]))
    elif cls == "Dense":
        first = node(weighted, "matmul", [INPUT], units=int(cfg["units"]),
                     bias=bool(cfg["use_bias"]))
    elif cls in ("LSTM", "GRU"):
        if cfg.get("go_backwards") or cfg.get("stateful") or cfg.get("return_state"):
            raise NotExpressible(f"{layer.name}: a backwards, stateful or state-returning {cls}")
        if cls == "GRU" and not cfg.get("reset_after", True):
            raise NotExpressible(f"{layer.name}: a GRU with reset_after=False")
        if cfg.get("activation") != "tanh" or cfg.get("recurrent_activation") != "sigmoid":
            raise NotExpressible(f"{layer.name}: {cls} with non-default activations")
        first = node(weighted, "recurrent", [INPUT], cell=cls.lower(), units=int(cfg["units"]),
                     sequences=bool(cfg["return_sequences"]))
        act = "linear"
    else:
        raise NotExpressible(
            f"{layer.name}: no instruction graph for a {cls} layer (hilnas writes Conv1D, "
            "DepthwiseConv1D, Dense, LSTM and GRU as graphs)"
        )
    nodes = [first]
    if act not in ("linear", None):
        if act not in ACTIVATIONS:
            raise NotExpressible(f"{layer.name}: activation {act!r} is not an instruction")
        nodes.append(node("a", "act", [weighted], fn=act, alpha=0.1))
    g = OperatorGraph(tuple(in_shape), tuple(out_shape), tuple(nodes), nodes[-1].uid)
    try:
        g = g.check()
    except GraphError as exc:
        raise NotExpressible(f"{layer.name}: {exc}") from exc
    return g, {weighted: layer.get_weights()}


# ---------------------------------------------------------------------- evolution operators
_uids = itertools.count()


def fresh_uid() -> str:
    """A uid no graph of this process has used: new nodes get fresh (untrained) weights."""
    return f"n{next(_uids)}"


def _random_params(op: str, rng: Any, width: int | None = None) -> dict[str, Any]:
    ins = INSTRUCTIONS[op]
    params = {k: rng.choice(v) for k, v in ins.ladders.items()}
    wp = WIDTH_PARAMS.get(op)
    if wp and width is not None and rng.random() < 0.8:
        params[wp] = width  # keep the node's width, so the graph's shapes still fit
    if op == "recurrent" and width is not None:
        params["sequences"] = rng.random() < 0.5
    return params


def _replace_node(g: OperatorGraph, old: str, new_nodes: Sequence[Node],
                  new_out: str) -> OperatorGraph:
    """`g` with node `old` replaced by `new_nodes`, whose last (`new_out`) feeds old's users."""
    nodes: list[Node] = []
    for n in g.nodes:
        if n.uid == old:
            nodes.extend(new_nodes)
        else:
            nodes.append(replace(n, inputs=tuple(new_out if u == old else u for u in n.inputs)))
    return replace(g, nodes=tuple(nodes), output=new_out if g.output == old else g.output)


def mutations(g: OperatorGraph, rng: Any,
              fresh: Callable[[], str] = fresh_uid) -> list[tuple[str, OperatorGraph]]:
    """Candidate single mutations of `g` (GOS Figure 3), each described; not yet checked."""
    out: list[tuple[str, OperatorGraph]] = []
    shapes = g.shapes()
    nodes = list(g.nodes)
    n = rng.choice(nodes)
    # 1. replace an instruction by another of the same arity that takes the same inputs
    same = [i for i in INSTRUCTIONS.values() if i.arity == len(n.inputs) and i.name != n.op
            and all(kind(shapes[u]) in i.takes for u in n.inputs)]
    if same:
        ins = rng.choice(same)
        width = shapes[n.uid][-1]
        new = node(fresh(), ins.name, n.inputs, **_random_params(ins.name, rng, width))
        replacement = [new]
        try:
            new_shape = out_shape(new, [shapes[u] for u in n.inputs])
        except GraphError:
            new_shape = shapes[n.uid]
        if kind(new_shape) == SEQ and kind(shapes[n.uid]) == VEC:
            # GOS adds a reshape where the new output can be brought to the old shape;
            # for a sequence where a vector was, that is an aggregation over time
            replacement.append(node(fresh(), "reduce", [new.uid], agg="mean"))
        out.append((f"replace {n.op} by {ins.name}",
                    _replace_node(g, n.uid, replacement, replacement[-1].uid)))
    # 2. change one constant of a node
    ladders = {k: v for k, v in INSTRUCTIONS[n.op].ladders.items() if _matters(n, k)}
    if ladders:
        key = rng.choice(sorted(ladders))
        values = [v for v in ladders[key] if v != n.p.get(key)]
        if values:
            changed = n.with_params(fresh(), **{key: rng.choice(values)})
            new_nodes = [changed]
            if key == WIDTH_PARAMS.get(n.op) and not n.p.get("depthwise"):
                # a new width no longer fits what reads the node: a projection back to the
                # old width keeps the graph's shapes (a bottleneck: x W1 W2 with W1 narrow)
                new_nodes.append(node(fresh(), "matmul", [changed.uid],
                                      units=shapes[n.uid][-1], bias=True))
            out.append((f"set {n.op}.{key}={changed.p[key]}",
                        _replace_node(g, n.uid, new_nodes, new_nodes[-1].uid)))
    # 3. add a node: a unary after a node, or a binary joining two nodes
    src = rng.choice([INPUT, *[m.uid for m in nodes]])
    if rng.random() < 0.6:
        unary = [i for i in INSTRUCTIONS.values()
                 if i.arity == 1 and kind(shapes[src]) in i.takes]
        ins = rng.choice(unary)
        new = node(fresh(), ins.name, [src], **_random_params(ins.name, rng, shapes[src][-1]))
        _add(out, f"add {ins.name} after {src}", lambda: _insert_after(g, src, new))
    else:
        earlier = [u for u in [INPUT, *[m.uid for m in nodes]] if u != src]
        other = rng.choice(earlier) if earlier else src
        ins = rng.choice([i for i in INSTRUCTIONS.values() if i.arity == 2])
        new = node(fresh(), ins.name, [src, other])
        _add(out, f"add {ins.name}({src}, {other})", lambda: _insert_after(g, src, new))
    # 4. delete a unary node, its users taking its input
    unary_nodes = [m for m in nodes if len(m.inputs) == 1]
    if unary_nodes and len(nodes) > 1:
        d = rng.choice(unary_nodes)
        kept = [replace(m, inputs=tuple(d.inputs[0] if u == d.uid else u for u in m.inputs))
                for m in nodes if m.uid != d.uid]
        output = d.inputs[0] if g.output == d.uid else g.output
        if output != INPUT:
            out.append((f"delete {d.op} {d.uid}", replace(g, nodes=tuple(kept), output=output)))
    return out


def _insert_after(g: OperatorGraph, src: str, new: Node) -> OperatorGraph:
    """Put `new` (which reads `src`) between `src` and the nodes that read `src`."""
    nodes = [replace(m, inputs=tuple(new.uid if u == src else u for u in m.inputs))
             for m in g.nodes]
    nodes.append(new)
    output = new.uid if g.output == src else g.output
    return replace(g, nodes=tuple(_toposort(nodes)), output=output)


def _toposort(nodes: list[Node]) -> list[Node]:
    done: set[str] = {INPUT}
    out: list[Node] = []
    pending = list(nodes)
    while pending:
        ready = [n for n in pending if all(u in done for u in n.inputs)]
        if not ready:
            raise GraphError("the nodes form a cycle")
        for n in ready:
            out.append(n)
            done.add(n.uid)
            pending.remove(n)
    return out


def _add(out: list[tuple[str, OperatorGraph]], what: str,
         make: Callable[[], OperatorGraph]) -> None:
    try:
        out.append((what, make()))
    except GraphError:
        pass  # e.g. a join that would close a cycle: not a candidate


def mutate(g: OperatorGraph, rng: Any, fresh: Callable[[], str] = fresh_uid,
           attempts: int = 30) -> tuple[OperatorGraph, str]:
    """One valid mutation of `g` and what it did; `g` itself ("no valid mutation") if none."""
    key = g.key()
    for _ in range(attempts):
        options = mutations(g, rng, fresh)
        rng_order = list(options)
        while rng_order:
            what, cand = rng_order.pop(rng.randint(0, len(rng_order) - 1))
            try:
                checked = cand.check()
            except GraphError:
                continue
            if checked.key() != key:
                return checked, what
    return g, "no valid mutation"


def crossover(a: OperatorGraph, b: OperatorGraph, rng: Any,
              fresh: Callable[[], str] = fresh_uid) -> tuple[OperatorGraph, OperatorGraph]:
    """GOS Algorithm 2: join a's graph up to a split node with b's graph after one.

    The split points are the node pairs (p in a, q in b) whose outputs have the same shape;
    one is drawn and the child is a's nodes up to p followed by b's nodes downstream of q,
    reading p where they read q (and the converse child). Nodes of b that collide with a's
    uids but compute something else get fresh uids. A child that is not a valid operator is
    replaced by its parent.
    """
    sa, sb = a.shapes(), b.shapes()
    points = [(p, q) for p in sa for q in sb if sa[p] == sb[q] and (p, q) != (INPUT, INPUT)]
    if not points:
        return a, b
    p, q = rng.choice(points)
    return (_join(a, p, b, q, fresh) or a), (_join(b, q, a, p, fresh) or b)


def _ancestors(g: OperatorGraph, uid: str) -> set[str]:
    """`uid` and every node it reads, directly or not (the input left out)."""
    by, seen, todo = g.by_uid(), set(), [uid]
    while todo:
        u = todo.pop()
        if u in seen or u == INPUT or u not in by:
            continue
        seen.add(u)
        todo.extend(by[u].inputs)
    return seen


def _join(head: OperatorGraph, p: str, tail: OperatorGraph, q: str,
          fresh: Callable[[], str]) -> OperatorGraph | None:
    """Join head's nodes up to `p`, then tail's nodes that are not upstream of `q` (q read as p)."""
    nodes = [n for n in head.nodes if n.uid in _ancestors(head, p)]
    have = {n.uid: n for n in nodes}
    upstream = _ancestors(tail, q) | {q}
    rename: dict[str, str] = {q: p, INPUT: INPUT}
    for n in tail.nodes:
        if n.uid not in upstream:
            same = have.get(n.uid)
            rename[n.uid] = n.uid if same is None or same == n else fresh()
    for n in tail.nodes:
        if n.uid in upstream:
            continue
        if any(u not in rename for u in n.inputs):
            return None  # it reads a node upstream of q that the child does not have
        m = replace(n, uid=rename[n.uid], inputs=tuple(rename[u] for u in n.inputs))
        if m.uid not in have:
            nodes.append(m)
            have[m.uid] = m
    try:
        child = replace(head, nodes=tuple(_toposort(nodes)), output=rename[tail.output])
        return child.check()
    except GraphError:
        return None
