"""The GOS starting models for pulse rate (host/spaces/ppg.py) and `hilnas train --task ppg`.

Real TROIKA windows, real int8 conversion, real interpreters: LiteRT on the host and
TFLite Micro on the emulated Nano 33 BLE.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from host.errors import ConfigError
from host.spaces.base import InputSpec, get_space
from host.spaces.ppg import (
    CnnLstmArch,
    PeaksArch,
    PpgCnnLstmSpace,
    PpgGridSpace,
    PpgPeaksSpace,
    PpgSpectralSpace,
    SpectralArch,
)
from host.tasks.ppg import PpgDatasetConfig, PulseRate

SPECTRAL = PulseRate(PpgDatasetConfig(input="spectral"))
RAW = PulseRate(PpgDatasetConfig(input="raw"))
TASK_OF = {"ppg_peaks": SPECTRAL, "ppg_cnnlstm": RAW, "ppg_spectral": SPECTRAL}


def _troika(data_dir: Path) -> None:
    if not (data_dir / "troika" / "training_data").is_dir():
        pytest.skip("TROIKA is not under HILNAS_DATA_DIR")


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    """Each input kind's leave-subjects-out dataset, loaded once (about a second each)."""
    return {}


def _load(data: dict[str, Any], data_dir: Path, task: PulseRate) -> Any:
    _troika(data_dir)
    kind = task.config.input
    if kind not in data:
        data[kind] = task.load()
    return data[kind]


# --------------------------------------------------------------------------- the grids
@pytest.mark.parametrize("name", ["ppg_peaks", "ppg_cnnlstm", "ppg_spectral"])
def test_keys_and_genes_round_trip(name: str) -> None:
    space = get_space(name, task=TASK_OF[name])
    assert isinstance(space, PpgGridSpace)
    archs = space.architectures()
    assert len(archs) == space.size() == len(set(archs)) and space.enumerable
    bounds = space.int_bounds()
    for arch in archs:
        assert space.contains(arch)
        assert arch.key().startswith(f"{name}-")
        assert space.from_key(arch.key()) == arch
        genes = space.encode_int(arch)
        assert all(lo <= g <= hi for g, (lo, hi) in zip(genes, bounds, strict=True))
        assert space.decode_int(genes) == arch
        assert arch.to_json()["key"] == arch.key()
    # every gene combination names a network: the grid is the genes' box
    assert len({tuple(space.encode_int(a)) for a in archs}) == int(
        np.prod([hi - lo + 1 for lo, hi in bounds]))
    assert space.decode_int([hi + 1 for _, hi in bounds]) is None
    with pytest.raises(ConfigError, match="genes: expected"):
        space.decode_int([0])
    with pytest.raises(ConfigError, match=f"not a {name} key like"):
        space.from_key("bionet-b0-x1-l16")
    assert space.contains(space.default_architecture())


def test_the_keys_name_the_choices() -> None:
    peaks = get_space("ppg_peaks", task=SPECTRAL)
    lstm = get_space("ppg_cnnlstm", task=RAW)
    assert isinstance(peaks, PpgPeaksSpace) and isinstance(lstm, PpgCnnLstmSpace)
    assert peaks.from_key("ppg_peaks-p4-h32x1") == PeaksArch(pool=4, hidden=32, layers=1)
    assert peaks.default_architecture().key() == "ppg_peaks-p2-h64x2"
    assert lstm.from_key("ppg_cnnlstm-f32-k5-u32") == CnnLstmArch(filters=32, kernel=5, units=32)
    assert lstm.default_architecture().key() == "ppg_cnnlstm-f32-k5-u32"
    assert [g.name for g in lstm.genes()] == ["filters", "kernel", "units"]
    with pytest.raises(ConfigError, match=r"pool: must be one of \[1, 2, 4, 8\], not 3"):
        peaks.from_key("ppg_peaks-p3-h32x1")
    with pytest.raises(ConfigError, match=r"kernel: must be one of \[3, 5, 9\]"):
        CnnLstmArch(kernel=7)
    assert not peaks.contains(CnnLstmArch()) and not lstm.contains(PeaksArch())


def test_bind_names_the_fix() -> None:
    with pytest.raises(ConfigError, match=r'ppg_cnnlstm takes the raw signal.*input = "raw"'):
        get_space("ppg_cnnlstm", task=SPECTRAL)
    with pytest.raises(ConfigError, match=r'ppg_peaks takes the spectra.*input = "spectral"'):
        get_space("ppg_peaks", task=RAW)
    from host.data import EcgDatasetConfig
    from host.tasks.ecg import EcgClassification

    ecg = EcgClassification(EcgDatasetConfig())
    for name in ("ppg_peaks", "ppg_cnnlstm"):
        with pytest.raises(ConfigError, match=r'not task \'ecg\': set \[data\] task = "ppg"'):
            get_space(name, task=ecg)
    with pytest.raises(ConfigError, match="takes one input window"):
        PpgPeaksSpace(InputSpec(201, 5, 1, aux_features=4))


def test_a_search_configuration_is_checked_against_the_space() -> None:
    from host.search.config import parse_config

    doc = {"run": {"name": "x"}, "data": {"task": "ppg", "input": "spectral"},
           "space": {"name": "ppg_cnnlstm"}, "strategy": {"name": "random", "population": 2},
           "objectives": [{"metric": "aae_bpm"}]}
    with pytest.raises(ConfigError, match='set \\[data\\] input = "raw"'):
        parse_config(doc)


# --------------------------------------------------------------------------- the models
def _chain(model: Any) -> list[str]:
    """The layers' names in order, checking that each has exactly one inbound layer."""
    names = []
    for layer in model.layers[1:]:
        inbound = [n.inbound_layers for n in layer._inbound_nodes]
        assert len(inbound) == 1 and not isinstance(inbound[0], list), layer.name
        names.append(layer.name)
    return names


def test_models_are_named_chains_whose_parameters_the_costs_count() -> None:
    peaks = get_space("ppg_peaks", task=SPECTRAL)
    m = peaks.build_model(PeaksArch(2, 64, 2), SPECTRAL)
    assert m.input_shape == (None, 201, 5) and m.output_shape == (None, 1)
    assert _chain(m) == ["pool", "flatten", "dense1", "dense2", "out_unit", "out"]
    assert m.get_layer("pool").pool_size == (2,)
    assert m.get_layer("dense1").activation.__name__ == "tanh"
    assert m.count_params() == peaks.costs(PeaksArch(2, 64, 2)).params == 100 * 5 * 64 + 64 + \
        64 * 64 + 64 + 64 + 1
    lstm = get_space("ppg_cnnlstm", task=RAW)
    arch = CnnLstmArch(16, 9, 32)
    m = lstm.build_model(arch, RAW)
    assert m.input_shape == (None, 200, 5) and m.output_shape == (None, 1)
    assert _chain(m) == ["conv", "lstm1", "lstm2", "out_unit", "out"]
    assert m.get_layer("conv").padding == "same" and m.get_layer("lstm1").return_sequences
    assert m.count_params() == lstm.costs(arch).params
    c = lstm.costs(arch)
    assert c.input_buffer_bytes == 200 * 5 and c.macs > 200 * 4 * 32 * (16 + 32)
    fine = PulseRate(PpgDatasetConfig(input="spectral", resolution_bpm=0.5))
    m = get_space("ppg_peaks", task=fine).build_model(PeaksArch(8, 16, 1), fine)
    assert m.input_shape == (None, 401, 5) and m.get_layer("pool").output_shape == (None, 50, 5)
    assert m.count_params() == get_space("ppg_peaks", task=fine).costs(PeaksArch(8, 16, 1)).params


def test_the_spectral_model_reads_the_bpm_off_a_softmax_over_bins() -> None:
    space = get_space("ppg_spectral", task=SPECTRAL)
    arch = SpectralArch(8, 5, 2)
    m = space.build_model(arch, SPECTRAL)
    assert m.input_shape == (None, 201, 5) and m.output_shape == (None, 1)
    assert _chain(m) == ["conv1", "conv2", "bin_score", "flatten", "bin_prob", "out_unit", "out"]
    assert m.count_params() == space.costs(arch).params
    # untrained, the head is the softmax's expectation of the bins' BPM (40, 41, ..., 240):
    # a spectrum whose scores single out one bin reads as that bin's BPM
    probe = m.get_layer("bin_prob").output
    head = type(m)(probe, m.output)
    for bpm in (55, 120, 201):
        onehot = np.full((1, 201), -1.0e3, "float32")
        onehot[0, bpm - 40] = 0.0
        scores = np.exp(onehot) / np.exp(onehot).sum()
        assert float(head(scores).numpy()[0, 0]) == pytest.approx(bpm, abs=1e-3)
    # the same rule at every frequency: a spectrum shifted by k bins scores shifted by k
    score = type(m)(m.input, m.get_layer("bin_score").output)
    x = np.zeros((2, 201, 5), "float32")
    rng = np.random.default_rng(0)
    x[0, 50:70] = rng.random((20, 5))
    x[1, 90:110] = x[0, 50:70]
    s0, s1 = (score(x).numpy()[i, :, 0] for i in (0, 1))
    np.testing.assert_allclose(s0[40:80], s1[80:120], rtol=1e-5, atol=1e-5)


def test_the_exported_graph_has_a_batch_of_one_and_the_same_weights() -> None:
    lstm = get_space("ppg_cnnlstm", task=RAW)
    arch = CnnLstmArch(8, 3, 16)
    model = lstm.build_model(arch, RAW)
    export = lstm.export_model(model, arch, RAW)
    assert export.input_shape == (1, 200, 5)
    x = np.random.default_rng(0).normal(size=(1, 200, 5)).astype("float32")
    np.testing.assert_allclose(model(x).numpy(), export(x).numpy(), rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- real data
def _train_convert_run(name: str, key: str, data: dict[str, Any],
                       data_dir: Path, epochs: int = 1) -> dict[str, Any]:
    """Train `key` on TROIKA (one epoch), convert it to int8, run it on LiteRT and TFLM."""
    pytest.importorskip("tflite_micro")
    from host.export.evaluate import tflite_outputs
    from host.export.flatbuf import io_tensors
    from host.export.tflite import convert, io_types, model_ops
    from host.fleet import open_device
    from host.fleet.validation import validate_on_device
    from host.hw.tflm_gate import check_tflite
    from host.train import TrainConfig, train_candidate

    task = TASK_OF[name]
    ds = _load(data, data_dir, task)
    space = get_space(name, task=task)
    arch = space.from_key(key)
    tcfg = TrainConfig(epochs=epochs, batch_size=128, class_weights=None)
    result = train_candidate(space, arch, task, ds, tcfg)
    assert np.isfinite(result.val_metrics["aae_bpm"])
    q = convert(space.export_model(result.model, arch, task), task.export_mode(),
                representative=task.representative(ds, n=64))
    assert io_types(q) == {"inputs": ["int8"], "outputs": ["int8"]}
    bpm = tflite_outputs(q, ds.x_val[:24]).reshape(-1)
    assert np.isfinite(bpm).all() and ((20 < bpm) & (bpm < 300)).all(), bpm
    gate = check_tflite(q, "nano33ble")
    assert gate.ok, gate.reasons
    with open_device("local:mcu-emulator?board=nano33ble") as board:
        v = validate_on_device(board, q, ds.x_val[:8], ds.y_val[:8], task)
    assert v.n_windows == 8 and np.isfinite(v.device_metrics["aae_bpm"])
    ref = v.reference_kernels
    assert ref is not None and ref["max_abs_diff_raw"] <= 2.0  # int8 rounding, at most
    return {"ops": set(model_ops(q)), "bpm": bpm, "validation": v, "io": io_tensors(q),
            "export": space.export_model(result.model, arch, task), "task": task, "data": ds}


def test_peaks_model_trains_converts_and_runs_on_litert_and_tflm(
    data: dict[str, Any], data_dir: Path
) -> None:
    out = _train_convert_run("ppg_peaks", "ppg_peaks-p8-h16x1", data, data_dir)
    assert {"MAX_POOL_2D", "FULLY_CONNECTED", "TANH"} <= out["ops"]
    # the MLP and TFLM's portable kernels compute the same int8 values
    assert out["validation"].reference_kernels["identical_share"] == 1.0


def test_spectral_model_trains_converts_and_runs_on_litert_and_tflm(
    data: dict[str, Any], data_dir: Path
) -> None:
    # 10 epochs (a few seconds): enough for its softmax to follow the pulse peak
    out = _train_convert_run("ppg_spectral", "ppg_spectral-f8-k5-d1", data, data_dir, epochs=10)
    assert {"CONV_2D", "SOFTMAX", "FULLY_CONNECTED"} <= out["ops"]
    # calibrated on rates up to 240 BPM, the int8 output reaches past the training's highest
    # reference (167 BPM), where calibrating on training windows alone stops near it
    from host.export.flatbuf import io_tensors
    from host.export.tflite import convert
    from host.tasks.base import Task

    def top(io: dict[str, Any]) -> float:
        o = io["outputs"][0]
        return float((127 - o["zero_point"]) * o["scale"])

    task, ds = out["task"], out["data"]
    training_only = convert(out["export"], "int8",
                            representative=Task.representative(task, ds, n=64))
    assert top(out["io"]) > max(top(io_tensors(training_only)), float(ds.y_train.max())) + 5


@pytest.mark.slow  # about 11 s: the LSTMs' epoch and conversion
def test_cnnlstm_model_trains_converts_and_runs_on_litert_and_tflm(
    data: dict[str, Any], data_dir: Path
) -> None:
    out = _train_convert_run("ppg_cnnlstm", "ppg_cnnlstm-f8-k3-u16", data, data_dir)
    assert {"CONV_2D", "UNIDIRECTIONAL_SEQUENCE_LSTM"} <= out["ops"]  # fused int8 LSTMs


# --------------------------------------------------------------------------- the command
def test_train_task_ppg_writes_the_model_and_its_aae(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from host.cli import main
    from host.export.flatbuf import read_metadata

    _troika(data_dir)
    out = tmp_path / "ppg"
    rc = main(["train", "--task", "ppg", "--space", "ppg_peaks", "--arch", "ppg_peaks-p4-h16x1",
               "--epochs", "1", "--resolution-bpm", "2", "--restarts", "2", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "int8   AAE val (train11, train12)" in printed
    assert "restarts, by minus the tracked validation AAE" in printed
    for f in ("model.keras", "model-float32.tflite", "model-int8.tflite", "model_int8.h",
              "metrics.json"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "ppg" and m["arch"]["key"] == "ppg_peaks-p4-h16x1"
    assert m["train_config"]["class_weights"] is None and m["epochs_run"] == 1
    assert [r["seed"] for r in m["restarts"]] == [0, 1000]
    assert sum(r["kept"] for r in m["restarts"]) == 1
    for kind in ("keras", "int8"):
        for side in ("val", "test"):
            assert 0 < m["aae_bpm"][kind][side] < 100
    assert set(m["val"]["per_activity"]) == {"TYPE02"}
    tracked = m["val"]["tracked"]
    assert tracked["n"] == m["val"]["n"] and tracked["tracker"]["step_bpm"] == 4.0
    assert m["aae_bpm_tracked"]["int8"]["val"] == m["tflite"]["int8"]["val"]["tracked"]["aae_bpm"]
    assert m["tflite"]["int8"]["test"]["aae_bpm"] == m["aae_bpm"]["int8"]["test"]
    assert m["params"] == m["costs"]["params"] > 0 and m["dataset"]["shape"] == [101, 5]
    meta = read_metadata((out / "model-int8.tflite").read_bytes())
    assert meta["arch"] == "ppg_peaks-p4-h16x1" and meta["space"]["name"] == "ppg_peaks"
    rebuilt = PulseRate.from_metadata(meta)  # what `hilnas evaluate --task ppg` reads
    assert rebuilt.config == PulseRate(PpgDatasetConfig(resolution_bpm=2.0)).config


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "ppg", "--space", "ppg_cnnlstm", "--input", "spectral"],
         'ppg_cnnlstm takes the raw signal (samples, 5) of the band-passed window, not the '
         "'spectral' input: set [data] input = \"raw\""),
        (["--task", "ppg", "--preset", "aami5"], "--preset: not an option of --task ppg"),
        (["--input", "raw"], "--input: not an option of --task ecg"),
        (["--space", "ppg_peaks", "--arch", "ppg_peaks-p2-h64x2"],
         "not task 'ecg': set [data] task = \"ppg\""),
        (["--task", "ppg", "--class-weights", "balanced"], "the ppg task is a regression"),
        (["--task", "ppg", "--space", "half"], "--arch: say which architecture of space 'half'"),
    ],
)
def test_bad_ppg_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str, tmp_path: Path
) -> None:
    from host.cli import main

    assert main(["train", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_spaces_are_registered() -> None:
    assert isinstance(get_space("ppg_peaks", task=SPECTRAL), PpgPeaksSpace)
    assert isinstance(get_space("ppg_cnnlstm", task=RAW), PpgCnnLstmSpace)
    assert isinstance(get_space("ppg_spectral", task=SPECTRAL), PpgSpectralSpace)
    with pytest.raises(ConfigError, match="known: bionet, data_aware, half, ppg_cnnlstm, "
                                          "ppg_peaks, ppg_spectral"):
        get_space("nope")


# --------------------------------------------------------------------------- restarts
def test_restarts_keep_the_seed_best_on_tracked_validation(data_dir: Path) -> None:
    pytest.importorskip("tf_keras")
    from host.train import TrainConfig, train_candidate
    from host.train.trainer import RESTART_SEED_STEP

    task = PulseRate(PpgDatasetConfig(input="spectral", resolution_bpm=4.0))
    _troika(data_dir)
    ds = task.load()
    space = get_space("ppg_peaks", task=task)
    arch = space.from_key("ppg_peaks-p4-h16x1")
    cfg = TrainConfig(epochs=2, patience=None, class_weights=None, seed=3)
    best = train_candidate(space, arch, task, ds, replace(cfg, restarts=3))
    # every restart is listed with its seed and tracked validation figure ...
    seeds = [r["seed"] for r in best.restarts]
    assert seeds == [3 + RESTART_SEED_STEP * r for r in range(3)]
    # ... the figure is what the trainer measured: the validation side's, tracked
    assert "tracked" in best.val_metrics and best.test_metrics["tracked"]["n"] == len(ds.y_test)
    kept = [r for r in best.restarts if r["kept"]]
    assert len(kept) == 1 and kept[0]["value"] == max(r["value"] for r in best.restarts)
    assert kept[0]["value"] == -best.val_metrics["tracked"]["aae_bpm"]
    # ... and the kept network is that seed's own training, which a plain run reproduces
    alone = train_candidate(space, arch, task, ds, replace(cfg, seed=kept[0]["seed"]))
    assert alone.val_metrics["tracked"]["aae_bpm"] == pytest.approx(
        best.val_metrics["tracked"]["aae_bpm"], abs=1e-6)
    assert f"best of 3 restarts (seed {kept[0]['seed']})" in best.selection
    assert best.summary()["train_config"]["seed"] == 3  # the config as given
    with pytest.raises(ConfigError, match="restarts: must be an integer from 1 to 10"):
        TrainConfig(restarts=0)
