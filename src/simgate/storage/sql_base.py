"""What every SQL repository shares: the DB-API shape it runs on and the "free" predicate.

Its own module so the repositories (sql.py, sql_lanes.py) import it rather than each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from simgate.domain import ledger
from simgate.domain.ledger import LedgerRules
from simgate.domain.types import Timestamp

Row = Sequence[Any]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> list[Row]: ...


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    @property
    def IntegrityError(self) -> type[Exception]:
        """The driver's constraint-violation error (DB-API extension on the connection)."""
        ...


FREE = "n.open_operation_id IS NULL AND n.enabled AND n.online"
COUNTED = f"{FREE} AND n.lane_target IS NULL"
"""Counted by its lane's GET_SERVICES (lanes.counted_by); the index of migration 0005 says the same."""


def sync_exclusions(db: Connection, which: str, *keys: object) -> None:
    """See SqlNumbers._sync_exclusions; `which` selects numbers as `n`."""
    db.execute(
        "UPDATE number_exclusions SET country = n.country, operator = n.operator,"
        f" free = ({FREE}), counted_lane = CASE WHEN {COUNTED} THEN n.lane END FROM numbers n"
        f" WHERE n.id = number_exclusions.number_id AND {which}",
        keys,
    )


def _window_parts(
    rules: LedgerRules, marketplace: str, now: Timestamp, service: str | None
) -> tuple[list[str], list[Any]]:
    """One `(...)` per resale window binding `marketplace` now, over a sale `o`."""
    parts: list[str] = []
    params: list[Any] = []
    for window in ledger.window_clauses(rules, marketplace, now):
        part = f"o.marketplace {'<>' if window.elsewhere else '='} ? AND o.finished_at > ?"
        params += [window.sold_on, window.since]
        if not window.number_wide:
            if service is None:
                part += " AND o.kind = 'rent'"
            else:
                part += " AND (o.kind = 'rent' OR o.service = ?)"
                params.append(service)
        parts.append(f"({part})")
    return parts, params


def resale_filter(
    rules: LedgerRules, marketplace: str, now: Timestamp, number: str, service: str | None = None
) -> tuple[str, list[Any]]:
    """`AND NOT EXISTS (...)`: no sale in a resale window binding `marketplace` now
    (ledger.window_clauses; the in-memory store asks ledger.resale_hold). `number` is the SQL
    expression of the number's id; `service` None asks about the whole number (a count, a
    rent). Empty when no window binds: a farm without such terms pays nothing for them."""
    parts, params = _window_parts(rules, marketplace, now, service)
    if not parts:
        return "", []
    sql = (
        f" AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.number_id = {number}"
        f" AND o.finish_status = 3 AND ({' OR '.join(parts)}))"
    )
    return sql, params


def held_numbers(rules: LedgerRules, marketplace: str, now: Timestamp) -> tuple[str, list[Any]] | None:
    """`SELECT number_id ...`: the numbers a resale window hides on `marketplace` now (as a
    whole: resale_filter with no service), one SELECT per window over migration 0011's index
    of sales by marketplace and time, so a window costs the sales inside it (none, mostly),
    not a probe per number. None: no window binds."""
    # The same windows as resale_filter's (no service: each part takes its own parameters in
    # order), each its own SELECT so each can use the index.
    parts, params = _window_parts(rules, marketplace, now, None)
    if not parts:
        return None
    selects = [f"SELECT o.number_id FROM operations o WHERE o.finish_status = 3 AND {part}" for part in parts]
    return " UNION ".join(selects), params
