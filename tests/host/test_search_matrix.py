"""`hilnas search` with every registered space and every registered strategy, for real.

Each case is a small real configuration: MIT-BIH windows, tf-keras training, int8 export,
through the command line. The runs share one runs directory, so a network trained by an
earlier case comes from the store in a later one (as it would for a user), while every
strategy still proposes, scores and records its own generations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_space_contract import PPG_INPUT, SMALL  # type: ignore[import-not-found]

from host.cli import main
from host.search.prescreen import available_prescreeners
from host.search.runner import STORE_NAME
from host.search.strategies import available_strategies
from host.spaces.base import available_spaces, space_class
from host.store.sqlite import RunStore

# "danas" breeds with the space's own operators: only spaces that define them run it (the
# others refuse it with a ConfigError, tests/host/test_space_contract.py)
CASES = [(space, strategy) for space in sorted(SMALL) for strategy in available_strategies()
         if strategy != "danas" or hasattr(space_class(space), "mutate")]


def _toml(doc: dict[str, Any]) -> str:
    """A TOML document of tables, arrays of tables and scalars (enough for a config)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    for key, v in doc.items():
        if not isinstance(v, (dict, list)):
            lines.append(f"{key} = {value(v)}")
    for key, v in doc.items():
        tables = [v] if isinstance(v, dict) else v if isinstance(v, list) else []
        for table in tables:
            lines.append(f"[{key}]" if isinstance(v, dict) else f"[[{key}]]")
            lines += [f"{k} = {value(x)}" for k, x in table.items()]
    return "\n".join(lines) + "\n"


def _troika() -> bool:
    data_dir = os.environ.get("HILNAS_DATA_DIR")
    return bool(data_dir) and (Path(str(data_dir)) / "troika" / "training_data").is_dir()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix")


def _config(runs: Path, space: str, strategy: str, surrogate: str = "none") -> Path:
    data: dict[str, Any] = {
        "preset": "normal-vs-anomalous", "records": ["100", "106", "119", "208"],
        "max_windows_per_record": 30, "split": "random", "sample_rate": 180, "window": 64,
    }
    quality = "f1_macro"
    if space in PPG_INPUT:  # a space of the ppg task: TROIKA, the heart-rate error
        if not _troika():
            pytest.skip("TROIKA is not under HILNAS_DATA_DIR")
        # coarse spectra and 10 Hz signals (80 LSTM steps): the smallest inputs it offers
        data = {"task": "ppg", "input": PPG_INPUT[space], "resolution_bpm": 2.0,
                "sample_rate": 10}
        quality = "aae_bpm"
    doc = {
        "run": {"name": f"{space}-{strategy}", "seed": 1, "out_dir": str(runs)},
        "data": data,
        "space": {"name": space, **SMALL[space]},
        "train": {"epochs": 1, "batch_size": 32 if quality == "f1_macro" else 128,
                  "patience": 0},
        "strategy": {"name": strategy, "population": 2, "generations": 1,
                     "encoding": "integer", "surrogate": surrogate, "random_fraction": 0.5},
        "objectives": [{"metric": quality}, {"metric": "storage_int8_bytes"}],
        "budget": {"max_trainings": 3},
    }
    path = runs / f"{space}-{strategy}-{surrogate}.toml"
    path.write_text(_toml(doc))
    return path


def test_the_cases_cover_every_space_and_strategy() -> None:
    assert {s for s, _ in CASES} == set(available_spaces())
    assert {t for _, t in CASES} == set(available_strategies())


@pytest.mark.parametrize(("space", "strategy"), CASES)
def test_search_runs_every_space_with_every_strategy(
    data_dir: Path, runs: Path, space: str, strategy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(runs, space, strategy)
    assert main(["search", str(path), "--no-progress", "--no-report", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    store = RunStore(runs / STORE_NAME)
    evaluations = store.evaluations(result["run"])
    assert evaluations and {e["strategy"] for e in evaluations} == {strategy}
    trained = [e for e in evaluations if e["stage"] in ("export", "measure", "train")]
    assert trained, "no candidate reached training"
    assert all(e["arch_key"].startswith(space) for e in trained)
    assert 1 <= result["trainings"] <= 3 and result["front"]
    assert all(Path(f["files"]["tflite"]).is_file() for f in result["front"])
    assert store.run(result["run"]).status == "done"  # type: ignore[union-attr]


@pytest.mark.parametrize("surrogate", [p for p in available_prescreeners() if p != "none"])
def test_every_prescreener_runs_in_a_real_search(
    data_dir: Path, runs: Path, surrogate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(runs, "half", "nsga2", surrogate)
    assert main(["search", str(path), "--no-progress", "--no-report", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["front"]
