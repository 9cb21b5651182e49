"""Dataset download for real: a loopback HTTP server in PhysioNet's layout, real records.

The server serves a temporary copy of two real MIT-BIH records (and a zip of a few real
FSDD recordings) and can corrupt a file, cut a transfer half-way, or be absent; every
download is checked against the sums shipped in host/data/checksums.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from host.cli import main
from host.data import EcgDatasetConfig, load_ecg_windows, load_record
from host.data.download import (
    FSDD_COMMIT,
    TROIKA_URL,
    download,
    download_fsdd,
    download_physionet,
    load_checksums,
)
from host.errors import DataError

RECORDS = ("100", "101")
WAVS = ("0_george_0", "3_jackson_7", "9_theo_49")
FAST = (2.0, 2.0)  # (connect, read) timeouts for the loopback server


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        path = srv.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        name = path.name
        if name in srv.corrupt:
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        start = 0
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.die.get(name, 0) > 0:  # half the bytes, then the connection drops
            srv.die[name] -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(payload)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.log: list[tuple[str, str | None]] = []
        self.corrupt: set[str] = set()
        self.die: dict[str, int] = {}
        self.ranges = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fetched(self, name: str) -> list[str | None]:
        """The Range headers of the requests for files called `name`."""
        return [rng for path, rng in self.log if path.endswith("/" + name)]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server(data_dir: Path, tmp_path: Path) -> Iterator[_Server]:
    """Serve /files/mitdb/1.0.0/{RECORDS,ANNOTATORS,100.*,101.*} and /fsdd.zip."""
    root = tmp_path / "srv"
    mitdb = root / "files" / "mitdb" / "1.0.0"
    mitdb.mkdir(parents=True)
    for name in ("RECORDS", "ANNOTATORS"):
        shutil.copy(data_dir / "mitdb" / name, mitdb / name)
    for rec in RECORDS:
        for ext in ("hea", "dat", "atr"):
            shutil.copy(data_dir / "mitdb" / f"{rec}.{ext}", mitdb / f"{rec}.{ext}")
    prefix = f"free-spoken-digit-dataset-{FSDD_COMMIT}/"
    with zipfile.ZipFile(root / "fsdd.zip", "w") as zf:
        zf.writestr(prefix + "README.md", "FSDD")
        for stem in WAVS:
            zf.write(
                data_dir / "fsdd" / "recordings" / f"{stem}.wav", f"{prefix}recordings/{stem}.wav"
            )
    srv = _Server(root)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _no_partials(folder: Path) -> None:
    assert not list(folder.rglob("*.part")), list(folder.rglob("*.part"))


def _get(server: _Server, dest: Path, **kw: Any) -> Any:
    opts: dict[str, Any] = dict(mirror=f"{server.url}/files/", progress=False, timeout=FAST)
    opts.update(kw)
    return download_physionet("mitdb", dest, list(RECORDS), **opts)


def test_clean_download_is_verified_then_read_and_not_fetched_again(
    server: _Server, tmp_path: Path
) -> None:
    dest = tmp_path / "data"
    result = _get(server, dest)
    folder = dest / "mitdb"
    assert sorted(result.downloaded) == sorted(
        ["RECORDS", "ANNOTATORS"] + [f"{r}.{e}" for r in RECORDS for e in ("hea", "dat", "atr")]
    )
    assert not result.unverified and result.folder == folder
    _no_partials(folder)
    rec = load_record("100", data_dir=dest)
    assert rec.fs == 360.0 and rec.lead == "MLII" and len(rec.signal) == 650000
    assert rec.ann_symbols.count("N") > 2000

    # present and verified: nothing is requested again
    n = len(server.log)
    again = _get(server, dest)
    assert again.downloaded == [] and len(again.present) == 8 and len(server.log) == n
    # a present file that no longer matches its sum is fetched again
    (folder / "101.atr").write_bytes(b"garbage")
    fixed = _get(server, dest)
    assert fixed.downloaded == ["101.atr"]
    assert load_record("101", data_dir=dest).name == "101"


def test_corrupted_file_is_a_checksum_error_and_deleted(server: _Server, tmp_path: Path) -> None:
    server.corrupt = {"100.dat"}
    dest = tmp_path / "data"
    expected = load_checksums("mitdb")["100.dat"]
    with pytest.raises(DataError) as err:
        _get(server, dest)
    msg = str(err.value)
    assert "checksum mismatch for mitdb/100.dat" in msg
    assert expected in msg and f"{server.url}/files/mitdb/1.0.0/100.dat" in msg
    assert "got " in msg and msg.split("got ")[1][:64] != expected
    assert not (dest / "mitdb" / "100.dat").exists()
    _no_partials(dest)


def test_connection_lost_mid_file_resumes_with_range(server: _Server, tmp_path: Path) -> None:
    server.die = {"100.dat": 1}
    dest = tmp_path / "data"
    result = _get(server, dest)
    assert "100.dat" in result.downloaded
    ranges = server.fetched("100.dat")
    assert ranges[0] is None and ranges[1] is not None and ranges[1] != "bytes=0-", ranges
    _no_partials(dest)
    assert load_record("100", data_dir=dest).signal.shape == (650000,)


def test_server_that_keeps_dying_fails_clearly_then_resumes(
    server: _Server, tmp_path: Path
) -> None:
    server.die = {"100.dat": 99}
    dest = tmp_path / "data"
    t0 = time.perf_counter()
    with pytest.raises(
        DataError,
        match=r"download of mitdb/100\.dat from http://127.*100\.dat "
        r"failed after 2 attempts.*connection",
    ) as err:
        _get(server, dest, retries=1)
    assert time.perf_counter() - t0 < 10
    assert "resumes" in str(err.value)
    folder = dest / "mitdb"
    assert not (folder / "100.dat").exists()  # nothing half-written under the final name
    assert (folder / ".100.dat.part").stat().st_size > 0  # kept for the next run
    server.die = {}
    _get(server, dest)
    assert server.fetched("100.dat")[-1] not in (None, "bytes=0-")  # resumed, not restarted
    _no_partials(folder)
    assert load_record("100", data_dir=dest).fs == 360.0


def test_server_ignoring_range_restarts_the_file(server: _Server, tmp_path: Path) -> None:
    server.die = {"101.dat": 1}
    server.ranges = False  # answers 200 with the whole file to a Range request
    dest = tmp_path / "data"
    _get(server, dest)
    assert server.fetched("101.dat")[1] is not None  # a Range request, answered with 200
    _no_partials(dest)
    assert load_record("101", data_dir=dest).fs == 360.0


def test_unreachable_server_is_the_offline_error_in_bounded_time(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    dest = tmp_path / "data"
    t0 = time.perf_counter()
    with pytest.raises(DataError) as err:
        download_physionet(
            "mitdb",
            dest,
            ["100"],
            mirror=f"http://127.0.0.1:{port}/files/",
            progress=False,
            timeout=FAST,
        )
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "cannot download mitdb" in msg and "unreachable" in msg
    assert "https://physionet.org/content/mitdb/1.0.0/" in msg and str(dest / "mitdb") in msg
    assert not list((dest / "mitdb").iterdir()) or not (dest / "mitdb" / "100.hea").exists()


def test_missing_checksum_is_refused_unless_no_verify(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"no SHA-256 sum is shipped for RECORDS.*--no-verify"):
        _get(server, dest, checksums={})
    assert server.log == []  # refused before any request
    result = _get(server, dest, checksums={}, verify=False)
    assert len(result.unverified) == 8 and "NOT verified" in result.summary()


def test_loaders_download_into_the_user_cache_when_no_folder_is_set(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HILNAS_DATA_DIR", raising=False)
    monkeypatch.setenv("HILNAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HILNAS_PHYSIONET_URL", f"{server.url}/files/")
    rec = load_record("100")
    assert rec.fs == 360.0
    assert (tmp_path / "cache" / "mitdb" / "100.dat").is_file()
    assert not (tmp_path / "cache" / "mitdb" / "101.dat").exists()  # only what was needed
    cfg = EcgDatasetConfig(records=RECORDS, max_windows_per_record=20, use_cache=False)
    x, y, classes, used = load_ecg_windows(cfg)
    assert used == list(RECORDS) and len(x) == len(y) > 0
    assert server.fetched("100.dat") == [None]  # downloaded once, read from the cache after
    assert {p for p, _ in server.log} <= {
        f"/files/mitdb/1.0.0/{f}"
        for f in ["RECORDS", "ANNOTATORS"]
        + [f"{r}.{e}" for r in RECORDS for e in ("hea", "dat", "atr")]
    }

    # a folder the user chose is never downloaded into: today's error, naming the command
    server.log.clear()
    monkeypatch.setenv("HILNAS_DATA_DIR", str(tmp_path / "mine"))
    with pytest.raises(DataError, match=r"does not exist.*hilnas data download --database mitdb"):
        load_ecg_windows(cfg)
    assert not (tmp_path / "mine").exists()
    (tmp_path / "mine" / "mitdb").mkdir(parents=True)
    with pytest.raises(DataError, match=r"record '100' is not in .*hilnas data download"):
        load_record("100")
    assert server.log == [] and not list((tmp_path / "mine" / "mitdb").iterdir())


def test_fsdd_from_a_zip_archive_and_from_a_folder(
    server: _Server, tmp_path: Path, data_dir: Path
) -> None:
    dest = tmp_path / "data"
    result = download_fsdd(
        dest, list(WAVS), mirror=f"{server.url}/fsdd.zip", progress=False, timeout=FAST
    )
    assert sorted(result.downloaded) == sorted(f"recordings/{w}.wav" for w in WAVS)
    folder = dest / "fsdd"
    sums = load_checksums("fsdd")
    for w in WAVS:
        assert (folder / "recordings" / f"{w}.wav").read_bytes()[:4] == b"RIFF"
        assert f"recordings/{w}.wav" in sums
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".hilnas")) == [
        "recordings"
    ]  # the archive is gone, nothing else left
    _no_partials(folder)

    # a local folder holding recordings/ works as a mirror (air-gapped copies)
    local = download("fsdd", dest, ["1_lucas_3"], mirror=str(data_dir / "fsdd"), progress=False)
    assert local.downloaded == ["recordings/1_lucas_3.wav"]

    # a member whose bytes differ from the published file: the checksum error, nothing left
    wav = (data_dir / "fsdd" / "recordings" / "0_george_0.wav").read_bytes()
    with zipfile.ZipFile(server.root / "bad.zip", "w") as zf:
        zf.writestr("fsdd/recordings/0_george_0.wav", wav[:-1] + bytes([wav[-1] ^ 1]))
    other = tmp_path / "other"
    with pytest.raises(
        DataError,
        match=r"checksum mismatch for fsdd/recordings/0_george_0\.wav"
        r".*bad\.zip",
    ):
        download_fsdd(
            other, ["0_george_0"], mirror=f"{server.url}/bad.zip", progress=False, timeout=FAST
        )
    assert not (other / "fsdd" / "recordings" / "0_george_0.wav").exists()
    assert not (other / "fsdd" / ".fsdd-archive.zip").exists()
    _no_partials(other)


def test_troika_is_never_downloaded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError) as err:
        download("troika", tmp_path)
    msg = str(err.value)
    assert TROIKA_URL in msg and "IEEE Signal Processing Cup 2015" in msg
    assert str(tmp_path / "troika") in msg
    rc = main(["data", "download", "--database", "troika", "--data-dir", str(tmp_path)])
    assert rc == 2 and TROIKA_URL in capsys.readouterr().err


def test_cli_download_on_demand(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "data"

    def argv(records: str) -> list[str]:
        return [
            "data",
            "download",
            "--database",
            "mitdb",
            "--records",
            records,
            "--data-dir",
            str(dest),
            "--mirror",
            f"{server.url}/files/",
            "--no-progress",
            "--timeout",
            "2",
        ]

    assert main(argv("100")) == 0
    out = capsys.readouterr().out
    assert f"mitdb: 5 downloaded, 0 already present in {dest / 'mitdb'}" in out
    assert main(argv("100")) == 0
    assert "0 downloaded, 5 already present" in capsys.readouterr().out
    assert main(argv("999")) == 2
    assert "999 not in mitdb" in capsys.readouterr().err
