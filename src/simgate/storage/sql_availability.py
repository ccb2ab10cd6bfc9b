"""GET_SERVICES' counts in one statement: one row per (country, operator) group.

Each row carries the group's counted and rentable numbers and, as one JSON object, its
exclusions per service (migration 0011's kept counts). Before, the ~6,000 (group, service)
rows of a 100,000-number farm came to Python one by one: decoding them cost more CPU than
anything else in the call, and a reader thread takes the GIL back once per row, so under load
each row could wait behind the event loop. Here the database builds ~21 short JSON texts.

A resale window's held numbers are not in these counts: SqlNumbers.group_availability takes
them off, as group_counts and excluded_counts do.
"""

from __future__ import annotations

import msgspec

from simgate.domain.model import GroupAvailability
from simgate.domain.types import CountryName, OperatorName, ServiceName
from simgate.storage.sql_base import Connection

_GROUPS = (
    "SELECT country, operator, SUM(CASE WHEN lane = ? THEN numbers ELSE 0 END) AS free,"
    " SUM(CASE WHEN lane = ? THEN rentable ELSE 0 END) AS rentable"
    " FROM ({counts}) c GROUP BY country, operator HAVING SUM(numbers) > 0"
)
"""Every group of the farm (lane '' keeps those with nothing counted anywhere: explicit zeros)."""

_TOTALS = "SELECT lane, country, operator, numbers, rentable FROM number_counts"
SQLITE = (
    "SELECT g.country, g.operator, g.free, g.rentable,"
    # Per group, through exclusion_counts' primary key (lane, country, operator, service).
    " (SELECT json_group_object(x.service, x.numbers) FROM exclusion_counts x"
    "  WHERE x.lane = ? AND x.country = g.country AND x.operator = g.operator AND x.numbers > 0)"
    f" FROM ({_GROUPS.format(counts=_TOTALS)}) g"
)
"""SQLite's triggers add to the totals directly: no deltas to add in."""

POSTGRES = (
    "SELECT g.country, g.operator, g.free, g.rentable, e.excluded FROM ("
    + _GROUPS.format(counts=f"{_TOTALS} UNION ALL {_TOTALS.replace('number_counts', 'number_count_deltas')}")
    + ") g LEFT JOIN ("
    "  SELECT country, operator, json_object_agg(service, numbers)::text AS excluded FROM ("
    "   SELECT country, operator, service, SUM(numbers)::bigint AS numbers FROM ("
    "    SELECT country, operator, service, numbers FROM exclusion_counts WHERE lane = ? UNION ALL"
    "    SELECT country, operator, service, numbers FROM exclusion_count_deltas WHERE lane = ?"
    "   ) d GROUP BY country, operator, service HAVING SUM(numbers) > 0"
    "  ) s GROUP BY country, operator"
    ") e ON e.country = g.country AND e.operator = g.operator"
)
"""PostgreSQL's triggers only append deltas (migration 0011): added in per key here, in the
same snapshot as the totals."""

_excluded = msgspec.json.Decoder(dict[ServiceName, int])


def read_availability(db: Connection, marketplace: str, *, deltas: bool) -> list[GroupAvailability]:
    """Every group's counts for `marketplace`'s lane, as the kept counts have them now."""
    if deltas:
        rows = db.execute(POSTGRES, (marketplace, marketplace, marketplace, marketplace)).fetchall()
    else:
        rows = db.execute(SQLITE, (marketplace, marketplace, marketplace)).fetchall()
    return [
        GroupAvailability(
            CountryName(country),
            OperatorName(operator),
            int(free),
            int(rentable),
            _excluded.decode(excluded) if excluded else {},
        )
        for country, operator, free, rentable, excluded in rows
    ]


def count_stamp(db: Connection, *, deltas: bool) -> tuple[int, ...] | None:
    """Equal in two snapshots only if the kept counts are (migration 0016); None if unknown.

    SQLite: the version its triggers move on every change of the totals. PostgreSQL: the
    version (moved by folds and rebuilds) and how many deltas this snapshot sees: claims only
    append deltas, so at one version the same number of them is the same rows.
    """
    if deltas:
        row = db.execute(
            "SELECT v.version, (SELECT COUNT(*) FROM number_count_deltas),"
            " (SELECT COUNT(*) FROM exclusion_count_deltas) FROM count_version v WHERE v.id = 1"
        ).fetchone()
    else:
        row = db.execute("SELECT version FROM count_version WHERE id = 1").fetchone()
    return None if row is None else tuple(int(value) for value in row)
