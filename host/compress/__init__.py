"""Model compression after BioNetExplorer: pruning, k-means clustering, int8, TFLM LUT.

`compress_model` runs float -> pruned -> clustered -> int8 -> LUT on a trained tf-keras model
and returns every stage's quality, bytes and the source of each figure (docs/compression.md).
The modules import TensorFlow and TFMOT lazily; `weights`, `storage` and `lut` need neither.
"""

from host.compress.lut import LutResult, LutTensorPlan, apply_lut, lut_compress, plan_lut
from host.compress.stages import (
    CompressConfig,
    CompressionResult,
    Stage,
    compress_model,
    storage_figures,
)
from host.compress.storage import sparse_bytes
from host.compress.weights import WeightTensor, weight_summary, weight_tensors

__all__ = [
    "CompressConfig",
    "CompressionResult",
    "LutResult",
    "LutTensorPlan",
    "Stage",
    "WeightTensor",
    "apply_lut",
    "compress_model",
    "lut_compress",
    "plan_lut",
    "sparse_bytes",
    "storage_figures",
    "weight_summary",
    "weight_tensors",
]
