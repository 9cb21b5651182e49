"""`[compress] mode = "joint"`: compression genes in the chromosome (host/compress/joint.py).

The space wrapper is checked alone (genes, keys, both encodings, invalid chromosomes); the
configuration's rules; and one real joint search end to end: a space bounded to a single
network, so that every candidate differs only in its compression and all of them must share
one training, with the emulated Nano 33 BLE (TFLM, firmware with compression) measuring the
file an MCU runs and the local LiteRT agent the int8 file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from search_fixtures import TINY_ECG_DATA, config_doc  # type: ignore[import-not-found]

from host.compress.joint import CompressedArch, CompressionPoint, JointCompressionSpace
from host.errors import ConfigError
from host.search.config import load_config, parse_config
from host.spaces import get_space

JOINT = {"mode": "joint", "channels": [0.0, 0.5], "sparsity": [0.0, 0.5, 0.75],
         "clusters": [4, 16]}


def joint_space() -> JointCompressionSpace:
    return JointCompressionSpace(get_space("bionet", max_blocks=2, max_lstm_cells=32),
                                 [0.0, 0.5], [0.0, 0.5, 0.75], [4, 16])


# ------------------------------------------------------------------------------ the space
def test_the_genes_are_the_networks_then_three_ladders() -> None:
    space = joint_space()
    base = space.base
    names = [g.name for g in space.genes()]
    assert names[:len(base.genes())] == [g.name for g in base.genes()]
    assert names[-3:] == ["compress_channels", "compress_sparsity", "compress_clusters"]
    assert space.int_bounds()[-3:] == [(0, 1), (0, 2), (0, 1)]
    assert space.size() == base.size() * 2 * 3 * 2
    assert len(space.architectures()) == space.size()


def test_keys_and_both_encodings_round_trip() -> None:
    space = joint_space()
    rng = random.Random(3)
    for _ in range(40):
        arch = space.draw(rng)
        assert space.contains(arch)
        assert space.from_key(arch.key()) == arch
        assert space.decode_int(space.encode_int(arch)) == arch
        bits = space.encode(arch)
        assert len(bits) == space.chromosome_length == space.base.chromosome_length + 1 + 2 + 1
        assert space.decode(bits) == arch
        assert space.network_key(arch.key()) == arch.base.key()
        assert space.compression(arch) == arch.point
    arch = CompressedArch(space.base.architectures()[0], CompressionPoint(0.5, 0.75, 16))
    assert arch.key() == f"{arch.base.key()}+c0.5-s0.75-k16"
    assert arch.to_json()["compression"] == {"channels": 0.5, "sparsity": 0.75, "clusters": 16}


def test_an_index_past_a_ladder_is_an_invalid_chromosome() -> None:
    space = joint_space()
    arch = space.architectures()[0]
    genes = space.encode_int(arch)
    genes[-2] = 3  # the sparsity ladder has 3 values
    assert space.decode_int(genes) is None
    bits = space.encode(arch)
    at = space.base.chromosome_length + 1  # the sparsity index's 2 bits: 0b11 = 3
    bits[at:at + 2] = [1, 1]
    assert space.decode(bits) is None


def test_a_key_without_a_compression_point_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'bionet-b1-x1-l16' is not a key of a joint "
                                          r"compression search"):
        joint_space().from_key("bionet-b1-x1-l16")
    with pytest.raises(ConfigError, match="bionet"):
        joint_space().from_key("nonsense+c0-s0-k4")


def test_costs_and_models_are_the_networks() -> None:
    space = joint_space()
    arch = space.architectures()[5]
    assert space.costs(arch) == space.base.costs(arch.base)
    names = {m.name for m in space.metrics()}
    assert {"deployed_mcu_bytes", "deployed_linux_bytes", "compression_ratio_mcu"} <= names
    assert len(space.features(arch)) == len(space.base.features(arch.base)) + 3


# ------------------------------------------------------------------------------ config
def test_a_joint_configuration_parses_and_round_trips(tmp_path: Path) -> None:
    cfg = parse_config(config_doc(
        tmp_path, compress=JOINT,
        objectives=[{"metric": "f1_macro"}, {"metric": "deployed_mcu_bytes"}]))
    assert cfg.compress.channels == (0.0, 0.5)
    assert parse_config(cfg.to_doc()) == cfg
    space = cfg.make_space()
    assert isinstance(space, JointCompressionSpace) and space.name == "bionet"
    assert not cfg.measure_before_train


@pytest.mark.parametrize(
    ("compress", "objectives", "search", "message"),
    [
        (JOINT, [{"metric": "f1_macro"}, {"metric": "storage_int8_bytes"}], {},
         r'compress\.mode = "joint": no objective or constraint sees what compression saves'),
        ({**JOINT, "mode": "front"}, [{"metric": "f1_macro"}, {"metric": "params"}], {},
         r"compress\.channels = \[0\.0, 0\.5\]: a list is the joint mode's channel gene"),
        ({"mode": "front"}, [{"metric": "f1_macro"}, {"metric": "deployed_mcu_bytes"}], {},
         r"unknown metric 'deployed_mcu_bytes'"),
        (JOINT, [{"metric": "f1_macro"}, {"metric": "deployed_mcu_bytes", "device": "x"}], {},
         r"deployed_mcu_bytes is the compressed file's size, not measured on a device"),
        (JOINT, [{"metric": "f1_macro"}, {"metric": "deployed_mcu_bytes"}],
         {"measure_before_train": True}, r"measure_before_train = true: the untrained network"),
        ({**JOINT, "channels": [0.5, 0.5]}, [{"metric": "f1_macro"},
                                             {"metric": "deployed_mcu_bytes"}], {},
         r"compress\.channels must be a non-empty list without repeats"),
        ({**JOINT, "channels": [0.5, 1.0]}, [{"metric": "f1_macro"},
                                             {"metric": "deployed_mcu_bytes"}], {},
         r"compress\.channels: the fraction of channels removed must be in \[0, 1\)"),
    ],
)
def test_bad_joint_configurations_say_why(tmp_path: Path, compress: dict[str, Any],
                                          objectives: list[dict[str, Any]],
                                          search: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config_doc(tmp_path, compress=compress, objectives=objectives,
                                search=search))


def test_shipped_joint_configs_parse() -> None:
    for name in ("bionet_compress_joint.toml", "bionet_compress_joint_smoke.toml"):
        cfg = load_config(Path("configs") / name)
        assert cfg.compress.mode == "joint"
        assert parse_config(cfg.to_doc()) == cfg


# ------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def joint_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Any:
    pytest.importorskip("tensorflow_model_optimization")
    pytest.importorskip("tflite_micro")
    from host.search.runner import run_search

    tmp = tmp_path_factory.mktemp("joint-search")
    doc = config_doc(
        tmp,
        data=TINY_ECG_DATA,
        # One network (no blocks, 16 LSTM cells): candidates differ only in compression.
        space={"name": "bionet", "max_blocks": 0, "max_lstm_cells": 16},
        train={"epochs": 1, "patience": 1},
        strategy={"name": "exhaustive", "population": 16},
        # The budget counts networks trained: one is enough for all four candidates.
        budget={"max_trainings": 1},
        objectives=[{"metric": "f1_macro"}, {"metric": "deployed_mcu_bytes"}],
        devices=[{"name": "nano", "address": "local:mcu-emulator?board=nano33ble&compression=1"},
                 {"name": "local", "address": "local"}],
        compress={"mode": "joint", "channels": [0.0, 0.5], "sparsity": [0.0], "clusters": [2, 4],
                  "fine_tune_epochs": 1, "verify_windows": 8},
    )
    cfg = parse_config(doc)
    first = run_search(cfg, progress=False)
    # Another run of the same configuration: its network and its points are in the store.
    again = run_search(cfg, progress=False)
    return first, again, cfg


def _store(run: Any) -> Any:
    from host.search.runner import STORE_NAME
    from host.store.sqlite import RunStore

    return RunStore(run.run_dir.parent / STORE_NAME)


def _evaluated(run: Any) -> dict[str, dict[str, Any]]:
    """arch key -> its evaluation row, for candidates that reached training."""
    return {r["arch_key"]: r for r in _store(run).evaluations(run.run_id) if r["train_key"]}


def test_candidates_that_share_a_network_share_its_training(joint_run: Any) -> None:
    first, _, _ = joint_run
    evaluated = _evaluated(first)
    assert len(evaluated) == 4  # every point of the one network, in one batch, in budget
    assert len({r["train_key"] for r in evaluated.values()}) == 1
    store = _store(first)
    assert store._query("SELECT COUNT(*) AS n FROM trainings")[0]["n"] == 1
    phases = [t["phase"] for t in store.timings(first.run_id)]
    assert phases.count("train") == 1
    assert phases.count("compress") == len(evaluated)


def test_each_candidate_is_scored_and_measured_as_compressed(joint_run: Any) -> None:
    first, _, _ = joint_run
    evaluated = _evaluated(first)
    for key, row in evaluated.items():
        values, sources = row["figures"]["values"], row["figures"]["sources"]
        assert sources["deployed_mcu_bytes"].startswith("file (int8")
        assert "compressed" in sources["f1_macro"]
        assert "float:f1_macro" in values
        # The MCU was sent the MCU file (LUT when it verified), LiteRT the int8 file.
        assert values["model_bytes@nano"] == values["deployed_mcu_bytes"]
        assert values["model_bytes@local"] == values["deployed_linux_bytes"]
        assert row["runs_on"] == {"nano": "ok", "local": "ok"}, key
        assert row["objectives"]["deployed_mcu_bytes"] == values["deployed_mcu_bytes"]
    sizes = {k: r["figures"]["values"]["deployed_mcu_bytes"] for k, r in evaluated.items()}
    for key, size in sizes.items():  # channel pruning makes the same network's file smaller
        plain = key.replace("+c0.5-", "+c0-")
        if plain != key and plain in sizes:
            assert size < sizes[plain]


def test_front_json_carries_each_members_compression(joint_run: Any) -> None:
    first, _, _ = joint_run
    front = json.loads((first.run_dir / "front.json").read_text())
    assert front["front"]
    for entry in front["front"]:
        block = entry["compression"]
        assert block["mode"] == "joint" and block["why"] == "the candidate's compression genes"
        chosen = block["chosen"]
        assert entry["architecture"]["compression"]["clusters"] == chosen["clusters"]
        mcu_file = chosen["storage_deployed_bytes"]["mcu"]["file"]
        assert chosen["runs_on"]["nano"] == f"ok ({mcu_file})"
        mcu = Path(entry["files"]["compressed_mcu"])
        assert mcu.stat().st_size == entry["figures"]["deployed_mcu_bytes"]["value"]


def test_the_fronts_test_figures_are_the_compressed_models(joint_run: Any) -> None:
    from host.export.evaluate import evaluate_tflite
    from host.search.jobs import load_dataset

    first, _, cfg = joint_run
    data = load_dataset(cfg.make_task())
    front = json.loads((first.run_dir / "front.json").read_text())
    for entry in front["front"]:
        linux = Path(entry["files"]["compressed_linux"]).read_bytes()
        assert entry["test_metrics"]["f1_macro"] == \
            evaluate_tflite(linux, data, side="test")["f1_macro"]


def test_another_run_takes_training_and_compression_from_the_store(joint_run: Any) -> None:
    first, again, _ = joint_run
    store = _store(first)
    assert store._query("SELECT COUNT(*) AS n FROM compressions")[0]["n"] == \
        len(_evaluated(first))
    assert store._query("SELECT COUNT(*) AS n FROM trainings")[0]["n"] == 1
    assert again.run_id != first.run_id
    assert "train" not in [t["phase"] for t in store.timings(again.run_id)]
    before = _evaluated(first)
    for key, row in _evaluated(again).items():
        if key in before:
            assert row["figures"]["values"]["deployed_mcu_bytes"] == \
                before[key]["figures"]["values"]["deployed_mcu_bytes"]


def test_the_report_says_joint_and_orders_the_channel_stage(joint_run: Any) -> None:
    from host.report.compression import section

    first, _, _ = joint_run
    front = json.loads((first.run_dir / "front.json").read_text())
    page = section(front)
    assert "Compression searched with the architecture" in page
    assert "second stage" not in page
    # the smallest file (channels removed, k = 2) is always on the front
    assert any(e["compression"]["chosen"]["channels"] for e in front["front"])
    for entry in front["front"]:
        member = page[page.index(f"<code>{entry['arch']}</code>"):]
        member = member[:member.index("</table>")]
        if entry["compression"]["chosen"]["channels"]:
            assert "of the channels removed" in member
            assert member.index("<td>float</td>") < member.index("<td>channels</td>") \
                < member.index("<td>pruned</td>") < member.index("<td>lut</td>")
    assert "<h2>Compression</h2>" in (first.run_dir / "report.html").read_text()
