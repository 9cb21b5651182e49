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
        assert cfg.objectives and cfg.quality_objective.maximise


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategy": {"name": "annealing"}}, "strategy.name = 'annealing' is not one of"),
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

    from host.search import config as c

    text = Path("docs/configuration.md").read_text()
    tables = {
        "run": c.RunConfig, "data": c.DataConfig, "space": c.SpaceConfig,
        "train": c.TrainSection, "strategy": c.StrategyConfig, "objectives": c.Objective,
        "constraints": c.Constraint, "cost": c.CostConfig, "devices": c.DeviceConfig,
        "measure": c.MeasureSection, "executor": c.ExecutorConfig, "budget": c.BudgetConfig,
    }
    assert set(tables) | {"tabular"} == c.TOP_LEVEL
    sections = dict(re.findall(r"^## `\[{1,2}(\w+)\]{1,2}`\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    for name, cls in tables.items():
        assert name in sections, f"docs/configuration.md has no section for [{name}]"
        documented = set(re.findall(r"^\| `(\w+)` \|", sections[name], re.M))
        keys = {f.name for f in dataclasses.fields(cls)}
        assert keys == documented, f"[{name}]: undocumented {keys - documented}, " \
                                   f"stale {documented - keys}"
