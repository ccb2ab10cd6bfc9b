"""Four indexes no serving query reads, each rewritten by every claim and every release.

They were built for GET_SERVICES when it counted the free numbers from the rows (migrations
0004 and 0005). Since the counts are kept in the unit of work (migration 0011), GET_SERVICES
reads `number_counts` and `exclusion_counts`, and these indexes served only the recounts that
the contract tests and `simgate check` compare the kept counts against, which read every row
anyway. Yet each one's condition or key holds the number's freeness, so each claim deleted an
entry from all four and each release inserted it again: a B-tree page written per index per
GET_NUMBER and per FINISH, at different places in the file for different numbers, so a group
commit could not share them. Without them the SQLite writer spends about a fifth less CPU per
GET_NUMBER + FINISH and writes a quarter fewer WAL pages (docs/benchmarks.md). On PostgreSQL
an exclusion row's update no longer touches an indexed column, so it can stay a HOT update.

What still serves the claim and the lanes: `ix_numbers_lane_free_country` and
`ix_numbers_lane_free_operator` (the oldest free number of a lane and group, migration 0005)
and `ix_numbers_leaving`; `ix_numbers_group` does not change on a claim and stays.

Dropping an index is immediate on both dialects. Revision ID: 0024
Revises: 0023
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FREE = "open_operation_id IS NULL AND enabled AND online"
COUNTED = f"{FREE} AND lane_target IS NULL"

DROPPED = (
    # (index, table, columns, condition), as migrations 0004 and 0005 built them
    ("ix_numbers_free_group", "numbers", ("country", "operator", "rentable"), FREE),
    ("ix_numbers_lane_counted", "numbers", ("lane", "country", "operator", "rentable"), COUNTED),
    (
        "ix_number_exclusions_free_group",
        "number_exclusions",
        ("country", "operator", "service", "marketplace"),
        "free",
    ),
    (
        "ix_number_exclusions_lane",
        "number_exclusions",
        ("counted_lane", "country", "operator", "service", "marketplace"),
        "counted_lane IS NOT NULL AND NOT subsumed",
    ),
)


def upgrade() -> None:
    for name, table, _, _ in DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns, condition in DROPPED:
        op.create_index(
            name,
            table,
            list(columns),
            sqlite_where=sa.text(condition),
            postgresql_where=sa.text(condition),
        )
