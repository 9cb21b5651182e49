"""Bit-exactness of generated HLS projects: C simulation == LiteRT int8, on real ECG windows."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from host.errors import CandidateRejected
from host.export.hls import generate, parse_tflite
from host.export.hls.demo import build_demo_tflite

pytest.importorskip("ai_edge_litert")


def litert_outputs(model: Path, x_q: np.ndarray, resolver: str = "BUILTIN_REF") -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(str(model), experimental_op_resolver_type=getattr(OpResolverType, resolver))
    it.allocate_tensors()
    i = it.get_input_details()[0]["index"]
    o = it.get_output_details()[0]["index"]
    out = []
    for w in x_q:
        it.set_tensor(i, w[None])
        it.invoke()
        out.append(it.get_tensor(o)[0].copy())
    return np.stack(out)


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


def quantize(x: np.ndarray, model: Path) -> np.ndarray:
    ir = parse_tflite(model.read_bytes())
    q = np.round(x / ir.input_scale) + ir.input_zero_point
    return np.clip(q, -128, 127).astype(np.int8)


@pytest.mark.parametrize("unroll", ["min", "max"])
def test_csim_is_bit_exact_on_ecg_windows(ecg, trained_model, tmp_path, unroll):
    x = np.concatenate([ecg.x_train, ecg.x_val, ecg.x_test])
    assert len(x) >= 1000
    xq = quantize(x, trained_model)
    t0 = time.perf_counter()
    project = generate(trained_model, tmp_path / "proj", board="pynq-z1", unroll=unroll)
    assert time.perf_counter() - t0 < 10
    for name in ("src/weights.h", "src/dnnu.cpp", "tb/tb.cpp", "scripts/hls.tcl",
                 "scripts/bd.tcl", "driver/dnnu_driver.py", "README.md", "Makefile"):
        assert (project.path / name).is_file(), name
    xq.tofile(project.path / "csim" / "input.bin")
    subprocess.run(["make", "-C", str(project.path), "csim"], check=True, timeout=300,
                   capture_output=True)
    got = np.fromfile(project.path / "csim" / "output.bin", dtype=np.int8).reshape(len(x), -1)
    want = litert_outputs(trained_model, xq)
    assert got.shape == want.shape
    mismatches = int((got != want).sum())
    assert mismatches == 0, f"{mismatches} of {got.size} outputs differ"


def test_rejects_softmax_and_float_models(tmp_path):
    with pytest.raises(CandidateRejected):
        parse_tflite(b"not a flatbuffer at all, definitely" * 4)


def test_testbench_rejects_partial_windows(trained_model, tmp_path):
    project = generate(trained_model, tmp_path / "p", board="ultra96-v2")
    (project.path / "csim" / "input.bin").write_bytes(b"\x00" * 17)
    r = subprocess.run(["make", "-C", str(project.path), "csim"], timeout=300,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "whole number" in r.stderr + r.stdout


def test_cli_export_hls_and_unknown_target(trained_model, tmp_path, capsys):
    from host.cli import main

    assert main(["export", "hls", str(trained_model), "--board", "zcu102",
                 "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "manifest.json").is_file()
    assert main(["export", "some-run", "--board", "zcu102"]) == 2
    assert "say what to export from the run (--front)" in capsys.readouterr().err
    assert main(["export", "some-run", "--front", "--runs-dir", str(tmp_path / "none")]) == 2
    assert "neither a target (hls) nor a run" in capsys.readouterr().err
