"""Gaussian-process pre-screening of candidates (strategy.surrogate = "gp").

A training costs minutes; breeding an offspring costs nothing. With a surrogate, a GA breeds
`surrogate_pool` times as many offspring as it will train, and this module ranks them:

- objectives known before training (the analytic costs: storage, MACs, ...) are exact;
- the others (quality, device figures) are predicted by a Gaussian process per objective
  (scikit-learn), fitted to this run's evaluated networks on features that need no training
  (`Space.features`: the log analytic costs and the integer genes);
- each offspring's value is its expected improvement, estimated by Monte Carlo over the
  Gaussian predictions: of the hypervolume of the current front for the multi-objective
  GAs, of the best weighted cost for the single-objective ones (the same quantity the
  strategy optimises, in the runner's normalised units);
- a batch is picked greedily: after each pick, its predicted mean joins the front (the
  "kriging believer"), so the rest of the batch is not spent on its near twins.

Offspring whose network the run has already evaluated gain nothing (their figures are
known), and offspring that break a cheap constraint rank last (they would be rejected before
training anyway). Everything is deterministic: the Gaussian processes are fitted with a
fixed random state and the Monte Carlo draws are seeded by run seed and generation, so a
resumed run, whose evaluations come back from the store, ranks exactly as before.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from host.search.pareto import hypervolume, pareto_front
from host.search.prescreen import Prescreener, register_prescreener
from host.search.strategies import strategy_class

if TYPE_CHECKING:
    from host.search.pipeline import Evaluation

# Monte Carlo draws per offspring. The estimates only need to order a few dozen offspring;
# common random numbers (the same draws for every offspring) keep that order stable.
MC_SAMPLES = 64
# Below this many evaluated networks a Gaussian process says little; the ranking then uses
# the exact objectives alone (the predicted ones at their mean over the evaluated networks).
MIN_FIT_POINTS = 3
# Least prior standard deviation of a predicted objective, in normalised units: retraining
# one network moves its F1 by 0.02 to 0.05 (docs/decisions.md), so no prediction of a
# network the run has not trained is surer than that.
PRIOR_STD_FLOOR = 0.05


@register_prescreener("gp")
class GpPrescreener(Prescreener):
    """Expected improvement under one Gaussian process per predicted objective."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.single = strategy_class(self.cfg.strategy.name).weighted_cost
        self.exact = [o.cheap for o in self.cfg.objectives]

    def pick(
        self, new: list[str], known: Mapping[str, Evaluation], k: int, generation: int
    ) -> list[str]:
        means, stds = self._predict(new, known)
        cheap_ok = np.array([self.cheap_violation(key) == 0 for key in new])
        rng = np.random.default_rng([self.cfg.run.seed, generation])
        draws = rng.standard_normal((MC_SAMPLES, means.shape[1]))
        front = self._front(known)
        picked: list[str] = []
        remaining = list(range(len(new)))
        while remaining and len(picked) < k:
            gains = np.array([self._gain(means[i], stds[i], draws, front) for i in remaining])
            gains[~cheap_ok[remaining]] = -1.0  # breaks a cheap constraint: last
            # Ties (no expected gain anywhere) go to breeding order: deterministic, and
            # no preference the GA itself would not have.
            best = remaining.pop(int(np.argmax(gains)))
            picked.append(new[best])
            front = self._believe(front, means[best])
        return picked

    def _predict(
        self, new: list[str], known: Mapping[str, Evaluation]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (minimised) objective means and standard deviations of `new`."""
        n_obj = len(self.cfg.objectives)
        means = np.zeros((len(new), n_obj))
        stds = np.zeros((len(new), n_obj))
        x_new = np.array([self.features(key) for key in new], dtype=float)
        for j, exact in enumerate(self.exact):
            if exact:
                means[:, j] = [self._exact_normalised(key, j) for key in new]
                continue
            # Fit on the networks whose figure for this objective is known (a candidate
            # rejected before training, or one whose device was lost, has none).
            fit = [key for key, ev in known.items() if ev.objectives[j] is not None]
            y = np.array(
                [self.normaliser.normalise(known[key].objectives)[j] for key in fit], dtype=float
            )
            if len(y) < MIN_FIT_POINTS or float(np.ptp(y)) == 0.0:
                means[:, j] = float(y.mean()) if len(y) else 0.5
                stds[:, j] = float(y.std()) if len(y) > 1 else 0.5
                continue
            x_train = np.array([self.features(key) for key in fit], dtype=float)
            means[:, j], stds[:, j] = _gp_predict(x_train, y, x_new)
        return means, stds

    def _exact_normalised(self, key: str, j: int) -> float:
        values: list[float | None] = [None] * len(self.cfg.objectives)
        values[j] = self.analytic(key)[self.cfg.objectives[j].metric]
        return self.normaliser.normalise(values)[j]

    def _front(self, known: Mapping[str, Evaluation]) -> np.ndarray:
        points = [self.normaliser.normalise(ev.objectives) for ev in known.values() if ev.feasible]
        if not points:
            return np.zeros((0, len(self.cfg.objectives)))
        arr = np.array(points, dtype=float)
        return arr[pareto_front(arr.tolist())]

    def _believe(self, front: np.ndarray, mean: np.ndarray) -> np.ndarray:
        merged = np.vstack([front, mean[None, :]])
        return merged[pareto_front(merged.tolist())]

    def _gain(
        self, mean: np.ndarray, std: np.ndarray, draws: np.ndarray, front: np.ndarray
    ) -> float:
        samples = np.clip(mean + std * draws, 0.0, 1.0)
        if self.single:
            a, b = self.cfg.cost.alpha, self.cfg.cost.beta
            best = max((self._weighted(p, a, b) for p in front), default=0.0)
            return float(np.mean([max(self._weighted(p, a, b) - best, 0.0) for p in samples]))
        base = hypervolume(front.tolist())
        gains = [hypervolume(np.vstack([front, p[None, :]]).tolist()) - base for p in samples]
        return float(np.mean(gains))

    def _weighted(self, norm: np.ndarray, alpha: float, beta: float) -> float:
        return self.normaliser.weighted_from_normalised(norm.tolist(), alpha, beta)


def _gp_predict(
    x_train: np.ndarray, y: np.ndarray, x_new: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-process posterior mean and standard deviation at `x_new`.

    Matern 5/2 with one length scale per feature, a linear term, and a white-noise term:
    retraining one network gives a different F1 (the training noise of docs/decisions.md),
    and without the noise term the process would interpolate that noise exactly.
    """
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import (
        ConstantKernel,
        DotProduct,
        Matern,
        WhiteKernel,
    )

    lo, hi = x_train.min(axis=0), x_train.max(axis=0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    # Objectives are in normalised units ([0, 1]), so the kernel's amplitude is too: the
    # prior standard deviation is at least PRIOR_STD_FLOOR, so that the few points of an
    # early generation cannot make the process sure of networks far from all of them
    # (it would otherwise predict their mean figure there with the spread of three points).
    # A linear term (DotProduct) carries the trend of quality with size beyond the points.
    kernel = (
        ConstantKernel(0.1, (PRIOR_STD_FLOOR**2, 1.0))
        * Matern(length_scale=np.ones(x_train.shape[1]), length_scale_bounds=(1e-2, 1e2), nu=2.5)
        + DotProduct(sigma_0=1.0, sigma_0_bounds=(1e-3, 1e2))
        + WhiteKernel(1e-3, (1e-6, 1e-1))
    )
    gp = GaussianProcessRegressor(kernel=kernel, normalize_y=False, random_state=0)
    offset = float(y.mean())
    with _quiet_convergence():
        gp.fit((x_train - lo) / scale, y - offset)
    mean, std = gp.predict((x_new - lo) / scale, return_std=True)
    return np.asarray(mean, dtype=float) + offset, np.asarray(std, dtype=float)


@contextmanager
def _quiet_convergence() -> Iterator[None]:
    """Silence sklearn's warning that a kernel hyperparameter sits on its bound.

    That is routine with the few points of an early generation; the fit is still the best
    within the bounds.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
