"""Parser for the text that LiteRT's (TensorFlow Lite's) `benchmark_model` binary prints.

The format changed over the years and between vendor builds, and this parser accepts the
variants recorded from real phones and boards (tests run it on every recorded file):

- 2019: `Initialized session in 1.892ms`, then
  `Average inference timings in us: Warmup: 86184.3, Init: 1892, no stats: 115062`;
  space-separated op-profile tables; no memory lines.
- 2.4 and later: `Inference timings in us: Init: ..., First inference: ..., Warmup (avg):
  ..., Inference (avg): ...` and `Peak memory footprint (MB): init=... overall=...`;
  tab-separated tables under "Profiling Info for Benchmark Initialization:" and
  "Operator-wise Profiling Info for Regular Benchmark Runs:".
- 2.15 vendor builds: every line prefixed with `INFO: `, a `Tensorflow Version : X` line,
  and `Memory footprint delta from the start of the tool (MB): init=... overall=...`.
- Partial logs (only the summary, or only the tables) and failed runs
  (`Benchmarking failed.`).

The tool reports count, first, curr, min, max, avg and std of the timed runs; it does not
report percentiles, and nothing here makes them up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LOG_PREFIX = re.compile(r"^(INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG): ?")
_KV = re.compile(r"(\w+)=([-+0-9.eE]+)")
_PARAM = re.compile(r"^([A-Za-z#][^\t\[\]]*?): \[(.*)\]\s*$")
_OP_ROW = re.compile(
    r"^\s*(\S+)\s+([-0-9.]+)\s+([-0-9.]+)\s+([-0-9.]+)\s+([-0-9.]+)%\s+([-0-9.]+)%"
    r"\s+([-0-9.]+)\s+(\d+)\s+(.*?)\s*$"
)
_TYPE_ROW = re.compile(
    r"^\s*(\S+)\s+(\d+)\s+([-0-9.]+)\s+([-0-9.]+)%\s+([-0-9.]+)%\s+([-0-9.]+)\s+(\d+)\s*$"
)
_TABLE_TITLE = re.compile(r"^=+\s*(.+?)\s*=+$")
_NODE_INDEX = re.compile(r":(\d+)$")
_MEMORY = re.compile(
    r"^(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\):"
    r" init=([0-9.]+) overall=([0-9.]+)"
)


@dataclass(frozen=True)
class RunStats:
    """One `count=... first=... curr=... min=... max=... avg=... std=...` line (microseconds).

    Fields the line does not carry are None (a one-run warm-up prints only count and curr).
    """

    count: int
    first_us: float | None = None
    curr_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    avg_us: float | None = None
    std_us: float | None = None

    @classmethod
    def from_line(cls, line: str) -> RunStats | None:
        values = {k: float(v) for k, v in _KV.findall(line)}
        if "count" not in values:
            return None
        count = int(values["count"])
        avg = values.get("avg")
        if avg is None and count == 1 and "curr" in values:
            avg = values["curr"]  # one run: its time is the average (the tool omits avg)
        return cls(
            count=count,
            first_us=values.get("first"),
            curr_us=values.get("curr"),
            min_us=values.get("min"),
            max_us=values.get("max"),
            avg_us=avg,
            std_us=values.get("std"),
        )


@dataclass(frozen=True)
class OpRow:
    """One row of a profiling table ("Run Order" or "Top by Computation Time")."""

    node_type: str
    start_ms: float
    first_ms: float
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int
    name: str
    #: node index in the execution plan (the `:N` suffix newer builds print), else None
    node_index: int | None


@dataclass(frozen=True)
class TypeRow:
    """One row of "Summary by node type"."""

    node_type: str
    count: int
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int


@dataclass
class ProfileSection:
    """The tables of one profiling block: initialization or the regular runs."""

    kind: str  # "init" or "runs"
    tables: dict[str, list[OpRow]] = field(default_factory=dict)
    by_type: list[TypeRow] = field(default_factory=list)
    timings: RunStats | None = None
    nodes_executed: int | None = None

    @property
    def run_order(self) -> list[OpRow]:
        return self.tables.get("Run Order", [])


@dataclass
class BenchmarkOutput:
    """Everything `parse_benchmark_output` found; absent figures are None."""

    version: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    warmup: RunStats | None = None
    inference: RunStats | None = None
    #: "peak" (Peak memory footprint) or "delta" (Memory footprint delta from the start)
    memory_kind: str | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    model_size_mb: float | None = None
    profile_init: ProfileSection | None = None
    profile_runs: ProfileSection | None = None
    errors: list[str] = field(default_factory=list)
    failed: bool = False
    unparsed: list[str] = field(default_factory=list)

    @property
    def first_inference_source(self) -> str:
        if self.first_inference_us is None:
            return "absent"
        return "summary line" if self._first_from_summary else "first warm-up run"

    _first_from_summary: bool = False


def _strip(line: str) -> str:
    return _LOG_PREFIX.sub("", line.rstrip("\r\n"))


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Parse one run's combined stdout and stderr."""
    out = BenchmarkOutput()
    phase = 0  # how many "Running benchmark for at least" markers were seen
    loose_counts: list[RunStats] = []  # count= lines with no marker before them
    section: ProfileSection | None = None
    table: str | None = None
    for raw in text.splitlines():
        line = _strip(raw)
        s = line.strip()
        if not s:
            continue
        # ---------------------------------------------------------------- profiling blocks
        if s.startswith("Profiling Info for Benchmark Initialization"):
            section = out.profile_init = ProfileSection("init")
            table = None
            continue
        if s.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"):
            section = out.profile_runs = ProfileSection("runs")
            table = None
            continue
        title = _TABLE_TITLE.match(s)
        if title:
            if section is None:  # 2019 builds print the tables with no block heading
                section = out.profile_runs = ProfileSection("runs")
            table = title.group(1)
            if table != "Summary by node type":
                section.tables.setdefault(table, [])
            continue
        if section is not None:
            if s.startswith("[node type]") or s.startswith("[Node type]"):
                continue
            if s.startswith("Number of nodes executed:"):
                section.nodes_executed = int(s.split(":", 1)[1])
                continue
            if s.startswith("Timings (microseconds):"):
                section.timings = RunStats.from_line(s)
                continue
            if s.startswith("Memory (bytes):"):
                continue
            if re.match(r"^\d+ nodes observed$", s):
                section, table = None, None
                continue
            if table == "Summary by node type":
                m = _TYPE_ROW.match(line)
                if m:
                    section.by_type.append(
                        TypeRow(
                            m.group(1),
                            int(m.group(2)),
                            float(m.group(3)),
                            float(m.group(4)),
                            float(m.group(5)),
                            float(m.group(6)),
                            int(m.group(7)),
                        )
                    )
                    continue
            elif table is not None:
                m = _OP_ROW.match(line)
                if m:
                    name = m.group(9)
                    idx = _NODE_INDEX.search(name)
                    section.tables[table].append(
                        OpRow(
                            node_type=m.group(1),
                            start_ms=float(m.group(2)),
                            first_ms=float(m.group(3)),
                            avg_ms=float(m.group(4)),
                            percent=float(m.group(5)),
                            cdf_percent=float(m.group(6)),
                            mem_kb=float(m.group(7)),
                            times_called=int(m.group(8)),
                            name=name,
                            node_index=int(idx.group(1)) if idx else None,
                        )
                    )
                    continue
        # ---------------------------------------------------------------- run summary
        if "Tensorflow Version" in s:
            out.version = s.split(":", 1)[1].strip()
            continue
        if s.startswith("Initialized session in"):
            m = re.search(r"([0-9.]+)\s*ms", s)
            if m:
                out.init_us = float(m.group(1)) * 1000.0
            continue
        if s.startswith("Running benchmark for at least"):
            phase += 1
            continue
        if s.startswith("count="):
            stats = RunStats.from_line(s)
            if stats is None:
                continue
            if phase == 1:
                out.warmup = stats
            elif phase >= 2:
                out.inference = stats
            else:
                loose_counts.append(stats)
            continue
        if "timings in us:" in s:
            _parse_timings_summary(out, s.split("timings in us:", 1)[1])
            continue
        m = _MEMORY.match(s)
        if m:
            out.memory_kind = "peak" if m.group(1).startswith("Peak") else "delta"
            out.memory_init_mb = float(m.group(2))
            out.memory_overall_mb = float(m.group(3))
            continue
        if s.startswith("The input model file size (MB):"):
            out.model_size_mb = float(s.split(":", 1)[1])
            continue
        if raw.startswith("ERROR") or s.startswith("Failed to") or "failed" in s.lower():
            # Error lines alone do not fail a run: a delegate that fails to apply can be
            # followed by a successful CPU run. "Benchmarking failed." (or no timings) does.
            out.errors.append(s)
            if s.startswith("Benchmarking failed"):
                out.failed = True
            continue
        pm = _PARAM.match(s)
        if pm:
            out.params[pm.group(1).strip()] = pm.group(2)
            continue
        out.unparsed.append(s)

    # A partial log may carry the timed runs' line without the "Running benchmark" marker;
    # it is the one whose average the summary line repeats.
    if out.inference is None and loose_counts:
        if out.inference_avg_us is not None:
            for stats in loose_counts:
                if stats.avg_us is not None and _close(stats.avg_us, out.inference_avg_us):
                    out.inference = stats
        elif len(loose_counts) == 1:
            out.inference = loose_counts[0]
    if out.first_inference_us is None and out.warmup is not None:
        # The first warm-up run is the first inference; 2019 builds print it only there.
        out.first_inference_us = out.warmup.first_us
    if out.inference is None and out.inference_avg_us is None and out.profile_runs is None:
        out.failed = True
        if not out.errors:
            out.errors.append("no timing lines found in the benchmark_model output")
    return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1.0) + 0.5


def _parse_timings_summary(out: BenchmarkOutput, rest: str) -> None:
    for item in rest.split(","):
        key, _, value = item.partition(":")
        key = key.strip().lower()
        try:
            v = float(value.strip())
        except ValueError:
            continue
        if key == "init":
            out.init_us = v
        elif key == "first inference":
            out.first_inference_us = v
            out._first_from_summary = True
        elif key in ("warmup (avg)", "warmup"):
            out.warmup_avg_us = v
        elif key in ("inference (avg)", "no stats"):
            out.inference_avg_us = v
