"""The statements one GET_NUMBER and its FINISH send to SQLite, and what they leave behind.

Each statement is a trip through the driver on the writer thread (bind, step, the GIL given up
and taken back): the hot path sends as few as its writes need. FINISH closes the operation and
counts the request in one UPDATE (as PostgreSQL's simgate_finish does, migration 0017); a
repeated FINISH only counts. The rows are checked too, so that fewer statements never means
fewer changes.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from simgate.domain.model import FinishStatus
from simgate.domain.types import ServiceName
from simgate.services.operations import FinishOutcome, finish_operation, issue_number
from simgate.storage.sql_unit import SqlUnitOfWork
from tests.factories import make_order, make_spec


class Recording:
    """A connection that remembers the first word of each statement a unit sends."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.sent: list[str] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.sent.append(sql.split(None, 1)[0].upper())
        return self.conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def _operation_row(conn: sqlite3.Connection, operation_id: int) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT finish_requests, finish_status, finished_at IS NOT NULL FROM operations WHERE id = ?",
        (operation_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_finish_closes_and_counts_in_one_update(sqlite_url: str) -> None:
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    now = time.time()
    conn.execute("UPDATE marketplaces SET enabled = 1 WHERE name = 'onlinesim'")
    SqlUnitOfWork(conn).numbers.upsert(make_spec(marketplaces=frozenset({"onlinesim"})), now)
    operation = issue_number(SqlUnitOfWork(conn), "onlinesim", make_order(service=ServiceName("vkcom")), now)
    assert operation is not None

    first = Recording(conn)
    closed = finish_operation(
        SqlUnitOfWork(first), "onlinesim", operation.id, FinishStatus.CANCELLED, None, now
    )
    assert closed is FinishOutcome.FINISHED
    # Read the operation; close it and count the request; free the number (and its streak);
    # copy the freed number onto its exclusion rows.
    assert first.sent == ["SELECT", "UPDATE", "UPDATE", "UPDATE"]
    assert _operation_row(conn, operation.id) == (1, FinishStatus.CANCELLED, 1)

    again = Recording(conn)
    repeated = finish_operation(SqlUnitOfWork(again), "onlinesim", operation.id, FinishStatus.SOLD, None, now)
    assert repeated is FinishOutcome.REPEATED
    assert again.sent == ["SELECT", "UPDATE"]  # counted, nothing else changed
    assert _operation_row(conn, operation.id) == (2, FinishStatus.CANCELLED, 1)
