"""Bit-exactness of generated HLS projects: C simulation == LiteRT int8, on real ECG windows."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from device_agent.errors import CandidateRejected
from device_agent.fpga import HlsProject, generate, parse_tflite
from device_agent.fpga.reference import reference_outputs
from host.export.hls.demo import build_demo_tflite

pytest.importorskip("ai_edge_litert")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ecg(data_dir):
    from host.data import EcgDatasetConfig, load_ecg_dataset

    d = load_ecg_dataset(EcgDatasetConfig(
        records=("100", "106", "119", "208", "203"), max_windows_per_record=400,
        split="random", data_dir=str(data_dir), use_cache=False))
    return d


@pytest.fixture(scope="module")
def trained_model(ecg, tmp_path_factory):
    out = tmp_path_factory.mktemp("half") / "half.tflite"
    return build_demo_tflite(out, ecg.x_train, ecg.y_train, ecg.n_classes, epochs=1)


# Ordinary user models, built with tf-keras and converted to int8 by host.export.tflite in a
# child process (TensorFlow must not share this process with LiteRT). "same" has 'same'
# padding on every sliding-window layer: Conv1D and DepthwiseConv1D with strides 1 and 2,
# odd and even kernels (even totals split evenly, odd ones put the extra position right),
# a channel multiplier, and max pooling. "softmax" and "lstm" hold ops the library lacks.
_USER_MODELS = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tf_keras as keras
from host.export.tflite import convert
req = json.loads(open(sys.argv[1]).read())
d = np.load(req["data"])
x, y, n_classes = d["x"], d["y"], int(req["n_classes"])
L = keras.layers
keras.utils.set_random_seed(0)

def build(name):
    i = keras.Input(x.shape[1:], batch_size=1)
    if name == "same":
        h = L.Conv1D(8, 5, padding="same", activation="relu")(i)
        h = L.DepthwiseConv1D(4, strides=2, padding="same", activation="relu")(h)
        h = L.Conv1D(8, 4, strides=2, padding="same", activation="relu")(h)
        h = L.DepthwiseConv1D(3, padding="same", depth_multiplier=2, activation="relu")(h)
        h = L.MaxPooling1D(3, strides=2, padding="same")(h)
        h = L.Conv1D(8, 1, activation="relu")(h)
        o = L.Dense(n_classes)(L.GlobalAveragePooling1D()(h))
    elif name == "softmax":
        h = L.Conv1D(4, 5, strides=2, activation="relu")(i)
        o = L.Dense(n_classes, activation="softmax")(L.GlobalAveragePooling1D()(h))
    else:
        h = L.Conv1D(4, 8, strides=4, activation="relu")(i)
        o = L.Dense(n_classes)(L.LSTM(8)(h))
    return keras.Model(i, o)

for name in req["models"]:
    model = build(name)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    with open(os.path.join(req["out"], name + ".tflite"), "wb") as f:
        f.write(convert(model, "int8", representative=x[:200]))
"""


@pytest.fixture(scope="module")
def user_models(ecg, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("user-models")
    np.savez(out / "data.npz", x=ecg.x_train[:600].astype(np.float32), y=ecg.y_train[:600])
    names = ("same", "softmax", "lstm")
    req = out / "req.json"
    req.write_text(json.dumps({"data": str(out / "data.npz"), "n_classes": ecg.n_classes,
                               "out": str(out), "models": names}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", _USER_MODELS, str(req)], check=True, timeout=900,
                   capture_output=True, env=env, cwd=REPO)
    return {name: out / f"{name}.tflite" for name in names}


def quantize(x: np.ndarray, model: Path) -> np.ndarray:
    return parse_tflite(model.read_bytes()).quantize_input(x)


def run_csim(project: HlsProject, xq: np.ndarray) -> np.ndarray:
    """Build the project's C simulation with g++ and run it on the int8 windows `xq`."""
    xq.tofile(project.path / "csim" / "input.bin")
    subprocess.run(["make", "-C", str(project.path), "csim"], check=True, timeout=300,
                   capture_output=True)
    return np.fromfile(project.path / "csim" / "output.bin", dtype=np.int8).reshape(len(xq), -1)


def assert_bit_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    mismatches = int((got != want).sum())
    assert mismatches == 0, f"{mismatches} of {got.size} outputs differ"


@pytest.mark.parametrize("unroll", ["min", "max"])
def test_csim_is_bit_exact_on_ecg_windows(ecg, trained_model, tmp_path, unroll):
    x = np.concatenate([ecg.x_train, ecg.x_val, ecg.x_test])
    assert len(x) >= 1000
    xq = quantize(x, trained_model)
    t0 = time.perf_counter()
    project = generate(trained_model, tmp_path / "proj", board="pynq-z1", unroll=unroll)
    assert time.perf_counter() - t0 < 10
    for name in ("src/weights.h", "src/dnnu.cpp", "tb/tb.cpp", "scripts/hls.tcl",
                 "scripts/bd.tcl", "driver/dnnu_driver.py", "README.md", "Makefile",
                 "include/hilnas/layers.h", "include/hls_stub/hls_stream.h"):
        assert (project.path / name).is_file(), name
    got = run_csim(project, xq)
    assert_bit_exact(got, reference_outputs(trained_model, xq))


@pytest.mark.parametrize("unroll", ["min", "max"])
def test_same_padding_is_bit_exact_on_ecg_windows(ecg, user_models, tmp_path, unroll):
    model = user_models["same"]
    ir = parse_tflite(model.read_bytes())
    windowed = [(layer.kind, layer.stride, layer.padding) for layer in ir.layers
                if layer.kind in ("conv", "dwconv", "maxpool")]
    # Every sliding window is 'same': convolutions and depthwise ones, strides 1 and 2.
    assert {(k, s) for k, s, _ in windowed} >= {("conv", 1), ("conv", 2), ("dwconv", 1),
                                                 ("dwconv", 2), ("maxpool", 2)}
    assert all(p == "same" for *_, p in windowed)
    x = np.concatenate([ecg.x_train, ecg.x_val, ecg.x_test])
    xq = quantize(x, model)
    got = run_csim(generate(model, tmp_path / "same", board="ultra96-v2", unroll=unroll), xq)
    assert_bit_exact(got, reference_outputs(model, xq))
    manifest = json.loads((tmp_path / "same" / "manifest.json").read_text())
    assert [la["padding"] for la in manifest["layers"] if la["kind"] == "dwconv"] == ["same"] * 2


@pytest.mark.parametrize(("name", "op"), [("softmax", "SOFTMAX"),
                                          ("lstm", "UNIDIRECTIONAL_SEQUENCE_LSTM")])
def test_layers_the_library_lacks_are_rejected_by_name(user_models, tmp_path, name, op):
    with pytest.raises(CandidateRejected, match=f"operator {op} \\(op \\d+\\) is not in the HLS"):
        parse_tflite(user_models[name].read_bytes())
    with pytest.raises(CandidateRejected, match=op):
        generate(user_models[name], tmp_path / name)
    assert not (tmp_path / name / "src").exists()


def test_rejects_what_is_not_a_tflite_flatbuffer():
    with pytest.raises(CandidateRejected, match="TFL3"):
        parse_tflite(b"not a flatbuffer at all, definitely" * 4)
    # The right identifier in front of garbage: the offsets point nowhere.
    rng = np.random.default_rng(0)
    for _ in range(20):
        garbage = b"\x1c\x00\x00\x00TFL3" + rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
        with pytest.raises(CandidateRejected):
            parse_tflite(garbage)


def test_testbench_rejects_partial_windows(trained_model, tmp_path):
    project = generate(trained_model, tmp_path / "p", board="ultra96-v2")
    (project.path / "csim" / "input.bin").write_bytes(b"\x00" * 17)
    r = subprocess.run(["make", "-C", str(project.path), "csim"], timeout=300,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "whole number" in r.stderr + r.stdout


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_templates_compile_on_their_own(tmp_path):
    """The C++ templates are real files: with their placeholders they compile as they are."""
    from importlib import resources

    templates = resources.files("device_agent.fpga").joinpath("templates")
    include = resources.files("device_agent.fpga").joinpath("include")
    for name in ("dnnu.h", "dnnu.cpp", "weights.h", "tb.cpp"):
        (tmp_path / name).write_text(templates.joinpath(name).read_text())
    r = subprocess.run(
        ["g++", "-std=c++14", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas",
         f"-I{include}", f"-I{include}/hls_stub", f"-I{tmp_path}", "dnnu.cpp", "tb.cpp",
         "-o", "tb"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (tmp_path / "in.bin").write_bytes(bytes([5, 251]))
    r = subprocess.run(["./tb", "in.bin", "out.bin"], cwd=tmp_path, capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and (tmp_path / "out.bin").read_bytes() == bytes([5, 251])


def test_cli_export_hls_and_unknown_target(trained_model, tmp_path, capsys):
    from host.cli import main

    assert main(["export", "hls", str(trained_model), "--board", "zcu102",
                 "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "manifest.json").is_file()
    assert main(["export", "some-run", "--board", "zcu102"]) == 2
    assert "say what to export from the run (--front)" in capsys.readouterr().err
    assert main(["export", "some-run", "--front", "--runs-dir", str(tmp_path / "none")]) == 2
    assert "neither a target (hls) nor a run" in capsys.readouterr().err


def test_a_lut_compressed_model_is_rejected_with_what_to_send_instead(trained_model):
    """Issue 13: the generator takes clustered weights as plain int8 ROM, not TFLM's LUT file."""
    pytest.importorskip("tflite_micro")
    from host.compress.lut import apply_lut, plan_lut

    int8 = Path(trained_model).read_bytes()
    # The demo network is so small that every table would outweigh its savings; compress
    # its kernels anyway (the format, not the size, is what the generator must refuse).
    plans = [dataclasses.replace(p, skip=None) if (p.skip or "").startswith("would grow")
             else p for p in plan_lut(int8)]
    assert any(not p.skip for p in plans), [p.skip for p in plans]
    lut = apply_lut(int8, plans)
    with pytest.raises(CandidateRejected, match=r"operator TFLM_DECODE \(op \d+\) is not in the "
                       r"HLS library; a LUT-compressed \(TFLM\) model: give the generator the "
                       r"int8 file"):
        parse_tflite(lut)
    parse_tflite(int8)  # the int8 file itself is taken
