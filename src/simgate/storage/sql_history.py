"""SQL history pruning (both dialects, `?` placeholders): domain/history.py in SQL.

Every batch is `DELETE ... WHERE id IN (SELECT ... LIMIT n)` walking an index from the oldest
rows (migration 0020): messages by stored_at, operations by finished_at, notices by sent_at,
and each table's children by their parent's key, so a batch costs its rows, not the table.
On PostgreSQL the candidates are locked with SKIP LOCKED: two instances pruning at once take
different rows and never wait on (or deadlock with) each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simgate.domain import history
from simgate.domain.history import PrunePlan
from simgate.domain.types import Timestamp
from simgate.storage.history_ports import Pruned
from simgate.storage.sql_base import Connection

GOES = (
    "m.stored_at < ?"
    " AND (m.operation_id IS NULL OR EXISTS (SELECT 1 FROM operations mo"
    " WHERE mo.id = m.operation_id AND mo.finished_at IS NOT NULL))"
    " AND 'pending' NOT IN (SELECT mp.state FROM deliveries mp WHERE mp.message_id = m.id)"
)
"""history.message_goes over a message `m` (one parameter: plan.before). "No push of it pending"
is written as NOT IN so that SQLite, which has no statistics here, looks the pushes up by
message and not by state (all the pending ones, when a marketplace has no push URL)."""

NOTICE_GOES = (
    "n.sent_at < ? AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.key = n.key AND a.resolved_at IS NULL)"
)
"""history.notice_goes over a notice `n`."""


def still_counted(plan: PrunePlan) -> tuple[str, list[Any]]:
    """history.still_counted over an operation `o`: ` AND NOT (...)`, empty when no rule counts."""
    if not plan.counted:
        return "", []
    parts: list[str] = []
    params: list[Any] = []
    for marketplace, status in sorted(plan.counted):
        parts.append("(o.marketplace = ? AND COALESCE(o.finish_status, -1) = ?)")
        params += [marketplace, status]
    sql = (
        f" AND NOT (o.kind = 'activation' AND o.service IS NOT NULL AND ({' OR '.join(parts)})"
        " AND NOT EXISTS (SELECT 1 FROM number_exclusions x WHERE x.number_id = o.number_id"
        " AND x.service = o.service AND x.marketplace IN ('*', o.marketplace)))"
    )
    return sql, params


class SqlHistory:
    def __init__(self, db: Connection, *, skip_locked: bool = False) -> None:
        self.db = db
        self.skip_locked = skip_locked

    def _lock(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED" if self.skip_locked else ""

    def _delete(self, table: str, select: str, params: list[Any], limit: int, alias: str) -> int:
        sql = f"DELETE FROM {table} WHERE id IN ({select} LIMIT ?{self._lock(alias)})"
        return self.db.execute(sql, [*params, limit]).rowcount

    def prune(self, table: str, plan: PrunePlan, limit: int) -> int:
        before = plan.before
        if table == "delivery_attempts":
            # The pushes first (from the oldest messages), then their attempts: joined in one
            # FROM, SQLite chose to read every attempt and look each one's message up.
            select = (
                "SELECT a.id FROM delivery_attempts a WHERE a.delivery_id IN (SELECT d.id"
                f" FROM messages m JOIN deliveries d ON d.message_id = m.id WHERE {GOES}"
                " AND EXISTS (SELECT 1 FROM delivery_attempts x WHERE x.delivery_id = d.id) LIMIT ?)"
            )
            return self._delete(table, select, [before, limit], limit, "a")
        if table == "deliveries":
            select = (
                f"SELECT d.id FROM messages m JOIN deliveries d ON d.message_id = m.id WHERE {GOES}"
                " AND NOT EXISTS (SELECT 1 FROM delivery_attempts a WHERE a.delivery_id = d.id)"
            )
            return self._delete(table, select, [before], limit, "d")
        if table == "messages":
            select = (
                f"SELECT m.id FROM messages m WHERE {GOES}"
                " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id)"
            )
            return self._delete(table, select, [before], limit, "m")
        if table == "operations":
            counted, params = still_counted(plan)
            select = (
                "SELECT o.id FROM operations o WHERE o.finished_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.operation_id = o.id)"
                f" AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.operation_id = o.id){counted}"
            )
            return self._delete(table, select, [before, *params], limit, "o")
        if table == "alert_notices":
            select = f"SELECT n.id FROM alert_notices n WHERE {NOTICE_GOES}"
            return self._delete(table, select, [before], limit, "n")
        raise ValueError(f"not a history table: {table}")

    def _count(self, sql: str, params: list[Any]) -> int:
        row = self.db.execute(sql, params).fetchone()
        return 0 if row is None else int(row[0])

    def prunable(self, plan: PrunePlan) -> dict[str, int]:
        before = plan.before
        counted, params = still_counted(plan)
        joined = "FROM messages m JOIN deliveries d ON d.message_id = m.id"
        return {
            "delivery_attempts": self._count(
                f"SELECT COUNT(*) {joined} JOIN delivery_attempts a ON a.delivery_id = d.id WHERE {GOES}",
                [before],
            ),
            "deliveries": self._count(f"SELECT COUNT(*) {joined} WHERE {GOES}", [before]),
            "messages": self._count(f"SELECT COUNT(*) FROM messages m WHERE {GOES}", [before]),
            # What a prune reaches once it has removed the messages and pushes that go.
            "operations": self._count(
                "SELECT COUNT(*) FROM operations o WHERE o.finished_at < ?"
                f" AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.operation_id = o.id AND NOT ({GOES}))"
                f" AND NOT EXISTS (SELECT 1 {joined} WHERE d.operation_id = o.id AND NOT ({GOES})){counted}",
                [before, before, before, *params],
            ),
            "alert_notices": self._count(
                f"SELECT COUNT(*) FROM alert_notices n WHERE {NOTICE_GOES}", [before]
            ),
        }

    def note(self, removed: Mapping[str, int], now: Timestamp) -> None:
        for table, rows in removed.items():
            if rows > 0:
                self.db.execute(
                    "INSERT INTO history_prunes (table_name, last_at, last_rows, total_rows)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (table_name) DO UPDATE SET"
                    " last_at = excluded.last_at, last_rows = excluded.last_rows,"
                    " total_rows = history_prunes.total_rows + excluded.total_rows",
                    (table, now, rows, rows),
                )

    def pruned(self) -> list[Pruned]:
        rows = self.db.execute(
            "SELECT table_name, last_at, last_rows, total_rows FROM history_prunes"
        ).fetchall()
        found = {row[0]: Pruned(row[0], float(row[1]), int(row[2]), int(row[3])) for row in rows}
        return [found[t] for t in history.TABLES if t in found]
