"""The weight tensors of a .tflite file, read from the flatbuffer: values, zeros, unique values.

What survives quantization is counted here, in the file a device runs, not in the Keras model:
the converter folds batch norm into convolution kernels, splits an LSTM's kernels per gate and
quantizes each tensor per channel or per tensor, and each of these can change how many distinct
values a clustered kernel has. No interpreter is needed (the schema of LiteRT, TFLite Micro or
TensorFlow reads the file; `device_agent.tflite_schema`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from device_agent.tflite_schema import operator_name, read_model, rejecting_corrupt

# Operators whose constant inputs of rank >= 2 are weights (rank-1 constants are biases, LSTM
# cell clipping and layer-norm vectors: small, and int32 where they are biases).
WEIGHT_OPS = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM",
     "TRANSPOSE_CONV", "BATCH_MATMUL"}
)
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64,
                7: np.int16, 9: np.int8}


@dataclass(frozen=True)
class WeightTensor:
    """One constant weight tensor of a model (subgraph `subgraph`, tensor `index`).

    `quantized_axis` is the axis of per-channel quantization (None when the tensor has one
    scale or none); `n_scales` the number of scales.
    """

    subgraph: int
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    n_scales: int
    quantized_axis: int | None
    consumers: tuple[str, ...]
    values: np.ndarray

    @property
    def size(self) -> int:
        return int(self.values.size)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    @property
    def zeros(self) -> int:
        """Elements that are exactly zero (in the stored type: the int8 value 0 when quantized)."""
        return int(np.count_nonzero(self.values == 0))

    @property
    def unique(self) -> int:
        """Distinct stored values over the whole tensor."""
        return int(np.unique(self.values).size)

    def unique_per_channel(self, axis: int | None = None) -> int:
        """The largest number of distinct values in one slice along `axis`.

        `axis` defaults to the quantized axis; a tensor quantized per tensor counts as one slice.
        """
        axis = self.quantized_axis if axis is None else axis
        if axis is None:
            return self.unique
        slices = np.moveaxis(self.values, axis, 0).reshape(self.shape[axis], -1)
        return max(int(np.unique(s).size) for s in slices)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tensor": self.index,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "consumers": list(self.consumers),
            "quantization": (
                f"per-channel (axis {self.quantized_axis}, {self.n_scales} scales)"
                if self.quantized_axis is not None
                else ("per-tensor" if self.n_scales else "none")
            ),
            "elements": self.size,
            "zeros": self.zeros,
            "sparsity": round(self.zeros / max(self.size, 1), 6),
            "unique": self.unique,
            "unique_per_channel": self.unique_per_channel(),
        }


def _name(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")


def weight_tensors(model: bytes) -> list[WeightTensor]:
    """The weight tensors of every subgraph (constant inputs of rank >= 2 of `WEIGHT_OPS`).

    A tensor read by several operators is listed once. Raises CandidateRejected for bytes that
    are not a readable .tflite file.
    """
    out: list[WeightTensor] = []
    with rejecting_corrupt():
        m = read_model(model)
        for sg_i in range(m.SubgraphsLength()):
            sg = m.Subgraphs(sg_i)
            readers: dict[int, list[str]] = {}
            for op_i in range(sg.OperatorsLength()):
                op = sg.Operators(op_i)
                name = operator_name(m, op)
                if name not in WEIGHT_OPS:
                    continue
                for k in range(op.InputsLength()):
                    t = op.Inputs(k)
                    if t >= 0:
                        readers.setdefault(t, []).append(name)
            for t_i, ops in sorted(readers.items()):
                t = sg.Tensors(t_i)
                buf = m.Buffers(t.Buffer())
                shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
                if len(shape) < 2 or buf is None or buf.DataLength() == 0:
                    continue
                dtype = _NUMPY_TYPES.get(t.Type())
                if dtype is None:
                    continue
                values = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape)
                q = t.Quantization()
                n_scales = q.ScaleLength() if q is not None else 0
                axis = int(q.QuantizedDimension()) if q is not None and n_scales > 1 else None
                out.append(
                    WeightTensor(
                        subgraph=sg_i,
                        index=t_i,
                        name=_name(t.Name()),
                        shape=shape,
                        dtype=np.dtype(dtype).name,
                        n_scales=n_scales,
                        quantized_axis=axis,
                        consumers=tuple(sorted(set(ops))),
                        values=values,
                    )
                )
    return out


def weight_summary(model: bytes) -> dict[str, Any]:
    """Totals over the weight tensors: elements, zeros, bytes, and the largest unique counts."""
    ws = weight_tensors(model)
    elements = sum(w.size for w in ws)
    zeros = sum(w.zeros for w in ws)
    return {
        "tensors": len(ws),
        "elements": elements,
        "bytes": sum(w.nbytes for w in ws),
        "zeros": zeros,
        "sparsity": round(zeros / max(elements, 1), 6),
        "max_unique_per_tensor": max((w.unique for w in ws), default=0),
        "max_unique_per_channel": max((w.unique_per_channel() for w in ws), default=0),
    }
