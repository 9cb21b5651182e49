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


def nondominated_order(values: np.ndarray) -> list[int]:
    """Row indices of `values` (n x m, minimised), best first.

    Ordered front by front (non-dominated sorting); within a front by the sum of
    per-objective ranks (a scale-free spread), then by index. HALF's pre-selection keeps
    the head of this order.
    """
    f = np.asarray(values, dtype=np.float64)
    n = len(f)
    if n == 0:
        return []
    dominated_by = [0] * n
    dominates: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if np.all(f[i] <= f[j]) and np.any(f[i] < f[j]):
                dominates[i].append(j)
                dominated_by[j] += 1
            elif np.all(f[j] <= f[i]) and np.any(f[j] < f[i]):
                dominates[j].append(i)
                dominated_by[i] += 1
    ranks = np.argsort(np.argsort(f, axis=0), axis=0).sum(axis=1)
    order: list[int] = []
    front = [i for i in range(n) if dominated_by[i] == 0]
    while front:
        order += sorted(front, key=lambda i: (ranks[i], i))
        nxt = []
        for i in front:
            for j in dominates[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        front = nxt
    return order
