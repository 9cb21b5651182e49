"""Shared test configuration: the data directory, opt-in hardware tests, slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Tests read the real datasets through HILNAS_DATA_DIR; default to ../shared/data.
if "HILNAS_DATA_DIR" not in os.environ:
    shared = REPO.parent / "shared" / "data"
    if shared.is_dir():
        os.environ["HILNAS_DATA_DIR"] = str(shared)
# TensorFlow must use tf-keras (Keras 2) for int8 LSTM export; see TOOLCHAIN notes in docs.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-hardware", action="store_true", help="run tests that need a board")
    parser.addoption("--serial-port", default=None, help="serial port of a real board")
    parser.addoption("--adb-serial", default=None, help="serial number of a real phone")
    parser.addoption("--agent-address", default=None, help="grpc://HOST:PORT of a real agent")
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_hw = pytest.mark.skip(reason="needs a real board: pass --run-hardware")
    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow (make test-slow)")
    for item in items:
        if "hardware" in item.keywords and not config.getoption("--run-hardware"):
            item.add_marker(skip_hw)
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (MIT-BIH, TROIKA, FSDD, reference outputs); skip if absent."""
    path = os.environ.get("HILNAS_DATA_DIR")
    if not path or not Path(path).is_dir():
        pytest.skip("HILNAS_DATA_DIR is not set and ../shared/data does not exist")
    return Path(path)
