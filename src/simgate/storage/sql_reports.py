"""The operator console's read-only queries, in SQL both SQLite and PostgreSQL accept.

Same conventions as storage/sql.py: `?` placeholders, booleans as bare predicates. Nothing
here writes. Aggregates are computed for one page of rows at a time (numbers, operations),
so a listing costs the same on a farm with a year of history as on a new one; the streaks
behind "SIMs that lose money" read the finished operations of a recent window only, and only
of the SIMs whose all-time streaks, kept on their rows (migration 0025), may reach a threshold
and whose runs began before the window (migration 0026).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from simgate.domain.alerts import OpenAlert
from simgate.domain.messages import Attempt, Verdict
from simgate.domain.model import Number, OperationKind
from simgate.domain.read_model import (
    ACTIVATION_WARN_STREAK,
    NUMBER_STATES,
    RENT_WARN_STREAK,
    DayStats,
    DeliveryQuery,
    DeliveryReport,
    Earnings,
    Exclusion,
    GroupStats,
    MarketplaceStats,
    MessageQuery,
    MessageReport,
    NumberQuery,
    NumberReport,
    OperationQuery,
    OperationReport,
    OutboxSummary,
    Page,
    Paged,
    Stats,
    StatusCount,
    sort_groups,
    status_name,
)
from simgate.domain.types import Kopecks, NumberId, OperationId, ServiceName, Timestamp
from simgate.storage.sql import (
    NUMBER_COLUMNS,
    OPERATION_COLUMNS,
    Connection,
    _number,
    _operation,
)
from simgate.storage.sql_alerts import SqlAlerts
from simgate.storage.sql_base import FREE, Row
from simgate.storage.sql_filters import (
    STATE_SQL,
    Where,
    delivery_where,
    message_where,
    number_where,
    operation_where,
)
from simgate.storage.sql_outbox import DELIVERY_COLUMNS, MESSAGE_COLUMNS, _delivery, _message

SOLD_SQL = "o.finished_at IS NOT NULL AND o.finish_status = 3"
EARNED_SQL = f"CASE WHEN {SOLD_SQL} THEN COALESCE(o.final_kopecks, o.offered_kopecks, 0) ELSE 0 END"
# The console's kopeck figures are roubles: a sale paid in another currency is not added to
# them (domain/read_model.earned_rub); marketplace_stats keeps each currency apart instead.
EARNED_RUB_SQL = f"CASE WHEN o.currency = 'RUB' THEN {EARNED_SQL} ELSE 0 END"


CANDIDATE_SQL = "n.rent_no_sms_streak >= ? OR n.activation_no_sms_streak >= ?"
"""A SIM `n` that may be losing money: its all-time streaks (migration 0025) reach loss_reasons'
thresholds (RENT_WARN_STREAK, ACTIVATION_WARN_STREAK, in that order)."""
SETTLED_SQL = (
    "n.rent_no_sms_streak >= ? AND n.rent_no_sms_since >= ?"
    " OR n.activation_no_sms_streak >= ? AND n.activation_no_sms_since >= ?"
)
"""A SIM `n` losing money since `?`: a streak reaching its threshold is of a run that began in
the window (migration 0026), so wholly in it (read_model.losing_from_kept). Parameters: the
rent threshold, the window's start, the activation threshold, the window's start."""
CUT_SQL = (
    "c.rent_no_sms_streak >= ? AND (c.rent_no_sms_since IS NULL OR c.rent_no_sms_since < ?)"
    " OR c.activation_no_sms_streak >= ?"
    " AND (c.activation_no_sms_since IS NULL OR c.activation_no_sms_since < ?)"
)
"""A SIM `c` whose run reaching a threshold began before the window (or has no start kept):
only the window's own count says whether it loses. Parameters as SETTLED_SQL's."""

OPERATION_COLUMNS_O = ", ".join("o." + c.strip() for c in OPERATION_COLUMNS.split(","))


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def _int(value: object) -> int:
    # PostgreSQL's SUM over bigint is numeric (a Decimal); COUNT is bigint. Both become int.
    return 0 if value is None else int(value)  # type: ignore[call-overload]


DELIVERY_REPORT_COLUMNS = f"{DELIVERY_COLUMNS}, {MESSAGE_COLUMNS}, o.kind, o.service, d.claimed_by"
DELIVERY_SOURCE = (
    "FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN operations o ON o.id = d.operation_id"
)
"""Every delivery has its message and its operation (foreign keys): the joins keep the count."""


class SqlReports:
    def __init__(self, db: Connection) -> None:
        self.db = db

    def _page(
        self,
        columns: str,
        source: str,
        where: Where,
        order: str,
        query: Paged,
    ) -> tuple[list[Row], int]:
        """One page of a listing and the count of all its rows: how every listing pages."""
        total = self.db.execute(f"SELECT COUNT(*) {source} WHERE {where.sql}", where.params).fetchone()
        rows = self.db.execute(
            f"SELECT {columns} {source} WHERE {where.sql} ORDER BY {order} LIMIT ? OFFSET ?",
            (*where.params, query.limit, query.offset),
        ).fetchall()
        return rows, _int(total[0] if total else 0)

    # -- numbers ---------------------------------------------------------------------------

    @staticmethod
    def _trailing(
        number_ids: Sequence[NumberId] | None, since: Timestamp | None, *, cut: bool = False
    ) -> tuple[str, list[Any]]:
        """A SELECT of (number_id, kind), one row per finished operation after the last of
        its SIM's and kind that got an SMS: a streak is their count (read_model.streaks).
        `cut`: of the SIMs whose kept run reaching a threshold began before `since` only
        (CUT_SQL; `since` must be given).

        Counted in SQL: the window's operations never come to Python one by one. Read row by
        row, a busy farm's week of operations (a million at ~2 GET_NUMBER + FINISH a second)
        was read, sorted and counted every 30 s by the alert check, and twice per SIM-table
        page: seconds of a reader thread, and a burst of objects that grew the server's
        memory by ~1 MiB a second under load (docs/benchmarks.md, issue 14).
        """
        clauses, params = ["o.finished_at IS NOT NULL"], list[Any]()
        if since is not None:
            clauses.append("o.opened_at >= ?")
            params.append(since)
        if number_ids is not None:
            clauses.append(f"o.number_id IN ({_marks(number_ids)})")
            params += number_ids
        if cut:
            clauses.append(f"o.number_id IN (SELECT c.id FROM numbers c WHERE {CUT_SQL})")
            params += [RENT_WARN_STREAK, since, ACTIVATION_WARN_STREAK, since]
        sql = (
            "SELECT s.number_id, s.kind FROM (SELECT o.number_id, o.kind, o.id,"
            " MAX(CASE WHEN EXISTS (SELECT 1 FROM messages m WHERE m.operation_id = o.id)"
            " THEN o.id END) OVER (PARTITION BY o.number_id, o.kind) AS last_hit"
            f" FROM operations o WHERE {' AND '.join(clauses)}) s"
            " WHERE s.last_hit IS NULL OR s.id > s.last_hit"
        )
        return sql, params

    def _streaks(
        self, number_ids: Sequence[NumberId], since: Timestamp | None
    ) -> dict[NumberId, tuple[int, int]]:
        """The (rent, activation) no-SMS streaks of these SIMs (a page: through the number index)."""
        if not number_ids:
            return {}
        trailing, params = self._trailing(number_ids, since)
        found: dict[NumberId, tuple[int, int]] = {}
        for number_id, kind, streak in self.db.execute(
            f"SELECT t.number_id, t.kind, COUNT(*) FROM ({trailing}) t GROUP BY t.number_id, t.kind",
            params,
        ).fetchall():
            rent, activation = found.get(NumberId(number_id), (0, 0))
            if OperationKind(kind) is OperationKind.RENT:
                rent = _int(streak)
            else:
                activation = _int(streak)
            found[NumberId(number_id)] = (rent, activation)
        return found

    def numbers(self, query: NumberQuery) -> Page[NumberReport]:
        where = number_where(query)
        if query.losing:
            # read_model.losing_from_kept, in SQL: however many SIMs lose, their ids never come
            # to Python. A SIM's operations follow one another, so those of a window are the
            # latest of its history: a streak kept on its row (0025) below its threshold rules
            # it out, one whose run began in the window (0026) is the window's. Only the SIMs
            # whose run began before the window have the window counted, through the number
            # index, not a week of the farm's operations (4 s of CPU at a million a week, every
            # 30 s, even when every SIM loses: docs/benchmarks.md).
            since = query.streak_since
            if since is None:
                where.add(f"({CANDIDATE_SQL})", RENT_WARN_STREAK, ACTIVATION_WARN_STREAK)
            else:
                trailing, params = self._trailing(None, since, cut=True)
                where.add(
                    f"({SETTLED_SQL} OR n.id IN (SELECT t.number_id FROM ({trailing}) t GROUP BY"
                    " t.number_id, t.kind HAVING COUNT(*) >= CASE WHEN t.kind = ? THEN ? ELSE ? END))",
                    RENT_WARN_STREAK, since, ACTIVATION_WARN_STREAK, since,
                    *params, OperationKind.RENT.value, RENT_WARN_STREAK, ACTIVATION_WARN_STREAK,
                )  # fmt: skip
        rows, total = self._page(
            NUMBER_COLUMNS, "FROM numbers n", where, "n.country, n.operator, n.phone", query
        )
        numbers = [_number(row) for row in rows]
        return Page(self._number_reports(numbers, query.streak_since), total)

    def number(self, number_id: NumberId, streak_since: Timestamp | None = None) -> NumberReport | None:
        row = self.db.execute(
            f"SELECT {NUMBER_COLUMNS} FROM numbers n WHERE n.id = ?", (number_id,)
        ).fetchone()
        return None if row is None else self._number_reports([_number(row)], streak_since)[0]

    def _number_reports(self, page: Sequence[Number], streak_since: Timestamp | None) -> list[NumberReport]:
        if not page:
            return []
        ids = [n.id for n in page]
        marks = _marks(ids)
        exclusions: dict[NumberId, list[Exclusion]] = {}
        for number_id, service, reason, marketplace in self.db.execute(
            "SELECT number_id, service, reason, marketplace FROM number_exclusions"
            f" WHERE number_id IN ({marks}) ORDER BY service, marketplace",
            ids,
        ).fetchall():
            exclusions.setdefault(NumberId(number_id), []).append(
                Exclusion(ServiceName(service), reason, marketplace)
            )
        ops: dict[NumberId, tuple[int, int, int, int]] = {}
        for number_id, opened, finished, sold, money in self.db.execute(
            "SELECT o.number_id, COUNT(*),"
            " SUM(CASE WHEN o.finished_at IS NOT NULL THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN {SOLD_SQL} THEN 1 ELSE 0 END), SUM({EARNED_RUB_SQL})"
            f" FROM operations o WHERE o.number_id IN ({marks}) GROUP BY o.number_id",
            ids,
        ).fetchall():
            ops[NumberId(number_id)] = (_int(opened), _int(finished), _int(sold), _int(money))
        sms: dict[NumberId, tuple[int, float]] = {}
        for number_id, count, last in self.db.execute(
            "SELECT m.number_id, COUNT(*), MAX(m.stored_at) FROM messages m"
            f" WHERE m.number_id IN ({marks}) GROUP BY m.number_id",
            ids,
        ).fetchall():
            sms[NumberId(number_id)] = (_int(count), float(last))
        # Through the partial index on open operations: at most one per SIM.
        open_in = {
            NumberId(number_id): str(marketplace)
            for number_id, marketplace in self.db.execute(
                "SELECT o.number_id, o.marketplace FROM operations o"
                f" WHERE o.finished_at IS NULL AND o.number_id IN ({marks})",
                ids,
            ).fetchall()
        }
        # The page's SIMs only, through the (number_id, ...) index: never the whole window.
        streak = self._streaks(ids, streak_since)
        reports = []
        for n in page:
            opened, finished, sold, money = ops.get(n.id, (0, 0, 0, 0))
            count, last = sms.get(n.id, (0, None))
            rent, activation = streak.get(n.id, (0, 0))
            reports.append(
                NumberReport(
                    number=n,
                    exclusions=tuple(exclusions.get(n.id, ())),
                    operations=opened,
                    finished=finished,
                    sold=sold,
                    earnings=Kopecks(money),
                    sms=count,
                    last_sms_at=last,
                    rent_no_sms_streak=rent,
                    activation_no_sms_streak=activation,
                    open_marketplace=open_in.get(n.id),
                )
            )
        return reports

    # -- operations ------------------------------------------------------------------------

    def operations(self, query: OperationQuery) -> Page[OperationReport]:
        where = operation_where(query)
        rows, total = self._page(
            f"{OPERATION_COLUMNS_O}, o.finish_requests",
            "FROM operations o",
            where,
            "o.id DESC",
            query,
        )
        return Page(self._operation_reports(rows), total)

    def operation(self, operation_id: OperationId) -> OperationReport | None:
        row = self.db.execute(
            f"SELECT {OPERATION_COLUMNS_O}, o.finish_requests FROM operations o WHERE o.id = ?",
            (operation_id,),
        ).fetchone()
        return None if row is None else self._operation_reports([row])[0]

    def _operation_reports(self, rows: Sequence[Sequence[object]]) -> list[OperationReport]:
        if not rows:
            return []
        ids = [row[0] for row in rows]
        sms = {
            OperationId(r[0]): (_int(r[1]), float(r[2]))
            for r in self.db.execute(
                "SELECT m.operation_id, COUNT(*), MAX(m.stored_at) FROM messages m"
                f" WHERE m.operation_id IN ({_marks(ids)}) GROUP BY m.operation_id",
                ids,
            ).fetchall()
        }
        reports = []
        for row in rows:
            operation = _operation(row[:14])
            count, last = sms.get(operation.id, (0, None))
            reports.append(OperationReport(operation, count, last, _int(row[14])))
        return reports

    # -- SMS and deliveries ----------------------------------------------------------------

    def _attempts(self, delivery_ids: Sequence[int]) -> dict[int, list[Attempt]]:
        found: dict[int, list[Attempt]] = {}
        if not delivery_ids:
            return found
        for r in self.db.execute(
            "SELECT delivery_id, started_at, latency_ms, http_status, response, error, outcome"
            f" FROM delivery_attempts WHERE delivery_id IN ({_marks(delivery_ids)}) ORDER BY id",
            list(delivery_ids),
        ).fetchall():
            found.setdefault(r[0], []).append(Attempt(r[1], r[2], r[3], r[4], r[5], Verdict(r[6])))
        return found

    def messages(self, query: MessageQuery) -> Page[MessageReport]:
        where = message_where(query)
        joined = "FROM messages m LEFT JOIN deliveries d ON d.message_id = m.id"
        rows, total = self._page(f"{MESSAGE_COLUMNS}, {DELIVERY_COLUMNS}", joined, where, "m.id DESC", query)
        pairs = [(_message(r[:10]), None if r[10] is None else _delivery(r[10:])) for r in rows]
        attempts = self._attempts([d.id for _, d in pairs if d is not None])
        items = [
            MessageReport(m, d, tuple(attempts.get(d.id, ())) if d is not None else ()) for m, d in pairs
        ]
        return Page(items, total)

    def deliveries(self, query: DeliveryQuery) -> Page[DeliveryReport]:
        where = delivery_where(query)
        rows, total = self._page(DELIVERY_REPORT_COLUMNS, DELIVERY_SOURCE, where, "d.id DESC", query)
        return Page(self._delivery_reports(rows), total)

    def delivery(self, delivery_id: int) -> DeliveryReport | None:
        rows = self.db.execute(
            f"SELECT {DELIVERY_REPORT_COLUMNS} {DELIVERY_SOURCE} WHERE d.id = ?", (delivery_id,)
        ).fetchall()
        found = self._delivery_reports(rows)
        return found[0] if found else None

    def _delivery_reports(self, rows: Sequence[Row]) -> list[DeliveryReport]:
        attempts = self._attempts([r[0] for r in rows])
        return [
            DeliveryReport(
                delivery=_delivery(r[:10]),
                message=_message(r[10:20]),
                kind=OperationKind(r[20]),
                service=None if r[21] is None else ServiceName(r[21]),
                claimed_by=r[22],
                attempts=tuple(attempts.get(r[0], ())),
            )
            for r in rows
        ]

    # -- overview, stats, metrics ----------------------------------------------------------

    def number_states(self) -> dict[str, int]:
        cases = ", ".join(f"SUM(CASE WHEN {STATE_SQL[s]} THEN 1 ELSE 0 END)" for s in NUMBER_STATES)
        row = self.db.execute(f"SELECT {cases} FROM numbers n").fetchone()
        return {state: _int(row[i] if row else 0) for i, state in enumerate(NUMBER_STATES)}

    def operation_statuses(self, since: Timestamp | None = None) -> list[StatusCount]:
        tally: dict[tuple[OperationKind, str], int] = {}

        def add(kind: str, name: str, count: object) -> None:
            key = (OperationKind(kind), name)
            tally[key] = tally.get(key, 0) + _int(count)

        if since is not None:
            # A day's operations: few rows through the opened_at index, tallied here.
            for kind, finished_at, status in self.db.execute(
                "SELECT o.kind, o.finished_at, o.finish_status FROM operations o WHERE o.opened_at >= ?",
                (since,),
            ).fetchall():
                add(kind, status_name(finished_at, status), 1)
        else:
            # All time (/metrics at every scrape): open ones through the partial index on
            # open operations, finished ones read from ix_operations_status alone, in order.
            for kind, count in self.db.execute(
                "SELECT o.kind, COUNT(*) FROM operations o WHERE o.finished_at IS NULL GROUP BY o.kind"
            ).fetchall():
                add(kind, "open", count)
            for kind, status, count in self.db.execute(
                "SELECT o.kind, o.finish_status, COUNT(*) FROM operations o"
                " WHERE o.finished_at IS NOT NULL GROUP BY o.kind, o.finish_status"
            ).fetchall():
                add(kind, status_name(0.0, status), count)
        return sorted(
            (StatusCount(k, s, c) for (k, s), c in tally.items()), key=lambda c: (c.kind.value, c.status)
        )

    def outbox(self) -> OutboxSummary:
        counts = dict.fromkeys(("pending", "rejected", "given_up", "delivered"), 0)
        for state, count in self.db.execute(
            "SELECT d.state, COUNT(*) FROM deliveries d GROUP BY d.state"
        ).fetchall():
            counts[state] = _int(count)
        oldest = self.db.execute(
            "SELECT MIN(d.created_at) FROM deliveries d WHERE d.state = 'pending'"
        ).fetchone()
        oldest_at = None if oldest is None or oldest[0] is None else float(oldest[0])
        return OutboxSummary(
            pending=counts["pending"], oldest_pending_at=oldest_at,
            rejected=counts["rejected"], given_up=counts["given_up"], delivered=counts["delivered"],
        )  # fmt: skip

    def earnings(self, since: Timestamp | None = None) -> Earnings:
        where, params = ("AND o.finished_at >= ?", [since]) if since is not None else ("", [])
        row = self.db.execute(
            f"SELECT SUM(CASE WHEN {SOLD_SQL} THEN 1 ELSE 0 END), COUNT(*), SUM({EARNED_RUB_SQL})"
            f" FROM operations o WHERE o.finished_at IS NOT NULL {where}",
            params,
        ).fetchone()
        if row is None:
            return Earnings(0, 0, Kopecks(0))
        return Earnings(_int(row[0]), _int(row[1]), Kopecks(_int(row[2])))

    def stats(self, day_starts: Sequence[Timestamp], top: int = 20, *, groups: bool = True) -> Stats:
        if not day_starts:
            return Stats(days=[])
        since, until = day_starts[0], day_starts[-1] + 86400
        days = [DayStats(start) for start in day_starts]

        def bucket(column: str) -> tuple[str, list[object]]:
            # Portable day arithmetic: a CASE over the day boundaries, latest first.
            whens = " ".join(f"WHEN o.{column} >= ? THEN {i}" for i in reversed(range(len(days))))
            return f"CASE {whens} END", list(reversed(day_starts))

        opened_case, opened_params = bucket("opened_at")
        for index, count in self.db.execute(
            f"SELECT {opened_case}, COUNT(*) FROM operations o"
            " WHERE o.opened_at >= ? AND o.opened_at < ? GROUP BY 1",
            [*opened_params, since, until],
        ).fetchall():
            if index is not None and 0 <= int(index) < len(days):
                days[int(index)] = replace(days[int(index)], opened=_int(count))
        finished_case, finished_params = bucket("finished_at")
        for index, finished, sold, money in self.db.execute(
            f"SELECT {finished_case}, COUNT(*), SUM(CASE WHEN {SOLD_SQL} THEN 1 ELSE 0 END),"
            f" SUM({EARNED_RUB_SQL}) FROM operations o WHERE o.finished_at >= ? AND o.finished_at < ?"
            " GROUP BY 1",
            [*finished_params, since, until],
        ).fetchall():
            if index is not None and 0 <= int(index) < len(days):
                days[int(index)] = replace(
                    days[int(index)], finished=_int(finished), sold=_int(sold), earnings=Kopecks(_int(money))
                )
        if not groups:
            return Stats(days=days)
        return Stats(
            days=days,
            by_service=self._groups("COALESCE(o.service, 'rent')", since, None),
            by_country=self._groups("o.country", since, None),
            by_number=self._groups("o.phone", since, top),
        )

    def marketplace_stats(self, day_start: Timestamp, since: Timestamp) -> list[MarketplaceStats]:
        tally: dict[tuple[str, str], list[int]] = {}
        # Open ones through the partial index on open operations; the window through the
        # opened_at and finished_at indexes (the shape of _groups).
        for marketplace, currency, count in self.db.execute(
            "SELECT o.marketplace, o.currency, COUNT(*) FROM operations o"
            " WHERE o.finished_at IS NULL GROUP BY o.marketplace, o.currency"
        ).fetchall():
            tally.setdefault((marketplace, currency), [0] * 6)[0] = _int(count)
        for row in self.db.execute(
            "SELECT o.marketplace, o.currency, SUM(CASE WHEN o.opened_at >= ? THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN o.finished_at >= ? AND {SOLD_SQL} THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN o.finished_at >= ? THEN {EARNED_SQL} ELSE 0 END),"
            f" SUM(CASE WHEN o.finished_at >= ? AND {SOLD_SQL} THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN o.finished_at >= ? THEN {EARNED_SQL} ELSE 0 END)"
            " FROM operations o WHERE o.opened_at >= ? OR o.finished_at >= ?"
            " GROUP BY o.marketplace, o.currency",
            [since, day_start, day_start, since, since, since, min(since, day_start)],
        ).fetchall():
            tally.setdefault((row[0], row[1]), [0] * 6)[1:] = [_int(v) for v in row[2:]]
        return [MarketplaceStats(m, c, *t) for (m, c), t in sorted(tally.items()) if any(t)]

    def free_by_lane(self) -> dict[str, int]:
        rows = self.db.execute(f"SELECT n.lane, COUNT(*) FROM numbers n WHERE {FREE} GROUP BY n.lane")
        return {lane or "none": _int(count) for lane, count in rows.fetchall()}

    def open_by_marketplace(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT o.marketplace, COUNT(*) FROM operations o WHERE o.finished_at IS NULL GROUP BY 1"
        )
        return {marketplace: _int(count) for marketplace, count in rows.fetchall()}

    def open_alerts(self) -> dict[str, str]:
        return SqlAlerts(self.db).open_alerts()

    def firing(self, limit: int) -> Page[OpenAlert]:
        return SqlAlerts(self.db).firing(limit)

    def last_calls(self) -> dict[str, Timestamp]:
        return SqlAlerts(self.db).last_calls()

    def _groups(self, key: str, since: Timestamp, limit: int | None) -> list[GroupStats]:
        rows = self.db.execute(
            f"SELECT {key}, SUM(CASE WHEN o.opened_at >= ? THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN o.finished_at >= ? THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN o.finished_at >= ? AND {SOLD_SQL} THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN o.finished_at >= ? THEN {EARNED_RUB_SQL} ELSE 0 END)"
            " FROM operations o WHERE o.opened_at >= ? OR o.finished_at >= ? GROUP BY 1",
            [since] * 6,
        ).fetchall()
        groups = [
            GroupStats(str(r[0]), _int(r[1]), _int(r[2]), _int(r[3]), Kopecks(_int(r[4]))) for r in rows
        ]
        return sort_groups(groups, limit)

    def pruned_sales(self) -> list[MarketplaceStats]:
        rows = self.db.execute("SELECT marketplace, currency, sold, earnings FROM pruned_sales").fetchall()
        found = [MarketplaceStats(m, c, sold=_int(sold), earnings=_int(e)) for m, c, sold, e in rows]
        return sorted(found, key=lambda s: (s.marketplace, s.currency))
