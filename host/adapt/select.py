"""GOS Algorithm 1: the least efficient operator, from a profile measured on the device.

- When the model does not deploy on the device (the device refused it: too large for its
  flash or RAM), the operator with the most parameters is picked.
- Otherwise operators are ranked by their measured latency, and operators whose latencies
  are close (within `tie` of the slowest one's) by their parameter count.
- With `n_similar` (GOS's N_o) > 1, the operators that compute the same thing on the same
  shapes as the picked one (equal graphs) join it, up to N_o in all, and one evolved
  replacement serves them all.
- An operator picked once is never picked again (`Operator.adapted`).

The device profiles the int8 `.tflite` operator by operator (`Device.profile`: LiteRT's
op profiler on a Linux board, the cycle model on the emulated microcontroller, which says
it is an estimate). A TFLite operator's time is charged to the model layer that produced its
output: the converter names output tensors after the tf-keras layers
(`model/lstm1/...`). Operators that no layer produced (the input QUANTIZE, for instance) are
reported as unattributed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from host.adapt.model import ChainModel, Operator
from host.export.flatbuf import op_outputs


@dataclass(frozen=True)
class Selection:
    """What Algorithm 1 picked and why."""

    operators: tuple[str, ...]
    criterion: str  # "latency" or "parameters (the model does not deploy)"
    latency_us: Mapping[str, float]  # per operator, from the profile (empty: not deployed)
    params: Mapping[str, int]
    unattributed_us: float
    profile_source: str

    def to_json(self) -> dict[str, Any]:
        return {"operators": list(self.operators), "criterion": self.criterion,
                "latency_us": {k: round(v, 3) for k, v in self.latency_us.items()},
                "params": dict(self.params), "unattributed_us": round(self.unattributed_us, 3),
                "profile_source": self.profile_source}


#: the TFLite operators each instruction (or kept layer) becomes
TFLITE_OPS: dict[str, frozenset[str]] = {
    "xcorr": frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"}),
    "matmul": frozenset({"FULLY_CONNECTED", "BATCH_MATMUL"}),
    "recurrent": frozenset({"UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE"}),
    "act": frozenset({"RELU", "RELU6", "TANH", "LOGISTIC", "LEAKY_RELU"}),
    "pool": frozenset({"MAX_POOL_2D", "AVERAGE_POOL_2D"}),
    "reduce": frozenset({"SUM", "MEAN", "REDUCE_MAX", "REDUCE_MIN"}),
    "sqrt": frozenset({"SQRT", "RELU"}),
    "add": frozenset({"ADD"}), "sub": frozenset({"SUB"}), "hadamard": frozenset({"MUL"}),
    "maximum": frozenset({"MAXIMUM"}), "minimum": frozenset({"MINIMUM"}),
    "mean": frozenset({"ADD", "MUL"}), "concat": frozenset({"CONCATENATION"}),
    "Rescaling": frozenset({"MUL", "ADD"}),
    "MaxPooling1D": frozenset({"MAX_POOL_2D"}), "AveragePooling1D": frozenset({"AVERAGE_POOL_2D"}),
    "GlobalAveragePooling1D": frozenset({"MEAN"}), "GlobalMaxPooling1D": frozenset({"REDUCE_MAX"}),
}


def _expected_ops(op: Operator) -> list[frozenset[str]]:
    """One set of possible TFLite operators per node of the operator (or its kept layer)."""
    g = op.current
    if g is None:
        return [TFLITE_OPS[op.kind]] if op.kind in TFLITE_OPS else []
    return [TFLITE_OPS.get(n.op, frozenset()) for n in g.pruned().nodes]


def latency_by_operator(chain: ChainModel, model: bytes,
                        ops: Iterable[Any]) -> tuple[dict[str, float], float]:
    """({operator name: µs}, µs no operator produced) of a profile's `OpTiming`s.

    A TFLite operator goes to the layer its output tensor is named after. The converter
    does not always name them so (a fused LSTM's output is `tfl.unidirectional_sequence_lstm`,
    the last one `StatefulPartitionedCall:0`), so an unnamed one goes, in execution order, to
    the next operator of the chain that becomes that kind of TFLite operator. What neither
    places (reshapes and slices the converter inserts) is unattributed.
    """
    outputs = op_outputs(model)
    owner: dict[str, int] = {}
    for k, op in enumerate(chain.operators):
        for layer in op.layer_names():
            owner[layer] = k
    expected = [_expected_ops(op) for op in chain.operators]
    per: dict[str, float] = {op.name: 0.0 for op in chain.operators}
    unattributed = 0.0
    timings = sorted(ops, key=lambda t: t.index)
    cursor = 0
    for timing in timings:
        kind, names = outputs[timing.index] if 0 <= timing.index < len(outputs) else ("", [])
        found = _owner(names, owner)
        if found is None:  # the next operator with a node of this kind not yet seen
            for k in range(cursor, len(chain.operators)):
                slot = next((i for i, kinds in enumerate(expected[k]) if kind in kinds), None)
                if slot is not None:
                    expected[k].pop(slot)
                    found = k
                    break
        if found is None:
            unattributed += float(timing.mean_us)
            continue
        cursor = found
        per[chain.operators[found].name] += float(timing.mean_us)
    return per, unattributed


def _owner(tensor_names: list[str], owner: Mapping[str, int]) -> int | None:
    for name in tensor_names:
        for part in name.replace(";", "/").split("/"):
            if part in owner:
                return owner[part]
    return None


def select(chain: ChainModel, *, deployable: bool, latency_us: Mapping[str, float] | None,
           n_similar: int = 1, tie: float = 0.05, unattributed_us: float = 0.0,
           profile_source: str = "") -> Selection | None:
    """Algorithm 1 over the operators not yet adapted; None when none is left."""
    candidates = [op for op in chain.operators if op.candidate]
    if not candidates:
        return None
    params = {op.name: op.param_count() for op in candidates}
    if not deployable or not latency_us:
        ranked = sorted(candidates, key=lambda op: -params[op.name])
        criterion = "parameters (the model does not deploy on the device)"
        lat: dict[str, float] = {}
    else:
        lat = {op.name: float(latency_us.get(op.name, 0.0)) for op in candidates}
        slowest = max(lat.values()) or 1.0
        band = max(tie * slowest, 1e-9)
        # latency first; latencies within `tie` of the slowest's share a band, where the
        # parameter count decides
        ranked = sorted(candidates, key=lambda op: (-int(lat[op.name] / band),
                                                    -params[op.name]))
        criterion = f"latency (ties within {tie:.0%}: parameters)"
    top = ranked[0]
    picked = [top] + [op for op in ranked[1:] if _similar(op, top)][: max(0, n_similar - 1)]
    return Selection(tuple(op.name for op in picked), criterion, lat, params, unattributed_us,
                     profile_source)


def _similar(a: Operator, b: Operator) -> bool:
    return (a.original is not None and b.original is not None
            and a.original.key() == b.original.key()
            and a.in_shape == b.in_shape and a.out_shape == b.out_shape)
