"""The surrogate: offspring pre-screening for the GAs and the Bayesian strategy."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_fixtures import config_doc, synthetic_table  # type: ignore[import-not-found]

from device_agent.errors import ConfigError
from host.search import runner as runner_mod
from host.search.config import parse_config
from host.search.objectives import Figures, Normaliser
from host.search.pareto import hypervolume, pareto_front
from host.search.pipeline import Evaluation, Stage, Status
from host.search.runner import STORE_NAME, run_search
from host.search.surrogate import GpPrescreener
from host.store.sqlite import RunStore


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_table(tmp_path_factory.mktemp("table") / "table.json")


def _cfg(tmp_path: Path, table: Path, **sections):  # type: ignore[no-untyped-def]
    return parse_config(config_doc(tmp_path, tabular=str(table), **sections))


def _by_generation(out: Path, run_id: str) -> dict[int, list[str | None]]:
    gens: dict[int, list[str | None]] = {}
    for e in RunStore(out / "runs" / STORE_NAME).evaluations(run_id):
        gens.setdefault(e["generation"], []).append(e["arch_key"])
    return gens


# ---------------------------------------------------------------------- the ranking itself
STORAGE = {"a": 100.0, "b": 400.0, "c": 800.0, "tiny": 10.0, "huge": 1000.0, "mid": 300.0}


def _evaluation(key: str, f1: float) -> Evaluation:
    figures = Figures()
    figures.add("storage_int8_bytes", STORAGE[key], "analytic")
    figures.add("f1_macro", f1, "validation set")
    return Evaluation(key, figures, [f1, STORAGE[key]], 0.0, Status.OK, Stage.TRAIN)


def _prescreener(tmp_path: Path, **sections) -> GpPrescreener:  # type: ignore[no-untyped-def]
    cfg = parse_config(config_doc(tmp_path, **sections))
    known = {k: _evaluation(k, f1) for k, f1 in (("a", 0.70), ("b", 0.80), ("c", 0.90))}
    normaliser = Normaliser(cfg.objectives, {"storage_int8_bytes": 1000.0})
    return GpPrescreener(
        cfg,
        normaliser,
        analytic=lambda key: {"storage_int8_bytes": STORAGE[key], "params": STORAGE[key],
                           "macs": STORAGE[key]},
        features=lambda key: [STORAGE[key]],
        evaluated=lambda: known,
    )


def test_a_network_that_can_extend_the_front_ranks_first(tmp_path: Path) -> None:
    rank = _prescreener(tmp_path).rank
    # "tiny" is smaller than every trained network: whatever its F1, it is likely to extend
    # the front; "huge" is bigger than the best one and would need a better F1 than it.
    order = rank(["huge", "tiny", "mid"], 3, generation=1)
    assert order[0] == 1
    assert rank(["huge", "tiny"], 1, generation=1) == [1]


def test_known_networks_and_invalid_chromosomes_fill_only_what_is_left(tmp_path: Path) -> None:
    rank = _prescreener(tmp_path).rank
    assert rank(["a", None, "huge", "b"], 2, generation=1) == [2, 0]
    assert rank(["a", None, "tiny", "tiny"], 4, generation=1)[0] == 2


def test_a_cheap_constraint_ranks_a_network_last(tmp_path: Path) -> None:
    rank = _prescreener(tmp_path, constraints=[{"metric": "storage_int8_bytes", "max": 50}]).rank
    assert rank(["mid", "tiny"], 2, generation=1) == [1, 0]
    # Without the constraint the bigger network could still come first; with it, never.
    assert rank(["tiny", "mid"], 2, generation=1) == [0, 1]


def test_ranking_is_deterministic(tmp_path: Path) -> None:
    screen = _prescreener(tmp_path)
    first = screen.rank(["huge", "mid", "tiny"], 3, generation=4)
    assert all(screen.rank(["huge", "mid", "tiny"], 3, generation=4) == first for _ in range(3))


# ---------------------------------------------------------------------- in a search
def test_bayesian_trains_a_batch_of_new_networks_per_generation(tmp_path: Path,
                                                               table: Path) -> None:
    """Batches of 3, never a network twice; how few trainings it needs on the real table is
    benchmarks/search_efficiency.py's figure, not a unit test's."""
    result = run_search(
        _cfg(tmp_path, table, strategy={"name": "bayesian", "population": 3, "generations": 5}),
        progress=False, report=False,
    )
    gens = _by_generation(tmp_path, result.run_id)
    assert sorted(gens) == list(range(6))
    assert all(len(g) == 3 for g in gens.values())
    keys = [k for g in gens.values() for k in g]
    assert None not in keys and len(set(keys)) == len(keys) == result.trainings == 18
    assert result.front and result.hypervolume > 0


def _trainings_to(out: Path, run_id: str, target: float, largest: float, cap: int) -> int:
    """Trainings, one at a time in the order asked for, until the front's hypervolume
    reaches `target` (cap + 1 when it never does)."""
    points: list[list[float]] = []
    seen: set[str] = set()
    evs = RunStore(out / "runs" / STORE_NAME).evaluations(run_id)
    for e in sorted(evs, key=lambda e: (e["generation"], e["idx"])):
        if e["status"] != "ok" or e["arch_key"] in seen:
            continue
        seen.add(e["arch_key"])
        o = e["objectives"]
        points.append([1 - o["f1_macro"], o["storage_int8_bytes"] / largest])
        if hypervolume([points[i] for i in pareto_front(points)]) >= target:
            return len(points)
    return cap + 1


def test_bayesian_needs_fewer_trainings_than_random(tmp_path: Path, table: Path) -> None:
    """On the synthetic table (quality grows with size, plus noise), over 6 seeds: fewer
    trainings to 98% of the exhaustive front's hypervolume than random sampling."""
    exhaustive = run_search(_cfg(tmp_path / "all", table,
                                 strategy={"name": "exhaustive", "population": 135}),
                            progress=False, report=False)
    evs = RunStore(tmp_path / "all" / "runs" / STORE_NAME).evaluations(exhaustive.run_id)
    largest = max(e["objectives"]["storage_int8_bytes"] for e in evs)
    target, cap = 0.98 * exhaustive.hypervolume, 40
    needed: dict[str, list[int]] = {"bayesian": [], "random": []}
    for seed in range(6):
        for name, doc in (("bayesian", {"population": 3, "generations": 30}),
                          ("random", {"population": 1, "random_fraction": 1.0})):
            out = tmp_path / f"{name}{seed}"
            result = run_search(
                _cfg(out, table, run={"seed": seed}, strategy={"name": name, **doc},
                     budget={"max_trainings": cap}),
                progress=False, report=False,
            )
            needed[name].append(_trainings_to(out, result.run_id, target, largest, cap))
    assert sum(needed["bayesian"]) < sum(needed["random"]), needed


def test_bayesian_stops_when_the_space_is_exhausted(tmp_path: Path, table: Path) -> None:
    cfg = _cfg(tmp_path, table, strategy={"name": "bayesian", "population": 40,
                                          "generations": 10},
               space={"name": "bionet", "max_blocks": 2})
    result = run_search(cfg, progress=False, report=False)
    gens = _by_generation(tmp_path, result.run_id)
    distinct = {k for g in gens.values() for k in g}
    assert result.trainings == len(distinct) == 20  # every network of at most 2 blocks
    assert len(gens) == 2  # a first batch, then what was left, then it stops


def test_bayesian_resumes_to_the_same_result(tmp_path: Path, table: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    strategy = {"name": "bayesian", "population": 3, "generations": 4}
    reference = run_search(_cfg(tmp_path / "ref", table, strategy=strategy),
                           progress=False, report=False)
    expected = _by_generation(tmp_path / "ref", reference.run_id)
    real_record = runner_mod.SearchRun._record

    def record_then_interrupt(self, gen, scored):  # type: ignore[no-untyped-def]
        stop = real_record(self, gen, scored)
        if gen == 2:
            raise KeyboardInterrupt
        return stop

    monkeypatch.setattr(runner_mod.SearchRun, "_record", record_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_search(_cfg(tmp_path / "cut", table, strategy=strategy), progress=False, report=False)
    monkeypatch.undo()
    (row,) = RunStore(tmp_path / "cut" / "runs" / STORE_NAME).runs()
    result = run_search(resume=row.run_id, out_dir=str(tmp_path / "cut" / "runs"),
                        progress=False, report=False)
    assert _by_generation(tmp_path / "cut", result.run_id) == expected


@pytest.mark.parametrize("strategy", ["nsga2", "tournament"])
def test_prescreened_ga_trains_a_population_of_new_networks(tmp_path: Path, table: Path,
                                                            strategy: str) -> None:
    doc = {"name": strategy, "population": 5, "generations": 3, "duplicates": "remutate",
           "surrogate": "gp", "surrogate_pool": 4}
    runs = []
    for i in range(2):
        result = run_search(_cfg(tmp_path / str(i), table, strategy=doc),
                            progress=False, report=False)
        gens = _by_generation(tmp_path / str(i), result.run_id)
        seen = set(gens[0])
        for g in range(1, 4):
            assert len(gens[g]) == 5 and len(set(gens[g])) == 5 and not seen & set(gens[g])
            seen |= set(gens[g])  # type: ignore[arg-type]
        runs.append(gens)
    assert runs[0] == runs[1], "the same seed makes the same choices"


def test_surrogate_settings_are_validated(tmp_path: Path, table: Path) -> None:
    with pytest.raises(ConfigError,
                       match="strategy.surrogate = 'rf' is not one of: cheap, gp, none"):
        _cfg(tmp_path, table, strategy={"name": "nsga2", "surrogate": "rf"})
    with pytest.raises(ConfigError, match="strategy.surrogate_pool must be a positive integer"):
        _cfg(tmp_path, table, strategy={"name": "nsga2", "surrogate_pool": 0})
    doc = config_doc(tmp_path, tabular=str(table))
    doc["strategy"] = {"name": "bayesian"}
    assert parse_config(doc).strategy.population == 1  # one per training worker
    doc["executor"] = {"kind": "process", "workers": 2}
    assert parse_config(doc).strategy.population == 2
    doc["strategy"] = {"name": "nsga2"}
    assert parse_config(doc).strategy.population == 30  # the paper's
