"""Storage figures of a compressed model, each with the source it comes from.

`file`: the bytes of a .tflite file that a runtime loads. `estimated`: a size computed for a
format no runtime here loads, the compressed-sparse-row (CSR) storage BioNetExplorer counts for
a pruned network. TFLite and TFLite Micro store every weight, zero or not (TFLM's pruning
compression is "not yet implemented" in the wheel), so sparsity shrinks a deployed file only
through the LUT's narrower indices, never by dropping zeros.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from host.compress.weights import WeightTensor, weight_tensors

ROW_POINTER_BITS = 32


def csr_bits(w: WeightTensor, value_bits: int, table_bytes: int = 0) -> int:
    """Bits of `w` in CSR form: nonzero values + their column indices + row pointers.

    Rows are the tensor's first axis (the output channel of Conv and Dense kernels, the gate
    unit of an LSTM matrix); `value_bits` per stored value (32 for float, 8 for int8, the LUT
    index width for a clustered tensor, which then also stores `table_bytes` of value tables).
    """
    rows = w.shape[0]
    cols = int(w.size // max(rows, 1))
    nnz = int(np.count_nonzero(w.values))
    index_bits = max(1, math.ceil(math.log2(max(cols, 2))))
    return nnz * (value_bits + index_bits) + (rows + 1) * ROW_POINTER_BITS + 8 * table_bytes


def sparse_bytes(model: bytes, *, clustered: bool = False) -> dict[str, Any]:
    """The model's size with its weight tensors in CSR form (estimated).

    The rest of the file (graph, biases, quantization parameters, metadata) counts at its
    real bytes. `clustered`: values are stored as LUT indices of ceil(log2(unique per channel))
    bits plus the tables, as after k-means weight sharing; otherwise at the tensor's own width.
    """
    ws = weight_tensors(model)
    dense = sum(w.nbytes for w in ws)
    bits = 0
    for w in ws:
        width = 8 * w.values.itemsize
        table = 0
        if clustered:
            per = w.unique_per_channel()
            width = max(1, math.ceil(math.log2(max(per, 2))))
            tables = w.shape[w.quantized_axis] if w.quantized_axis is not None else 1
            table = tables * per * w.values.itemsize
        bits += csr_bits(w, width, table)
    total = len(model) - dense + math.ceil(bits / 8)
    return {
        "bytes": int(total),
        "source": "estimated",
        "format": (
            "CSR of every weight tensor (nonzero values"
            + (" as LUT indices + value tables" if clustered else "")
            + f", column indices, {ROW_POINTER_BITS}-bit row pointers) + the rest of the "
            "file at its real bytes; no runtime here loads this format"
        ),
    }
