"""`[compress]` in a search: the configuration, and mode "front" end to end with a resume.

The end-to-end run is as small as a real one can be (4 records, 40 windows each, 128-sample
windows, one grid point): about a minute and a half on two cores, most of it the
compression's TensorFlow graph building and conversions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from search_fixtures import TINY_ECG_DATA, config_doc  # type: ignore[import-not-found]

from host.errors import ConfigError
from host.search.config import CompressSettings, load_config, parse_config, table_keys


# ------------------------------------------------------------------------------ config
def test_compress_is_off_by_default(tmp_path: Path) -> None:
    cfg = parse_config(config_doc(tmp_path))
    assert cfg.compress.mode == "off"
    assert parse_config(cfg.to_doc()) == cfg


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"mode": "front", "sparsity": [0.5, 1.0]}, r"compress\.sparsity: each value must be "
                                                    r"in \[0, 1\), not 1\.0"),
        ({"mode": "front", "clusters": [1]}, r"compress\.clusters: each value must be an "
                                             r"integer in 2\.\.256, not 1"),
        ({"mode": "front", "clusters": [300]}, r"compress\.clusters"),
        ({"mode": "front", "sparsity": []}, r"compress\.sparsity must be a non-empty list"),
        ({"mode": "front", "prune": 0.5}, r"unknown key compress\.prune; allowed in "
                                          r"\[compress\]: channels, clusters, distill, "
                                          r"fine_tune_epochs, learning_rate"),
        ({"mode": "front", "channels": 1.0}, r"compress\.channels: the fraction of channels "
                                             r"removed must be in \[0, 1\), not 1\.0"),
        ({"mode": "front", "channels": True}, r"compress\.channels"),
        ({"mode": "front", "clusters": [2, 4]}, r"compress\.clusters: k = 2 with a sparsity > 0 "
                                                r"is not possible"),
        ({"mode": "sometimes"}, r"compress\.mode = 'sometimes' is not one of: off, front, "
                                r"joint"),
        ({"mode": "front", "scope": "row"}, r"compress\.scope = 'row' is not one of"),
        ({"mode": "front", "max_quality_loss": -1}, r"compress\.max_quality_loss must be"),
        ({"mode": "front", "fine_tune_epochs": 1.5}, r"compress\.fine_tune_epochs must be"),
        ({"mode": "front", "verify_windows": 0}, r"compress\.verify_windows must be"),
        ({"mode": "front", "distill": 1.0}, r"compress\.distill: the weight of the teacher's "
                                            r"outputs must be in \[0, 1\)"),
    ],
)
def test_bad_compress_settings_name_the_key(tmp_path: Path, table: dict[str, Any],
                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config_doc(tmp_path, compress=table))


def test_compress_needs_what_it_can_compress(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'compress\.mode = "front": the task gives the model '
                                          r"a second input"):
        parse_config(config_doc(tmp_path, compress={"mode": "front"},
                                data={"alignment": "beat", "rr_features": True}))
    with pytest.raises(ConfigError, match=r"space 'half' deploys another graph"):
        parse_config(config_doc(tmp_path, compress={"mode": "front"}, space={"name": "half"},
                                objectives=[{"metric": "f1_macro"}, {"metric": "params"}]))
    with pytest.raises(ConfigError, match="a tabular run trains no networks"):
        parse_config(config_doc(tmp_path, compress={"mode": "front"}, tabular="t.json"))


def test_compress_keys_are_documented() -> None:
    text = Path("docs/configuration.md").read_text()
    section = re.search(r"^## `\[compress\]`\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/configuration.md has no [compress] section"
    assert set(re.findall(r"^\| `(\w+)` \|", section.group(1), re.M)) == \
        table_keys(CompressSettings)


def test_shipped_compress_configs_parse() -> None:
    for name in ("bionet_compress.toml", "bionet_compress_smoke.toml"):
        cfg = load_config(Path("configs") / name)
        assert cfg.compress.mode == "front" and cfg.data.alignment == "fixed"
        assert parse_config(cfg.to_doc()) == cfg


def test_channel_pruning_is_part_of_the_stored_settings() -> None:
    """A stored grid point is reused only under the same channel fraction; runs stored before
    channel pruning existed (channels 0) keep their key."""
    import hashlib

    from host.compress.front import settings_hash
    from host.train import TrainConfig

    train = TrainConfig()
    # What every result stored before channels, the learning rate and distillation became
    # settings was keyed by (lr 1e-4, no distillation, no channel stage): still its key.
    earlier = {"version": 1, "scope": "layer", "fine_tune_epochs": 2, "verify_windows": 64,
               "batch_size": train.batch_size, "seed": train.seed}
    stored = hashlib.sha256(json.dumps(earlier, sort_keys=True).encode()).hexdigest()[:16]
    first = CompressSettings(mode="front", learning_rate=1e-4, distill=0.0)
    assert settings_hash(first, train) == stored
    plain = settings_hash(CompressSettings(mode="front"), train)  # lr 1e-3, distill 0.7
    assert plain != stored
    assert settings_hash(CompressSettings(mode="front", channels=0.0), train) == plain
    half = settings_hash(CompressSettings(mode="front", channels=0.5), train)
    assert half != plain != settings_hash(CompressSettings(mode="front", channels=0.25), train)
    assert CompressSettings(mode="front", channels=0.5).grid == CompressSettings().grid
    assert settings_hash(CompressSettings(mode="front", distill=0.5), train) != plain
    assert settings_hash(CompressSettings(mode="front", learning_rate=3e-4), train) != plain


def test_choose_keeps_the_smallest_within_the_budget() -> None:
    from host.compress.front import choose

    def point(s: float, k: int, size: int, loss: float | None) -> dict[str, Any]:
        return {"sparsity": s, "clusters": k, "loss_pp": loss,
                "storage_deployed_bytes": {"mcu": {"bytes": size}}}

    pts = [point(0.5, 16, 900, 0.1), point(0.8, 4, 500, 0.5), point(0.5, 4, 700, 0.2)]
    chosen, why = choose(pts, 0.2)
    assert chosen is pts[2] and "2 of 3" in why
    chosen, why = choose(pts, 0.05)
    assert chosen is None and "least loss: 0.1 pp" in why


# ------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def front_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Any:
    pytest.importorskip("tensorflow_model_optimization")
    pytest.importorskip("tflite_micro")
    from host.search.runner import run_search

    tmp = tmp_path_factory.mktemp("compress-search")
    doc = config_doc(
        tmp,
        data=TINY_ECG_DATA,
        space={"name": "bionet", "max_blocks": 1, "max_lstm_cells": 16},
        train={"epochs": 1, "patience": 1},  # (None would not survive the stored config)
        strategy={"name": "nsga2", "population": 2, "generations": 1},
        compress={"mode": "front", "sparsity": [0.5], "clusters": [4],
                  "fine_tune_epochs": 1, "verify_windows": 8, "max_quality_loss": 100.0},
    )
    cfg = parse_config(doc)
    first = run_search(cfg, progress=False)
    front = json.loads((first.run_dir / "front.json").read_text())
    resumed = run_search(resume=first.run_id, out_dir=str(tmp / "runs"), progress=False)
    return first, front, resumed


def test_front_members_get_a_compression_block_with_sources(front_run: Any) -> None:
    first, front, _ = front_run
    assert front["front"]
    for entry in front["front"]:
        block = entry["compression"]
        assert block["mode"] == "front" and block["metric"] == "f1_macro"
        (point,) = block["grid"]
        assert (point["sparsity"], point["clusters"]) == (0.5, 4)
        assert [s["stage"] for s in point["stages"]] == ["float", "pruned", "clustered",
                                                         "int8", "lut"]
        for stage in point["stages"]:
            assert stage["quality_source"]
            for figure in stage["bytes"].values():
                assert figure["source"] in ("file", "estimated") and figure["bytes"] > 0
        assert point["storage_float32_bytes"]["source"] == "file"
        assert point["storage_sparse_bytes"]["source"] == "estimated"
        assert set(point["storage_deployed_bytes"]) == {"mcu", "linux"}
        assert point["storage_deployed_bytes"]["linux"]["file"] == "int8.tflite"
        chosen = block["chosen"]  # max_quality_loss 100 pp: the only point is kept
        assert chosen is not None and chosen["loss_pp"] == point["loss_pp"]
        mcu = Path(entry["files"]["compressed_mcu"])
        assert mcu.read_bytes()[4:8] == b"TFL3"
        assert mcu.stat().st_size == chosen["storage_deployed_bytes"]["mcu"]["bytes"]
    page = (first.run_dir / "report.html").read_text()
    assert "<h2>Compression</h2>" in page and "compression.png" in page
    assert (first.run_dir / "compression.png").stat().st_size > 0


def test_a_resumed_run_does_not_compress_again(front_run: Any) -> None:
    first, front, resumed = front_run
    again = json.loads((resumed.run_dir / "front.json").read_text())
    computed = {e["arch"]: e["compression"]["grid"][0]["computed"] for e in front["front"]}
    assert computed == {e["arch"]: e["compression"]["grid"][0]["computed"]
                        for e in again["front"]}
    from host.search.runner import STORE_NAME
    from host.store.sqlite import RunStore

    store = RunStore(first.run_dir.parent / STORE_NAME)
    rows = store._query("SELECT COUNT(*) AS n FROM compressions")
    assert rows[0]["n"] == len(front["front"])
    phases = [t["phase"] for t in store.timings(first.run_id)]
    assert phases.count("train") == resumed.trainings  # nothing trained again either
    assert phases.count("compress") == 2 * len(front["front"])  # timed in both runs
