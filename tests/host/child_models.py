"""Models the host tests need, built once per machine in a child process.

TensorFlow is imported only in the child: it is slow to import and the test process also
loads LiteRT and tflite-micro. The child's folder is cached in the temp dir under a hash of
the build script and its arguments, so the suites build each set once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def build_once(name: str, script: str, args: list[str], tmp: Path, timeout: float) -> Path:
    """Run `script` as `python -c script OUT *args` and return OUT, the folder it wrote.

    OUT is `<tempdir>/<name>-<hash>` when a build of the same script and arguments is
    already there; otherwise the script runs in a fresh folder under `tmp`, which is then
    published there (or used as it is when another process won the race).
    """
    key = hashlib.sha256((script + repr(args)).encode()).hexdigest()[:12]
    final = Path(tempfile.gettempdir()) / f"{name}-{key}"
    if final.is_dir():
        return final
    repo = Path(__file__).resolve().parents[2]
    work = tmp / "built"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(repo), "TF_USE_LEGACY_KERAS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-c", script, str(work), *args],
                   check=True, timeout=timeout, env=env, cwd=repo)
    try:
        shutil.copytree(work, final.with_suffix(".part"), dirs_exist_ok=True)
        final.with_suffix(".part").rename(final)
    except OSError:  # another process won the race, or the temp dir is read-only
        return work
    return final
