#!/usr/bin/env python3
"""Regenerate the committed gRPC stubs from protos/ (and, with --check, fail on drift).

The stubs live in device_agent/proto/ so that a board needs protobuf and grpcio but never
grpcio-tools. protoc names the generated import after the .proto path
(`from hilnas.agent.v1 import agent_pb2`); the stubs sit in a package of their own, so this
script rewrites that one import to a relative one (see docs/decisions.md).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_FILE = "hilnas/agent/v1/agent.proto"
OUT_DIR = ROOT / "device_agent" / "proto"
# No .pyi: mypy skips the generated modules (pyproject: follow_imports = "skip"), and the
# search engine never sees a _pb2 class (protobuf stops at device_agent/serde.py).
GENERATED = ("agent_pb2.py", "agent_pb2_grpc.py")


def generate(dest: Path) -> None:
    # grpc_tools ships the well-known types; its include path must come last.
    import grpc_tools
    from grpc_tools import protoc  # dev-only dependency

    wkt = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{wkt}",
        f"--python_out={dest}",
        f"--grpc_python_out={dest}",
        str(PROTO_ROOT / PROTO_FILE),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO_FILE}")
    gen_dir = dest / Path(PROTO_FILE).parent
    for name in GENERATED:
        text = (gen_dir / name).read_text()
        text = re.sub(
            r"^from hilnas\.agent\.v1 import agent_pb2 as",
            "from . import agent_pb2 as",
            text,
            flags=re.M,
        )
        (dest / name).write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed stubs differ")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        generate(tmp_dir)
        drift = []
        for name in GENERATED:
            fresh = (tmp_dir / name).read_text()
            target = OUT_DIR / name
            current = target.read_text() if target.exists() else ""
            if fresh != current:
                if args.check:
                    drift.append(name)
                    sys.stdout.writelines(
                        difflib.unified_diff(
                            current.splitlines(True), fresh.splitlines(True), str(target), "fresh"
                        )
                    )
                else:
                    target.write_text(fresh)
                    print(f"wrote {target.relative_to(ROOT)}")
        if drift:
            print(f"stubs drifted from {PROTO_FILE}: {', '.join(drift)}; run tools/gen_protos.py")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
