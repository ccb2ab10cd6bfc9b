"""What every SQL repository shares: the DB-API shape it runs on and the "free" predicate.

Its own module so the repositories (sql.py, sql_lanes.py) import it rather than each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

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
