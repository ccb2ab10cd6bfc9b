"""GET_SERVICES from maintained counts: counters kept by triggers in every unit of work.

GET_SERVICES counted a lane's free SIMs and their exclusions on every call (two scans:
~70-80 ms at 100,000 numbers). The counts are now kept by the database itself, by triggers
on `numbers` and `number_exclusions`, so every statement that changes a number's freeness,
lane, group or rentable flag, or adds or drops an exclusion, changes them in the same
transaction, whatever code path issued it:

- `number_counts` (lane, country, operator): the numbers a lane counts (free, not leaving:
  `sql_base.COUNTED`) and how many of them are rentable; lane '' holds every other number, so
  the table also knows every group (GET_SERVICES answers explicit zeros for empty groups).
- `exclusion_counts` (lane, country, operator, service): the exclusions binding that lane
  (`marketplace` '*' or the lane itself) on numbers it counts, as `counted_lane` says.

SQLite has one writer, so its triggers add to those rows directly. On PostgreSQL that would
make every claim in a (lane, country, operator) wait on one counter row until the claim
commits, and two claims could deadlock over two such rows; its triggers only INSERT into
`number_count_deltas` / `exclusion_count_deltas` (no row is shared, nothing waits), readers
add the deltas in, and `fold_counts` moves them into the totals (after every GET_SERVICES and
every lane round, one folder at a time).

Resale windows expire without a write, so they are not in the counts: the numbers a live
window hides are subtracted at read time, found from that marketplace's sales since the
window began (the index below), so the cost follows the window's sales, not the farm.

Revision ID: 0011
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = "number_counts"
EXCLUDED = "exclusion_counts"
NUMBER_DELTAS = "number_count_deltas"
EXCLUSION_DELTAS = "exclusion_count_deltas"


def lane_of(row: str) -> str:
    """The lane counting the number `row` (OLD, NEW, or a table alias), '' if none."""
    return (
        f"COALESCE(CASE WHEN {row}.open_operation_id IS NULL AND {row}.enabled AND {row}.online"
        f" AND {row}.lane_target IS NULL THEN {row}.lane END, '')"
    )


def rentable_of(row: str) -> str:
    return f"CASE WHEN {row}.rentable THEN 1 ELSE 0 END"


def binds(row: str) -> str:
    """The exclusion `row` lowers its counting lane's counts (binding_lane is not NULL)."""
    return f"({row}.counted_lane IS NOT NULL AND {row}.marketplace IN ('*', {row}.counted_lane))"


def binding_lane(row: str) -> str:
    """The lane whose counts the exclusion `row` lowers, NULL if none (sql.excluded_counts)."""
    return (
        f"CASE WHEN {row}.counted_lane IS NOT NULL AND {row}.marketplace IN ('*', {row}.counted_lane)"
        f" THEN {row}.counted_lane END"
    )


NUMBER_COLUMNS = (
    "open_operation_id", "enabled", "online", "lane_target", "lane", "country", "operator", "rentable"
)  # fmt: skip
EXCLUSION_COLUMNS = ("counted_lane", "marketplace", "country", "operator", "service")


def _clustered(primary: bool) -> dict[str, bool]:
    """SQLite stores a totals table in its key's order: a lane's rows are read in one range
    (~3 ms less per GET_SERVICES at 6,000 rows than a lookup per row)."""
    return {"sqlite_with_rowid": False} if primary else {}


def _tables() -> None:
    def counts(name: str, primary: bool) -> None:
        op.create_table(
            name,
            sa.Column("lane", sa.String(32), nullable=False, primary_key=primary),
            sa.Column("country", sa.String(64), nullable=False, primary_key=primary),
            sa.Column("operator", sa.String(64), nullable=False, primary_key=primary),
            sa.Column("numbers", sa.BigInteger(), nullable=False, server_default="0"),
            sa.Column("rentable", sa.BigInteger(), nullable=False, server_default="0"),
            **_clustered(primary),
        )

    def excluded(name: str, primary: bool) -> None:
        op.create_table(
            name,
            sa.Column("lane", sa.String(32), nullable=False, primary_key=primary),
            sa.Column("country", sa.String(64), nullable=False, primary_key=primary),
            sa.Column("operator", sa.String(64), nullable=False, primary_key=primary),
            sa.Column("service", sa.String(64), nullable=False, primary_key=primary),
            sa.Column("numbers", sa.BigInteger(), nullable=False, server_default="0"),
            **_clustered(primary),
        )

    counts(COUNTS, True)
    excluded(EXCLUDED, True)
    # Insert-only on PostgreSQL; always empty on SQLite. No key: two claims never share a row.
    counts(NUMBER_DELTAS, False)
    excluded(EXCLUSION_DELTAS, False)


def _backfill() -> None:
    op.execute(
        f"INSERT INTO {COUNTS} (lane, country, operator, numbers, rentable)"
        f" SELECT {lane_of('n')}, n.country, n.operator, COUNT(*), SUM({rentable_of('n')})"
        f" FROM numbers n GROUP BY {lane_of('n')}, n.country, n.operator"
    )
    op.execute(
        f"INSERT INTO {EXCLUDED} (lane, country, operator, service, numbers)"
        f" SELECT {binding_lane('x')}, x.country, x.operator, x.service, COUNT(*)"
        f" FROM number_exclusions x WHERE {binding_lane('x')} IS NOT NULL"
        f" GROUP BY {binding_lane('x')}, x.country, x.operator, x.service"
    )


def _upsert_number(row: str, sign: str) -> str:
    return (
        f"INSERT INTO {COUNTS} (lane, country, operator, numbers, rentable)"
        f" SELECT {lane_of(row)}, {row}.country, {row}.operator, {sign}1, {sign}({rentable_of(row)})"
        " WHERE TRUE ON CONFLICT (lane, country, operator) DO UPDATE"
        f" SET numbers = {COUNTS}.numbers + excluded.numbers,"
        f" rentable = {COUNTS}.rentable + excluded.rentable;"
    )


def _upsert_exclusion(row: str, sign: str) -> str:
    return (
        f"INSERT INTO {EXCLUDED} (lane, country, operator, service, numbers)"
        f" SELECT {binding_lane(row)}, {row}.country, {row}.operator, {row}.service, {sign}1"
        f" WHERE {binding_lane(row)} IS NOT NULL"
        " ON CONFLICT (lane, country, operator, service) DO UPDATE"
        f" SET numbers = {EXCLUDED}.numbers + excluded.numbers;"
    )


def _number_changed() -> str:
    old = f"{lane_of('OLD')}, OLD.country, OLD.operator, {rentable_of('OLD')}"
    new = f"{lane_of('NEW')}, NEW.country, NEW.operator, {rentable_of('NEW')}"
    return f"({old}) IS DISTINCT FROM ({new})"


def _exclusion_changed() -> str:
    old = f"{binding_lane('OLD')}, OLD.country, OLD.operator, OLD.service"
    new = f"{binding_lane('NEW')}, NEW.country, NEW.operator, NEW.service"
    return f"({old}) IS DISTINCT FROM ({new})"


def _sqlite_triggers() -> None:
    numbers_of = ", ".join(NUMBER_COLUMNS)
    exclusions_of = ", ".join(EXCLUSION_COLUMNS)
    # SQLite compares row values with IS NOT; both spellings mean "null-safe differs".
    number_changed = _number_changed().replace("IS DISTINCT FROM", "IS NOT")
    exclusion_changed = _exclusion_changed().replace("IS DISTINCT FROM", "IS NOT")
    op.execute(
        f"CREATE TRIGGER number_counts_insert AFTER INSERT ON numbers BEGIN {_upsert_number('NEW', '+')} END"
    )
    op.execute(
        f"CREATE TRIGGER number_counts_delete AFTER DELETE ON numbers BEGIN {_upsert_number('OLD', '-')} END"
    )
    op.execute(
        f"CREATE TRIGGER number_counts_update AFTER UPDATE OF {numbers_of} ON numbers"
        f" WHEN {number_changed}"
        f" BEGIN {_upsert_number('OLD', '-')} {_upsert_number('NEW', '+')} END"
    )
    op.execute(
        "CREATE TRIGGER exclusion_counts_insert AFTER INSERT ON number_exclusions"
        f" BEGIN {_upsert_exclusion('NEW', '+')} END"
    )
    op.execute(
        "CREATE TRIGGER exclusion_counts_delete AFTER DELETE ON number_exclusions"
        f" BEGIN {_upsert_exclusion('OLD', '-')} END"
    )
    op.execute(
        f"CREATE TRIGGER exclusion_counts_update AFTER UPDATE OF {exclusions_of} ON number_exclusions"
        f" WHEN {exclusion_changed}"
        f" BEGIN {_upsert_exclusion('OLD', '-')} {_upsert_exclusion('NEW', '+')} END"
    )


def _postgres_triggers() -> None:
    op.execute(
        "CREATE FUNCTION simgate_number_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF TG_OP <> 'INSERT' THEN"
        f" INSERT INTO {NUMBER_DELTAS} (lane, country, operator, numbers, rentable)"
        f" VALUES ({lane_of('OLD')}, OLD.country, OLD.operator, -1, -({rentable_of('OLD')}));"
        " END IF;"
        " IF TG_OP <> 'DELETE' THEN"
        f" INSERT INTO {NUMBER_DELTAS} (lane, country, operator, numbers, rentable)"
        f" VALUES ({lane_of('NEW')}, NEW.country, NEW.operator, 1, {rentable_of('NEW')});"
        " END IF;"
        " RETURN NULL; END $$"
    )
    op.execute(
        "CREATE FUNCTION simgate_exclusion_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF TG_OP <> 'INSERT' AND {binds('OLD')} THEN"
        f" INSERT INTO {EXCLUSION_DELTAS} (lane, country, operator, service, numbers)"
        " VALUES (OLD.counted_lane, OLD.country, OLD.operator, OLD.service, -1);"
        " END IF;"
        f" IF TG_OP <> 'DELETE' AND {binds('NEW')} THEN"
        f" INSERT INTO {EXCLUSION_DELTAS} (lane, country, operator, service, numbers)"
        " VALUES (NEW.counted_lane, NEW.country, NEW.operator, NEW.service, 1);"
        " END IF;"
        " RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER number_counts_insert_delete AFTER INSERT OR DELETE ON numbers"
        " FOR EACH ROW EXECUTE FUNCTION simgate_number_counts()"
    )
    op.execute(
        f"CREATE TRIGGER number_counts_update AFTER UPDATE OF {', '.join(NUMBER_COLUMNS)} ON numbers"
        f" FOR EACH ROW WHEN ({_number_changed()}) EXECUTE FUNCTION simgate_number_counts()"
    )
    op.execute(
        "CREATE TRIGGER exclusion_counts_insert_delete AFTER INSERT OR DELETE ON number_exclusions"
        " FOR EACH ROW EXECUTE FUNCTION simgate_exclusion_counts()"
    )
    op.execute(
        f"CREATE TRIGGER exclusion_counts_update AFTER UPDATE OF {', '.join(EXCLUSION_COLUMNS)}"
        f" ON number_exclusions FOR EACH ROW WHEN ({_exclusion_changed()})"
        " EXECUTE FUNCTION simgate_exclusion_counts()"
    )


def upgrade() -> None:
    _tables()
    _backfill()
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()
    # The numbers a resale window hides now: one marketplace's sales since the window began.
    op.create_index(
        "ix_operations_recent_sales",
        "operations",
        ["marketplace", "finished_at", "kind", "number_id"],
        sqlite_where=sa.text("finish_status = 3"),
        postgresql_where=sa.text("finish_status = 3"),
    )


def downgrade() -> None:
    op.drop_index("ix_operations_recent_sales", "operations")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER exclusion_counts_update ON number_exclusions")
        op.execute("DROP TRIGGER exclusion_counts_insert_delete ON number_exclusions")
        op.execute("DROP TRIGGER number_counts_update ON numbers")
        op.execute("DROP TRIGGER number_counts_insert_delete ON numbers")
        op.execute("DROP FUNCTION simgate_exclusion_counts()")
        op.execute("DROP FUNCTION simgate_number_counts()")
    else:
        for name in (
            "exclusion_counts_update",
            "exclusion_counts_delete",
            "exclusion_counts_insert",
            "number_counts_update",
            "number_counts_delete",
            "number_counts_insert",
        ):
            op.execute(f"DROP TRIGGER {name}")
    for table in (EXCLUSION_DELTAS, NUMBER_DELTAS, EXCLUDED, COUNTS):
        op.drop_table(table)
