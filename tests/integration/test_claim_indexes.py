"""Which indexes a claim and a release rewrite (migration 0024).

GET_NUMBER sets a number's open operation, its last issue and its lane target, and copies its
freeness onto its exclusion rows; FINISH undoes the first and the last. Every index whose key
or condition names one of those columns gets a B-tree page written per claim and per release,
at a different place for each number, which a group commit cannot share (about a fifth of
the SQLite writer's CPU per pair with the four that 0024 dropped; docs/benchmarks.md). Only
the indexes the claim itself reads may do that: a new one needs a serving query that reads
it, and a line here saying which.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg

CLAIMED_COLUMNS = re.compile(
    r"\b(open_operation_id|last_issued_at|lane_target|lane_leaving_at|free|counted_lane)\b"
)
READ_BY_SERVING = {
    "ix_numbers_lane_free_country": "find_free, any operator: the lane's oldest free number of a country",
    "ix_numbers_lane_free_operator": "find_free, one operator: the same within an operator",
    "ix_numbers_leaving": "lanes: the leaving SIMs whose move is due (only leaving SIMs are in it)",
}


def _rewritten(definitions: dict[str, str]) -> set[str]:
    return {name for name, sql in definitions.items() if CLAIMED_COLUMNS.search(sql.split(" ON ", 1)[1])}


def test_sqlite_claim_rewrites_only_indexes_a_serving_query_reads(migrated_sqlite: Path) -> None:
    with sqlite3.connect(migrated_sqlite) as db:
        rows = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('numbers', 'number_exclusions')"
        ).fetchall()
    assert _rewritten(dict(rows)) == set(READ_BY_SERVING)


def test_postgres_claim_rewrites_only_indexes_a_serving_query_reads(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as db:
        rows = db.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename IN ('numbers', 'number_exclusions')"
        ).fetchall()
    assert rows, "no indexes found: is the database migrated?"
    assert _rewritten(dict(rows)) == set(READ_BY_SERVING)
