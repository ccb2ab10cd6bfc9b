"""A version of the kept counts, changed in the transaction that changes them.

GET_SERVICES' answer is a function of migration 0011's counts (plus the few numbers a resale
window hides, read on every call). `count_version` (one row) lets a server keep its last
answer and give it again while the counts have not changed: an idle farm answers from memory,
and an answer can never outlive a change that lowers a count, because the version moves in
the very transaction that lowers it, in the database, so every instance sees it.

- SQLite: triggers on the totals (`number_counts`, `exclusion_counts`) add 1 on every row
  they insert, update or delete: one more small UPDATE beside each of 0011's upserts.
- PostgreSQL: claims only append deltas (0011); a counter they all updated would be the hot
  row 0011 avoids. So the version moves only when the totals change or deltas are deleted or
  changed (a fold, a rebuild: one writer at a time), and readers add the number of deltas
  they see: deltas are otherwise only appended, so while the version stands still, the same
  number of deltas is the same deltas (sql_availability.count_stamp).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSION = "count_version"
TOTALS = ("number_counts", "exclusion_counts")
DELTAS = ("number_count_deltas", "exclusion_count_deltas")
BUMP = f"UPDATE {VERSION} SET version = version + 1 WHERE id = 1"


def _sqlite_triggers() -> None:
    for table in TOTALS:
        for event in ("INSERT", "UPDATE", "DELETE"):
            name = f"{table}_version_{event.lower()}"
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {BUMP}; END")


def _postgres_triggers() -> None:
    # Statement triggers with transition tables: a fold that moved nothing leaves the version
    # as it was (it runs after every GET_SERVICES poll), one that moved 1,000 rows adds 1.
    op.execute(
        "CREATE FUNCTION simgate_count_version() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF EXISTS (SELECT 1 FROM changed) THEN {BUMP}; END IF; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE FUNCTION simgate_count_version_truncate() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {BUMP}; RETURN NULL; END $$"
    )
    events: dict[str, tuple[str, ...]] = {table: ("INSERT", "UPDATE", "DELETE") for table in TOTALS}
    events.update({table: ("UPDATE", "DELETE") for table in DELTAS})
    for table, kinds in events.items():
        for event in kinds:
            rows = "OLD" if event == "DELETE" else "NEW"
            op.execute(
                f"CREATE TRIGGER {table}_version_{event.lower()} AFTER {event} ON {table}"
                f" REFERENCING {rows} TABLE AS changed FOR EACH STATEMENT"
                " EXECUTE FUNCTION simgate_count_version()"
            )
        op.execute(
            f"CREATE TRIGGER {table}_version_truncate AFTER TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION simgate_count_version_truncate()"
        )


def upgrade() -> None:
    op.create_table(
        VERSION,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.execute(f"INSERT INTO {VERSION} (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in (*TOTALS, *DELTAS):
            for event in ("insert", "update", "delete", "truncate"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_version_{event} ON {table}")
        op.execute("DROP FUNCTION simgate_count_version()")
        op.execute("DROP FUNCTION simgate_count_version_truncate()")
    else:
        for table in TOTALS:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_version_{event}")
    op.drop_table(VERSION)
