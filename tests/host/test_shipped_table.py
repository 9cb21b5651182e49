"""The shipped tabular benchmark (benchmarks/tabular/bionet_nva.json) is whole and honest."""

from __future__ import annotations

import json
from pathlib import Path

from host.search.pipeline import Tabular
from host.spaces import get_space

TABLE = Path("benchmarks/tabular/bionet_nva.json")


def test_the_table_covers_the_bounded_space_once() -> None:
    table = Tabular(TABLE)
    space = get_space("bionet")
    networks = {space.canonical(a).key() for a in space.architectures()}
    assert set(table.rows) == networks, "one row per distinct network of the bounded space"
    assert table.meta["complete"] is True


def test_every_row_has_its_quality_and_labelled_latency() -> None:
    doc = json.loads(TABLE.read_text())
    for row in doc["rows"]:
        assert row["status"] == "ok", row["arch"]
        for side in ("val", "test"):
            assert 0.0 <= row[side]["f1_macro"] <= 1.0 and row[side]["n"] > 0
        # A latency figure always says where it was measured.
        assert row["latency_p50_us"] > 0 and row["latency_source"].startswith("measured on ")


def test_the_table_names_its_budget_and_data() -> None:
    meta = Tabular(TABLE).meta
    assert meta["data"]["split"] and meta["data"]["window"] > 0
    assert meta["budget"]["epochs"] > 0
    # Validation and test come from disjoint windows of the same split: the table is usable
    # only if they agree on which networks are better (see docs/decisions.md).
    doc = json.loads(TABLE.read_text())
    val = [r["val"]["f1_macro"] for r in doc["rows"]]
    test = [r["test"]["f1_macro"] for r in doc["rows"]]
    n = len(val)
    mv, mt = sum(val) / n, sum(test) / n
    cov = sum((a - mv) * (b - mt) for a, b in zip(val, test, strict=True))
    var = (sum((a - mv) ** 2 for a in val) * sum((b - mt) ** 2 for b in test)) ** 0.5
    assert cov / var > 0.5
