"""The search engine on a (synthetic) tabular benchmark: strategies, constraints, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_fixtures import config_doc, synthetic_table  # type: ignore[import-not-found]

from host.errors import ConfigError
from host.search import runner as runner_mod
from host.search.config import parse_config
from host.search.runner import STORE_NAME, run_search
from host.search.strategies import available_strategies
from host.store.sqlite import RunStore


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_table(tmp_path_factory.mktemp("table") / "table.json")


def _cfg(tmp_path: Path, table: Path, **sections):  # type: ignore[no-untyped-def]
    return parse_config(config_doc(tmp_path, tabular=str(table), **sections))


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, generation: int | None = None) -> None:
    """Ctrl-C once `generation` (None: any generation) is recorded, as a user's would land.

    Undo with `monkeypatch.undo()` before resuming.
    """
    real_record = runner_mod.SearchRun._record

    def record_then_interrupt(self, gen, scored):  # type: ignore[no-untyped-def]
        stop = real_record(self, gen, scored)
        if generation is None or gen == generation:
            raise KeyboardInterrupt
        return stop

    monkeypatch.setattr(runner_mod.SearchRun, "_record", record_then_interrupt)


@pytest.mark.parametrize("strategy", ["roulette", "tournament", "nsga2", "spea2", "random"])
def test_every_strategy_finds_a_front(tmp_path: Path, table: Path, strategy: str) -> None:
    cfg = _cfg(tmp_path, table, strategy={"name": strategy, "population": 8, "generations": 3})
    result = run_search(cfg, progress=False, report=False)
    assert result.front and result.hypervolume > 0
    store = RunStore(tmp_path / "runs" / STORE_NAME)
    evs = store.evaluations(result.run_id)
    assert {e["strategy"] for e in evs} == {strategy}
    gens = store.generations(result.run_id)
    assert [g["generation"] for g in gens] == list(range(len(gens)))
    # The front's hypervolume never shrinks as the search goes on.
    hvs = [g["hypervolume"] for g in gens]
    assert all(b >= a - 1e-12 for a, b in zip(hvs, hvs[1:], strict=False))
    assert store.run(result.run_id).status == "done"  # type: ignore[union-attr]


# "danas" breeds with a space's own operators, which the tabulated bionet space has not
# (tests/host/test_data_aware.py runs it on the data-aware space)
@pytest.mark.parametrize("strategy", [s for s in available_strategies() if s != "danas"])
def test_every_strategy_optimises_a_measured_objective(
    tmp_path: Path, table: Path, strategy: str
) -> None:
    """The weighted cost of roulette and tournament, the fronts of the others, the baselines:
    all with an objective measured on a device (the table's latency, labelled with the
    machine that measured it). Its reference comes from the first batch of measurements."""
    cfg = _cfg(
        tmp_path, table,
        strategy={"name": strategy, "population": 6, "generations": 3, "random_fraction": 0.2},
        objectives=[{"metric": "f1_macro"}, {"metric": "latency_p50_us", "device": "vm"}],
        devices=[{"name": "vm", "address": "local"}],
    )
    result = run_search(cfg, progress=False, report=False)
    assert result.front and result.hypervolume > 0
    for entry in result.front:
        figure = entry["figures"]["latency_p50_us@vm"]
        assert figure["value"] > 0 and figure["source"] == "synthetic (test fixture)"
    evs = RunStore(tmp_path / "runs" / STORE_NAME).evaluations(result.run_id)
    assert all(e["objectives"]["latency_p50_us@vm"] is not None
               for e in evs if e["status"] == "ok")


def test_a_configured_reference_is_used_as_given(tmp_path: Path, table: Path) -> None:
    from host.search.runner import SearchRun

    cfg = _cfg(
        tmp_path, table, strategy={"name": "tournament", "population": 4, "generations": 1},
        objectives=[{"metric": "f1_macro"}, {"metric": "latency_p50_us", "device": "vm"}],
        devices=[{"name": "vm", "address": "local"}],
        cost={"references": {"latency_p50_us@vm": 123.0}},
    )
    store = RunStore(tmp_path / "store.sqlite")
    store.create_run("r", "r", {"source": cfg.to_doc()})
    run = SearchRun(cfg, store, "r", progress=False)
    assert run.normaliser.references["latency_p50_us@vm"] == 123.0
    assert run.normaliser.normalise([0.5, 61.5]) == [0.5, 0.5]
    with pytest.raises(ConfigError, match="cost.references.latency@vm: not an objective"):
        _cfg(tmp_path, table, cost={"references": {"latency@vm": 1.0}})


def test_exhaustive_covers_the_bounded_space(tmp_path: Path, table: Path) -> None:
    cfg = _cfg(tmp_path, table, strategy={"name": "exhaustive", "population": 50})
    result = run_search(cfg, progress=False, report=False)
    # 135 gene combinations, 90 distinct networks (a 0-block network ignores x).
    assert result.trainings == 90


def test_same_seed_same_search(tmp_path: Path, table: Path) -> None:
    runs = []
    for i in range(2):
        cfg = _cfg(tmp_path / str(i), table)
        result = run_search(cfg, progress=False, report=False)
        store = RunStore(tmp_path / str(i) / "runs" / STORE_NAME)
        runs.append([(e["generation"], e["arch_key"]) for e in store.evaluations(result.run_id)])
    assert runs[0] == runs[1]
    other = run_search(_cfg(tmp_path / "2", table, run={"seed": 5}), progress=False, report=False)
    store = RunStore(tmp_path / "2" / "runs" / STORE_NAME)
    assert [(e["generation"], e["arch_key"]) for e in store.evaluations(other.run_id)] != runs[0]


def test_constraints_make_candidates_infeasible_before_training(tmp_path: Path,
                                                                table: Path) -> None:
    cfg = _cfg(tmp_path, table, constraints=[{"metric": "storage_int8_bytes", "max": 20000}])
    result = run_search(cfg, progress=False, report=False)
    store = RunStore(tmp_path / "runs" / STORE_NAME)
    evs = [e for e in store.evaluations(result.run_id) if e["arch_key"]]
    infeasible = [e for e in evs if e["status"] == "infeasible"]
    assert infeasible, "the limit excludes part of the space"
    assert all(e["detail"].startswith("before training: storage_int8_bytes") for e in infeasible)
    assert all(e["violation"] > 0 for e in infeasible)
    assert all(entry["objectives"]["storage_int8_bytes"] <= 20000 for entry in result.front)


def test_training_budget_is_respected(tmp_path: Path, table: Path) -> None:
    cfg = _cfg(tmp_path, table, budget={"max_trainings": 5},
               strategy={"name": "nsga2", "population": 10, "generations": 5})
    result = run_search(cfg, progress=False, report=False)
    assert result.trainings == 5


def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path, table: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    reference = run_search(_cfg(tmp_path / "ref", table), progress=False, report=False)
    ref_store = RunStore(tmp_path / "ref" / "runs" / STORE_NAME)
    expected = [(e["generation"], e["idx"], e["arch_key"])
                for e in ref_store.evaluations(reference.run_id)]

    cfg = _cfg(tmp_path / "cut", table)
    _interrupt_after(monkeypatch, generation=1)
    with pytest.raises(KeyboardInterrupt) as info:
        run_search(cfg, progress=False, report=False)
    monkeypatch.undo()
    store = RunStore(tmp_path / "cut" / "runs" / STORE_NAME)
    (row,) = store.runs()
    assert row.status == "interrupted" and "--resume" in row.message
    assert getattr(info.value, "run_id", None) == row.run_id  # the CLI names it
    result = run_search(resume=row.run_id, out_dir=str(tmp_path / "cut" / "runs"),
                        progress=False, report=False)
    got = [(e["generation"], e["idx"], e["arch_key"]) for e in store.evaluations(result.run_id)]
    assert got == expected and store.run(row.run_id).status == "done"  # type: ignore[union-attr]


def test_unknown_run_to_resume(tmp_path: Path, table: Path) -> None:
    from device_agent.errors import ConfigError

    run_search(_cfg(tmp_path, table), progress=False, report=False)
    with pytest.raises(ConfigError, match="no run 'nope'"):
        run_search(resume="nope", out_dir=str(tmp_path / "runs"), progress=False)


@pytest.mark.parametrize("strategy", ["nsga2", "tournament"])
def test_remutated_offspring_are_new_networks(tmp_path: Path, table: Path, strategy: str) -> None:
    """With duplicates = "remutate" every generation trains only networks not seen before."""
    strategy_doc = {"name": strategy, "population": 6, "generations": 6}
    kept = run_search(_cfg(tmp_path / "keep", table, strategy=strategy_doc),
                      progress=False, report=False)
    cfg = _cfg(tmp_path / "new", table, strategy={**strategy_doc, "duplicates": "remutate"})
    result = run_search(cfg, progress=False, report=False)
    store = RunStore(tmp_path / "new" / "runs" / STORE_NAME)
    seen: set[str] = set()
    for g in range(1, 7):
        keys = [e["arch_key"] for e in store.evaluations(result.run_id) if e["generation"] == g]
        assert len(keys) == 6 and None not in keys, "every offspring is a network of the space"
        assert len(set(keys)) == 6 and not seen & set(keys), f"generation {g} repeats a network"
        seen |= set(keys)
    # 6 new networks per generation, where the paper's GA re-proposes known ones.
    assert result.trainings == 6 * 7 > kept.trainings


def test_remutated_search_resumes_to_the_same_result(tmp_path: Path, table: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    strategy = {"name": "nsga2", "population": 5, "generations": 4, "duplicates": "remutate"}
    reference = run_search(_cfg(tmp_path / "ref", table, strategy=strategy),
                           progress=False, report=False)
    expected = [(e["generation"], e["arch_key"]) for e in
                RunStore(tmp_path / "ref" / "runs" / STORE_NAME).evaluations(reference.run_id)]
    _interrupt_after(monkeypatch, generation=2)
    with pytest.raises(KeyboardInterrupt):
        run_search(_cfg(tmp_path / "cut", table, strategy=strategy), progress=False, report=False)
    monkeypatch.undo()
    store = RunStore(tmp_path / "cut" / "runs" / STORE_NAME)
    (row,) = store.runs()
    result = run_search(resume=row.run_id, out_dir=str(tmp_path / "cut" / "runs"),
                        progress=False, report=False)
    assert [(e["generation"], e["arch_key"]) for e in store.evaluations(result.run_id)] == expected


def test_unknown_duplicates_policy_is_named(tmp_path: Path, table: Path) -> None:
    from device_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="strategy.duplicates = 'drop' is not one of: keep"):
        _cfg(tmp_path, table, strategy={"name": "nsga2", "duplicates": "drop"})


def test_search_command_names_the_run_to_resume(tmp_path: Path, table: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from host.cli import main
    from host.cli import search as search_cli

    def exit_now(code: int) -> None:
        raise SystemExit(code)

    _interrupt_after(monkeypatch)
    monkeypatch.setattr(search_cli.os, "_exit", exit_now)
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as info:
        main(["search", "configs/demo.toml", "--tabular", str(table), "--out", str(out),
              "--no-progress", "--no-report"])
    assert info.value.code == 130
    (row,) = RunStore(out / STORE_NAME).runs()
    printed = capsys.readouterr().out
    assert f"hilnas search --resume {row.run_id} --out {out}" in printed


def test_a_table_brings_its_own_data_and_budget(tmp_path: Path, table: Path) -> None:
    """Figures from a table were obtained under its data and budget: the run records those."""
    import json

    doc = json.loads(table.read_text())
    doc["meta"] = {"data": {"preset": "normal-vs-anomalous", "window": 128, "sample_rate": 180,
                            "split": "random", "records": ["100", "101"]},
                   "budget": {"epochs": 6, "clipnorm": 1.0}}
    own = tmp_path / "own.json"
    own.write_text(json.dumps(doc))
    result = run_search(_cfg(tmp_path, own, data={"window": 256}), progress=False, report=False)
    stored = RunStore(tmp_path / "runs" / STORE_NAME).run(result.run_id).config  # type: ignore[union-attr]
    assert stored["data"]["window"] == 128 and stored["data"]["split"] == "random"
    assert stored["data"]["records"] == ["100", "101"] and stored["train"]["epochs"] == 6

    doc["meta"]["budget"] = {"epochs": 6, "optimiser": "sgd"}
    own.write_text(json.dumps(doc))
    from device_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="unreadable meta.*optimiser"):
        run_search(_cfg(tmp_path, own), progress=False, report=False)


def test_a_run_started_from_a_relative_folder_is_readable_from_anywhere(
        tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out runs` (or run.out_dir = "runs") is resolved when the run starts, so the paths
    it stores (front.json, the store's model files) lead to its files from another folder
    (a benchmark reading a run made elsewhere)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg = _cfg(tmp_path, table, run={"out_dir": "runs"},
               strategy={"name": "nsga2", "population": 4, "generations": 1})
    result = run_search(cfg, progress=False, report=False)
    assert result.run_dir.is_absolute()
    assert result.run_dir == (work / "runs" / result.run_id).resolve()
    monkeypatch.chdir(tmp_path)
    store = RunStore(work / "runs" / STORE_NAME)
    stored = store.run(result.run_id)
    assert stored is not None
    assert Path(stored.config["source"]["run"]["out_dir"]) == (work / "runs").resolve()
    assert (result.run_dir / "front.json").exists()
