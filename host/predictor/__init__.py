"""An online latency predictor per device (nn-Meter's per-kernel approach, learned online).

See docs/predictor.md. `LatencyPredictor(device)`: `observe_profile`, `observe_measure`,
`fit`, `predict(model_bytes) -> Prediction`, `save`/`load`.
"""

from host.predictor.audit import AuditEntry, AuditStats, audit, audit_entries
from host.predictor.features import OpFeatures, op_features
from host.predictor.model import DEFAULT_KIND, LatencyPredictor, Prediction, network_features
from host.predictor.regressors import KINDS

__all__ = [
    "DEFAULT_KIND",
    "KINDS",
    "AuditEntry",
    "AuditStats",
    "LatencyPredictor",
    "OpFeatures",
    "Prediction",
    "audit",
    "audit_entries",
    "network_features",
    "op_features",
]
