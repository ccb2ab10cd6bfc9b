"""SQL history pruning (both dialects, `?` placeholders): domain/history.py in SQL.

Every batch walks an index (migration 0020) from where the prune's previous batch of its
walk stopped (history.WALK, Position): messages by stored_at, operations by finished_at,
notices by sent_at, each table's children by their parent's key. It first finds, through the
index alone, the SCAN x limit-th old row after that point, and looks no further: the old rows
that stay (an SMS whose push is pending, a counted status 4) cost each prune one reading, not
every batch one, and a batch costs its window at most, never the table. On PostgreSQL:
- the candidates are locked with SKIP LOCKED: two instances pruning at once take different
  rows and never wait on (or deadlock with) each other;
- each "is there still a ..." subquery ends in OFFSET 0, which keeps it a lookup per
  candidate through its index. Without it PostgreSQL turned them into hash joins over the
  whole outbox, on statistics that a prune had just made wrong (measured at 200,000 SMS:
  10 s for one batch of messages, past the 5 s statement timeout, so pruning never advanced);
- the batch is collected into an array first (`id = ANY(ARRAY(...))`), or the DELETE was
  planned as a scan of its table against the batch.
SQLite runs each of those subqueries as an index lookup per row already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simgate.domain import history
from simgate.domain.history import Batch, Position, PrunePlan
from simgate.domain.read_model import BLOCKED
from simgate.domain.types import Timestamp
from simgate.storage.history_ports import Pruned
from simgate.storage.sql_base import Connection
from simgate.storage.sql_reports import EARNED_SQL, SOLD_SQL

WALKS = {
    "messages": ("stored_at", "m"),
    "operations": ("finished_at", "o"),
    "alert_notices": ("sent_at", "n"),
}
"""Each walk's table: its ordering key (an index, migrations 0003 and 0020) and its alias."""


def goes(fence: str = "") -> str:
    """history.message_goes over a message `m` (one parameter: plan.before). "No push of it
    pending" is a NOT IN so that SQLite, which has no statistics here, looks the pushes up by
    message and not by state (all the pending ones, when a marketplace has no push URL)."""
    return (
        "m.stored_at < ?"
        " AND (m.operation_id IS NULL OR EXISTS (SELECT 1 FROM operations mo"
        f" WHERE mo.id = m.operation_id AND mo.finished_at IS NOT NULL{fence}))"
        f" AND 'pending' NOT IN (SELECT mp.state FROM deliveries mp WHERE mp.message_id = m.id{fence})"
    )


def operation_keeps_none(fence: str = "") -> str:
    """Over a finished operation `o` (one parameter: plan.before): none of its messages stays.
    Of a finished operation, a message stays when it is newer than the horizon or a push of it
    is pending (`goes`); a push carries its message's operation (intake enqueues it so, and
    neither ever moves), so that is two index probes per operation (migration 0022): not
    `goes` over each of its messages, which a rent with thousands of SMS paid per batch."""
    return (
        f"NOT EXISTS (SELECT 1 FROM messages ms WHERE ms.operation_id = o.id AND ms.stored_at >= ?{fence})"
        " AND NOT EXISTS (SELECT 1 FROM deliveries ds WHERE ds.operation_id = o.id"
        f" AND ds.state = 'pending'{fence})"
    )


def notice_goes(fence: str = "") -> str:
    """history.notice_goes over a notice `n`."""
    return (
        "n.sent_at < ? AND NOT EXISTS (SELECT 1 FROM alerts a"
        f" WHERE a.key = n.key AND a.resolved_at IS NULL{fence})"
    )


def notice_goes_after(fence: str = "") -> str:
    """notice_goes over a notice `n` of a window, which is older than the horizon already."""
    return f"NOT EXISTS (SELECT 1 FROM alerts a WHERE a.key = n.key AND a.resolved_at IS NULL{fence})"


def still_counted(plan: PrunePlan, fence: str = "") -> tuple[str, list[Any]]:
    """history.still_counted over an operation `o`: ` AND NOT (...)`, empty when no rule counts.
    An owner's block is no such exclusion: it can be lifted (admin.unblock_service), and the
    budget then counts these operations again."""
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
        f" AND x.service = o.service AND x.marketplace IN ('*', o.marketplace) AND x.reason <> ?{fence}))"
    )
    return sql, [*params, BLOCKED]


COUNT_WINDOW = 20_000
"""Old rows of a walk that one statement of `prunable` counts at most: four batches' windows
(history.SCAN x 1,000), a few hundred milliseconds on PostgreSQL, far inside its timeout."""


class SqlHistory:
    def __init__(self, db: Connection, *, skip_locked: bool = False) -> None:
        self.db = db
        self.postgres = skip_locked
        """PostgreSQL, the one store that skips locked rows."""
        self.fence = " OFFSET 0" if skip_locked else ""

    def _in(self, column: str, select: str) -> str:
        return f"{column} = ANY(ARRAY({select}))" if self.postgres else f"{column} IN ({select})"

    def _batch(self, select: str, order: str, alias: str | None = None) -> str:
        """`select`, oldest first, `limit` rows (its last parameter); PostgreSQL locks `alias`'s."""
        lock = f" FOR UPDATE OF {alias} SKIP LOCKED" if self.postgres and alias else ""
        return f"{select} ORDER BY {order} LIMIT ?{lock}"

    def _delete(self, table: str, batch: str, params: list[Any]) -> int:
        return self.db.execute(f"DELETE FROM {table} WHERE {self._in('id', batch)}", params).rowcount

    def _some(self, table: str, where: str) -> str:
        """A row of `table` (aliased as its first letter and x) matches `where`."""
        return f"EXISTS (SELECT 1 FROM {table} {table[0]}x WHERE {where}{self.fence})"

    def _none(self, table: str, where: str) -> str:
        return f"NOT {self._some(table, where)}"

    def _end(self, walk: str, before: Timestamp, after: Position, scan: int) -> Position | None:
        """The `scan`-th old row after `after` (None: there are fewer): how far a batch looks,
        found through the index on the walk's key alone, however many of those rows stay."""
        key, t = WALKS[walk]
        row = self.db.execute(
            f"SELECT {t}.{key}, {t}.id FROM {walk} {t} WHERE {t}.{key} < ? AND {t}.{key} >= ?"
            f" AND ({t}.{key} > ? OR {t}.id > ?) ORDER BY {t}.{key}, {t}.id LIMIT 1 OFFSET ?",
            [before, after.at, after.at, after.id, scan - 1],
        ).fetchone()
        return None if row is None else Position(float(row[0]), int(row[1]))

    @staticmethod
    def _window(walk: str) -> str:
        """Over `walk`'s alias: a row after one position and up to another (parameters: the
        first's at, at and id, the second's). Bounded by these alone: given the horizon too,
        SQLite ranged its index up to the horizon and read every row that stays."""
        key, t = WALKS[walk]
        after = f"{t}.{key} >= ? AND ({t}.{key} > ? OR {t}.id > ?)"
        return f"{after} AND {t}.{key} <= ? AND ({t}.{key} < ? OR {t}.id <= ?)"

    def _going(self, walk: str, goes: str, columns: str = "") -> str:
        """The oldest rows of the window that go (`goes` over the walk's alias), `limit` of
        them (parameters: the window's, `goes`'s, limit): read in the index's order, so a
        window of rows that go costs their limit, not the window."""
        key, t = WALKS[walk]
        select = f"SELECT {columns or f'{t}.id'} FROM {walk} {t} WHERE {self._window(walk)} AND {goes}"
        return self._batch(select, f"{t}.{key}, {t}.id")

    def _front(self) -> str:
        """The oldest `limit` messages of the window that go (parameters: the window's, before,
        limit). The batches of their attempts, pushes and themselves look at these alone."""
        return self._going("messages", goes(self.fence))

    def _operation_goes(self, counted: str) -> str:
        """Over an operation `o` (parameters: before, the counted ones'): it goes once its
        messages have; one with a message that stays (an SMS still pushed) is not among
        them, so it never holds the others back."""
        return f"o.finished_at IS NOT NULL AND {operation_keeps_none(self.fence)}{counted}"

    def _ids(self, select: str, params: list[Any]) -> list[Any]:
        return [row[0] for row in self.db.execute(select, params).fetchall()]

    def prune(self, table: str, plan: PrunePlan, limit: int, after: Position = history.START) -> Batch:
        if table not in history.WALK:
            raise ValueError(f"not a history table: {table}")
        before, walk = plan.before, history.WALK[table]
        end = self._end(walk, before, after, history.SCAN * limit)
        # Up to the end, or to the horizon: (before, 0) is past every old row, before none.
        upto = end or Position(before, 0)
        window = [after.at, after.at, after.id, upto.at, upto.at, upto.id]
        counted, params = still_counted(plan, self.fence)
        rule = {
            "messages": (goes(self.fence), [before]),
            "operations": (self._operation_goes(counted), [before, *params]),
            "alert_notices": (notice_goes_after(self.fence), []),
        }
        going_sql, going_params = rule[walk]
        key, t = WALKS[walk]
        oldest = self._going(walk, going_sql, f"{t}.{key}, {t}.id")

        def first() -> list[Position]:
            """The oldest row of the window that goes and is still there: read in the
            index's order, it costs the rows that stay ahead of it, never the window's rest."""
            row = self.db.execute(oldest, [*window, *going_params, 1]).fetchone()
            return [] if row is None else [Position(float(row[0]), int(row[1]))]

        going = first()
        if not going:
            # Old rows that all stay: the walk goes past them without another statement.
            return Batch(0, history.reached(going, end))
        front = self._front()
        if table == "delivery_attempts":
            # Their pushes first, then the attempts: joined in one FROM, SQLite chose to read
            # every attempt and look each one's message up.
            pushes = f"SELECT d.id FROM deliveries d WHERE {self._in('d.message_id', front)}"
            select = f"SELECT a.id FROM delivery_attempts a WHERE {self._in('a.delivery_id', pushes)}"
            removed = self._delete(
                table, self._batch(select, "a.delivery_id, a.id", "a"), [*window, before, limit, limit]
            )
        elif table == "deliveries":
            bare = self._none("delivery_attempts", "dx.delivery_id = d.id")
            select = f"SELECT d.id FROM deliveries d WHERE {self._in('d.message_id', front)} AND {bare}"
            removed = self._delete(table, self._batch(select, "d.id", "d"), [*window, before, limit, limit])
        elif table == "messages":
            unpushed = self._none("deliveries", "dx.message_id = m.id")
            select = f"SELECT m.id FROM messages m WHERE {self._in('m.id', front)} AND {unpushed}"
            removed = self._delete(table, self._batch(select, "m.id", "m"), [*window, before, limit, limit])
        elif table == "operations":
            select = (
                f"SELECT o.id FROM operations o WHERE {self._in('o.id', self._going(walk, going_sql))}"
                f" AND {self._none('messages', 'mx.operation_id = o.id')}"
                f" AND {self._none('deliveries', 'dx.operation_id = o.id')}"
            )
            ids = self._ids(self._batch(select, "o.id", "o"), [*window, *going_params, limit, limit])
            removed = self._delete_operations(ids)
        else:
            select = (
                f"SELECT n.id FROM alert_notices n WHERE {self._in('n.id', self._going(walk, going_sql))}"
            )
            removed = self._delete(table, self._batch(select, "n.id", "n"), [*window, limit, limit])
        # A message's attempts and pushes going leave it there: its own batch moves the walk.
        held = going if table in ("delivery_attempts", "deliveries") or not removed else first()
        return Batch(removed, history.reached(held, end))

    def _delete_operations(self, ids: list[Any]) -> int:
        """Delete these operations, adding their sales to `pruned_sales` in the same
        transaction (/metrics' all-time counters add those in and never go down). In lists
        of at most 500: SQLite before 3.32 takes no more than 999 parameters."""
        removed = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            listed = ", ".join("?" * len(chunk))
            self.db.execute(
                "INSERT INTO pruned_sales (marketplace, currency, sold, earnings)"
                f" SELECT o.marketplace, o.currency, COUNT(*), SUM({EARNED_SQL}) FROM operations o"
                f" WHERE o.id IN ({listed}) AND {SOLD_SQL} GROUP BY o.marketplace, o.currency"
                " ON CONFLICT (marketplace, currency) DO UPDATE SET sold = pruned_sales.sold + excluded.sold,"
                " earnings = pruned_sales.earnings + excluded.earnings",
                chunk,
            )
            removed += self.db.execute(f"DELETE FROM operations WHERE id IN ({listed})", chunk).rowcount
        return removed

    def _count(self, sql: str, params: list[Any]) -> int:
        row = self.db.execute(sql, params).fetchone()
        return 0 if row is None else int(row[0])

    def prunable(self, plan: PrunePlan) -> dict[str, int]:
        """Counted window by window along each walk (COUNT_WINDOW old rows at most per
        statement, found as a batch finds its end), never in one statement over the whole
        history: on PostgreSQL one COUNT over a few million old SMS outlasts the 5 s
        statement timeout, and `simgate prune --dry-run` would only ever fail on the very
        databases it is meant for. Each window's statement costs what a batch's does; they
        all run in the caller's one snapshot (Store.run_read), so the total is exact."""
        before = plan.before
        counted, params = still_counted(plan, self.fence)
        joined = f"FROM messages m JOIN deliveries d ON d.message_id = m.id WHERE {self._window('messages')}"
        going = goes(self.fence)
        return {
            "delivery_attempts": self._windows(
                "messages",
                before,
                "SELECT COUNT(*) FROM messages m JOIN deliveries d ON d.message_id = m.id"
                " JOIN delivery_attempts a ON a.delivery_id = d.id"
                f" WHERE {self._window('messages')} AND {going}",
                [before],
            ),
            "deliveries": self._windows(
                "messages", before, f"SELECT COUNT(*) {joined} AND {going}", [before]
            ),
            "messages": self._windows(
                "messages",
                before,
                f"SELECT COUNT(*) FROM messages m WHERE {self._window('messages')} AND {going}",
                [before],
            ),
            # What a prune reaches once it has removed the messages and pushes that go.
            "operations": self._windows(
                "operations",
                before,
                f"SELECT COUNT(*) FROM operations o WHERE {self._window('operations')}"
                f" AND o.finished_at IS NOT NULL AND {operation_keeps_none(self.fence)}{counted}",
                [before, *params],
            ),
            "alert_notices": self._windows(
                "alert_notices",
                before,
                f"SELECT COUNT(*) FROM alert_notices n WHERE {self._window('alert_notices')}"
                f" AND {notice_goes_after(self.fence)}",
                [],
            ),
        }

    def _windows(self, walk: str, before: Timestamp, count: str, params: list[Any]) -> int:
        """`count` (over `walk`'s window, then `params`) summed over the walk's old rows, a
        window of COUNT_WINDOW of them at a time."""
        total, after = 0, history.START
        while True:
            end = self._end(walk, before, after, COUNT_WINDOW)
            upto = end or Position(before, 0)
            total += self._count(count, [after.at, after.at, after.id, upto.at, upto.at, upto.id, *params])
            if end is None:
                return total
            after = end

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
