"""Per-operator latency by timing each operator of a model as a model of its own.

The LiteRT Python API has no op profiler (its `benchmark_model` binary does, and the adb
backend parses that). So, as nn-Meter does for kernel-level latency, this module cuts a
.tflite model into single-operator models: the same operator code, options, tensors,
quantization and constant buffers, with the operator's non-constant inputs as the model's
inputs. Each one is then timed with the ordinary measurement protocol.

What this measures is the operator in isolation: caches start warm with only its own data,
and there is no inter-operator overhead. The sum of the operator times is reported next to
the whole model's median, so the gap is visible.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from device_agent.errors import CandidateRejected
from device_agent.tflite_schema import CORRUPT_ERRORS, builtin_op_names, schema

METHOD = (
    "isolated operators: each operator of the main subgraph cut into a single-operator "
    "model (same kernel, tensors, quantization and weights) and timed with the measurement "
    "protocol"
)


def _ints(values: Any) -> list[int]:
    """Index vectors of the object API are numpy arrays or None."""
    return [] if values is None else [int(v) for v in values]


@dataclass(frozen=True)
class SingleOpModel:
    index: int
    op_name: str
    model_bytes: bytes


def split_operators(model_bytes: bytes) -> list[SingleOpModel]:
    """One single-operator model per operator of the main subgraph, in execution order."""
    import flatbuffers

    fb = schema()
    try:
        model = fb.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    except CORRUPT_ERRORS as exc:
        raise CandidateRejected(f"cannot parse the model flatbuffer: {exc}") from exc
    if not model.subgraphs:
        raise CandidateRejected("the model has no subgraph")
    names = builtin_op_names()
    main = model.subgraphs[0]
    result = []
    for index, op in enumerate(main.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        op_name = names.get(builtin, f"BUILTIN_{builtin}")
        if builtin == fb.BuiltinOperator.CUSTOM:
            op_name = f"CUSTOM:{(code.customCode or b'').decode(errors='replace')}"

        used: list[int] = []
        op_inputs, op_outputs = _ints(op.inputs), _ints(op.outputs)
        for group in (op_inputs, op_outputs, _ints(op.intermediates)):
            for t in group:
                if t >= 0 and t not in used:
                    used.append(t)
        remap = {old: new for new, old in enumerate(used)}

        def is_constant(t: int) -> bool:
            tensor = main.tensors[t]
            buf = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
            has_data = buf is not None and (
                (buf.data is not None and len(buf.data) > 0) or (buf.size or 0) > 0
            )
            return has_data or bool(tensor.isVariable)

        sub = fb.SubGraphT()
        sub.tensors = [copy.deepcopy(main.tensors[t]) for t in used]
        sub.inputs = [remap[t] for t in op_inputs if t >= 0 and not is_constant(t)]
        sub.outputs = [remap[t] for t in op_outputs if t >= 0]
        new_op = copy.deepcopy(op)
        new_op.inputs = [remap[t] if t >= 0 else -1 for t in op_inputs]
        new_op.outputs = [remap[t] for t in op_outputs]
        if op.intermediates is not None:
            new_op.intermediates = [remap[t] for t in _ints(op.intermediates)]
        sub.operators = [new_op]
        sub.name = f"op{index}_{op_name}"

        single = copy.copy(model)
        # Subgraphs other than the main one stay, so control-flow operators keep valid
        # subgraph indices.
        single.subgraphs = [sub] + list(model.subgraphs[1:])
        single.signatureDefs = []
        single.metadata = []
        builder = flatbuffers.Builder(1024)
        builder.Finish(single.Pack(builder), file_identifier=b"TFL3")
        result.append(SingleOpModel(index, op_name, bytes(builder.Output())))
    return result
