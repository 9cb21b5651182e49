"""Driving an Android phone over adb: the client, the benchmark_model parser, measurement hygiene.

Everything here runs on the bridge machine the phone is plugged into; nothing runs on the
phone except `adb shell` commands and LiteRT's `benchmark_model` binary. Importing this
package is cheap (standard library only), as backend modules must be.
"""

from device_agent.adb.benchmark_output import BenchmarkOutput, parse_benchmark_output
from device_agent.adb.client import AdbClient, AdbCommandFailed, AdbDevice, parse_devices

__all__ = [
    "AdbClient",
    "AdbCommandFailed",
    "AdbDevice",
    "BenchmarkOutput",
    "parse_benchmark_output",
    "parse_devices",
]
