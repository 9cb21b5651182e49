"""On-disk model cache addressed by SHA-256, with least-recently-used eviction.

Uploads stream into a temporary file while being hashed; only a file whose hash and size
match the header is renamed into place, so a torn or tampered upload never becomes a
cached model. Access time is kept in the file's mtime (touched on every use).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from device_agent.errors import CandidateRejected, ModelNotFound, ProtocolError

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(value: str) -> str:
    if not _SHA256.fullmatch(value):  # not match: "$" also matches before a final newline
        raise ProtocolError(f"not a lower-case hex SHA-256: {value[:80]!r}")
    return value


class ModelCache:
    def __init__(self, directory: Path, max_bytes: int = 1 << 30) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _file(self, sha256: str) -> Path:
        return self.directory / f"{check_sha256(sha256)}.tflite"

    def has(self, sha256: str) -> bool:
        return self._file(sha256).is_file()

    def path(self, sha256: str) -> Path:
        """The cached model's path (marked as just used); ModelNotFound if absent."""
        path = self._file(sha256)
        try:
            os.utime(path)
        except FileNotFoundError:
            raise ModelNotFound(f"model {sha256[:12]}... is not cached on this device") from None
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.tflite"))

    def put(
        self, sha256: str, total_bytes: int, chunks: Iterable[bytes], *, max_model_bytes: int
    ) -> Path:
        """Store a model from its chunks, verifying its size and hash."""
        check_sha256(sha256)
        if total_bytes > max_model_bytes:
            raise CandidateRejected(
                f"model of {total_bytes} bytes exceeds this device's limit of {max_model_bytes}"
            )
        digest = hashlib.sha256()
        received = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    received += len(chunk)
                    if received > total_bytes or received > max_model_bytes:
                        raise CandidateRejected(
                            f"upload of {sha256[:12]}... sent more than the announced "
                            f"{total_bytes} bytes"
                        )
                    digest.update(chunk)
                    fh.write(chunk)
            if received != total_bytes:
                raise ProtocolError(
                    f"upload of {sha256[:12]}... ended after {received} of {total_bytes} bytes"
                )
            if digest.hexdigest() != sha256:
                raise ProtocolError(
                    f"upload hash mismatch: announced {sha256[:12]}..., "
                    f"received {digest.hexdigest()[:12]}..."
                )
            final = self._file(sha256)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._evict(keep=final)
        return final

    def remove(self, sha256: str) -> None:
        self._file(sha256).unlink(missing_ok=True)

    def _evict(self, keep: Path) -> None:
        with self._lock:
            files = sorted(
                (p for p in self.directory.glob("*.tflite")), key=lambda p: p.stat().st_mtime
            )
            total = sum(p.stat().st_size for p in files)
            for path in files:
                if total <= self.max_bytes:
                    break
                if path == keep:
                    continue
                total -= path.stat().st_size
                path.unlink(missing_ok=True)
                log.info("evicted %s from the model cache", path.name)
