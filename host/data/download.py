"""Fetch datasets into the data folder, each file checked against SHA-256 sums we ship.

What can be fetched (docs/data.md):

- PhysioNet `mitdb` and `cudb`: one file per request from PhysioNet's file index,
  `https://physionet.org/files/<db>/<version>/<file>` (the layout wfdb uses), or from a
  mirror with the same layout (`mirror=` / `$HILNAS_PHYSIONET_URL`).
- `fsdd` (Free Spoken Digit Dataset): the `recordings/` folder of one pinned commit, from
  its GitHub archive (or a mirror: a `.zip` of the repository, or a folder/URL that holds
  `recordings/`, via `mirror=` / `$HILNAS_FSDD_URL`).
- `troika` is never downloaded (its licence must be accepted by hand); asking for it
  raises a DataError that says where to get it and where to put it.

Every file is written under a temporary name in the target folder (`.<name>.part`),
checked against the sums in `host/data/checksums/<database>.sha256`, then renamed into
place, so a file under its final name is always complete and verified. An interrupted
transfer is resumed with an HTTP Range request (from the `.part` file, in this run or the
next); a wrong sum deletes the file and raises a DataError naming the file, both sums and
the URL. Files already present are not fetched again.

Why not `wfdb.dl_database`/`wfdb.dl_files`: they look the version up at
`https://physionet.org/content/` whatever `set_db_index_url` says (so no mirror or offline
use), append a resumed transfer to the file under its final name, have no timeouts and
check no sums. We keep wfdb's URL layout and read the records with wfdb.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from host.data.mitdb import MITDB_RECORDS, auto_download_enabled, data_root
from host.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# PhysioNet's file index (the same as wfdb.io.download.PN_INDEX_URL).
PHYSIONET_URL = "https://physionet.org/files/"
PHYSIONET_ENV = "HILNAS_PHYSIONET_URL"
FSDD_ENV = "HILNAS_FSDD_URL"

CUDB_RECORDS = tuple(f"cu{i:02d}" for i in range(1, 36))


@dataclass(frozen=True)
class PhysioNetDatabase:
    """One PhysioNet database: the pinned version (our sums are for it) and its records."""

    name: str
    title: str
    version: str
    records: tuple[str, ...]
    licence: str
    extensions: tuple[str, ...] = ("hea", "dat", "atr")
    metadata_files: tuple[str, ...] = ("RECORDS", "ANNOTATORS")

    @property
    def home(self) -> str:
        return f"https://physionet.org/content/{self.name}/{self.version}/"


PHYSIONET: dict[str, PhysioNetDatabase] = {
    "mitdb": PhysioNetDatabase(
        "mitdb", "MIT-BIH Arrhythmia Database", "1.0.0", MITDB_RECORDS, "ODC-By 1.0"
    ),
    "cudb": PhysioNetDatabase(
        "cudb", "CU Ventricular Tachyarrhythmia Database", "1.0.0", CUDB_RECORDS, "ODC-By 1.0"
    ),
}

FSDD_REPOSITORY = "https://github.com/Jakobovski/free-spoken-digit-dataset"
FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_ARCHIVE_URL = f"{FSDD_REPOSITORY}/archive/{FSDD_COMMIT}.zip"

TROIKA_URL = "https://sites.google.com/site/researchbyzhang/ieeespcup2015"

DATASETS = ("mitdb", "cudb", "fsdd", "troika")

# (connect, read) seconds: a dead server fails a request within these, never hangs.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 30.0)
DEFAULT_RETRIES = 3
_BACKOFF_S = 0.5
_CHUNK = 1 << 16


@dataclass
class DownloadResult:
    """What a download did: the folder, and file names (relative to it) by outcome."""

    database: str
    folder: Path
    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # already there (verified if sums known)
    unverified: list[str] = field(default_factory=list)  # fetched or kept without a sum

    def summary(self) -> str:
        parts = [f"{len(self.downloaded)} downloaded", f"{len(self.present)} already present"]
        if self.unverified:
            parts.append(f"{len(self.unverified)} NOT verified (no shipped sum)")
        return f"{self.database}: {', '.join(parts)} in {self.folder}"


# ---- where things go ----------------------------------------------------------------------


def dataset_dir(database: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return `<data root>/<database>` for any dataset hilnas knows (see `data_root`)."""
    if database not in DATASETS:
        raise ConfigError(f"database: unknown dataset {database!r}; known: {', '.join(DATASETS)}")
    return data_root(data_dir) / database


# ---- checksums ------------------------------------------------------------------------------


def load_checksums(database: str) -> dict[str, str]:
    """Return the shipped sums of a dataset: path relative to its folder -> sha256 (hex).

    The files are `sha256sum` format (`<hex>  <path>`), so `sha256sum -c` can use them too.
    A dataset without a shipped file (cudb) gives an empty mapping.
    """
    res = resources.files("host.data").joinpath("checksums", f"{database}.sha256")
    if not res.is_file():
        return {}
    sums: dict[str, str] = {}
    for line in res.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _missing_sum_error(database: str, names: Sequence[str], folder: Path) -> DataError:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return DataError(
        f"{database}: no SHA-256 sum is shipped for {shown} (host/data/checksums/"
        f"{database}.sha256), so hilnas will not download it unverified. Run "
        f"`hilnas data download --database {database} --no-verify --data-dir {folder.parent}` "
        "to accept unverified files, or put checked copies in that folder yourself"
    )


# ---- the transfer of one file ---------------------------------------------------------------


def _is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def _local_path(source: str) -> Path:
    parsed = urlparse(source)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(source).expanduser()


def _join(base: str, *parts: str) -> str:
    if _is_url(base):
        return base.rstrip("/") + "/" + "/".join(parts)
    return str(_local_path(base).joinpath(*parts))


def _part_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.part")


class _Offline(DataError):
    """The source could not be reached at all (no response ever came from it)."""


class _Fetcher:
    """Fetch files (http(s) or a local path) to `.part` names, verify, rename into place."""

    def __init__(
        self,
        timeout: tuple[float, float],
        retries: int,
        progress: bool,
        desc: str,
        total_files: int,
    ) -> None:
        import requests

        self._requests = requests
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "hilnas-data-download (python-requests)"
        self.timeout = timeout
        self.retries = max(0, retries)
        self.reached = False  # any HTTP response received from the source
        self.bar: Any = None
        self.desc = desc
        self.total_files = total_files
        self.done_files = 0
        if progress:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with the host extra; no bar without it
                pass
            else:
                self.bar = tqdm(
                    total=None,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=desc,
                    bar_format="{desc}: {n_fmt}{unit} [{elapsed}, {rate_fmt}]",
                )

    def close(self) -> None:
        self.session.close()
        if self.bar is not None:
            self.bar.close()

    def _next_file(self, name: str) -> None:
        self.done_files += 1
        if self.bar is not None:
            self.bar.set_description_str(f"{self.desc} {self.done_files}/{self.total_files} {name}")

    def fetch(self, source: str, dest: Path, expected: str | None, what: str) -> None:
        """Put `source` at `dest`, verified against `expected` (None: unverified)."""
        self._next_file(dest.name)
        part = _part_name(dest)
        for attempt in (0, 1):
            resumed = part.exists() and part.stat().st_size > 0
            if _is_url(source):
                self._http(source, part, what)
            else:
                self._copy(source, part, what)
            if expected is None:
                break
            actual = sha256_file(part)
            if actual == expected:
                break
            part.unlink()
            if resumed and attempt == 0 and _is_url(source):
                log.warning("%s: resumed file has the wrong sum; downloading it again", what)
                continue
            raise DataError(
                f"checksum mismatch for {what} from {source}: expected sha256 {expected}, "
                f"got {actual}; the file was deleted. The mirror may be corrupt or serve "
                "another version of the data"
            )
        os.replace(part, dest)

    def _copy(self, source: str, part: Path, what: str) -> None:
        src = _local_path(source)
        if not src.is_file():
            raise DataError(f"{what}: {src} does not exist (mirror folder)")
        shutil.copyfile(src, part)
        if self.bar is not None:
            self.bar.update(part.stat().st_size)

    def _http(self, url: str, part: Path, what: str) -> None:
        requests = self._requests
        failures: list[str] = []
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(_BACKOFF_S * attempt)
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                resp = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not self.reached:
                    raise _Offline(f"cannot reach {url}: {exc}") from exc
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            self.reached = True
            with resp:
                status = resp.status_code
                if status == 416 and offset:  # the .part is not a prefix any more: restart
                    part.unlink()
                    failures.append("HTTP 416 on resume")
                    continue
                if status in (404, 410):
                    raise DataError(
                        f"{what}: not found at {url} (HTTP {status}); check the mirror's layout"
                    )
                if status == 429 or status >= 500:
                    failures.append(f"HTTP {status}")
                    continue
                if status >= 400:
                    raise DataError(f"{what}: HTTP {status} from {url}")
                mode = "wb"
                if status == 206:
                    start = _content_range_start(resp.headers.get("Content-Range", ""))
                    if start != offset:
                        part.unlink(missing_ok=True)
                        failures.append(f"server resumed at byte {start}, not {offset}")
                        continue
                    mode = "ab"
                length = resp.headers.get("Content-Length")
                written = 0
                try:
                    with open(part, mode) as fh:
                        for chunk in resp.iter_content(_CHUNK):
                            fh.write(chunk)
                            written += len(chunk)
                            if self.bar is not None:
                                self.bar.update(len(chunk))
                except requests.RequestException as exc:  # reset, truncated, read timeout
                    failures.append(f"connection lost after {written} bytes: {exc}")
                    continue
                except OSError as exc:  # the local disk, not the network
                    raise DataError(f"{what}: cannot write {part}: {exc}") from exc
                if length is not None and written < int(length):
                    failures.append(f"connection closed after {written} of {length} bytes")
                    continue
                return
        kept = f"; {part.name} is kept and the next run resumes from it" if part.exists() else ""
        raise DataError(
            f"download of {what} from {url} failed after {self.retries + 1} attempts "
            f"({'; '.join(failures[-3:])}){kept}"
        )


def _content_range_start(value: str) -> int | None:
    """Return the first byte of `bytes START-END/TOTAL`, or None."""
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a dataset folder while downloading (parallel workers)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one downloader at a time is then up to you)
        yield
        return
    with open(folder / ".hilnas-download.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _want_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def _plan(
    database: str,
    folder: Path,
    files: Sequence[str],
    sums: Mapping[str, str],
    verify: bool,
    verify_existing: bool,
    result: DownloadResult,
) -> list[str]:
    """Return the files to fetch; record the ones present. Refuse files without a sum."""
    if verify:
        unsummed = [f for f in files if f not in sums]
        if unsummed:
            raise _missing_sum_error(database, unsummed, folder)
    todo = []
    for name in files:
        path = folder / name
        if not path.is_file():
            todo.append(name)
        elif name not in sums:
            result.present.append(name)
            result.unverified.append(name)
        elif not verify_existing or sha256_file(path) == sums[name]:
            result.present.append(name)
        else:
            log.warning("%s: %s does not match its sum; downloading it again", database, path)
            todo.append(name)
    return todo


def _offline_error(
    database: str, source: str, home: str, folder: Path, exc: Exception
) -> DataError:
    return DataError(
        f"cannot download {database}: {source} is unreachable ({exc}). Get the dataset from "
        f"{home} on a machine with internet (or `hilnas data download --database {database} "
        f"--data-dir DIR` there) and copy it to {folder}, or give a reachable mirror "
        "(--mirror; see docs/data.md)"
    )


# ---- PhysioNet ------------------------------------------------------------------------------


def physionet_files(database: str, records: Sequence[str] | None = None) -> list[str]:
    """Return the files (relative to the database folder) that `records` need (None: all)."""
    db = PHYSIONET[database]
    names = list(db.records) if records is None else [str(r) for r in records]
    unknown = [r for r in names if r not in db.records]
    if unknown:
        raise DataError(
            f"records: {', '.join(unknown)} not in {database} (its records: "
            f"{', '.join(db.records)})"
        )
    files = [f"{r}.{ext}" for r in names for ext in db.extensions]
    return list(db.metadata_files) + files


def download_physionet(
    database: str = "mitdb",
    data_dir: str | os.PathLike[str] | None = None,
    records: Sequence[str] | None = None,
    *,
    mirror: str | None = None,
    verify: bool = True,
    verify_existing: bool = True,
    progress: bool | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    checksums: Mapping[str, str] | None = None,
) -> DownloadResult:
    """Fetch `records` (None: all) of a PhysioNet database into `<data root>/<database>`.

    `mirror` (else `$HILNAS_PHYSIONET_URL`, else PhysioNet) is a base URL or folder laid out
    like `https://physionet.org/files/`: `<mirror>/<db>/<version>/<file>`.
    """
    if database not in PHYSIONET:
        raise ConfigError(f"database: {database!r} is not a PhysioNet database ({list(PHYSIONET)})")
    db = PHYSIONET[database]
    folder = dataset_dir(database, data_dir)
    sums = dict(load_checksums(database) if checksums is None else checksums)
    files = physionet_files(database, records)
    base = mirror or os.environ.get(PHYSIONET_ENV) or PHYSIONET_URL
    result = DownloadResult(database, folder)
    with _folder_lock(folder):
        todo = _plan(database, folder, files, sums, verify, verify_existing, result)
        if not todo:
            return result
        log.info("%s: fetching %d files from %s into %s", database, len(todo), base, folder)
        fetcher = _Fetcher(timeout, retries, _want_progress(progress), database, len(todo))
        try:
            for name in todo:
                url = _join(base, database, db.version, name)
                fetcher.fetch(url, folder / name, sums.get(name), f"{database}/{name}")
                result.downloaded.append(name)
                if name not in sums:
                    result.unverified.append(name)
        except _Offline as exc:
            raise _offline_error(database, base, db.home, folder, exc) from exc
        finally:
            fetcher.close()
    if result.unverified:
        log.warning(
            "%s: %d files have no shipped sum and were not verified",
            database,
            len(result.unverified),
        )
    return result


# ---- FSDD -----------------------------------------------------------------------------------


def fsdd_files(
    records: Sequence[str] | None = None, sums: Mapping[str, str] | None = None
) -> list[str]:
    """Return `recordings/<name>.wav` for `records` (stems like `0_george_0`; None: all)."""
    known = sums if sums is not None else load_checksums("fsdd")
    if records is None:
        return sorted(known)
    files = [f"recordings/{r.removesuffix('.wav')}.wav" for r in records]
    unknown = [f for f in files if f not in known]
    if unknown and sums is None:
        raise DataError(
            f"records: {', '.join(Path(f).stem for f in unknown[:5])} not in fsdd "
            "(names are {digit}_{speaker}_{index}, e.g. 0_george_0)"
        )
    return files


def _is_archive(source: str) -> bool:
    return urlparse(source).path.lower().endswith(".zip")


def download_fsdd(
    data_dir: str | os.PathLike[str] | None = None,
    records: Sequence[str] | None = None,
    *,
    mirror: str | None = None,
    verify: bool = True,
    verify_existing: bool = True,
    progress: bool | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    checksums: Mapping[str, str] | None = None,
) -> DownloadResult:
    """Fetch FSDD recordings (stems like `0_george_0`; None: all 3000) to `<root>/fsdd`.

    The source (`mirror`, else `$HILNAS_FSDD_URL`, else the GitHub archive of commit
    FSDD_COMMIT) is either a `.zip` (URL or file) holding `.../recordings/<name>.wav`, or a
    base URL or folder holding `recordings/<name>.wav`, fetched one file at a time.
    """
    folder = dataset_dir("fsdd", data_dir)
    sums = dict(load_checksums("fsdd") if checksums is None else checksums)
    files = fsdd_files(records, sums if checksums is not None else None)
    source = mirror or os.environ.get(FSDD_ENV) or FSDD_ARCHIVE_URL
    result = DownloadResult("fsdd", folder)
    with _folder_lock(folder):
        todo = _plan("fsdd", folder, files, sums, verify, verify_existing, result)
        if not todo:
            return result
        (folder / "recordings").mkdir(parents=True, exist_ok=True)
        log.info("fsdd: fetching %d recordings from %s into %s", len(todo), source, folder)
        try:
            if _is_archive(source):
                _fsdd_from_archive(source, folder, todo, sums, progress, timeout, retries, result)
            else:
                fetcher = _Fetcher(timeout, retries, _want_progress(progress), "fsdd", len(todo))
                try:
                    for name in todo:
                        fetcher.fetch(
                            _join(source, name), folder / name, sums.get(name), f"fsdd/{name}"
                        )
                        result.downloaded.append(name)
                finally:
                    fetcher.close()
        except _Offline as exc:
            raise _offline_error("fsdd", source, FSDD_REPOSITORY, folder, exc) from exc
    result.unverified.extend(n for n in result.downloaded if n not in sums)
    return result


def _fsdd_from_archive(
    source: str,
    folder: Path,
    todo: list[str],
    sums: Mapping[str, str],
    progress: bool | None,
    timeout: tuple[float, float],
    retries: int,
    result: DownloadResult,
) -> None:
    """Fetch the archive (unless local) next to the recordings, extract `todo`, delete it."""
    fetched: Path | None = None
    if _is_url(source):
        fetched = folder / ".fsdd-archive.zip"
        fetcher = _Fetcher(timeout, retries, _want_progress(progress), "fsdd archive", 1)
        try:
            fetcher.fetch(source, fetched, None, "fsdd archive")
        finally:
            fetcher.close()
        archive = fetched
    else:
        archive = _local_path(source)
        if not archive.is_file():
            raise DataError(f"fsdd: archive {archive} does not exist")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {
                "recordings/" + Path(m).name: m
                for m in zf.namelist()
                if Path(m).parent.name == "recordings" and m.endswith(".wav")
            }
            for name in todo:
                if name not in members:
                    raise DataError(f"fsdd: the archive from {source} has no {name}")
                dest = folder / name
                part = _part_name(dest)
                with zf.open(members[name]) as src, open(part, "wb") as out:
                    shutil.copyfileobj(src, out)
                expected = sums.get(name)
                if expected is not None:
                    actual = sha256_file(part)
                    if actual != expected:
                        part.unlink()
                        raise DataError(
                            f"checksum mismatch for fsdd/{name} in the archive from {source}: "
                            f"expected sha256 {expected}, got {actual}; the file was deleted"
                        )
                os.replace(part, dest)
                result.downloaded.append(name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DataError(f"fsdd: the archive from {source} is not a readable zip: {exc}") from exc
    finally:
        for leftover in folder.glob("recordings/.*.part"):
            leftover.unlink()
        if fetched is not None:
            fetched.unlink(missing_ok=True)


# ---- TROIKA ---------------------------------------------------------------------------------


def troika_error(data_dir: str | os.PathLike[str] | None = None) -> DataError:
    """The error for TROIKA: it needs its licence accepted by hand, hilnas never fetches it."""
    folder = dataset_dir("troika", data_dir)
    return DataError(
        "troika: the TROIKA dataset (IEEE Signal Processing Cup 2015, research use only) is "
        f"distributed after accepting its terms, so hilnas never downloads it. Get it from "
        f"{TROIKA_URL} and unpack it into {folder} (training_data/, test_data/, ...)"
    )


def troika_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return `<data root>/troika` if it is there, else raise the licence error."""
    folder = dataset_dir("troika", data_dir)
    if not folder.is_dir() or not any(folder.iterdir()):
        raise troika_error(data_dir)
    return folder


# ---- entry points ---------------------------------------------------------------------------


def download(
    database: str,
    data_dir: str | os.PathLike[str] | None = None,
    records: Sequence[str] | None = None,
    **options: Any,
) -> DownloadResult:
    """Fetch `records` (None: all) of `database` (mitdb, cudb, fsdd; troika raises)."""
    if database in PHYSIONET:
        return download_physionet(database, data_dir, records, **options)
    if database == "fsdd":
        return download_fsdd(data_dir, records, **options)
    if database == "troika":
        raise troika_error(data_dir)
    raise ConfigError(f"database: unknown dataset {database!r}; known: {', '.join(DATASETS)}")


def needed_files(database: str, records: Sequence[str] | None) -> list[str]:
    if database in PHYSIONET:
        return physionet_files(database, records)
    if database == "fsdd":
        return fsdd_files(records)
    if database == "troika":
        raise troika_error()
    raise ConfigError(f"database: unknown dataset {database!r}; known: {', '.join(DATASETS)}")


def ensure_records(
    database: str,
    records: Sequence[str] | None,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> None:
    """Download what a loader needs into the user cache, when that is where data lives.

    Only when `data_dir` is None and `$HILNAS_DATA_DIR` is unset (the first-run case):
    a folder the user chose is never written to behind their back; its missing files
    stay the loader's clear error.
    """
    if not auto_download_enabled(data_dir):
        return
    folder = dataset_dir(database, None)
    missing = [f for f in needed_files(database, records) if not (folder / f).is_file()]
    if not missing:
        return
    log.warning(
        "HILNAS_DATA_DIR is not set: downloading %d %s files into %s (docs/data.md)",
        len(missing),
        database,
        folder,
    )
    download(database, None, records, verify_existing=False, progress=progress)
