"""LiteRT's reference int8 kernels: the specification generated accelerators match bit for bit.

The C simulation of a generated project equals LiteRT's reference kernels
(`OpResolverType.BUILTIN_REF`), not its optimized or XNNPACK kernels, which round
differently in places (docs/decisions-fpga.md). Tests and benchmarks compare against this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_agent.errors import ConfigError


def reference_outputs(
    model: bytes | str | Path, windows: np.ndarray, resolver: str = "BUILTIN_REF"
) -> np.ndarray:
    """The model's raw outputs for int8 `windows` (n, *input shape without the batch).

    One invoke per window with LiteRT's `resolver` (an `OpResolverType` name: BUILTIN_REF,
    BUILTIN_WITHOUT_DEFAULT_DELEGATES, AUTO); returns (n, *output shape without the batch).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise ConfigError("reference outputs need LiteRT: pip install ai-edge-litert") from None
    if not hasattr(OpResolverType, resolver):
        raise ConfigError(f"resolver {resolver!r} is not a LiteRT OpResolverType")
    content = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    it = Interpreter(model_content=content,
                     experimental_op_resolver_type=getattr(OpResolverType, resolver))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    outputs = []
    for window in windows:
        it.set_tensor(inp["index"], np.asarray(window).reshape(inp["shape"]))
        it.invoke()
        outputs.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(outputs)


__all__ = ["reference_outputs"]
