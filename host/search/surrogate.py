"""Surrogate pre-screening of offspring (strategy.surrogate = "gp").

A training costs minutes; breeding an offspring costs nothing. With a surrogate, a GA breeds
`surrogate_pool` times as many offspring as it will train, and this module ranks them:

- objectives known before training (the analytic costs: storage, MACs, ...) are exact;
- the others (quality, device figures) are predicted by a Gaussian process per objective
  (scikit-learn), fitted to this run's evaluated networks on features that need no training
  (the log analytic costs and, where the space has one, the integer genome);
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

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from host.search.config import ANALYTIC_METRICS, SINGLE_OBJECTIVE, SearchConfig
from host.search.evaluator import Evaluation
from host.search.objectives import Figures, Normaliser, total_violation
from host.search.pareto import hypervolume, pareto_front

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


class Prescreener:
    def __init__(
        self,
        cfg: SearchConfig,
        normaliser: Normaliser,
        costs: Callable[[str], Mapping[str, float]],
        features: Callable[[str], list[float]],
        evaluated: Callable[[], Mapping[str, Evaluation]],
    ) -> None:
        """Rank offspring for the run of `cfg`.

        `costs(key)`: the analytic costs; `features(key)`: the surrogate's inputs;
        `evaluated()`: this run's evaluations so far, by network key.
        """
        self.cfg, self.normaliser = cfg, normaliser
        self.costs, self.features, self.evaluated = costs, features, evaluated
        self.single = cfg.strategy.name in SINGLE_OBJECTIVE
        self.exact = [o.metric in ANALYTIC_METRICS for o in cfg.objectives]

    # ------------------------------------------------------------------ public
    def rank(self, keys: Sequence[str | None], k: int, generation: int) -> list[int]:
        """Indices into `keys` of the (at most) `k` offspring to evaluate, best first.

        `None` stands for an offspring outside the bounded space; such offspring, and
        repeats of a network already in the pool, are never chosen over a new network.
        """
        known = dict(self.evaluated())
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key is not None and key not in first:
                first[key] = i
        new = [key for key in first if key not in known]
        chosen: list[int] = []
        if new:
            chosen = [first[key] for key in self._greedy(new, known, k, generation)]
        # Fill the generation from what is left, in breeding order: repeats and invalid
        # chromosomes cost no training, and the GA keeps its population size.
        taken = set(chosen)
        rest = [i for i in range(len(keys)) if i not in taken]
        return (chosen + rest)[:k]

    # ------------------------------------------------------------------ internals
    def _greedy(
        self, new: list[str], known: Mapping[str, Evaluation], k: int, generation: int
    ) -> list[str]:
        means, stds = self._predict(new, known)
        cheap_ok = np.array([self._cheap_violation(key) == 0 for key in new])
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
        values[j] = self.costs(key)[self.cfg.objectives[j].metric]
        return self.normaliser.normalise(values)[j]

    def _cheap_violation(self, key: str) -> float:
        figures = Figures()
        figures.add_costs(self.costs(key))
        return total_violation(self.cfg, figures, cheap_only=True)

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


def surrogate_features(
    space: Any, costs: Callable[[str], Mapping[str, float]]
) -> Callable[[str], list[float]]:
    """The surrogate's inputs for a network key.

    The log analytic costs and, where the space has an integer encoding, the integer genes
    (the architecture's own parameters).
    """
    by_key = {a.key(): a for a in space.architectures(bounded=False)}
    has_genes = hasattr(space, "encode_int")

    def features(key: str) -> list[float]:
        c = costs(key)
        out = [math.log1p(c[m]) for m in ("params", "macs", "storage_int8_bytes")]
        if has_genes:
            out.extend(float(g) for g in space.encode_int(by_key[key]))
        return out

    return features
