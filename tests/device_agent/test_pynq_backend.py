"""The pynq backend off-board: a clear "no PYNQ device" error; bundle checks."""

from __future__ import annotations

import json
import zipfile

import pytest

from device_agent.backends import get_backend_class
from device_agent.backends.pynq import read_bundle
from device_agent.errors import CandidateRejected, DeviceUnavailable


def test_no_board_gives_clear_error():
    cls = get_backend_class("pynq")  # importing the module is cheap and never needs pynq
    with pytest.raises(DeviceUnavailable, match="no PYNQ device"):
        cls()


def test_pmbus_without_board_is_unavailable():
    from device_agent.power.base import get_sensor_class

    with pytest.raises(DeviceUnavailable, match="no PYNQ device"):
        get_sensor_class("pmbus")()


def test_bundle_checks(tmp_path):
    with pytest.raises(CandidateRejected, match="FPGA bundles"):
        read_bundle(tmp_path.joinpath("m.tflite"), tmp_path / "x") if tmp_path.joinpath(
            "m.tflite").write_bytes(b"TFL3") else None
    good = tmp_path / "b.zip"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("manifest.json", json.dumps({"input_shape": [1, 256, 1],
                                                "output_shape": [1, 2]}))
        z.writestr("dnnu.bit", b"bit")
        z.writestr("dnnu.hwh", b"<hwh/>")
    b = read_bundle(good, tmp_path / "u")
    assert b.bitfile.name == "dnnu.bit" and b.manifest["output_shape"] == [1, 2]
    bad = tmp_path / "c.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("manifest.json", "{}")
        z.writestr("dnnu.bit", b"bit")
    with pytest.raises(CandidateRejected, match="hwh"):
        read_bundle(bad, tmp_path / "v")
