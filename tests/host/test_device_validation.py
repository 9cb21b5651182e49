"""Field validation: quality from a device's own outputs vs the host's int8 reference.

A tiny BioNet model (untrained, fixed seed) exported to int8 with hilnas metadata, real
MIT-BIH windows, and real agents: the `local` LiteRT agent, the emulated Nano 33 BLE
(TFLite Micro behind the serial bridge) and an agent whose backend has no Validate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from child_models import build_once  # type: ignore[import-not-found]

from device_agent.errors import MeasurementFailed, ProtocolError
from device_agent.types import DeviceInfo, Sample
from host.fleet import open_device
from host.fleet.device import Device, ModelBlob
from host.fleet.validation import (
    HOST_SOURCE,
    REFERENCES,
    ValidationUnsupported,
    host_references,
    safe_batch,
    validate_front,
    validate_on_device,
)

N = 120  # windows per test: several Validate calls, a few seconds on the emulated board

# The dataset of the test model (real MIT-BIH records, 64-sample windows).
DATA = {"records": ("100", "119", "203", "208", "213", "201", "202"), "window": 64,
        "max_windows_per_record": 60}

# Builds the test model in a child process: TensorFlow stays out of the test process
# (slow to import; LiteRT and tflite-micro load here), and the model is cached in the temp
# dir under a hash of this script, like tests/device_agent/mcu_models.py.
_BUILD = r"""
import sys
from host.data import EcgDatasetConfig, load_ecg_dataset
from host.export.tflite import convert_many
from host.spaces import BioNetArch, build_keras_model
out, cache, data = sys.argv[1], sys.argv[2], eval(sys.argv[3])
ds = load_ecg_dataset(EcgDatasetConfig(cache_dir=cache, **data))
# a BioNet network (an LSTM: state in variable tensors) and a stateless 1-D CNN
keras_model = build_keras_model(BioNetArch(0, 1, 4), 64, 1, 2, batch_size=1, seed=0)
model = convert_many(keras_model, ["int8"], ds.x_train, metadata=ds.metadata())["int8"]
open(out + "/lstm.tflite", "wb").write(model)
import tf_keras as k
k.utils.set_random_seed(0)
i = k.Input((64, 1), batch_size=1)
h = k.layers.Conv1D(8, 5, activation="relu")(i)
h = k.layers.MaxPooling1D(2)(h)
h = k.layers.Conv1D(8, 3, activation="relu")(h)
o = k.layers.Dense(2, activation="softmax")(k.layers.GlobalAveragePooling1D()(h))
model = convert_many(k.Model(i, o), ["int8"], ds.x_train, metadata=ds.metadata())["int8"]
open(out + "/cnn.tflite", "wb").write(model)
"""


def _models(tmp: Path) -> dict[str, bytes]:
    folder = build_once("hilnas-validation-test-models", _BUILD, [str(tmp), repr(DATA)], tmp,
                        timeout=600)
    return {name: (folder / f"{name}.tflite").read_bytes() for name in ("cnn", "lstm")}


@pytest.fixture(scope="module")
def setup(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from host.data import EcgDatasetConfig, load_ecg_dataset
    from host.tasks.ecg import EcgClassification

    tmp = tmp_path_factory.mktemp("validation")
    cfg = EcgDatasetConfig(cache_dir=str(tmp), **DATA)  # type: ignore[arg-type]
    ds = load_ecg_dataset(cfg)
    models = _models(tmp)
    model = models["cnn"]
    path = tmp / "cnn.tflite"
    path.write_bytes(model)
    # Windows of every side (the test side alone is small): validation needs no split.
    x = np.concatenate([ds.x_test, ds.x_val, ds.x_train])[:N]
    y = np.concatenate([ds.y_test, ds.y_val, ds.y_train])[:N]
    assert len(x) == N and len(set(y.tolist())) == 2
    return {"model": model, "lstm": models["lstm"], "path": path, "x": x, "y": y,
            "task": EcgClassification(cfg), "tmp": tmp}


def test_local_litert_is_identical_to_the_host_reference(setup: dict[str, Any]) -> None:
    with open_device("local") as device:
        r = validate_on_device(device, setup["model"], setup["x"], setup["y"], setup["task"])
    assert r.n_windows == N and r.backend == "litert" and not r.is_stand_in
    assert r.outputs is not None and r.outputs.dtype == np.int8
    assert len({row.tobytes() for row in r.outputs}) > 1  # outputs vary: a real comparison
    # The same LiteRT, default kernels, same int8 inputs: bit-identical.
    assert r.identical_share == 1.0 and r.identical_windows == N
    assert r.max_abs_diff_raw == 0.0 and r.max_abs_diff == 0.0
    assert r.same_prediction_share == 1.0 and r.differing_windows == []
    assert r.device_metrics == r.host_metrics
    assert r.device_source == "validated on local (device outputs)"
    assert r.host_source == HOST_SOURCE
    doc = r.to_json()
    json.dumps(doc)
    assert doc["device_metrics"]["f1_macro"] == doc["host_metrics"]["f1_macro"]
    assert doc["reference_kernels"]["source"].startswith("device outputs vs LiteRT reference")


def test_emulated_board_agrees_with_litert_reference_kernels(setup: dict[str, Any]) -> None:
    """TFLite Micro (reference kernels) vs LiteRT: differences are int8 rounding, measured.

    LiteRT's default interpreter hands int8 ops to XNNPACK, which requantizes in float;
    TFLM uses TFLite's portable fixed-point kernels, so it is compared with LiteRT's
    BUILTIN_REF kernels too. Where those differ, it is by one step: TFLM rounds the
    requantization twice (gemmlowp), LiteRT 2.x's reference kernels once (see
    docs/validation.md); a near-tie accumulator lands on neighbouring int8 values.
    """
    with open_device("local:mcu-emulator?board=nano33ble") as device:
        results = {name: validate_on_device(device, setup[name], setup["x"], setup["y"],
                                            setup["task"]) for name in ("model", "lstm")}
    for name, r in results.items():
        ref = r.reference_kernels
        assert ref is not None
        print(f"\n{name} on the emulator vs host default: identical {r.identical_share:.3f}, "
              f"max diff {r.max_abs_diff_raw}; vs reference kernels: identical "
              f"{ref['identical_share']:.3f}, max diff {ref['max_abs_diff_raw']}")
        _check_emulator(r)
    # The CNN (CONV_2D, MAX_POOL_2D, MEAN, FULLY_CONNECTED): bit-identical to LiteRT's
    # reference kernels on these windows (on other models the FULLY_CONNECTED requantization
    # can round a near-tie the other way: one step, see docs/validation.md).
    cnn = results["model"].reference_kernels
    assert cnn is not None and cnn["identical_share"] == 1.0 and cnn["max_abs_diff_raw"] == 0
    # The LSTM: TFLM has its own integer LSTM kernel; its last hidden state can differ by a
    # step from LiteRT's, which reaches the output as one or two steps.
    lstm = results["lstm"].reference_kernels
    assert lstm is not None and lstm["identical_share"] >= 0.85
    assert lstm["max_abs_diff_raw"] <= 2.0


def _check_emulator(r: Any) -> None:
    assert r.backend == "mcu-emulator" and r.is_stand_in and r.n_windows == N
    assert r.reference_kernels is not None
    # Against LiteRT's default (XNNPACK): a few int8 steps at most, predictions agree.
    assert r.identical_share is not None and 0.0 <= r.identical_share <= 1.0
    assert r.max_abs_diff_raw is not None and r.max_abs_diff_raw <= 4.0
    assert r.same_prediction_share is not None and r.same_prediction_share >= 0.95
    assert len(r.differing_windows) == min(20, N - (r.identical_windows or 0))
    assert r.device_source == "validated on local (device outputs)"
    assert set(r.device_metrics) >= {"accuracy", "f1_macro"}


def test_lstm_on_local_litert_state_is_per_window(setup: dict[str, Any]) -> None:
    """An LSTM keeps its state in variable tensors; every window must start from zero.

    The host reference resets them before each window (Keras' stateful=False, and what the
    serial protocol does on a board). One window per Validate call gives the agent a fresh
    interpreter each time: identical. Several windows per call share one interpreter, and
    the agent's LiteRT worker (device_agent/worker.py) does not reset the variables between
    them, so a window's outputs can depend on the window before: field validation shows it.
    """
    with open_device("local") as device:
        single = validate_on_device(device, setup["lstm"], setup["x"][:40], setup["y"][:40],
                                    setup["task"], batch=1)
        many = validate_on_device(device, setup["lstm"], setup["x"], setup["y"], setup["task"])
    assert single.batches == 40 and single.identical_share == 1.0
    assert single.max_abs_diff_raw == 0.0
    print(f"\nlstm on local, {many.batch_size} windows per call: identical "
          f"{many.identical_share:.3f}, max diff {many.max_abs_diff_raw}")
    assert many.identical_share is not None and many.identical_share >= 0.9
    assert many.same_prediction_share is not None and many.same_prediction_share >= 0.95


def test_many_windows_are_batched_with_the_same_results(setup: dict[str, Any]) -> None:
    calls: list[tuple[int, int]] = []
    with open_device("local") as device:
        whole = validate_on_device(device, setup["model"], setup["x"], setup["y"], setup["task"],
                                   reference=False)
        batched = validate_on_device(
            device, setup["model"], setup["x"], setup["y"], setup["task"], batch=7,
            progress=lambda done, total: calls.append((done, total)), reference=False,
        )
    assert batched.batches == -(-N // 7) == len(calls) and batched.batch_size == 7
    assert calls[-1] == (N, N) and [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert whole.batches >= 1 and whole.batch_size <= safe_batch(64)
    assert np.array_equal(whole.outputs, batched.outputs)
    assert whole.device_metrics == batched.device_metrics
    # No reference: no host quality and no agreement figures.
    assert batched.host_metrics is None and batched.identical_share is None
    # The host reference, in this process or a child: the same outputs, one per window.
    xq = np.zeros((3, 64, 1), np.int8)
    inline, child = host_references(setup["model"], xq, isolate=False), \
        host_references(setup["model"], xq, isolate=True)
    assert set(inline) == set(child) == set(REFERENCES)
    assert all(np.array_equal(inline[k], child[k]) and len(child[k]) == 3 for k in REFERENCES)
    # Windows of 256 int8 samples: thousands per call, far past the 64 KiB pipe buffer that
    # once cut requests short (the worker now reads frames whole; test_worker_pipe.py).
    assert 1000 <= safe_batch(256) <= 4096 and safe_batch(10**9) == 1


def _no_validate_agent() -> Any:
    from device_agent.backends.litert import LiteRTBackend
    from device_agent.server import AgentServer

    class NoValidate(LiteRTBackend):
        def validate(self, model_path: Path, sha256: str, inputs: Sequence[Sample],
                     threads: int = 1) -> list[Sample]:
            raise NotImplementedError("this board's firmware cannot return outputs")

    server = AgentServer(NoValidate(name="novalidate"), name="novalidate", port=0)
    server.start()
    return server


def test_device_without_validate_is_a_clear_error(setup: dict[str, Any]) -> None:
    from host.fleet.grpc_device import GrpcDevice

    server = _no_validate_agent()
    try:
        with GrpcDevice(server.address, name="novalidate") as device:
            with pytest.raises(ValidationUnsupported,
                               match=r"^cannot validate on this device: novalidate \(litert\)"):
                validate_on_device(device, setup["model"], setup["x"][:5], setup["y"][:5],
                                   setup["task"])
    finally:
        server.stop()


class _FakeDevice(Device):
    """A device whose Validate fails with a given error (the other calls describe it)."""

    def __init__(self, error: Exception, info: DeviceInfo) -> None:
        self.name, self.error, self.info = "fake", error, info

    def describe(self) -> DeviceInfo:
        return self.info

    def ensure_model(self, model: Any) -> str:
        return ModelBlob.of(model).sha256

    def measure(self, model: Any, settings: Any = None) -> Any:
        raise NotImplementedError

    def profile(self, model: Any, settings: Any = None) -> Any:
        raise NotImplementedError

    def validate(self, model: Any, inputs: Sequence[Sample], threads: int = 1) -> list[Sample]:
        raise self.error

    def heartbeat(self) -> dict[str, object]:
        return {}


@pytest.fixture(scope="module")
def info() -> DeviceInfo:
    with open_device("local") as device:
        return device.describe()


def test_unimplemented_rpc_is_unsupported_other_failures_are_not(
    setup: dict[str, Any], info: DeviceInfo
) -> None:
    x, y, task = setup["x"][:3], setup["y"][:3], setup["task"]
    # An agent without the RPC: grpc's UNIMPLEMENTED arrives as a ProtocolError.
    old_agent = _FakeDevice(ProtocolError("fake: validate: Method not found!"), info)
    with pytest.raises(ValidationUnsupported, match="cannot validate on this device: fake"):
        validate_on_device(old_agent, setup["model"], x, y, task)
    with pytest.raises(ValidationUnsupported):
        validate_on_device(_FakeDevice(NotImplementedError(), info), setup["model"], x, y, task)
    # A crash is a crash, not "unsupported".
    crash = _FakeDevice(MeasurementFailed("fake: validate: out of memory"), info)
    with pytest.raises(MeasurementFailed) as excinfo:
        validate_on_device(crash, setup["model"], x, y, task)
    assert not isinstance(excinfo.value, ValidationUnsupported)


def test_validate_front_records_each_device_and_goes_on(
    setup: dict[str, Any], info: DeviceInfo
) -> None:
    entries = [{"arch": "a", "model_path": str(setup["path"])},
               {"arch": "b", "model_bytes": setup["model"]}]
    unsupported = _FakeDevice(ProtocolError("fake: validate: Method not found!"), info)
    with open_device("local") as local:
        front = validate_front({"local": local, "old": unsupported}, entries,
                               setup["x"][:20], setup["y"][:20], setup["task"])
    assert set(front) == {"a", "b"}
    for arch in ("a", "b"):
        ok = front[arch]["local"]
        assert ok["ok"] is True and ok["identical_share"] == 1.0 and ok["n_windows"] == 20
        assert ok["device_source"] == "validated on local (device outputs)"
        assert ok["host_source"] == HOST_SOURCE and "f1_macro" in ok["host_metrics"]
    assert front["a"]["old"]["reason"] == "unsupported"
    assert front["a"]["old"]["error"].startswith("cannot validate on this device: fake")
    assert front["b"]["old"] == {"ok": False, "reason": "unsupported",
                                 "error": "skipped: " + front["a"]["old"]["error"]}
    json.dumps(front)


def test_cli_validate_json(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from host.cli import main

    rc = main(["validate", str(setup["path"]), "--device", "local", "--records", "100",
               "--max-windows", "40", "--batch", "16", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = json.loads(out)
    assert doc["n_windows"] == 40 and doc["batches"] == 3 and doc["data"] == "records 100"
    assert doc["identical_share"] == 1.0 and doc["max_abs_diff_raw"] == 0.0
    assert doc["device_source"] == "validated on local (device outputs)"
    assert doc["host_source"] == HOST_SOURCE
    assert doc["device_metrics"]["accuracy"] == doc["host_metrics"]["accuracy"]
    assert doc["quantization"] == "int8" and doc["backend"] == "litert"


def test_cli_validate_clear_errors(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    from host.cli import main

    tmp: Path = setup["tmp"]
    junk = tmp / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    assert main(["validate", str(junk)]) == 2
    assert "not a .tflite model" in capsys.readouterr().err
    # A .tflite without hilnas metadata (its entry renamed): not a hilnas model.
    bare = tmp / "bare.tflite"
    bare.write_bytes(setup["model"].replace(b"hilnas", b"xxxxxx"))
    assert main(["validate", str(bare)]) == 2
    assert "is not a hilnas model (no hilnas metadata)" in capsys.readouterr().err
    # Nothing listens on port 1: DeviceUnavailable, before any data is read.
    assert main(["validate", str(setup["path"]), "--device", "grpc://127.0.0.1:1",
                 "--timeout", "2"]) == 2
    assert "DeviceUnavailable" in capsys.readouterr().err
