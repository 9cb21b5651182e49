"""Comparing predictions with the measurements that came after them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np


class _Predicted(Protocol):
    @property
    def p50_us(self) -> float: ...
    @property
    def low_us(self) -> float: ...
    @property
    def high_us(self) -> float: ...
    @property
    def networks(self) -> int: ...


@dataclass(frozen=True)
class AuditEntry:
    """One prediction and the measurement that followed it."""

    sha256: str
    predicted_us: float
    low_us: float
    high_us: float
    measured_us: float
    networks: int  # networks the predictor had learned from when it predicted

    @property
    def relative_error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted_us - self.measured_us) / self.measured_us

    @property
    def inside(self) -> bool:
        return self.low_us <= self.measured_us <= self.high_us

    @classmethod
    def of(cls, sha256: str, prediction: _Predicted, measured_us: float) -> AuditEntry:
        return cls(sha256, prediction.p50_us, prediction.low_us, prediction.high_us,
                   measured_us, prediction.networks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "relative_error": self.relative_error}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AuditEntry:
        return cls(str(d["sha256"]), float(d["predicted_us"]), float(d["low_us"]),
                   float(d["high_us"]), float(d["measured_us"]), int(d["networks"]))


@dataclass(frozen=True)
class AuditStats:
    n: int
    mean_abs_pct_error: float   # mean |predicted - measured| / measured, in percent
    within_10pct: float         # share of predictions within +/-10% of the measurement
    median_abs_pct_error: float
    max_abs_pct_error: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if self.n == 0:
            return "no predictions to audit"
        return (f"{self.within_10pct:.0%} within +/-10% (n={self.n}), mean abs error "
                f"{self.mean_abs_pct_error:.1f}%, median {self.median_abs_pct_error:.1f}%, "
                f"max {self.max_abs_pct_error:.1f}%")


def audit(pairs: Iterable[tuple[float, float]]) -> AuditStats:
    """Error statistics of (predicted, measured) pairs."""
    arr = np.array([(p, m) for p, m in pairs if m > 0], dtype=np.float64).reshape(-1, 2)
    if arr.size == 0:
        nan = float("nan")
        return AuditStats(0, nan, nan, nan, nan)
    err = np.abs(arr[:, 0] - arr[:, 1]) / arr[:, 1] * 100
    return AuditStats(
        n=int(len(err)),
        mean_abs_pct_error=float(err.mean()),
        within_10pct=float((err <= 10.0).mean()),
        median_abs_pct_error=float(np.median(err)),
        max_abs_pct_error=float(err.max()),
    )


def audit_entries(entries: Iterable[AuditEntry]) -> AuditStats:
    return audit((e.predicted_us, e.measured_us) for e in entries)


__all__ = ["AuditEntry", "AuditStats", "audit", "audit_entries"]
