"""The TFLite flatbuffer schema, and reading a .tflite file with it (no interpreter needed).

Operator options, operator names and constants are in the flatbuffer, not in an
interpreter's tensor details; the per-operator profiler, the emulated board's cycle model
and arena checks, the bridges' model checks and the HLS generator all read them here.

Three packages bundle the generated schema (`schema_py_generated`): LiteRT (what the agent
runs models with), TFLite Micro (the emulated board) and TensorFlow (the host). Any one
will do; they are tried in that order, so a board never imports TensorFlow when it has
either of the others.

A damaged flatbuffer does not fail cleanly: its offsets point outside the buffer or at
garbage, and reading raises anything from struct.error to IndexError. `rejecting_corrupt`
turns all of those into one `CandidateRejected`.
"""

from __future__ import annotations

import contextlib
import importlib
import struct
from collections.abc import Iterator
from functools import cache
from typing import Any

from device_agent.errors import CandidateRejected, ConfigError

_SCHEMA_MODULES = (
    "ai_edge_litert.schema_py_generated",
    "tflite_micro.tensorflow.lite.micro.python.schema_py_generated",
    "tensorflow.lite.python.schema_py_generated",
)
TFLITE_IDENTIFIER = b"TFL3"
#: What reading a damaged flatbuffer raises.
CORRUPT_ERRORS: tuple[type[Exception], ...] = (
    IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError, struct.error,
)


@cache
def schema() -> Any:
    """The generated TFLite schema module (from LiteRT, TFLite Micro or TensorFlow)."""
    for name in _SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ConfigError(
        "reading .tflite files needs the TFLite flatbuffer schema, which LiteRT bundles: "
        "pip install ai-edge-litert (or 'hilnas[agent]')"
    )


@cache
def builtin_op_names() -> dict[int, str]:
    """BuiltinOperator code -> name (CONV_2D, SOFTMAX, ...), from the schema."""
    ops = vars(schema().BuiltinOperator)
    return {v: k for k, v in ops.items() if not k.startswith("_") and isinstance(v, int)}


def op_name(code: int) -> str:
    return builtin_op_names().get(code, f"BUILTIN_{code}")


@contextlib.contextmanager
def rejecting_corrupt(what: str = "the model") -> Iterator[None]:
    """Turn the errors of reading a damaged flatbuffer into CandidateRejected."""
    try:
        yield
    except CORRUPT_ERRORS as exc:
        raise CandidateRejected(
            f"{what} is not a readable .tflite flatbuffer ({type(exc).__name__}: {exc})"
        ) from None


def read_model(data: bytes) -> Any:
    """The flatbuffer's Model table (read-only accessors over `data`, nothing copied)."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise CandidateRejected("not a TFLite flatbuffer (no TFL3 identifier)")
    return schema().Model.GetRootAs(data, 0)


def operator_name(model: Any, op: Any) -> str:
    """The name of operator `op` of `model`: its builtin name, or CUSTOM."""
    code = model.OperatorCodes(op.OpcodeIndex())
    if code.CustomCode() is not None:
        return "CUSTOM"
    return op_name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))


def model_ops(data: bytes, *, custom_names: bool = False) -> list[str]:
    """Operator names in execution order over all subgraphs; CandidateRejected if unreadable.

    Custom operators are "CUSTOM", or with `custom_names` their custom code: an op
    resolver registers a custom operator by that name (TFLM's DECODE is "TFLM_DECODE"), so
    a check against a resolver's list needs it.
    """
    with rejecting_corrupt():
        model = read_model(data)
        if model.SubgraphsLength() < 1:
            raise CandidateRejected("the model has no subgraph")
        names = []
        for s in range(model.SubgraphsLength()):
            sg = model.Subgraphs(s)
            for i in range(sg.OperatorsLength()):
                op = sg.Operators(i)
                custom = model.OperatorCodes(op.OpcodeIndex()).CustomCode()
                names.append(custom.decode("utf-8", "replace") if custom_names and custom
                             is not None else operator_name(model, op))
        return names


__all__ = [
    "CORRUPT_ERRORS",
    "TFLITE_IDENTIFIER",
    "builtin_op_names",
    "model_ops",
    "op_name",
    "operator_name",
    "read_model",
    "rejecting_corrupt",
    "schema",
]
