"""`device_agent` never imports `host`: a board installs the agent without the host package.

Two independent checks: a static scan of every module's source (imports anywhere, inside
functions too, and `importlib.import_module("host...")` with a literal name), and a child
process that imports every module of the package while an import hook refuses `host`.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "device_agent"
FORBIDDEN = "host"


def _is_forbidden(name: str | None) -> bool:
    return bool(name) and (name == FORBIDDEN or name.startswith(FORBIDDEN + "."))  # type: ignore[union-attr]


def host_imports(source: str, filename: str = "<snippet>") -> list[str]:
    """Every place in `source` that imports `host` or a submodule of it, as 'file:line'."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str | None] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names = [first.value]
        if any(_is_forbidden(n) for n in names):
            found.append(f"{filename}:{node.lineno}")
    return found


def test_the_scanner_finds_every_form_of_host_import() -> None:
    snippet = textwrap.dedent("""
        import os, host
        import host.fleet as fleet
        from host.export import hls
        def later():
            from host import errors
            return importlib.import_module("host.hw.half")
        class K:
            def m(self):
                __import__("host")
    """)
    assert len(host_imports(snippet)) == 6
    innocent = textwrap.dedent("""
        import hostname, socket
        from hosts import x
        from . import host
        from device_agent.host import y
        importlib.import_module("hostile")
    """)
    assert host_imports(innocent) == []


def test_no_module_of_device_agent_imports_host_in_its_source() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 40  # the whole package, not an empty glob
    found = [hit for f in files for hit in host_imports(f.read_text(), str(f))]
    assert found == [], f"device_agent imports host at: {found}"


# Imports every module of device_agent with `host` blocked. A module whose optional
# third-party dependency is missing here (pynq on a PC, say) is skipped and reported; a
# module that needs `host` fails with HostImported, which no `except ImportError` swallows.
_IMPORT_ALL = r"""
import importlib, importlib.abc, json, pkgutil, sys

class HostImported(Exception):
    pass

class BlockHost(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "host" or name.startswith("host."):
            raise HostImported(f"device_agent tried to import {name}")
        return None

sys.meta_path.insert(0, BlockHost())
import device_agent

imported, skipped, errors = [], {}, {}

def on_error(name):
    exc = sys.exc_info()[1]
    errors[name] = f"{type(exc).__name__}: {exc}"

for mod in pkgutil.walk_packages(device_agent.__path__, "device_agent.", onerror=on_error):
    try:
        importlib.import_module(mod.name)
        imported.append(mod.name)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top in ("device_agent", "host", ""):
            errors[mod.name] = f"{type(exc).__name__}: {exc}"
        else:
            skipped[mod.name] = exc.name
    except Exception as exc:
        errors[mod.name] = f"{type(exc).__name__}: {exc}"
try:
    import host  # the hook itself must be active
    hook_works = False
except HostImported:
    hook_works = True
leaked = sorted(m for m in sys.modules if m == "host" or m.startswith("host."))
print(json.dumps({"imported": imported, "skipped": skipped, "errors": errors,
                  "hook_works": hook_works, "leaked": leaked}))
"""


@pytest.fixture(scope="module")
def import_report() -> dict[str, object]:
    r = subprocess.run([sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True,
                       timeout=300, cwd=PACKAGE.parent,
                       env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert r.returncode == 0, r.stderr[-3000:]
    report: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return report


def test_every_device_agent_module_imports_with_host_blocked(import_report) -> None:
    assert import_report["hook_works"] is True
    assert import_report["errors"] == {}
    assert import_report["leaked"] == []
    imported = set(import_report["imported"])  # type: ignore[arg-type]
    # The modules that used to reach into host, and the shared FPGA code, import cleanly.
    assert {"device_agent.backends.hls_csim", "device_agent.fpga.generator",
            "device_agent.fpga.half", "device_agent.server", "device_agent.worker",
            "device_agent.pipe"} <= imported
    skipped = import_report["skipped"]
    assert set(skipped) <= {"device_agent.backends.pynq"}, skipped  # type: ignore[arg-type]
