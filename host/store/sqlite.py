"""The run store: runs, candidates, trainings, exported models and measurements in SQLite.

One store per runs directory (`runs/store.sqlite`), shared by every run in it, so an
architecture trained under the same data and training configuration is never trained
again, and a model measured on the same device and runtime is never measured again, even
across runs. WAL mode and one short transaction per completed piece of work: a run killed
at any moment (SIGKILL included) loses at most the work in flight.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host.errors import StoreError
from host.store.files import describe_write_failure

SCHEMA_VERSION = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    config_json TEXT NOT NULL,
    status      TEXT NOT NULL,          -- running | interrupted | done | failed
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    trainings   INTEGER,                -- set when the run ends
    front_size  INTEGER,
    hypervolume REAL
);
CREATE TABLE IF NOT EXISTS trainings (
    train_key   TEXT PRIMARY KEY,       -- hash(architecture, data config, training config)
    arch_key    TEXT NOT NULL,
    data_hash   TEXT NOT NULL,
    train_hash  TEXT NOT NULL,
    metrics_json TEXT NOT NULL,         -- val/test metrics, costs, seconds
    seconds     REAL NOT NULL,
    source      TEXT NOT NULL,          -- "trained" or "tabular:<file>"
    created     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    sha256      TEXT PRIMARY KEY,
    train_key   TEXT NOT NULL REFERENCES trainings(train_key),
    kind        TEXT NOT NULL,          -- int8 | keras (the trained inference graph) |
                                        -- compressed-POINT-mcu|linux (joint compression)
    path        TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    export_seconds REAL NOT NULL,
    created     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    sha256      TEXT NOT NULL,
    device      TEXT NOT NULL,
    runtime     TEXT NOT NULL,          -- "name version"
    settings_hash TEXT NOT NULL,
    result_json TEXT NOT NULL,
    seconds     REAL NOT NULL,
    created     REAL NOT NULL,
    PRIMARY KEY (sha256, device, runtime, settings_hash)
);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id      TEXT NOT NULL REFERENCES runs(run_id),
    strategy    TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    arch_key    TEXT,                   -- NULL for an invalid chromosome
    genome_json TEXT NOT NULL,
    objectives_json TEXT NOT NULL,      -- {label: value}
    violation   REAL NOT NULL,          -- 0 = feasible
    status      TEXT NOT NULL,          -- pipeline.Status: ok | infeasible | invalid | failed
                                        -- | incomplete
    detail      TEXT NOT NULL DEFAULT '',
    train_key   TEXT,
    sha256      TEXT,
    created     REAL NOT NULL,
    stage       TEXT NOT NULL DEFAULT '',     -- pipeline.Stage the candidate reached
    figures_json TEXT NOT NULL DEFAULT '{}',  -- {"values": {label: v}, "sources": {label: s}}
    runs_on_json TEXT NOT NULL DEFAULT '{}',  -- {device: "ok" or why it cannot run it}
    PRIMARY KEY (run_id, strategy, generation, idx)
);
CREATE TABLE IF NOT EXISTS generations (
    run_id      TEXT NOT NULL,
    strategy    TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    hypervolume REAL NOT NULL,
    trainings   INTEGER NOT NULL,       -- distinct trainings used so far by this strategy
    front_size  INTEGER NOT NULL,
    created     REAL NOT NULL,
    PRIMARY KEY (run_id, strategy, generation)
);
CREATE TABLE IF NOT EXISTS missing (
    run_id      TEXT NOT NULL,
    arch_key    TEXT NOT NULL,
    device      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (  -- the online latency predictor's audit
    run_id      TEXT NOT NULL,
    device      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    arch_key    TEXT NOT NULL,
    stage       TEXT NOT NULL,          -- probe (untrained model) | measure (trained model)
    predicted_us REAL NOT NULL,
    low_us      REAL NOT NULL,
    high_us     REAL NOT NULL,
    networks    INTEGER NOT NULL,       -- networks the predictor had learned from
    source      TEXT NOT NULL,
    measured_us REAL,                   -- NULL: the measurement was skipped on the prediction
    created     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS front_validations (  -- the front's test windows on each device
    run_id      TEXT NOT NULL,
    arch_key    TEXT NOT NULL,
    device      TEXT NOT NULL,
    result_json TEXT NOT NULL,          -- device and host quality, agreement; or why not
    created     REAL NOT NULL,
    PRIMARY KEY (run_id, arch_key, device)
);
CREATE TABLE IF NOT EXISTS compressions (  -- [compress]: one trained network, one grid point
    train_key   TEXT NOT NULL,
    settings_hash TEXT NOT NULL,        -- the [compress] settings but the grid
    sparsity    REAL NOT NULL,
    clusters    INTEGER NOT NULL,
    result_json TEXT NOT NULL,          -- host.compress CompressionResult.to_json, file paths
    seconds     REAL NOT NULL,
    created     REAL NOT NULL,
    PRIMARY KEY (train_key, settings_hash, sparsity, clusters)
);
CREATE TABLE IF NOT EXISTS timings (
    run_id      TEXT NOT NULL,
    phase       TEXT NOT NULL,          -- screen | train | export | measure:DEVICE | ...
    key         TEXT NOT NULL,
    start       REAL NOT NULL,
    seconds     REAL NOT NULL
);
"""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    name: str
    status: str
    created: float
    updated: float
    config: dict[str, Any]
    message: str
    trainings: int | None = None
    front_size: int | None = None
    hypervolume: float | None = None


class RunStore:
    """Thread-safe access to the store; each write is its own committed transaction."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the run's threads, guarded by a lock: SQLite serialises
        # writers anyway, and this keeps "database is locked" out of the search loop.
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, timeout=30, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(SCHEMA)
                self._migrate()
            except sqlite3.OperationalError as exc:
                raise self._write_error(exc) from exc

    # Columns added since version 1, for stores written by an earlier hilnas.
    _ADDED_COLUMNS = (
        ("runs", "trainings", "INTEGER"),
        ("runs", "front_size", "INTEGER"),
        ("runs", "hypervolume", "REAL"),
        ("evaluations", "stage", "TEXT NOT NULL DEFAULT ''"),
        ("evaluations", "figures_json", "TEXT NOT NULL DEFAULT '{}'"),
        ("evaluations", "runs_on_json", "TEXT NOT NULL DEFAULT '{}'"),
    )

    def _migrate(self) -> None:
        for table_name, column, decl in self._ADDED_COLUMNS:
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table_name})")}
            if column not in have:
                try:
                    self._conn.execute(f"ALTER TABLE {table_name} ADD COLUMN {column} {decl}")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise
        # Written only when it changes: opening a store to read it (`hilnas runs`, a resume)
        # must work on a full disk.
        have = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if have is None or have[0] != str(SCHEMA_VERSION):
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise self._write_error(exc) from exc

    def _write_error(self, exc: sqlite3.OperationalError) -> Exception:
        """A full disk (or an unwritable folder) as a StoreError that says what to do.

        SQLite rolls the failed transaction back, so what was committed before is intact;
        the run can resume once there is room again.
        """
        code = getattr(exc, "sqlite_errorcode", None)
        full = code == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
        readonly = code == sqlite3.SQLITE_READONLY or "readonly" in str(exc)
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite may have rolled back itself
        if not (full or readonly or code == sqlite3.SQLITE_IOERR):
            return exc  # a programming error (bad SQL): keep SQLite's own report
        why = describe_write_failure(self.path, exc, full=full)
        return StoreError(
            f"cannot write the run store {self.path}: {why}; everything committed before is "
            "kept, and the run resumes (`hilnas search --resume RUN`) once this is fixed"
        )

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, args))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---------------------------------------------------------------- runs
    def create_run(self, run_id: str, name: str, config: dict[str, Any]) -> None:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "INSERT INTO runs (run_id, name, config_json, status, created, updated, message)"
                " VALUES (?, ?, ?, 'running', ?, ?, '')",
                (run_id, name, json.dumps(config), now, now),
            )

    def set_run_status(
        self,
        run_id: str,
        status: str,
        message: str = "",
        *,
        trainings: int | None = None,
        front_size: int | None = None,
        hypervolume: float | None = None,
    ) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE runs SET status = ?, updated = ?, message = ?,"
                " trainings = COALESCE(?, trainings), front_size = COALESCE(?, front_size),"
                " hypervolume = COALESCE(?, hypervolume) WHERE run_id = ?",
                (status, time.time(), message, trainings, front_size, hypervolume, run_id),
            )

    def run(self, run_id: str) -> RunRow | None:
        rows = self._query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return self._run_row(rows[0]) if rows else None

    def runs(self) -> list[RunRow]:
        return [self._run_row(r) for r in self._query("SELECT * FROM runs ORDER BY created")]

    @staticmethod
    def _run_row(r: sqlite3.Row) -> RunRow:
        return RunRow(
            r["run_id"],
            r["name"],
            r["status"],
            r["created"],
            r["updated"],
            json.loads(r["config_json"]),
            r["message"],
            r["trainings"],
            r["front_size"],
            r["hypervolume"],
        )

    # ---------------------------------------------------------------- trainings and models
    def training(self, train_key: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM trainings WHERE train_key = ?", (train_key,))
        if not rows:
            return None
        r = rows[0]
        return {
            "train_key": r["train_key"],
            "arch_key": r["arch_key"],
            "metrics": json.loads(r["metrics_json"]),
            "seconds": r["seconds"],
            "source": r["source"],
        }

    def add_training(
        self,
        train_key: str,
        arch_key: str,
        data_hash: str,
        train_hash: str,
        metrics: dict[str, Any],
        seconds: float,
        source: str,
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO trainings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    train_key,
                    arch_key,
                    data_hash,
                    train_hash,
                    json.dumps(metrics),
                    seconds,
                    source,
                    time.time(),
                ),
            )

    def model_for(self, train_key: str, kind: str = "int8") -> dict[str, Any] | None:
        rows = self._query(
            "SELECT * FROM models WHERE train_key = ? AND kind = ?", (train_key, kind)
        )
        return dict(rows[0]) if rows else None

    def add_model(
        self, sha256: str, train_key: str, kind: str, path: str, size: int, export_seconds: float
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sha256, train_key, kind, path, size, export_seconds, time.time()),
            )

    def count_trainings(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM trainings")[0][0])

    # ---------------------------------------------------------------- measurements
    def measurement(
        self, sha256: str, device: str, runtime: str, settings_hash: str
    ) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT result_json FROM measurements WHERE sha256 = ? AND device = ? AND runtime = ?"
            " AND settings_hash = ?",
            (sha256, device, runtime, settings_hash),
        )
        return json.loads(rows[0][0]) if rows else None

    def add_measurement(
        self,
        sha256: str,
        device: str,
        runtime: str,
        settings_hash: str,
        result: dict[str, Any],
        seconds: float,
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sha256, device, runtime, settings_hash, json.dumps(result), seconds, time.time()),
            )

    def count_measurements(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM measurements")[0][0])

    # ---------------------------------------------------------------- evaluations
    def add_evaluation(
        self,
        run_id: str,
        strategy: str,
        generation: int,
        idx: int,
        genome: list[int],
        row: dict[str, Any],
    ) -> None:
        """Store one evaluated genome.

        `row` holds arch_key, objectives, violation, status, stage, detail, train_key,
        sha256, figures and runs_on (absent keys: empty).
        """
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO evaluations (run_id, strategy, generation, idx, arch_key,"
                " genome_json, objectives_json, violation, status, detail, train_key, sha256,"
                " created, stage, figures_json, runs_on_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    strategy,
                    generation,
                    idx,
                    row.get("arch_key"),
                    json.dumps(genome),
                    json.dumps(row.get("objectives", {})),
                    row.get("violation", 0.0),
                    row["status"],
                    row.get("detail", ""),
                    row.get("train_key"),
                    row.get("sha256"),
                    time.time(),
                    row.get("stage", ""),
                    json.dumps(row.get("figures", {})),
                    json.dumps(row.get("runs_on", {})),
                ),
            )

    def evaluations(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT * FROM evaluations WHERE run_id = ? ORDER BY strategy, generation, idx",
            (run_id,),
        )
        out = []
        for r in rows:
            d = dict(r)
            d["objectives"] = json.loads(d.pop("objectives_json"))
            d["genome"] = json.loads(d.pop("genome_json"))
            d["figures"] = json.loads(d.pop("figures_json") or "{}")
            d["runs_on"] = json.loads(d.pop("runs_on_json") or "{}")
            out.append(d)
        return out

    def add_generation(
        self,
        run_id: str,
        strategy: str,
        generation: int,
        hypervolume: float,
        trainings: int,
        front_size: int,
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, strategy, generation, hypervolume, trainings, front_size, time.time()),
            )

    def generations(self, run_id: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self._query(
                "SELECT * FROM generations WHERE run_id = ? ORDER BY strategy, generation",
                (run_id,),
            )
        ]

    def add_missing(self, run_id: str, arch_key: str, device: str, reason: str) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO missing VALUES (?, ?, ?, ?, ?)",
                (run_id, arch_key, device, reason, time.time()),
            )

    def missing(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM missing WHERE run_id = ?", (run_id,))]

    def add_prediction(self, run_id: str, device: str, sha256: str, arch_key: str, stage: str,
                       prediction: dict[str, Any], measured_us: float | None) -> None:
        """A prediction made before a measurement, and what was measured (None: skipped)."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, device, sha256, arch_key, stage, prediction["p50_us"],
                 prediction["low_us"], prediction["high_us"], prediction["networks"],
                 prediction["source"], measured_us, time.time()),
            )

    def predictions(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM predictions WHERE run_id = ? ORDER BY created", (run_id,))
        return [dict(r) for r in rows]

    def add_front_validation(self, run_id: str, arch_key: str, device: str,
                             result: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO front_validations VALUES (?, ?, ?, ?, ?)",
                      (run_id, arch_key, device, json.dumps(result, default=str), time.time()))

    def front_validations(self, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        """{arch: {device: result}} of the run's front validation."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for r in self._query("SELECT * FROM front_validations WHERE run_id = ?", (run_id,)):
            out.setdefault(r["arch_key"], {})[r["device"]] = json.loads(r["result_json"])
        return out

    def device_first_summary(self, run_id: str) -> dict[str, Any]:
        """Device-first figures of a run (`hilnas runs --json`, the report).

        What measuring before training saved, how well the latency predictors did, and how
        the devices' own outputs agreed with the host's int8 reference.
        """
        evs = self.evaluations(run_id)
        proposed = {e["arch_key"] for e in evs if e["arch_key"]}
        rejected = {e["arch_key"] for e in evs if e["stage"] == "probe"
                    and e["status"] == "infeasible"}
        preds = self.predictions(run_id)
        skipped = {p["arch_key"] for p in preds if p["measured_us"] is None}
        audit: dict[str, dict[str, Any]] = {}
        for p in preds:
            if p["measured_us"] is None or not p["measured_us"]:
                continue
            err = abs(p["predicted_us"] - p["measured_us"]) / p["measured_us"]
            a = audit.setdefault(p["device"], {"n": 0, "within_10pct": 0, "abs_errors": []})
            a["n"] += 1
            a["within_10pct"] += err <= 0.10
            a["abs_errors"].append(err)
        predictor = {
            d: {"audited": a["n"], "share_within_10pct": a["within_10pct"] / a["n"],
                "mean_abs_pct_error": 100 * sum(a["abs_errors"]) / a["n"]}
            for d, a in audit.items()
        }
        agreement: dict[str, Any] = {}
        for per_device in self.front_validations(run_id).values():
            for device, result in per_device.items():
                if "identical_share" not in result:
                    agreement.setdefault(device, {"models": 0, "unsupported": result.get(
                        "error", "")})
                    continue
                g = agreement.setdefault(device, {"models": 0, "windows": 0, "identical": 0.0,
                                                  "max_abs_diff": 0})  # int8 steps
                g["models"] += 1
                g["windows"] += result["n_windows"]
                g["identical"] += result["identical_share"] * result["n_windows"]
                g["max_abs_diff"] = max(g["max_abs_diff"], result["max_abs_diff_raw"])
        for g in agreement.values():
            if g.get("windows"):
                g["identical_share"] = g.pop("identical") / g["windows"]
        return {
            "proposed": len(proposed),
            "rejected_before_training": len(rejected - skipped),
            "skipped_on_prediction": len(skipped),
            "predictor": predictor,
            "device_host_agreement": agreement,
        }

    def add_compression(self, train_key: str, settings_hash: str, sparsity: float,
                        clusters: int, result: dict[str, Any], seconds: float) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO compressions VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (train_key, settings_hash, float(sparsity), int(clusters),
                       json.dumps(result, default=str), seconds, time.time()))

    def compression(self, train_key: str, settings_hash: str, sparsity: float,
                    clusters: int) -> dict[str, Any] | None:
        """A trained network's stored compression at one grid point (result, seconds, created)."""
        rows = self._query(
            "SELECT * FROM compressions WHERE train_key = ? AND settings_hash = ? "
            "AND sparsity = ? AND clusters = ?",
            (train_key, settings_hash, float(sparsity), int(clusters)),
        )
        if not rows:
            return None
        r = rows[0]
        return {"result": json.loads(r["result_json"]), "seconds": r["seconds"],
                "created": r["created"]}

    def add_timing(self, run_id: str, phase: str, key: str, start: float, seconds: float) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO timings VALUES (?, ?, ?, ?, ?)", (run_id, phase, key, start, seconds)
            )

    def timings(self, run_id: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self._query("SELECT * FROM timings WHERE run_id = ? ORDER BY start", (run_id,))
        ]

    def model(self, sha256: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM models WHERE sha256 = ?", (sha256,))
        return dict(rows[0]) if rows else None

