"""host.compress: pruning, clustering, int8 survival, TFLM LUT verification, the CLI.

Small BioNets on a few real MIT-BIH windows (records 100, 101, 103, 106; 60 windows each).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow_model_optimization")
pytest.importorskip("tflite_micro")

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

RECORDS = ("100", "101", "103", "106")


@pytest.fixture(scope="module")
def data() -> Any:
    from host.data import load_ecg_dataset

    return load_ecg_dataset(records=RECORDS, max_windows_per_record=60, window=256)


@pytest.fixture(scope="module")
def task(data: Any) -> Any:
    from host.tasks.ecg import EcgClassification

    return EcgClassification(data.config)


def _model(task: Any, key: str = "bionet-b1-x1-l16", seed: int = 0) -> Any:
    from host.spaces.base import BuildOptions, get_space

    space = get_space("bionet", task.input_spec())
    return space.build_model(space.from_key(key), task, BuildOptions(seed=seed))


@pytest.fixture(scope="module")
def trained(data: Any, task: Any) -> Any:
    from host.train import TrainConfig, train_model

    return train_model(_model(task), data, TrainConfig(epochs=1, seed=0), task).model


@pytest.fixture(scope="module")
def run(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """`hilnas compress` once on a trained model: 50% pruning, k=4, one epoch of fine-tuning.

    (The whole pipeline costs about a minute on two cores, so the library and CLI tests share
    this one run.)
    """
    from host.cli import main

    root = tmp_path_factory.mktemp("compress")
    (root / "run").mkdir()
    trained.save(str(root / "run" / "model.keras"), save_format="keras_v3")
    out = root / "out"
    rc = main(["compress", str(root / "run"), "--prune", "0.5", "--clusters", "4",
               "--epochs", "1", "--verify-windows", "16", "--records", ",".join(RECORDS),
               "--max-windows-per-record", "60", "--out", str(out)])
    assert rc == 0
    return out, json.loads((out / "compression.json").read_text())


def _stage(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["stages"] if s["stage"] == name)


# ------------------------------------------------------------------------------ pruning
def test_layer_pruning_reaches_the_target_in_every_layer(
    run: tuple[Path, dict[str, Any]], trained: Any
) -> None:
    from host.compress.prune import prune

    pruning = _stage(run[1], "pruned")["pruning"]  # TFMOT with one epoch of fine-tuning
    assert pruning["fine_tune_epochs"] == 1
    assert set(pruning["achieved_sparsity"]) == {"b0_conv0", "b0_conv1", "b0_proj", "lstm", "out"}
    for name, s in pruning["achieved_sparsity"].items():
        assert s == pytest.approx(0.5, abs=0.02), name
    skipped = {s["layer"] for s in pruning["skipped"]}
    assert {"b0_bn0", "b0_bn1"} <= skipped
    _, report = prune(trained, 0.6, scope="layer", epochs=0)  # one-shot
    assert all(v == pytest.approx(0.6, abs=0.01) for v in report.achieved.values())
    # The caller's model is untouched (the stages wrap the layers of a copy).
    assert np.count_nonzero(trained.get_layer("b0_conv1").kernel.numpy() == 0) == 0


def test_global_pruning_uses_one_threshold(trained: Any) -> None:
    from host.compress.prune import global_layer_targets, layer_kernels, prune

    targets = global_layer_targets(trained, 0.7)
    assert len(set(round(t, 3) for t in targets.values())) > 1  # layers differ
    pruned, report = prune(trained, 0.7, scope="global", epochs=0)
    assert report.overall == pytest.approx(0.7, abs=0.02)
    # One threshold: every surviving weight is at least as large as every pruned one was.
    before = np.concatenate([np.abs(k.numpy()).ravel() for layer in trained.layers
                             for k in layer_kernels(layer)])
    after = np.concatenate([k.numpy().ravel() for layer in pruned.layers
                            for k in layer_kernels(layer)])
    kept, dropped = before[after != 0], before[after == 0]
    assert kept.min() >= dropped.max() * (1 - 1e-6)


@pytest.mark.parametrize(
    "kwargs, flag",
    [({"sparsity": 1.0}, "--prune"), ({"sparsity": -0.1}, "--prune"),
     ({"clusters": 1}, "--clusters"), ({"clusters": 257}, "--clusters"),
     ({"scope": "row"}, "--scope"), ({"epochs": -1}, "--epochs"),
     ({"sparsity": 0.5, "clusters": 2}, "--clusters: k = 2 after pruning"),
     ({"channels": 1.0}, "--channels"), ({"channels": -0.5}, "--channels"),
     ({"distill": 1.0}, "--distill"), ({"distill": True}, "--distill")],
)
def test_bad_settings_name_the_flag(kwargs: dict[str, Any], flag: str) -> None:
    from host.compress import CompressConfig
    from host.errors import ConfigError

    with pytest.raises(ConfigError, match=flag):
        CompressConfig(**kwargs)


def test_distillation_pulls_the_fine_tuning_towards_the_teacher(task: Any) -> None:
    """With distillation the targets are the teacher's probabilities mixed with the label:
    a teacher that says 50/50 everywhere keeps the student from the confidence the labels
    alone give it."""
    from types import SimpleNamespace

    from host.compress import CompressConfig
    from host.compress.stages import make_fit
    from host.errors import ConfigError
    from host.train.tfenv import import_keras

    keras = import_keras()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    x = (rng.normal(0, 0.3, (256, 4)) + y[:, None] * 2.0).astype(np.float32)
    data = SimpleNamespace(x_train=x, y_train=y)

    def dense() -> Any:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.set_weights([np.zeros((4, 2), np.float32), np.zeros(2, np.float32)])
        return model

    teacher = dense()  # uniform: 0.5 / 0.5 for every window
    confidence = {}
    for weight in (0.0, 0.9):
        cfg = CompressConfig(sparsity=0.0, clusters=None, epochs=40, learning_rate=0.05,
                             distill=weight)
        student = dense()
        make_fit(data, task, cfg, teacher=teacher)(student, 40, [])
        confidence[weight] = float(student.predict(x, verbose=0).max(axis=1).mean())
    assert confidence[0.0] > 0.9  # the labels alone: separable, so confident
    assert abs(confidence[0.9] - 0.55) < 0.05  # 0.1 x one-hot + 0.9 x 0.5

    # A network with logits out (HALF's): a loss on logits, the teacher's softmax as targets.
    from host.compress.stages import outputs_logits

    def logit_dense() -> Any:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.set_weights([np.zeros((4, 2), np.float32), np.zeros(2, np.float32)])
        return model

    assert outputs_logits(logit_dense()) and not outputs_logits(dense())
    student = logit_dense()
    cfg = CompressConfig(sparsity=0.0, clusters=None, epochs=40, learning_rate=0.05,
                         distill=0.9)
    make_fit(data, task, cfg, teacher=logit_dense())(student, 40, [])
    z = student.predict(x, verbose=0)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert abs(float(p.max(axis=1).mean()) - 0.55) < 0.05
    with pytest.raises(ConfigError, match="--distill: knowledge distillation needs"):
        make_fit(data, SimpleNamespace(name="ppg", loss=lambda k, logits=False: None),
                 CompressConfig(distill=0.5), teacher=teacher)


# ------------------------------------------------------------------ the whole pipeline
def test_stages_in_the_papers_order_with_sources(run: tuple[Path, dict[str, Any]]) -> None:
    out, report = run
    assert report["order"] == ["float", "pruned", "clustered", "int8", "lut"]
    for s in report["stages"][:-1]:
        assert "balanced_accuracy" in s["quality"] and s["quality_source"]
        for b in s["bytes"].values():
            assert b["source"] in ("file", "estimated") and b["bytes"] > 0
            if b["source"] == "file":
                assert (out / b["file"]).stat().st_size == b["bytes"]
    assert report["storage_float32_bytes"]["source"] == "file"
    assert report["storage_float32_bytes"]["bytes"] == (out / "float32.tflite").stat().st_size
    assert report["storage_int8_bytes"]["bytes"] == (out / "int8.tflite").stat().st_size
    assert report["storage_sparse_bytes"]["source"] == "estimated"
    assert report["storage_sparse_bytes"]["bytes"] < report["storage_float32_bytes"]["bytes"]
    pruning = _stage(report, "pruned")["pruning"]
    assert pruning["overall_sparsity"] == pytest.approx(0.5, abs=0.02)


def test_clustered_kernels_have_at_most_k_values(run: tuple[Path, dict[str, Any]]) -> None:
    unique = _stage(run[1], "clustered")["clustering"]["unique_values_per_kernel"]
    assert {"b0_conv0", "b0_conv1", "lstm", "lstm/recurrent_kernel", "out"} <= set(unique)
    for name, n in unique.items():
        assert n <= 4, name


def test_zeros_and_clusters_survive_int8(run: tuple[Path, dict[str, Any]]) -> None:
    from host.compress.weights import weight_tensors

    out, report = run
    survived = _stage(report, "int8")["survived"]
    assert survived["zeros_survived"] and survived["at_most_k_per_channel"]
    ws = weight_tensors((out / "int8.tflite").read_bytes())
    assert ws and all(w.dtype == "int8" for w in ws)
    for w in ws:
        assert w.unique_per_channel() <= 4, w.name
        # Every kernel was pruned to 50%; the converter splits the LSTM's per gate, whose
        # slices need not hold exactly half each.
        assert w.zeros / w.size >= 0.3, w.name
    assert sum(w.zeros for w in ws) / sum(w.size for w in ws) >= 0.49
    assert any("UNIDIRECTIONAL_SEQUENCE_LSTM" in w.consumers for w in ws)
    q = _stage(report, "int8")["quantization"]
    assert q["used"] is False and "LSTM" in q["reason"] and "Conv1D" in q["reason"]


def test_lut_is_bit_exact_and_deployed_on_the_mcu(run: tuple[Path, dict[str, Any]]) -> None:
    out, report = run
    lut = _stage(report, "lut")["lut"]
    assert lut["status"] == "verified", lut["summary"]
    v = lut["verification"]
    assert v["windows_differing"] == 0 and v["windows"] == 16 and v["max_abs_diff_lsb"] == 0
    assert lut["bytes"] == (out / "int8-lut.tflite").stat().st_size
    assert lut["bytes"] < report["storage_int8_bytes"]["bytes"]
    f32 = report["storage_float32_bytes"]
    assert f32["stripped_bytes"] < f32["bytes"]
    assert report["storage_deployed_bytes"]["mcu"]["reduction_vs_float32_stripped"] == round(
        f32["stripped_bytes"] / lut["bytes"], 2)
    d = report["storage_deployed_bytes"]
    assert d["mcu"]["file"] == "int8-lut.tflite" and d["mcu"]["bytes"] == lut["bytes"]
    assert d["linux"]["file"] == "int8.tflite"
    t = lut["tflm"]
    assert t["arena_lut_bytes"] > t["arena_int8_bytes"]  # decoded weights live in the arena
    assert t["invoke_source"].startswith("host TFLM")
    assert _stage(report, "lut")["quality"] == _stage(report, "int8")["quality"]
    # The LUT file (TFLM only) is written without tensor names; the hilnas metadata stays.
    from host.export.flatbuf import read_metadata

    strip = lut["strip"]
    assert strip["stripped"] and strip["bytes"] == lut["bytes"] < strip["bytes_with_names"]
    lut_file = (out / "int8-lut.tflite").read_bytes()
    assert read_metadata(lut_file)["compression"]["clusters"] == 4
    assert read_metadata(lut_file) == read_metadata((out / "int8.tflite").read_bytes())


def test_lut_verification_rejects_a_wrong_lut(run: tuple[Path, dict[str, Any]],
                                              data: Any) -> None:
    """One table for per-channel quantized kernels: TFLM decodes it wrongly, and it is caught."""
    from host.compress import storage_figures
    from host.compress.lut import lut_compress

    out, _ = run
    int8 = (out / "int8.tflite").read_bytes()
    bad = lut_compress(int8, data.x_val[:8], force_per_tensor=True)
    assert bad.status == "rejected" and bad.model is None
    assert bad.windows_differing > 0 and bad.max_abs_diff_lsb > 0
    assert bad.message.startswith("lut: rejected (outputs differ on ")
    files = {"float32.tflite": (out / "float32.tflite").read_bytes(), "int8.tflite": int8}
    figures = storage_figures(files, bad, {"bytes": 1, "source": "estimated"})
    assert figures["storage_deployed_bytes"]["mcu"]["file"] == "int8.tflite"
    assert figures["storage_deployed_bytes"]["mcu"]["why"] == bad.message


def test_lut_plan_follows_the_quantization(run: tuple[Path, dict[str, Any]]) -> None:
    from host.compress.lut import plan_lut

    plans = plan_lut((run[0] / "int8.tflite").read_bytes())
    assert all(p.bits == 2 for p in plans if not p.skip)
    assert {p.mode for p in plans if "CONV_2D" in p.consumers} == {"per_channel"}
    assert {p.mode for p in plans if "UNIDIRECTIONAL_SEQUENCE_LSTM" in p.consumers} == {
        "per_tensor"}


# ----------------------------------------------------------------------------- the CLI
def test_cli_bad_input_is_a_clear_error(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from host.cli import main

    base = ["compress", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*base, "--prune", "1.5", "--clusters", "4"]) != 0
    assert "ConfigError: --prune: sparsity must be in [0, 1), not 1.5" in capsys.readouterr().err
    assert main([*base, "--prune", "0.5", "--clusters", "300"]) != 0
    assert "ConfigError: --clusters: must be an integer in 2..256" in capsys.readouterr().err
    missing = tmp_path / "nope.keras"
    assert main(["compress", str(missing), "--prune", "0.5", "--clusters", "4",
                 "--out", str(tmp_path / "o")]) != 0
    assert f"model: {missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_prints_the_table(run: tuple[Path, dict[str, Any]]) -> None:
    import contextlib
    import io

    from host.cli.compress import print_table

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_table(run[1])
    text = buf.getvalue()
    assert "deployed: mcu" in text and "lut: verified" in text
    assert [line.split()[0] for line in text.splitlines()[1:6] if line[:1] != " "][:2] == [
        "float", "pruned"]


def test_emulated_nano_runs_the_lut_model_only_with_compression(
    run: tuple[Path, dict[str, Any]]
) -> None:
    import hashlib
    import struct

    from device_agent.mcu.board import EmulatedBoard
    from device_agent.mcu.boards import load_board
    from device_agent.serial_protocol import Cmd, ErrorCode, Frame, FrameDecoder, encode_frame

    model = (run[0] / "int8-lut.tflite").read_bytes()

    def call(board: EmulatedBoard, cmd: int, payload: bytes = b"") -> Frame:
        frames = FrameDecoder().feed(board.handle_bytes(encode_frame(cmd, 1, payload), 0.0))
        return next(f for f in frames if isinstance(f, Frame))

    def allocate(board: EmulatedBoard) -> Frame:
        call(board, Cmd.UPLOAD_BEGIN,
             struct.pack("<I", len(model)) + hashlib.sha256(model).digest())
        for off in range(0, len(model), 1000):
            call(board, Cmd.UPLOAD_CHUNK, struct.pack("<I", off) + model[off:off + 1000])
        assert call(board, Cmd.UPLOAD_END).cmd == Cmd.UPLOAD_END | 0x80
        return call(board, Cmd.ALLOCATE)

    plain = allocate(EmulatedBoard(load_board("nano33ble")))  # the pinned firmware's resolver
    assert plain.cmd == Cmd.ERROR and plain.payload[0] == ErrorCode.UNSUPPORTED_OP
    assert b"TFLM_DECODE" in plain.payload and b"USE_TFLM_COMPRESSION" in plain.payload
    board = EmulatedBoard(load_board("nano33ble").with_limits(compression=True))
    ok = allocate(board)
    assert ok.cmd == Cmd.ALLOCATE | 0x80
    arena = struct.unpack_from("<I", ok.payload)[0]
    lut = _stage(run[1], "lut")["lut"]["tflm"]
    assert arena == lut["arena_lut_bytes"]  # decoded weights counted in the board's arena


def test_the_emulated_nano_agent_measures_the_lut_model_with_compression(
    run: tuple[Path, dict[str, Any]]
) -> None:
    """Through the agent a search uses (serial bridge to the emulated board), not the board
    alone: the bridge's own operator check must name custom operators as the firmware's
    resolver does (it once said "lacks CUSTOM" to a firmware that had TFLM_DECODE)."""
    from device_agent.errors import CandidateRejected
    from device_agent.types import MeasureSettings
    from host.fleet import open_device

    path = run[0] / "int8-lut.tflite"
    settings = MeasureSettings(warmup_runs=1, min_runs=2, max_runs=3, time_budget_seconds=2)
    with open_device("local:mcu-emulator?board=nano33ble&compression=1", name="nano") as nano:
        measured = nano.measure(path, settings).to_json()
    assert measured["memory"]["model_bytes"]["value"] == path.stat().st_size
    with open_device("local:mcu-emulator?board=nano33ble", name="nano") as plain, \
            pytest.raises(CandidateRejected, match="TFLM_DECODE"):
        plain.measure(path, settings)
