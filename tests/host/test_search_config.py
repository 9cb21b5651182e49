"""Search configuration: validation names the bad key and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_fixtures import config_doc  # type: ignore[import-not-found]

from device_agent.errors import ConfigError
from host.search.config import load_config, parse_config


def test_the_shipped_configs_are_valid() -> None:
    for path in Path("configs").glob("*.toml"):
        cfg = load_config(path)
        assert cfg.objectives and cfg.quality_objective.kind.value == "quality"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategy": {"name": "annealing"}}, "strategy.name = 'annealing' is not one of"),
        ({"space": {"name": "bionet", "bounds": {}}},
         "unknown key space.bounds for space 'bionet'; allowed: name, max_blocks"),
        ({"space": {"name": "half", "board": "zynq9"}}, "[space] unknown FPGA board 'zynq9'"),
        ({"data": {"task": "eeg"}}, "unknown task 'eeg'; known: audio, ecg, ppg"),
        ({"data": {"windw": 3}}, "unknown key data.windw for task 'ecg'"),
        ({"train": {"epoch": 3}}, "unknown key train.epoch; allowed in [train]"),
        ({"measure": {"inputs": []}}, "unknown key measure.inputs"),
        ({"measure": {"min_runs": 5, "max_runs": 2}}, "[measure] max_runs (2) must be >= min_runs"),
        ({"objectives": [{"metric": "f1_macro"}, {"metric": "fpga_power_w_min_unroll"}]},
         "unknown metric 'fpga_power_w_min_unroll'; this run's task and space give"),
        ({"objectives": [{"metric": "f1_macro"}, {"metric": "macs", "device": "d"}]},
         "macs is analytic, not measured on a device"),
        ({"objectives": [{"metric": "f1_macro"}, {"metric": "macs", "maximise": True}]},
         "unknown key objectives[1].maximise"),
        ({"devices": [{"name": "d", "address": "ftp://x"}]}, "unknown device 'ftp://x'"),
        ({"devices": [{"name": "d", "address": "local:teapot"}]}, "unknown backend 'teapot'"),
        ({"strategy": {"populaton": 3}}, "unknown key strategy.populaton; allowed in [strategy]"),
        ({"strategy": {"mutation_prob": 1.5}}, "strategy.mutation_prob must be in [0, 1]"),
        ({"bogus": {}}, "unknown key config.bogus"),
        ({"objectives": [{"metric": "latency_p50_us"}]}, "needs a device"),
        ({"objectives": [{"metric": "f1_macro"}, {"metric": "latency_p50_us", "device": "pi4"}]},
         "no device named 'pi4'"),
        ({"objectives": [{"metric": "storage_int8_bytes"}, {"metric": "macs"}]},
         "need a quality metric"),
        ({"executor": {"kind": "slurm"}}, "executor.kind = 'slurm' is not one of"),
        ({"constraints": [{"metric": "macs"}]}, "needs max or min"),
        ({"devices": [{"name": "a"}, {"name": "a"}]}, "names must be unique"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_doc(tmp_path, **change))
    assert message in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = Path("configs/demo.toml")
    cfg = load_config(path, {"strategy.name": "spea2", "run.seed": 7})
    assert cfg.strategy.name == "spea2" and cfg.run.seed == 7
    with pytest.raises(ConfigError, match="demo.toml: strategy.name"):
        load_config(path, {"strategy.name": "nope"})


def test_every_key_is_documented() -> None:
    """docs/configuration.md lists every key the parser accepts, under its own table."""
    import dataclasses
    import re

    from device_agent.types import MeasureSettings
    from host.search import config as c
    from host.spaces.base import available_spaces, space_class
    from host.tasks import available_tasks, task_class
    from host.train import TrainConfig

    text = Path("docs/configuration.md").read_text()
    data = {"task"} | {f.name for t in available_tasks()
                       for f in dataclasses.fields(task_class(t).config_type)}
    space = {"name"} | {k for s in available_spaces() for k in space_class(s).options()}
    tables: dict[str, set[str]] = {
        "run": c.table_keys(c.RunConfig), "data": data, "space": space,
        "train": c.table_keys(TrainConfig), "strategy": c.table_keys(c.StrategyConfig),
        "objectives": c.table_keys(c.Objective), "constraints": c.table_keys(c.Constraint),
        "cost": c.table_keys(c.CostConfig), "devices": c.table_keys(c.DeviceConfig),
        "measure": c.table_keys(MeasureSettings) - set(c.MEASURE_NOT_CONFIGURABLE),
        "executor": c.table_keys(c.ExecutorConfig), "budget": c.table_keys(c.BudgetConfig),
        "search": c.table_keys(c.SearchSettings),
        "compress": c.table_keys(c.CompressSettings),
    }
    assert set(tables) | {"tabular"} == c.TOP_LEVEL
    sections = dict(re.findall(r"^## `\[{1,2}(\w+)\]{1,2}`\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    for name, keys in tables.items():
        assert name in sections, f"docs/configuration.md has no section for [{name}]"
        documented = set(re.findall(r"^\| `(\w+)` \|", sections[name], re.M))
        assert keys == documented, f"[{name}]: undocumented {keys - documented}, " \
                                   f"stale {documented - keys}"


def test_a_stored_configuration_reads_back_the_same() -> None:
    for path in Path("configs").glob("*.toml"):
        cfg = load_config(path)
        assert parse_config(cfg.to_doc()) == cfg, path


def test_strategy_and_space_that_cannot_work_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="strategy 'exhaustive' lists every network of the "
                                          "space, but space 'half'"):
        parse_config(config_doc(tmp_path, space={"name": "half"},
                                strategy={"name": "exhaustive"}))
    with pytest.raises(ConfigError, match="surrogate = 'cheap' ranks on objectives known"):
        parse_config(config_doc(tmp_path, strategy={"name": "nsga2", "surrogate": "cheap"},
                                objectives=[{"metric": "f1_macro"},
                                            {"metric": "latency_p50_us", "device": "d"}],
                                devices=[{"name": "d"}]))


def test_a_none_that_is_not_the_default_survives_the_stored_document() -> None:
    """A resumed run reads its configuration back from the store's JSON document."""
    import dataclasses
    import json

    from host.search.config import parse_config

    doc = {
        "data": {"records": ["100", "101", "103"]},
        "space": {"name": "bionet"},
        "objectives": [{"metric": "f1_macro"}, {"metric": "storage_int8_bytes"}],
    }
    cfg = parse_config(doc)

    plain = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, patience=None,
                                                               class_weights=None))
    again = parse_config(json.loads(json.dumps(plain.to_doc())))
    assert again.train.patience is None and again.train.class_weights is None
    assert again.train == plain.train
