"""Repositories over a DB-API connection, in SQL both SQLite and PostgreSQL accept.

Statements use `?` placeholders; a PostgreSQL connection wrapper rewrites them. Booleans are
written as bare predicates (`AND enabled`) which both dialects read the same way.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Hashable

from simgate.domain import lanes
from simgate.domain.errors import ClaimConflict
from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.domain.model import (
    ExcludedCount,
    ExclusionFact,
    GroupAvailability,
    GroupCount,
    Number,
    NumberSpec,
    Operation,
    OperationKind,
    Order,
)
from simgate.domain.read_model import BLOCKED, NumberQuery, RunStarts
from simgate.domain.types import (
    ANY_OPERATOR,
    EVERYWHERE,
    CountryName,
    Kopecks,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
    Timestamp,
)
from simgate.storage.ports import UpsertOutcome
from simgate.storage.sql_availability import count_stamp, read_availability
from simgate.storage.sql_base import (
    COUNTED,
    FREE,
    Connection,
    Cursor,
    Row,
    held_numbers,
    resale_filter,
    sync_exclusions,
)
from simgate.storage.sql_filters import number_where

__all__ = ["COUNTED", "FREE", "Connection", "Cursor", "Row", "SqlNumbers", "SqlOperations"]

INLINE_PREFIXES = 32
STREAK_COLUMNS = {
    OperationKind.RENT: "rent_no_sms_streak",
    OperationKind.ACTIVATION: "activation_no_sms_streak",
}
"""Where a number keeps its no-SMS streak of each kind (migration 0025)."""
SINCE_COLUMNS = {
    OperationKind.RENT: "rent_no_sms_since",
    OperationKind.ACTIVATION: "activation_no_sms_since",
}
"""Where it keeps when the first operation of that streak opened (migration 0026)."""

NUMBER_COLUMNS = (
    "n.id, n.phone, n.country, n.operator, n.port, n.rentable, n.enabled, n.online, "
    "n.open_operation_id, n.last_issued_at, n.file_enabled, n.operator_enabled, n.marketplaces, n.lane,"
    " n.lane_target, n.lane_leaving_at"
)


def _number(row: Row) -> Number:
    return Number(
        id=NumberId(row[0]),
        phone=PhoneNumber(row[1]),
        country=CountryName(row[2]),
        operator=OperatorName(row[3]),
        port=row[4],
        rentable=bool(row[5]),
        enabled=bool(row[6]),
        online=bool(row[7]),
        open_operation_id=None if row[8] is None else OperationId(row[8]),
        last_issued_at=row[9] or None,
        file_enabled=bool(row[10]),
        operator_enabled=bool(row[11]),
        marketplaces=lanes.parse_allowed(row[12]),
        lane=row[13],
        lane_target=row[14],
        lane_leaving_at=row[15],
    )


class SqlNumbers:
    def __init__(
        self,
        db: Connection,
        *,
        skip_locked: bool = False,
        ledger: LedgerRules = NO_RULES,
        count_deltas: bool = False,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.count_deltas = count_deltas
        """PostgreSQL: the triggers write count changes as deltas that fold_counts folds."""
        # PostgreSQL: lock the chosen number, passing over ones other GET_NUMBERs hold.
        self.lock_clause = " FOR UPDATE OF n SKIP LOCKED" if skip_locked else ""
        self.holds_numbers = skip_locked
        """PostgreSQL: a writer of a number's exclusions locks the number first (_hold). SQLite
        runs one writing unit at a time (BEGIN IMMEDIATE), the memory store one call."""

    def upsert(self, spec: NumberSpec, now: Timestamp) -> UpsertOutcome:
        # The file's switch is `file_enabled`; the operator's (never touched here) stays.
        row = self.db.execute(
            "SELECT country, operator, port, rentable, file_enabled, operator_enabled, marketplaces, lane"
            " FROM numbers"
            " WHERE phone = ?",
            (spec.phone,),
        ).fetchone()
        allowed = lanes.format_allowed(spec.marketplaces)
        values = (spec.country, spec.operator, spec.port, spec.rentable, spec.enabled, allowed)
        if row is None:
            self.db.execute(
                "INSERT INTO numbers (phone, country, operator, port, rentable, file_enabled, marketplaces,"
                " enabled, online, lane, last_issued_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (spec.phone, *values, spec.enabled, True, self._only_lane(spec.marketplaces), now, now),
            )
            return "added"
        if (row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[6]) == values:
            return "unchanged"
        # Other marketplaces allowed: a pending move may now go where it must not (cancelling
        # one is always safe: the new lane never counted the SIM). Rebalancing moves the SIM
        # out of a lane no longer allowed.
        moved = "" if row[6] == allowed else ", lane_target = NULL, lane_leaving_at = NULL"
        lane = row[7] if row[7] is not None else self._only_lane(spec.marketplaces)
        self.db.execute(
            "UPDATE numbers SET country = ?, operator = ?, port = ?, rentable = ?, file_enabled = ?,"
            f" marketplaces = ?, enabled = ?, lane = ?, updated_at = ?{moved} WHERE phone = ?",
            (*values, spec.enabled and bool(row[5]), lane, now, spec.phone),
        )
        self._sync_exclusions("n.phone = ?", spec.phone)
        return "updated"

    def _only_lane(self, allowed: frozenset[str]) -> str | None:
        """A new SIM that just one enabled marketplace may sell goes into its lane at once;
        with several, placing it is a balancing decision (services/lanes.py settles them)."""
        enabled = [r[0] for r in self.db.execute("SELECT name FROM marketplaces WHERE enabled").fetchall()]
        found = lanes.lanes_for(allowed, enabled)
        return found[0] if len(found) == 1 else None

    def get(self, number_id: NumberId) -> Number | None:
        row = self.db.execute(
            f"SELECT {NUMBER_COLUMNS} FROM numbers n WHERE n.id = ?", (number_id,)
        ).fetchone()
        return None if row is None else _number(row)

    def get_by_phone(self, phone: PhoneNumber) -> Number | None:
        row = self.db.execute(
            f"SELECT {NUMBER_COLUMNS} FROM numbers n WHERE n.phone = ?", (phone,)
        ).fetchone()
        return None if row is None else _number(row)

    def search(self, where: NumberQuery | None = None) -> list[Number]:
        query = where or NumberQuery(limit=1000)
        if query.losing:
            raise ValueError("losing is the console's read model's filter (reports.numbers)")
        found = number_where(query)
        sql = (
            f"SELECT {NUMBER_COLUMNS} FROM numbers n WHERE {found.sql}"
            " ORDER BY n.country, n.operator, n.phone LIMIT ? OFFSET ?"
        )
        rows = self.db.execute(sql, (*found.params, query.limit, query.offset)).fetchall()
        return [_number(row) for row in rows]

    def find_free(self, order: Order, marketplace: str, now: Timestamp | None = None) -> Number | None:
        where, params = self.free_where(order, marketplace, now)
        sql = (
            f"SELECT {NUMBER_COLUMNS} FROM numbers n WHERE {where}"
            f" ORDER BY n.last_issued_at, n.id LIMIT 1{self.lock_clause}"
        )
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else _number(row)

    def free_where(
        self, order: Order, marketplace: str, now: Timestamp | None = None
    ) -> tuple[str, list[object]]:
        """find_free's condition on `numbers n` (PostgreSQL's one-statement claim shares it)."""
        # Mirrors rules.matches_order in one lane; the contract tests hold the two together.
        clauses: list[str] = [FREE, "n.lane = ?", "n.country = ?"]
        params: list[object] = [marketplace, order.country]
        if order.operator != ANY_OPERATOR:
            clauses.append("n.operator = ?")
            params.append(order.operator)
        prefixes = order.exception_prefixes
        if len(prefixes) <= INLINE_PREFIXES:
            for prefix in prefixes:
                clauses.append("n.phone NOT LIKE ?")
                params.append(prefix + "%")
        else:
            # A long exceptionPhoneSet as a VALUES list: one AND per prefix would exceed
            # SQLite's expression depth (1000). `column1` is both dialects' default name.
            values = ", ".join("(?)" for _ in prefixes)
            clauses.append(
                f"NOT EXISTS (SELECT 1 FROM (VALUES {values}) AS p WHERE n.phone LIKE p.column1 || '%')"
            )
            params.extend(prefixes)
        if order.kind is OperationKind.RENT:
            clauses.append("n.rentable")
        else:
            clauses.append(
                "NOT EXISTS (SELECT 1 FROM number_exclusions x WHERE x.number_id = n.id AND x.service = ?"
                " AND x.marketplace IN (?, ?))"
            )
            params += [order.service, EVERYWHERE, marketplace]
        resale, more = resale_filter(self.ledger, marketplace, _now(now), "n.id", order.service)
        return f"{' AND '.join(clauses)}{resale}", params + more

    def mark_busy(self, number_id: NumberId, operation_id: OperationId, now: Timestamp) -> None:
        changed = self.db.execute(
            "UPDATE numbers SET open_operation_id = ?, last_issued_at = ?, lane_target = NULL,"
            " lane_leaving_at = NULL WHERE id = ? AND open_operation_id IS NULL",
            (operation_id, now, number_id),
        ).rowcount
        if changed != 1:
            raise ClaimConflict(f"number {number_id} was claimed by another operation")
        self._sync_exclusions("n.id = ?", number_id)

    def release(self, number_id: NumberId, operation_id: OperationId, kind: OperationKind) -> None:
        # The streak rides on the update that frees the number: no second write per FINISH.
        # Its SMS, if any, came while the operation was open (intake routes to open ones only).
        # On PostgreSQL an SMS whose unit read the operation still open may commit just after
        # this: the streak then counts one miss too many, which never hides a losing SIM but,
        # with its run begun inside the window (0026), can flag one a miss early (sql_reports
        # takes such a streak as the window's without recounting it).
        # The run's start too (read_model.run_starts_after): SET reads the row as it was, so
        # `{streak} = 0` is the streak before this operation.
        # `h`: whether it got an SMS and when it opened, each looked up once for both columns.
        streak, since = STREAK_COLUMNS[kind], SINCE_COLUMNS[kind]
        self.db.execute(
            f"UPDATE numbers SET open_operation_id = NULL,"
            f" {since} = CASE WHEN h.hit THEN NULL WHEN {streak} = 0 THEN h.opened ELSE {since} END,"
            f" {streak} = CASE WHEN h.hit THEN 0 ELSE {streak} + 1 END"
            " FROM (SELECT EXISTS (SELECT 1 FROM messages m WHERE m.operation_id = o.id) AS hit,"
            " o.opened_at AS opened FROM operations o WHERE o.id = ?) h"
            " WHERE numbers.id = ? AND numbers.open_operation_id = ?",
            (operation_id, number_id, operation_id),
        )
        self._sync_exclusions("n.id = ?", number_id)

    def no_sms_streaks(self, number_ids: Collection[NumberId]) -> dict[NumberId, tuple[int, int]]:
        ids = list(number_ids)
        if not ids:
            return {}
        rows = self.db.execute(
            "SELECT id, rent_no_sms_streak, activation_no_sms_streak FROM numbers"
            f" WHERE id IN ({', '.join('?' for _ in ids)})",
            ids,
        ).fetchall()
        return {NumberId(number_id): (int(rent), int(activation)) for number_id, rent, activation in rows}

    def no_sms_since(self, number_ids: Collection[NumberId]) -> dict[NumberId, RunStarts]:
        ids = list(number_ids)
        if not ids:
            return {}
        rows = self.db.execute(
            "SELECT id, rent_no_sms_since, activation_no_sms_since FROM numbers"
            f" WHERE id IN ({', '.join('?' for _ in ids)})",
            ids,
        ).fetchall()
        return {
            NumberId(number_id): (_stamp(rent), _stamp(activation)) for number_id, rent, activation in rows
        }

    def _sync_exclusions(self, which: str, *keys: object) -> None:
        """Copy a number's group, freeness and counting lane onto its exclusion rows.

        Called by every method that changes country, operator, enabled, online, the open
        operation or the lane, inside the same transaction, so excluded_counts never reads a
        stale copy (migrations 0004 and 0005).
        """
        sync_exclusions(self.db, which, *keys)

    def exclude(
        self,
        number_id: NumberId,
        service: ServiceName,
        reason: str,
        now: Timestamp,
        *,
        marketplace: str = EVERYWHERE,
        operation_id: OperationId | None = None,
    ) -> None:
        self._hold(number_id)
        held: dict[str, str] = {
            r[0]: r[1]
            for r in self.db.execute(
                "SELECT marketplace, reason FROM number_exclusions WHERE number_id = ? AND service = ?",
                (number_id, service),
            ).fetchall()
        }
        # A marketplace's fact binds for good; the operator's block could be lifted.
        takes_over = marketplace == EVERYWHERE and held.get(marketplace) == BLOCKED and reason != BLOCKED
        if marketplace in held and not takes_over:
            return  # idempotent: the first writer's row, its time and cause, stays
        if marketplace == EVERYWHERE and EVERYWHERE not in held and held:
            # The scoped rows stay (their facts outlive this one: an operator's block can be
            # lifted) but count no more: counts subtract (number, service) once (migration 0021).
            self.db.execute(
                "UPDATE number_exclusions SET subsumed = TRUE WHERE number_id = ? AND service = ?",
                (number_id, service),
            )
        # An upsert, with the takeover as its one update: the row there is the rule's input
        # even if it appeared after `held` was read (a writer that did not hold the number),
        # so the unit never fails on the primary key (migration 0023 does the same). The
        # update copies the number as this unit sees it, the unit that holds it.
        self.db.execute(
            "INSERT INTO number_exclusions (number_id, service, marketplace, reason, created_at,"
            " country, operator, free, counted_lane, operation_id, origin, subsumed)"
            f" SELECT n.id, ?, ?, ?, ?, n.country, n.operator, ({FREE}),"
            f" CASE WHEN {COUNTED} THEN n.lane END, ?,"
            " COALESCE((SELECT o.marketplace FROM operations o WHERE o.id = ?), ''), ?"
            " FROM numbers n WHERE n.id = ?"
            f" ON CONFLICT (number_id, service, marketplace) DO UPDATE SET {_TAKEOVER}"
            " WHERE number_exclusions.marketplace = ? AND number_exclusions.reason = ?"
            " AND excluded.reason <> ?",
            (
                service, marketplace, reason, now, operation_id, operation_id,
                marketplace != EVERYWHERE and EVERYWHERE in held, number_id,
                EVERYWHERE, BLOCKED, BLOCKED,
            ),
        )  # fmt: skip

    def _hold(self, number_id: NumberId) -> None:
        """PostgreSQL: lock the number before writing its exclusions. Two units each reading
        the rows and then inserting (READ COMMITTED) would not see each other's: a block
        and a sale's FINISH would both insert the global row (a unique violation), a global
        and a scoped row would not mark the scoped one subsumed (counted twice), and either
        would copy the number's state from before the other's change (migration 0004). FOR
        NO KEY UPDATE is what FINISH's and the lane moves' updates of the number take, so
        they queue; a GET_NUMBER passes over the number (SKIP LOCKED) for those milliseconds.
        Every statement after it sees what the unit before it committed (migration 0023)."""
        if self.holds_numbers:
            self.db.execute("SELECT id FROM numbers WHERE id = ? FOR NO KEY UPDATE", (number_id,))

    def exclusions(self, number_id: NumberId) -> list[ExclusionFact]:
        rows = self.db.execute(
            "SELECT service, marketplace, reason, created_at, operation_id FROM number_exclusions"
            " WHERE number_id = ? ORDER BY service, marketplace",
            (number_id,),
        ).fetchall()
        return [
            ExclusionFact(ServiceName(r[0]), r[1], r[2], r[3], None if r[4] is None else OperationId(r[4]))
            for r in rows
        ]

    def excluded_services(self, number_id: NumberId, marketplace: str | None = None) -> set[ServiceName]:
        rows = self.db.execute(
            "SELECT service FROM number_exclusions WHERE number_id = ? AND marketplace IN (?, ?)",
            (number_id, EVERYWHERE, marketplace or EVERYWHERE),
        ).fetchall()
        return {ServiceName(row[0]) for row in rows}

    def unexclude(self, number_id: NumberId, service: ServiceName, reason: str) -> bool:
        # Held, as by exclude: a scoped row written meanwhile must see the global row gone, or
        # it stays subsumed under nothing and counts nowhere (GET_SERVICES over-reports).
        self._hold(number_id)
        removed = self.db.execute(
            "DELETE FROM number_exclusions WHERE number_id = ? AND service = ? AND reason = ?",
            (number_id, service, reason),
        ).rowcount
        # The scoped rows a global one subsumed count again once none is left (migration 0021).
        self.db.execute(
            "UPDATE number_exclusions SET subsumed = FALSE WHERE number_id = ? AND service = ? AND subsumed"
            " AND NOT EXISTS (SELECT 1 FROM number_exclusions g"
            " WHERE g.number_id = ? AND g.service = ? AND g.marketplace = ?)",
            (number_id, service, number_id, service, EVERYWHERE),
        )
        return removed == 1

    def group_counts(self, marketplace: str | None = None, now: Timestamp | None = None) -> list[GroupCount]:
        if marketplace is None:
            return self.group_counts_recounted(None, now)
        # The counts the triggers keep (migration 0011), less what a resale window hides now.
        rows = self.db.execute(
            "SELECT country, operator, SUM(numbers), SUM(CASE WHEN lane = ? THEN numbers ELSE 0 END),"
            " SUM(CASE WHEN lane = ? THEN rentable ELSE 0 END)"
            f" FROM ({_COUNTS_AND_DELTAS}) c GROUP BY country, operator HAVING SUM(numbers) > 0",
            (marketplace, marketplace),
        ).fetchall()
        held = self._held_groups(marketplace, now)
        counts = []
        for country, operator, _, free, rentable in rows:
            hidden, hidden_rentable = held.get((country, operator), (0, 0))
            counts.append(
                GroupCount(
                    CountryName(country),
                    OperatorName(operator),
                    int(free) - hidden,
                    int(rentable) - hidden_rentable,
                )
            )
        return counts

    def excluded_counts(
        self, marketplace: str | None = None, now: Timestamp | None = None
    ) -> list[ExcludedCount]:
        if marketplace is None:
            return self.excluded_counts_recounted(None, now)
        held = self._held_excluded(marketplace, now)
        if not self.count_deltas and not held:
            # SQLite, nothing held: one row per key already (~6,000 rows at 100,000 numbers,
            # 300 services), so nothing to add up in Python.
            rows = self.db.execute(_EXCLUDED, (marketplace,)).fetchall()
            return [ExcludedCount(r[0], r[1], r[2], r[3]) for r in rows]
        tally: Counter[tuple[str, str, str]] = Counter()
        if self.count_deltas:
            sql = f"SELECT country, operator, service, numbers FROM ({_EXCLUDED_AND_DELTAS}) c"
            keys: tuple[object, ...] = (marketplace, marketplace)
        else:
            sql, keys = _EXCLUDED, (marketplace,)
        for r in self.db.execute(sql, keys).fetchall():
            tally[(r[0], r[1], r[2])] += int(r[3])
        for key, hidden in held.items():
            tally[key] -= hidden
        return [
            ExcludedCount(CountryName(c), OperatorName(o), ServiceName(s), k)
            for (c, o, s), k in tally.items()
            if k > 0
        ]

    def group_availability(self, marketplace: str, now: Timestamp | None = None) -> list[GroupAvailability]:
        # One statement, one row per group: the tally per (group, service) stays in SQL
        # (sql_availability.py); a resale window's few held numbers are taken off here.
        groups = read_availability(self.db, marketplace, deltas=self.count_deltas)
        held_groups = self._held_groups(marketplace, now)
        held_excluded = self._held_excluded(marketplace, now)
        if not held_groups and not held_excluded:
            return groups
        held_by_group: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for (country, operator, service), k in held_excluded.items():
            held_by_group.setdefault((country, operator), []).append((service, k))
        found = []
        for group in groups:
            hidden, hidden_rentable = held_groups.get((group.country, group.operator), (0, 0))
            excluded = dict(group.excluded)
            for service, k in held_by_group.get((group.country, group.operator), ()):
                if service in excluded:
                    excluded[ServiceName(service)] -= k
            found.append(
                GroupAvailability(
                    group.country,
                    group.operator,
                    group.free - hidden,
                    group.rentable - hidden_rentable,
                    {s: k for s, k in excluded.items() if k > 0},
                )
            )
        return found

    def availability_stamp(self, marketplace: str, now: Timestamp | None = None) -> Hashable | None:
        version = count_stamp(self.db, deltas=self.count_deltas)
        if version is None:
            return None
        # The held numbers are read on every call: a window's end changes them without a write.
        held = self._held_groups(marketplace, now)
        held_excluded = self._held_excluded(marketplace, now)
        return version, tuple(sorted(held.items())), tuple(sorted(held_excluded.items()))

    def _held_groups(self, marketplace: str, now: Timestamp | None) -> dict[tuple[str, str], tuple[int, int]]:
        """Per group: the counted numbers (and rentable ones) a resale window hides at `now`."""
        found = held_numbers(self.ledger, marketplace, _now(now))
        if found is None:
            return {}
        sql, params = found
        return {
            (r[0], r[1]): (int(r[2]), int(r[3]))
            for r in self.db.execute(
                # CROSS JOIN: SQLite walks the few held numbers, not the lane's counted ones.
                "SELECT n.country, n.operator, COUNT(*), SUM(CASE WHEN n.rentable THEN 1 ELSE 0 END)"
                f" FROM ({sql}) h CROSS JOIN numbers n"
                f" WHERE n.id = h.number_id AND {COUNTED} AND n.lane || '' = ?"
                " GROUP BY n.country, n.operator",
                (*params, marketplace),
            ).fetchall()
        }

    def _held_excluded(self, marketplace: str, now: Timestamp | None) -> dict[tuple[str, str, str], int]:
        """Per group and service: the counted exclusions binding `marketplace` on numbers a
        resale window hides at `now` (excluded_counts takes them off)."""
        found = held_numbers(self.ledger, marketplace, _now(now))
        if found is None:
            return {}
        sql, params = found
        return {
            (r[0], r[1], r[2]): int(r[3])
            for r in self.db.execute(
                # The held numbers drive (SQLite: CROSS JOIN keeps them outside, and `|| ''`
                # keeps it off the lane index), each found through the primary key.
                "SELECT x.country, x.operator, x.service, COUNT(*)"
                f" FROM ({sql}) h CROSS JOIN number_exclusions x"
                " WHERE x.number_id = h.number_id AND x.counted_lane || '' = ? AND x.marketplace IN (?, ?)"
                " AND NOT x.subsumed GROUP BY x.country, x.operator, x.service",
                (*params, marketplace, EVERYWHERE, marketplace),
            ).fetchall()
        }

    def fold_counts(self) -> None:
        if not self.count_deltas:
            return  # SQLite's triggers add to the totals directly (one writer, no contention)
        # One folder at a time (another instance folding now will have folded these too):
        # two folds upserting the same totals in different orders could deadlock.
        row = self.db.execute("SELECT pg_try_advisory_xact_lock(?)", (FOLD_LOCK,)).fetchone()
        if row is None or not row[0]:
            return
        for deltas, totals, key, values in (
            ("number_count_deltas", "number_counts", "lane, country, operator", ("numbers", "rentable")),
            ("exclusion_count_deltas", "exclusion_counts", "lane, country, operator, service", ("numbers",)),
        ):
            sums = ", ".join(f"SUM({v})" for v in values)
            adds = ", ".join(f"{v} = {totals}.{v} + excluded.{v}" for v in values)
            self.db.execute(
                f"WITH moved AS (DELETE FROM {deltas} RETURNING {key}, {', '.join(values)})"
                f" INSERT INTO {totals} ({key}, {', '.join(values)})"
                f" SELECT {key}, {sums} FROM moved GROUP BY {key} ORDER BY {key}"
                f" ON CONFLICT ({key}) DO UPDATE SET {adds}"
            )

    def count_drift(self) -> list[str]:
        kept: Counter[tuple[str, ...]] = Counter()
        truth: Counter[tuple[str, ...]] = Counter()
        for r in self.db.execute(
            "SELECT lane, country, operator, SUM(numbers), SUM(rentable)"
            f" FROM ({_COUNTS_AND_DELTAS}) c GROUP BY lane, country, operator"
        ).fetchall():
            kept[("numbers", r[0], r[1], r[2])] += int(r[3])
            kept[("rentable", r[0], r[1], r[2])] += int(r[4])
        for r in self.db.execute(
            f"SELECT {_LANE_OF}, n.country, n.operator, COUNT(*), SUM(CASE WHEN n.rentable THEN 1 ELSE 0 END)"
            f" FROM numbers n GROUP BY {_LANE_OF}, n.country, n.operator"
        ).fetchall():
            truth[("numbers", r[0], r[1], r[2])] += int(r[3])
            truth[("rentable", r[0], r[1], r[2])] += int(r[4])
        for r in self.db.execute(
            "SELECT lane, country, operator, service, SUM(numbers) FROM"
            " (SELECT lane, country, operator, service, numbers FROM exclusion_counts UNION ALL"
            " SELECT lane, country, operator, service, numbers FROM exclusion_count_deltas) c"
            " GROUP BY lane, country, operator, service"
        ).fetchall():
            kept[("excluded", r[0], r[1], r[2], r[3])] += int(r[4])
        # From the numbers themselves, not from the copies on the exclusion rows (0004), and
        # each (number, service) once however many rows bind it, not trusting `subsumed` (0021).
        for r in self.db.execute(
            f"SELECT n.lane, n.country, n.operator, x.service, COUNT(DISTINCT n.id) FROM number_exclusions x"
            f" JOIN numbers n ON n.id = x.number_id WHERE {COUNTED} AND n.lane IS NOT NULL"
            " AND x.marketplace IN (?, n.lane)"
            " GROUP BY n.lane, n.country, n.operator, x.service",
            (EVERYWHERE,),
        ).fetchall():
            truth[("excluded", r[0], r[1], r[2], r[3])] += int(r[4])
        return [
            f"{' '.join(repr(part) for part in key)}: kept {kept[key]}, recounted {truth[key]}"
            for key in sorted(set(kept) | set(truth))
            if kept[key] != truth[key]
        ]

    def rebuild_counts(self) -> None:
        if self.count_deltas:
            # No number may change between the recount and the totals it replaces.
            self.db.execute("LOCK TABLE numbers, number_exclusions IN SHARE ROW EXCLUSIVE MODE")
        sync_exclusions(self.db, "1 = 1")
        # A scoped row counts only while no global row of its (number, service) exists.
        self.db.execute(
            f"UPDATE number_exclusions SET subsumed = NOT subsumed WHERE subsumed <> ({_SUBSUMED})",
            (EVERYWHERE, EVERYWHERE),
        )
        for table in ("number_counts", "number_count_deltas", "exclusion_counts", "exclusion_count_deltas"):
            self.db.execute(f"DELETE FROM {table}")
        self.db.execute(
            "INSERT INTO number_counts (lane, country, operator, numbers, rentable)"
            f" SELECT {_LANE_OF}, n.country, n.operator, COUNT(*),"
            " SUM(CASE WHEN n.rentable THEN 1 ELSE 0 END)"
            f" FROM numbers n GROUP BY {_LANE_OF}, n.country, n.operator"
        )
        self.db.execute(
            "INSERT INTO exclusion_counts (lane, country, operator, service, numbers)"
            " SELECT counted_lane, country, operator, service, COUNT(*) FROM number_exclusions"
            " WHERE counted_lane IS NOT NULL AND marketplace IN (?, counted_lane) AND NOT subsumed"
            " GROUP BY counted_lane, country, operator, service",
            (EVERYWHERE,),
        )
        # SQLite's count triggers move the version (migration 0019); this is the one other
        # writer of the totals. (PostgreSQL's statement triggers on them would move it too.)
        self.db.execute("UPDATE count_version SET version = version + 1 WHERE id = 1")

    def group_counts_recounted(
        self, marketplace: str | None = None, now: Timestamp | None = None
    ) -> list[GroupCount]:
        """group_counts from the numbers themselves (what it was before migration 0011): the
        console's farm-wide counts, and the recount the kept ones are checked against."""
        # Reads every number (the indexes that once served it cost every claim a page each;
        # migration 0024): counted numbers per group, and every group so that one with nothing
        # free still gets its explicit zeros. A resale window adds one probe per counted
        # number (migration 0010's index), only when one binds. No serving path calls it.
        where, params = FREE, []
        if marketplace is not None:
            resale, more = resale_filter(self.ledger, marketplace, _now(now), "n.id")
            where, params = f"{COUNTED} AND n.lane = ?{resale}", [marketplace, *more]
        free = {
            (r[0], r[1]): (int(r[2]), int(r[3]))
            for r in self.db.execute(
                "SELECT n.country, n.operator, COUNT(*), SUM(CASE WHEN n.rentable THEN 1 ELSE 0 END)"
                f" FROM numbers n WHERE {where} GROUP BY n.country, n.operator",
                params,
            ).fetchall()
        }
        groups = self.db.execute("SELECT DISTINCT country, operator FROM numbers").fetchall()
        return [GroupCount(CountryName(c), OperatorName(o), *free.get((c, o), (0, 0))) for c, o in groups]

    def excluded_counts_recounted(
        self, marketplace: str | None = None, now: Timestamp | None = None
    ) -> list[ExcludedCount]:
        """excluded_counts by scanning the exclusion rows (see group_counts_recounted)."""
        # At most one row per (number, service) binds a marketplace and is not subsumed (see
        # exclude), so COUNT(*) subtracts each number once; numbers group_counts leaves out (a
        # resale window) too.
        params: list[object]
        if marketplace is None:
            where, params = "free AND marketplace = ?", [EVERYWHERE]
        else:
            resale, more = resale_filter(self.ledger, marketplace, _now(now), "number_exclusions.number_id")
            where = f"counted_lane = ? AND marketplace IN (?, ?) AND NOT subsumed{resale}"
            params = [marketplace, EVERYWHERE, marketplace, *more]
        rows = self.db.execute(
            f"SELECT country, operator, service, COUNT(*) FROM number_exclusions WHERE {where}"
            " GROUP BY country, operator, service",
            params,
        ).fetchall()
        return [
            ExcludedCount(CountryName(r[0]), OperatorName(r[1]), ServiceName(r[2]), int(r[3])) for r in rows
        ]

    def set_enabled(self, number_id: NumberId, enabled: bool, now: Timestamp) -> bool:
        """The operator's switch; the number is sold only if the file's is on too."""
        assignment = "operator_enabled = ?, enabled = file_enabled AND ?"
        changed = self.db.execute(
            f"UPDATE numbers SET {assignment}, updated_at = ? WHERE id = ?",
            (enabled, enabled, now, number_id),
        ).rowcount
        if changed != 1:
            return False
        self._sync_exclusions("n.id = ?", number_id)
        return True

    def set_online(self, phone: PhoneNumber, online: bool, now: Timestamp) -> bool:
        return self._set("online = ?", online, "n.phone = ?", phone, now)

    def _set(self, assignment: str, value: bool, which: str, key: object, now: Timestamp) -> bool:
        """Change one flag of one number; False if there is no such number."""
        changed = self.db.execute(
            f"UPDATE numbers SET {assignment}, updated_at = ? WHERE {which.removeprefix('n.')}",
            (value, now, key),
        ).rowcount
        if changed != 1:
            return False
        self._sync_exclusions(which, key)
        return True


_TAKEOVER = (
    "reason = excluded.reason, created_at = excluded.created_at, operation_id = excluded.operation_id,"
    " origin = excluded.origin, country = excluded.country, operator = excluded.operator,"
    " free = excluded.free, counted_lane = excluded.counted_lane"
)
"""What a marketplace's global fact rewrites of the operator's block it takes over (exclude)."""

_LANE_OF = f"COALESCE(CASE WHEN {COUNTED} THEN n.lane END, '')"
"""The lane counting number `n` in number_counts, '' if none (migration 0011's lane_of)."""

_COUNTS_AND_DELTAS = (
    "SELECT lane, country, operator, numbers, rentable FROM number_counts UNION ALL"
    " SELECT lane, country, operator, numbers, rentable FROM number_count_deltas"
)
_SUBSUMED = (
    "marketplace <> ? AND EXISTS (SELECT 1 FROM number_exclusions g"
    " WHERE g.number_id = number_exclusions.number_id AND g.service = number_exclusions.service"
    " AND g.marketplace = ?)"
)
"""Whether an exclusion row is subsumed: scoped, beside a global row of its (number, service)."""
_EXCLUDED = "SELECT country, operator, service, numbers FROM exclusion_counts WHERE lane = ? AND numbers <> 0"
_EXCLUDED_AND_DELTAS = (
    f"{_EXCLUDED} UNION ALL"
    " SELECT country, operator, service, numbers FROM exclusion_count_deltas WHERE lane = ?"
)
FOLD_LOCK = 0x51_6D_67_61_74_65_0B
"""pg_try_advisory_xact_lock key of fold_counts (any constant no other code uses)."""


def _stamp(value: object) -> Timestamp | None:
    return None if value is None else Timestamp(float(value))  # type: ignore[arg-type]


def _now(now: Timestamp | None) -> Timestamp:
    """Callers that pass no time (the console's counts) ask about this instant."""
    return time.time() if now is None else now


OPERATION_COLUMNS = (
    "id, marketplace, kind, number_id, phone, country, operator, service, offered_kopecks,"
    " opened_at, finished_at, finish_status, final_kopecks, currency"
)


OPEN_OPERATION_COLUMNS = ", ".join(f"o.{column.strip()}" for column in OPERATION_COLUMNS.split(","))


def _operation(row: Row) -> Operation:
    return Operation(
        id=OperationId(row[0]),
        marketplace=row[1],
        kind=OperationKind(row[2]),
        number_id=NumberId(row[3]),
        phone=PhoneNumber(row[4]),
        country=CountryName(row[5]),
        operator=OperatorName(row[6]),
        service=None if row[7] is None else ServiceName(row[7]),
        offered=None if row[8] is None else Kopecks(row[8]),
        opened_at=row[9],
        finished_at=row[10],
        finish_status=row[11],
        final=None if row[12] is None else Kopecks(row[12]),
        currency=row[13],
    )


class SqlOperations:
    def __init__(self, db: Connection) -> None:
        self.db = db

    def open(self, marketplace: str, order: Order, number: Number, now: Timestamp) -> Operation:
        try:
            row = self.db.execute(
                "INSERT INTO operations (marketplace, kind, number_id, phone, country, operator,"
                " service, offered_kopecks, opened_at, currency) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                (
                    marketplace,
                    order.kind.value,
                    number.id,
                    number.phone,
                    number.country,
                    number.operator,
                    order.service,
                    order.offered,
                    now,
                    order.currency,
                ),
            ).fetchone()
        except self.db.IntegrityError as error:
            # The unique index allows one open operation per number: the same ClaimConflict
            # every store raises (PostgreSQL then runs the whole unit again).
            raise ClaimConflict(f"number {number.id} already has an open operation") from error
        assert row is not None
        return Operation(
            id=OperationId(row[0]),
            marketplace=marketplace,
            kind=order.kind,
            number_id=number.id,
            phone=number.phone,
            country=number.country,
            operator=number.operator,
            service=order.service,
            offered=order.offered,
            opened_at=now,
            currency=order.currency,
        )

    def get(self, operation_id: OperationId) -> Operation | None:
        row = self.db.execute(
            f"SELECT {OPERATION_COLUMNS} FROM operations WHERE id = ?", (operation_id,)
        ).fetchone()
        return None if row is None else _operation(row)

    def open_for_number(self, number_id: NumberId) -> Operation | None:
        row = self.db.execute(
            f"SELECT {OPERATION_COLUMNS} FROM operations WHERE number_id = ? AND finished_at IS NULL",
            (number_id,),
        ).fetchone()
        return None if row is None else _operation(row)

    def open_for_phone(self, phone: PhoneNumber) -> tuple[NumberId, Operation | None] | None:
        # One statement and no Number row for every SMS: the number lookup and the open
        # operation's were ~half of the intake unit's time (docs/benchmarks.md, issue 14).
        row = self.db.execute(
            f"SELECT n.id, {OPEN_OPERATION_COLUMNS} FROM numbers n LEFT JOIN operations o"
            " ON o.number_id = n.id AND o.finished_at IS NULL WHERE n.phone = ?",
            (phone,),
        ).fetchone()
        if row is None:
            return None
        return NumberId(row[0]), None if row[1] is None else _operation(row[1:])

    def finish(self, operation_id: OperationId, status: int, final: Kopecks | None, now: Timestamp) -> None:
        # The request that closes it is counted in the same write (as simgate_finish does on
        # PostgreSQL, migration 0017): one statement per FINISH fewer on the writer thread.
        self.db.execute(
            "UPDATE operations SET finished_at = ?, finish_status = ?, final_kopecks = ?,"
            " finish_requests = finish_requests + 1 WHERE id = ? AND finished_at IS NULL",
            (now, status, final, operation_id),
        )

    def note_finish_request(self, operation_id: OperationId) -> None:
        self.db.execute(
            "UPDATE operations SET finish_requests = finish_requests + 1 WHERE id = ?",
            (operation_id,),
        )

    def of_number(self, number_id: NumberId) -> list[Operation]:
        rows = self.db.execute(
            f"SELECT {OPERATION_COLUMNS} FROM operations WHERE number_id = ? ORDER BY id", (number_id,)
        ).fetchall()
        return [_operation(row) for row in rows]

    def count_finished(self, number_id: NumberId, service: ServiceName, marketplace: str, status: int) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM operations WHERE number_id = ? AND service = ? AND marketplace = ?"
            " AND finish_status = ?",
            (number_id, service, marketplace, status),
        ).fetchone()
        return 0 if row is None else int(row[0])
