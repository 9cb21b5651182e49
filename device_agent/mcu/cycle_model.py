"""An estimated-latency model of TFLM + CMSIS-NN int8 kernels on a Cortex-M, per operator.

cycles(op) = op_overhead
           + cycles_per_mac[kind] * MACs                      (CONV_2D, DEPTHWISE, FC, LSTM)
           + cycles_per_element[op] * elements                 (everything else)
           + cycles_per_activation_byte * (input + output activation bytes)
           + LSTM only: T * (lstm_step_cycles + lstm_cycles_per_unit_step * H)

MACs follow the convention of shared/data/reference/mcu_latency_reference.md (CONV_2D =
Ho*Wo*Co*Kh*Kw*Ci, DEPTHWISE = Ho*Wo*Co*Kh*Kw, FC = rows*out*in; LSTM = T*4H*(I+H)). The
coefficients live with the board in boards.json; how they were calibrated against the
published Nano 33 BLE and Cortex-M4 figures is in docs/decisions-mcu.md
(benchmarks/mcu_cycle_calibration.py reproduces it). Every figure from here is an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from device_agent.tflite_schema import operator_name, read_model, schema

_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 7: 2, 9: 1, 10: 8}  # TensorType -> bytes
_MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM"}


@dataclass(frozen=True)
class OpCost:
    index: int
    op: str
    kind: str  # the cycles_per_mac key used, or the op name
    macs: int
    elements: int
    activation_bytes: int
    cycles: float


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


def _tensor_bytes(t: Any) -> int:
    return _numel(_shape(t)) * _ITEMSIZE.get(t.Type(), 1)


def op_costs(model: bytes, coeffs: dict[str, Any]) -> list[OpCost]:
    """Per-op MACs, elements and estimated cycles for every op of the main subgraph."""
    m = read_model(model)
    sg = m.Subgraphs(0)
    overhead = float(coeffs.get("op_overhead_cycles", 0))
    per_mac: dict[str, float] = coeffs.get("cycles_per_mac", {})
    per_elem: dict[str, float] = coeffs.get("cycles_per_element", {})
    per_elem_default = float(coeffs.get("default_cycles_per_element", 4))
    per_byte = float(coeffs.get("cycles_per_activation_byte", 0))
    out: list[OpCost] = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        name = operator_name(m, op)
        # Optional inputs are -1; keep their positions (the LSTM's weights are positional).
        ins_all = (
            [sg.Tensors(j) if j >= 0 else None for j in op.InputsAsNumpy()]
            if op.InputsLength()
            else []
        )
        ins = [t for t in ins_all if t is not None]
        outs = [sg.Tensors(j) for j in op.OutputsAsNumpy() if j >= 0] if op.OutputsLength() else []
        out_shape = _shape(outs[0]) if outs else ()
        # Activations: the first input (weights are constants with a buffer) and outputs.
        act_bytes = (_tensor_bytes(ins[0]) if ins else 0) + sum(_tensor_bytes(t) for t in outs)
        macs = 0
        elements = _numel(out_shape) if outs else 0
        kind = name
        extra = 0.0
        if name == "CONV_2D" and len(ins) >= 2:
            w = _shape(ins[1])  # [Co, Kh, Kw, Ci]
            macs = _numel(out_shape) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D" and len(ins) >= 2:
            w = _shape(ins[1])  # [1, Kh, Kw, Co]
            macs = _numel(out_shape) * w[1] * w[2]
            ci = _shape(ins[0])[-1]
            if ci and w[3] == ci:
                kind = "DEPTHWISE_CONV_2D_MULT1"  # CMSIS-NN's fast path (channel multiplier 1)
        elif name == "FULLY_CONNECTED" and len(ins) >= 2:
            w = _shape(ins[1])  # [out, in]
            rows = _numel(_shape(ins[0])) // max(w[1], 1)
            macs = rows * w[0] * w[1]
        elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(ins_all) >= 5 and ins_all[4]:
            x = _shape(ins[0])  # [B, T, I] (batch-major, as tf-keras exports)
            hidden = _shape(ins_all[4])[0]  # input-to-output weights [H, I]
            b, t, n_in = (x + (1, 1, 1))[:3] if len(x) >= 3 else (1, 1, x[-1])
            macs = b * t * 4 * hidden * (n_in + hidden)
            extra = (
                b
                * t
                * (
                    float(coeffs.get("lstm_step_cycles", 0))
                    + float(coeffs.get("lstm_cycles_per_unit_step", 0)) * hidden
                )
            )
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            opts = op.BuiltinOptions()
            if opts is not None:
                pool = schema().Pool2DOptions()
                pool.Init(opts.Bytes, opts.Pos)
                elements *= max(pool.FilterHeight() * pool.FilterWidth(), 1)
        elif name == "MEAN" and ins:
            elements = _numel(_shape(ins[0]))
        if name in _MAC_OPS:
            cycles = overhead + per_mac.get(kind, per_mac.get(name, 5.0)) * macs + extra
        else:
            cycles = overhead + per_elem.get(name, per_elem_default) * elements
        cycles += per_byte * act_bytes
        out.append(OpCost(i, name, kind, int(macs), int(elements), int(act_bytes), cycles))
    return out


def estimate_latency_us(model: bytes, coeffs: dict[str, Any], clock_hz: int) -> float:
    """Estimated time of one inference in microseconds."""
    return sum(c.cycles for c in op_costs(model, coeffs)) / clock_hz * 1e6


def total_macs(model: bytes) -> int:
    return sum(c.macs for c in op_costs(model, {}))
