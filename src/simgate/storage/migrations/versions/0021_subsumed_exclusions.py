"""A marketplace-scoped exclusion survives a global one of the same (number, service).

Until now a global exclusion (`marketplace` '*': an operator's block, a sale, a refusal)
deleted the marketplace-scoped rows of its (number, service), so the counts subtracted that
pair once. Lifting the block (admin.unblock_service) then left the scoped fact gone (a
marketplace's spent status-4 budget, a sale that marketplace forbids reselling), and with
history pruned (services/history.py) nothing could rebuild it: the number was offered again
where it must not be.

Now the scoped rows stay, marked `subsumed` while a global row of their (number, service)
exists, and a subsumed row binds no lane's counts: migration 0011's `binds` gains
`NOT subsumed`, in SQLite's count triggers (0019's, otherwise unchanged) and PostgreSQL's
count function (0017's); the update trigger also fires on `subsumed`. The pair is still
subtracted once, by the global row; when that row goes, its scoped rows count again.

`simgate_exclude` (PostgreSQL's SqlNumbers.exclude, 0012) is replaced to match, and a
marketplace's own global fact (a sale, a refusal, an exclusion group) arriving on a pair the
operator blocked takes the block's row over: it binds for good, while the block could be lifted
and the sale lost with it (the activation was open when the block came).

The counting index leaves subsumed rows out: they count nowhere. No existing row is subsumed
(the old code kept none beside a global row).

Revision ID: 0021
Revises: 0020
"""

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONS = "simgate.storage.migrations.versions"
counts = importlib.import_module(f"{VERSIONS}.0011_maintained_counts")
one_trip = importlib.import_module(f"{VERSIONS}.0012_pg_one_round_trip")
cheaper = importlib.import_module(f"{VERSIONS}.0017_pg_cheaper_pair")
one_bump = importlib.import_module(f"{VERSIONS}.0019_sqlite_one_bump")

EXCLUSION_COLUMNS = (*counts.EXCLUSION_COLUMNS, "subsumed")
LANE_INDEX = "ix_number_exclusions_lane"
LANE_INDEX_COLUMNS = ["counted_lane", "country", "operator", "service", "marketplace"]
DELTAS = "INSERT INTO exclusion_count_deltas (lane, country, operator, service, numbers) VALUES"


def binds(row: str) -> str:
    """The exclusion `row` lowers its counting lane's counts: 0011's rule, unless subsumed."""
    return f"({counts.binds(row)} AND NOT {row}.subsumed)"


def binding_lane(row: str) -> str:
    return f"CASE WHEN {binds(row)} THEN {row}.counted_lane END"


def _upsert_exclusion(row: str, sign: str) -> str:
    return (
        "INSERT INTO exclusion_counts (lane, country, operator, service, numbers)"
        f" SELECT {binding_lane(row)}, {row}.country, {row}.operator, {row}.service, {sign}1"
        f" WHERE {binding_lane(row)} IS NOT NULL"
        " ON CONFLICT (lane, country, operator, service) DO UPDATE"
        " SET numbers = exclusion_counts.numbers + excluded.numbers;"
    )


def _compared(operator: str) -> str:
    """The count `OLD` lowers against the one `NEW` lowers (`operator`: null-safe = or <>)."""
    old = f"{binding_lane('OLD')}, OLD.country, OLD.operator, OLD.service"
    new = f"{binding_lane('NEW')}, NEW.country, NEW.operator, NEW.service"
    return f"({old}) {operator} ({new})"


def _sqlite_triggers() -> list[str]:
    """0019's three exclusion triggers, with this revision's `binds`."""
    bump = one_bump._bump
    either = f"({binds('OLD')} OR {binds('NEW')})"
    return [
        "CREATE TRIGGER exclusion_counts_insert AFTER INSERT ON number_exclusions"
        f" BEGIN {_upsert_exclusion('NEW', '+')} {bump(binds('NEW'))} END",
        "CREATE TRIGGER exclusion_counts_delete AFTER DELETE ON number_exclusions"
        f" BEGIN {_upsert_exclusion('OLD', '-')} {bump(binds('OLD'))} END",
        f"CREATE TRIGGER exclusion_counts_update AFTER UPDATE OF {', '.join(EXCLUSION_COLUMNS)}"
        f" ON number_exclusions WHEN {_compared('IS NOT')}"
        f" BEGIN {_upsert_exclusion('OLD', '-')} {_upsert_exclusion('NEW', '+')} {bump(either)} END",
    ]


EXCLUSION_COUNTS = (
    "CREATE OR REPLACE FUNCTION simgate_exclusion_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    f" IF TG_OP = 'UPDATE' AND {_compared('IS NOT DISTINCT FROM')} THEN RETURN NULL; END IF;"
    f" IF TG_OP <> 'INSERT' AND {binds('OLD')} THEN"
    f" {DELTAS} (OLD.counted_lane, OLD.country, OLD.operator, OLD.service, -1);"
    " END IF;"
    f" IF TG_OP <> 'DELETE' AND {binds('NEW')} THEN"
    f" {DELTAS} (NEW.counted_lane, NEW.country, NEW.operator, NEW.service, 1);"
    " END IF;"
    " RETURN NULL; END $$"
)
"""0017's function, with this revision's `binds`."""

FREE = "n.open_operation_id IS NULL AND n.enabled AND n.online"
COUNTED = f"{FREE} AND n.lane_target IS NULL"
EXCLUDE = f"""
CREATE OR REPLACE FUNCTION simgate_exclude(
    p_number bigint, p_service text, p_reason text, p_now double precision,
    p_marketplace text, p_operation bigint
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    held text;
BEGIN
    SELECT reason INTO held FROM number_exclusions
    WHERE number_id = p_number AND service = p_service AND marketplace = p_marketplace;
    IF FOUND THEN
        IF p_marketplace = '*' AND held = 'blocked' AND p_reason <> 'blocked' THEN
            -- A marketplace's fact binds for good; the operator's block could be lifted.
            UPDATE number_exclusions SET reason = p_reason, created_at = p_now,
                operation_id = p_operation,
                origin = COALESCE((SELECT o.marketplace FROM operations o WHERE o.id = p_operation), '')
            WHERE number_id = p_number AND service = p_service AND marketplace = '*';
        END IF;
        RETURN;
    END IF;
    IF p_marketplace = '*' THEN
        -- The scoped rows stay (their facts outlive the global one) but count no more.
        UPDATE number_exclusions SET subsumed = TRUE
        WHERE number_id = p_number AND service = p_service AND NOT subsumed;
    END IF;
    INSERT INTO number_exclusions (number_id, service, marketplace, reason, created_at,
        country, operator, free, counted_lane, operation_id, origin, subsumed)
    SELECT n.id, p_service, p_marketplace, p_reason, p_now, n.country, n.operator, ({FREE}),
        CASE WHEN {COUNTED} THEN n.lane END, p_operation,
        COALESCE((SELECT o.marketplace FROM operations o WHERE o.id = p_operation), ''),
        p_marketplace <> '*' AND EXISTS (SELECT 1 FROM number_exclusions g
            WHERE g.number_id = p_number AND g.service = p_service AND g.marketplace = '*')
    FROM numbers n WHERE n.id = p_number;
END
$$
"""


def _lane_index(where: str) -> None:
    op.create_index(
        LANE_INDEX,
        "number_exclusions",
        LANE_INDEX_COLUMNS,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def _postgres_update_trigger(columns: Sequence[str]) -> None:
    op.execute("DROP TRIGGER exclusion_counts_update ON number_exclusions")
    op.execute(
        f"CREATE TRIGGER exclusion_counts_update AFTER UPDATE OF {', '.join(columns)}"
        " ON number_exclusions FOR EACH ROW EXECUTE FUNCTION simgate_exclusion_counts()"
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "number_exclusions", sa.Column("subsumed", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.drop_index(LANE_INDEX, "number_exclusions")
    _lane_index("counted_lane IS NOT NULL AND NOT subsumed")
    if postgres:
        op.execute(EXCLUSION_COUNTS)
        _postgres_update_trigger(EXCLUSION_COLUMNS)
        op.execute(EXCLUDE)
    else:
        for name in ("exclusion_counts_insert", "exclusion_counts_delete", "exclusion_counts_update"):
            op.execute(f"DROP TRIGGER {name}")
        for trigger in _sqlite_triggers():
            op.execute(trigger)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # One row per (number, service) bound a marketplace before: the scoped facts under a
    # global one go, as they did then (they count nowhere, so no count moves).
    op.execute("DELETE FROM number_exclusions WHERE subsumed")
    op.drop_index(LANE_INDEX, "number_exclusions")
    if postgres:
        op.execute(one_trip.EXCLUDE)
        op.execute(cheaper._exclusion_counts(cheaper.EXCLUSION_UNCHANGED))
        _postgres_update_trigger(counts.EXCLUSION_COLUMNS)
        op.execute("ALTER TABLE number_exclusions DROP COLUMN subsumed")
    else:
        for name in ("exclusion_counts_insert", "exclusion_counts_delete", "exclusion_counts_update"):
            op.execute(f"DROP TRIGGER {name}")
        # Not batch mode: rebuilding the table would drop its other triggers.
        op.execute("ALTER TABLE number_exclusions DROP COLUMN subsumed")
        for trigger in one_bump._triggers()[3:]:
            op.execute(trigger)
    _lane_index("counted_lane IS NOT NULL")
