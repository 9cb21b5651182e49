"""The regressors behind the predictor: one small model per operator type, or per network.

Every kind maps a matrix of non-negative counts (MACs, bytes, elements, ...) to a latency
in microseconds, and is fitted to minimise *relative* error (latencies span four decades):

- "linear": latency = c0 + sum_j c_j * x_j with every c >= 0 (non-negative least squares,
  rows weighted by 1/latency). A cost model: it extrapolates to bigger operators than it saw.
- "rf": a random forest on log1p(x) predicting log(latency) (nn-Meter's kernel regressor).
  Precise inside the range it saw, flat outside it.
- "gbr": gradient-boosted trees, same features and target as "rf".
- "linear+rf": "linear", times a random forest's correction factor fitted on
  log(latency / linear) (so it extrapolates like the cost model and corrects its shape).
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("linear", "rf", "gbr", "linear+rf")
_FLOOR_US = 1e-3


class Regressor:
    """Fit/predict on count features; `kind` is one of KINDS."""

    def __init__(self, kind: str, seed: int = 0,
                 linear_columns: tuple[int, ...] | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown regressor kind {kind!r}; choose one of {KINDS}")
        self.kind = kind
        self.seed = seed
        # The cost-like columns the linear part may use (all by default): shape columns
        # such as channel counts let an under-determined fit extrapolate absurdly.
        self.linear_columns = linear_columns
        self._coef: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._tree: Any = None
        self._const: float | None = None

    # ------------------------------------------------------------------ linear
    def _lin(self, x: np.ndarray) -> np.ndarray:
        return x if self.linear_columns is None else x[:, list(self.linear_columns)]

    def _fit_linear(self, x: np.ndarray, y: np.ndarray) -> None:
        from scipy.optimize import nnls

        x = self._lin(x)
        design = np.hstack([np.ones((len(x), 1)), x])
        a = design / y[:, None]  # relative error: each row divided by its latency
        scale = np.abs(a).max(axis=0)
        scale[scale == 0] = 1.0  # a column never seen non-zero gets no weight (ridge)
        a = a / scale
        # A whisper of ridge keeps an under-determined system (few distinct operators)
        # from putting all its weight on one arbitrary column.
        ridge = 1e-4 * np.eye(design.shape[1])
        coef, _ = nnls(np.vstack([a, ridge]), np.concatenate([np.ones(len(y)),
                                                               np.zeros(design.shape[1])]))
        self._coef, self._scale = coef, scale

    def _predict_linear(self, x: np.ndarray) -> np.ndarray:
        assert self._coef is not None and self._scale is not None
        x = self._lin(x)
        design = np.hstack([np.ones((len(x), 1)), x])
        return np.asarray(np.maximum(design / self._scale @ self._coef, _FLOOR_US))

    # ------------------------------------------------------------------ trees
    def _tree_model(self) -> Any:
        if self.kind == "gbr":
            from sklearn.ensemble import GradientBoostingRegressor

            return GradientBoostingRegressor(
                n_estimators=60, max_depth=3, learning_rate=0.1, subsample=1.0,
                random_state=self.seed,
            )
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=16, min_samples_leaf=1 if self.kind == "rf" else 2,
            random_state=self.seed, n_jobs=1,
        )

    def fit(self, x: np.ndarray, y: np.ndarray) -> Regressor:
        x = np.asarray(x, dtype=np.float64)
        y = np.maximum(np.asarray(y, dtype=np.float64), _FLOOR_US)
        if len(y) == 0:
            raise ValueError("no samples")
        if len(y) < 3 or np.ptp(np.log(y)) < 1e-9 and self.kind != "linear":
            self._const = float(np.median(y))  # too little to learn a shape from
            return self
        self._const = None
        if self.kind in ("linear", "linear+rf"):
            self._fit_linear(x, y)
        if self.kind == "linear":
            return self
        target = np.log(y)
        if self.kind == "linear+rf":
            target = target - np.log(self._predict_linear(x))
        self._tree = self._tree_model().fit(np.log1p(x), target)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._const is not None:
            return np.full(len(x), self._const)
        if self.kind == "linear":
            return self._predict_linear(x)
        log_part = self._tree.predict(np.log1p(x))
        if self.kind == "linear+rf":
            return np.asarray(self._predict_linear(x) * np.exp(log_part))
        return np.asarray(np.exp(log_part))


__all__ = ["KINDS", "Regressor"]
