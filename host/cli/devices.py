"""`hilnas devices describe ADDRESS`: what a device agent serves."""

from __future__ import annotations

import argparse
from typing import Any

from host.cli._common import add_device_options, device_from_args, human_bytes, print_json


def register(sub: Any) -> None:
    parser = sub.add_parser("devices", help="inspect device agents")
    dsub = parser.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    describe = dsub.add_parser("describe", help="describe a device: board, CPU, runtimes, limits")
    describe.add_argument("address", help="grpc://HOST:PORT, grpcs://HOST:PORT or local")
    describe.add_argument("--json", action="store_true", help="print JSON")
    add_device_options(describe)
    describe.set_defaults(func=run_describe)


def run_describe(args: argparse.Namespace) -> int:
    with device_from_args(args.address, args) as device:
        info = device.describe()
        beat = device.heartbeat()
    if args.json:
        print_json({**info.to_json(), "heartbeat": beat})
        return 0
    runtimes = ", ".join(f"{r.name} {r.version}" for r in info.runtimes) or "-"
    sensor = info.power_sensor
    rows = [
        (
            "device",
            f"{info.name} ({info.kind}, backend {info.backend})"
            + ("  [STAND-IN: emulates hardware it is not]" if info.is_stand_in else ""),
        ),
        ("board", info.board),
        ("cpu", f"{info.cpu}, {info.cpu_cores} cores"),
        ("ram", human_bytes(info.ram_bytes)),
        ("storage", human_bytes(info.storage_bytes)),
        ("runtimes", runtimes),
        (
            "power sensor",
            f"{sensor.name} ({sensor.source.value})"
            + (f": {', '.join(sensor.quantities)}" if sensor.quantities else ""),
        ),
        (
            "limits",
            f"model <= {human_bytes(info.limits.max_model_bytes)}, "
            f"request <= {info.limits.max_request_seconds:.0f} s",
        ),
        (
            "agent",
            f"{info.agent_version}, protocol {info.protocol_major}.{info.protocol_minor}, "
            f"up {beat['uptime_seconds']:.0f} s, {beat['cached_models']} cached models",
        ),
    ]
    for key, value in info.extra.items():
        rows.append((key, value))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
