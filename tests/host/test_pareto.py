"""Pareto fronts and hypervolume."""

from __future__ import annotations

import pytest

from host.search.pareto import dominates, hypervolume, pareto_front


def test_front_and_domination() -> None:
    points = [[0.1, 0.9], [0.5, 0.5], [0.6, 0.6], [0.9, 0.1], [0.5, 0.5]]
    assert dominates([0.5, 0.5], [0.6, 0.6]) and not dominates([0.1, 0.9], [0.9, 0.1])
    assert pareto_front(points) == [0, 1, 3]


def test_hypervolume_of_known_sets() -> None:
    assert hypervolume([[0.0, 0.0]], reference=1.0) == pytest.approx(1.0)
    assert hypervolume([[0.2, 0.5], [0.5, 0.2]]) == pytest.approx(0.9 * 0.6 + 0.6 * 0.3)
    # A dominated point adds nothing; points outside the box add nothing.
    assert hypervolume([[0.2, 0.5], [0.5, 0.2], [0.6, 0.6]]) == pytest.approx(0.72)
    assert hypervolume([[1.5, 0.1]]) == 0.0 and hypervolume([]) == 0.0
