"""Pareto fronts and hypervolume over normalised, minimised objectives.

All objectives are turned into minimisation on [0, 1] before comparison: a quality Q
becomes 1 - Q, a cost becomes value / reference (clipped to 1). The hypervolume is then
measured against the point (1.1, ..., 1.1) with moocore, the implementation DEAP itself
uses (Fonseca et al.'s algorithm).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REFERENCE_POINT = 1.1


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether `a` Pareto-dominates `b` (all objectives minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (duplicates keep their first index)."""
    front: list[int] = []
    seen: set[tuple[float, ...]] = set()
    for i, p in enumerate(points):
        if tuple(p) in seen:
            continue
        if not any(dominates(q, p) for j, q in enumerate(points) if j != i):
            front.append(i)
            seen.add(tuple(p))
    return front


def hypervolume(points: Sequence[Sequence[float]], reference: float = REFERENCE_POINT) -> float:
    """Hypervolume dominated by `points` (minimised, normalised to [0, 1]) up to `reference`."""
    if len(points) == 0:
        return 0.0
    import moocore

    arr = np.asarray(points, dtype=np.float64)
    arr = np.minimum(arr, reference)  # points outside the box add nothing
    ref = np.full(arr.shape[1], reference)
    inside = np.all(arr < ref, axis=1)
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(arr[inside], ref=ref))
