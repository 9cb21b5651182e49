"""`hilnas data build`, `hilnas train` and `hilnas evaluate` end to end on real records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.cli import main
from host.export.flatbuf import read_metadata

RECORDS = "100,101,106,119,201,202,203,207,208,213,217"


def test_data_build_json(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "data",
            "build",
            "--preset",
            "aami5",
            "--records",
            RECORDS,
            "--max-windows-per-record",
            "50",
            "--cache-dir",
            str(tmp_path),
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == ["N", "S", "V", "F", "Q"]
    assert out["split"].startswith("patient-wise")
    assert sum(out["counts"]["train"].values()) > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "build", "--preset", "aami7"], "preset: unknown preset 'aami7'"),
        (["data", "build", "--records", "100,999"], "records: 999 not present"),
        (
            [
                "data",
                "build",
                "--preset",
                "custom",
                "--custom",
                "normal=N;paced=/",
                "--records",
                "100,101",
            ],
            "class 'paced'",
        ),
        (["data", "build", "--template-beats", "20", "--records", "100"],
         "template_beats: a beat template needs alignment = 'beat'"),
        (["evaluate", "/nonexistent/model.tflite"], "model: /nonexistent/model.tflite"),
        (["train", "--out", "x"], "--arch (or, for bionet, --blocks)"),
        (["train", "--space", "nope", "--arch", "x", "--out", "x"],
         "unknown space 'nope'; known: bionet, data_aware, half, ppg_cnnlstm, ppg_peaks"),
    ],
)
def test_bad_input_is_a_one_line_error(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    argv = [*argv, "--cache-dir", str(tmp_path)] if argv[0] == "data" else argv
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_train_then_evaluate(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--arch",
            "bionet-b0-x1-l16",
            "--preset",
            "normal-vs-anomalous",
            "--records",
            RECORDS,
            "--max-windows-per-record",
            "60",
            "--window",
            "128",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert rc == 0
    for name in (
        "model.keras",
        "model-float32.tflite",
        "model-dynamic.tflite",
        "model-int8.tflite",
        "model_int8.h",
        "metrics.json",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"]["key"] == "bionet-b0-x1-l16"
    assert "patient-wise" in metrics["split"]
    assert metrics["costs"]["params"] > 0
    assert set(metrics["tflite"]) >= {"float32", "int8", "int8_accuracy_drop_pp"}
    meta = read_metadata((out / "model-int8.tflite").read_bytes())
    assert meta["window"] == 128 and meta["preset"] == "normal-vs-anomalous"
    assert meta["architecture"]["key"] == "bionet-b0-x1-l16"
    assert "hilnas_model_int8_len" in (out / "model_int8.h").read_text()
    capsys.readouterr()
    rc = main(["evaluate", str(out / "model-int8.tflite"), "--records", "100,119", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert {"accuracy", "balanced_accuracy", "f1_macro"} <= set(result)
    assert result["data"] == "records 100,119"
    assert 0.0 <= result["accuracy"] <= 1.0
