"""The benchmark_model parser against every recorded real output (read from HILNAS_DATA_DIR)."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_agent.adb.benchmark_output import parse_benchmark_output

# What each recording says, read off the recorded text by hand.
EXPECTED = {
    "android_benchmark_model_1.txt": dict(
        init_us=1892.0, warmup_avg_us=86184.3, inference_avg_us=115062.0, first=91810.0,
        count=50, min_us=88216.0, max_us=129193.0, std_us=7678.0, memory=None,
        run_ops=65, version=None,
    ),
    "android_benchmark_model_2.txt": dict(
        init_us=66002.0, warmup_avg_us=637079.0, inference_avg_us=1885.74, first=637079.0,
        count=520, min_us=1171.0, max_us=9925.0, std_us=870.0,
        memory=("delta", 7.40234, 7.83203), run_ops=None, version="2.15.0",
    ),
    "android_benchmark_model_3.txt": dict(
        init_us=25573.0, warmup_avg_us=1760.78, inference_avg_us=1096.48, first=201009.0,
        count=876, min_us=810.0, max_us=6334.0, std_us=476.0,
        memory=("delta", 15.4688, 43.2852), run_ops=None, version="2.15.0",
    ),
    "android_benchmark_model_4.txt": dict(
        init_us=None, warmup_avg_us=None, inference_avg_us=None, first=None, count=None,
        memory=None, run_ops=11, version=None,
    ),
    "android_benchmark_model_5.txt": dict(failed=True),
    "android_benchmark_model_6.txt": dict(
        init_us=16242.0, warmup_avg_us=304586.0, inference_avg_us=249684.0, first=360262.0,
        count=50, min_us=247067.0, max_us=254474.0, std_us=1442.0,
        memory=("peak", 4.92969, 138.809), run_ops=None, version=None,
    ),
    "android_benchmark_model_7.txt": dict(
        init_us=2409.0, warmup_avg_us=164822.0, inference_avg_us=162980.0, first=169816.0,
        count=50, min_us=162744.0, max_us=163299.0, std_us=146.0,
        memory=("peak", 4.10156, 10.332), run_ops=31, version=None,
    ),
}


def recorded(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.startswith("# "))


def test_every_recorded_file_is_covered(data_dir: Path) -> None:
    names = {p.name for p in (data_dir / "reference").glob("android_benchmark_model_*.txt")}
    assert names and names <= set(EXPECTED), f"add expectations for {names - set(EXPECTED)}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_output(data_dir: Path, name: str) -> None:
    path = data_dir / "reference" / name
    if not path.exists():
        pytest.skip(f"{name} is not in HILNAS_DATA_DIR")
    exp = EXPECTED[name]
    out = parse_benchmark_output(recorded(path))
    if exp.get("failed"):
        assert out.failed
        assert any("NN API returned error" in e for e in out.errors)
        assert out.inference is None
        return
    assert not out.failed
    assert out.version == exp["version"]
    assert out.init_us == exp["init_us"]
    assert out.warmup_avg_us == exp["warmup_avg_us"]
    assert out.inference_avg_us == exp["inference_avg_us"]
    assert out.first_inference_us == exp["first"]
    if exp["count"] is None:
        assert out.inference is None
    else:
        assert out.inference is not None
        assert out.inference.count == exp["count"]
        assert out.inference.avg_us == exp["inference_avg_us"]
        assert (out.inference.min_us, out.inference.max_us, out.inference.std_us) == (
            exp["min_us"], exp["max_us"], exp["std_us"]
        )
    if exp["memory"] is None:
        assert out.memory_overall_mb is None
    else:
        assert (out.memory_kind, out.memory_init_mb, out.memory_overall_mb) == exp["memory"]
    if exp["run_ops"] is None:
        assert out.profile_runs is None
    else:
        assert out.profile_runs is not None
        assert len(out.profile_runs.run_order) == exp["run_ops"]
        assert out.profile_runs.nodes_executed == exp["run_ops"]
        total_pct = sum(r.percent for r in out.profile_runs.run_order)
        assert total_pct == pytest.approx(100.0, abs=0.1)


def test_profile_details(data_dir: Path) -> None:
    seven = parse_benchmark_output(recorded(data_dir / "reference/android_benchmark_model_7.txt"))
    runs = seven.profile_runs
    assert runs is not None and runs.timings is not None
    slowest = max(runs.run_order, key=lambda r: r.avg_ms)
    assert (slowest.node_type, slowest.avg_ms, slowest.node_index) == ("CONV_2D", 13.847, 6)
    assert [t.node_type for t in runs.by_type][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert runs.timings.avg_us == 162910.0
    assert seven.profile_init is not None
    assert seven.profile_init.run_order[0].node_type == "AllocateTensors"
    assert seven.model_size_mb == 4.27635

    four = parse_benchmark_output(recorded(data_dir / "reference/android_benchmark_model_4.txt"))
    assert four.profile_runs is not None
    delegate = four.profile_runs.run_order[6]
    # A delegate row's name lists several tensors with spaces; it must stay one name.
    assert delegate.node_type == "TfLiteNnapiDelegate" and delegate.node_index == 231
    assert delegate.name.startswith("[model/tf.nn.silu_16/mul, ")
    assert four.profile_init is not None and four.profile_init.run_order[0].mem_kb == 1748.0

    one = parse_benchmark_output(recorded(data_dir / "reference/android_benchmark_model_1.txt"))
    assert one.profile_runs is not None
    assert all(r.node_index is None for r in one.profile_runs.run_order)  # 2019: no indices
    assert one.first_inference_source == "first warm-up run"
