"""PostgreSQL: less server work per GET_NUMBER + FINISH, same rows written (issue 14, target 5).

Measured on the server's backend (serial pairs through PostgresStore, interleaved A/B, ~1.4 ms
of backend CPU per pair at the time), two costs that change nothing the contract sees:

- The count triggers on `numbers` and `number_exclusions` had WHEN clauses. PostgreSQL keeps
  a trigger's WHEN as text and reads it back into an expression tree for every statement
  that updates a row of the table (the claim and FINISH each update a number and its
  exclusions): migration 0011's long null-safe comparisons were parsed up to four times per
  pair. The same comparisons now run inside the functions, and a number update's two delta
  rows go in one INSERT. The triggers still fire only for `UPDATE OF` the counted columns.
- `simgate_finish` locked the operation (SELECT ... FOR UPDATE), counted the request in one
  UPDATE and closed it in a second: three row versions. It now closes an open operation and
  counts the request in one UPDATE, which takes the same row lock; only a repeated or unknown
  FINISH runs a second statement. Two FINISHes of one activation still queue on that lock,
  and the second, re-checking `finished_at IS NULL` on the row the first committed, answers
  "repeated". The rest is migration 0012's, unchanged.

SQLite needs neither: its triggers are SQL evaluated in place and FINISH runs as steps.

Revision ID: 0017
Revises: 0016
"""

import importlib
from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONS = "simgate.storage.migrations.versions"
counts = importlib.import_module(f"{VERSIONS}.0011_maintained_counts")
one_trip = importlib.import_module(f"{VERSIONS}.0012_pg_one_round_trip")

DELTAS = "INSERT INTO number_count_deltas (lane, country, operator, numbers, rentable) VALUES"
NUMBER_COUNTS = f"""
CREATE OR REPLACE FUNCTION simgate_number_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_lane text;
    new_lane text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_lane := {counts.lane_of("OLD")};
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_lane := {counts.lane_of("NEW")};
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- What migration 0011's WHEN clause compared: the counted group and the rentable flag.
        IF (old_lane, OLD.country, OLD.operator, {counts.rentable_of("OLD")})
            IS NOT DISTINCT FROM (new_lane, NEW.country, NEW.operator, {counts.rentable_of("NEW")}) THEN
            RETURN NULL;
        END IF;
        {DELTAS} (old_lane, OLD.country, OLD.operator, -1, -({counts.rentable_of("OLD")})),
            (new_lane, NEW.country, NEW.operator, 1, {counts.rentable_of("NEW")});
    ELSIF TG_OP = 'DELETE' THEN
        {DELTAS} (old_lane, OLD.country, OLD.operator, -1, -({counts.rentable_of("OLD")}));
    ELSE
        {DELTAS} (new_lane, NEW.country, NEW.operator, 1, {counts.rentable_of("NEW")});
    END IF;
    RETURN NULL;
END
$$
"""


def _exclusion_counts(check: str) -> str:
    old, new = counts.binds("OLD"), counts.binds("NEW")
    deltas = "INSERT INTO exclusion_count_deltas (lane, country, operator, service, numbers) VALUES"
    return (
        "CREATE OR REPLACE FUNCTION simgate_exclusion_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" {check}"
        f" IF TG_OP <> 'INSERT' AND {old} THEN"
        f" {deltas} (OLD.counted_lane, OLD.country, OLD.operator, OLD.service, -1);"
        " END IF;"
        f" IF TG_OP <> 'DELETE' AND {new} THEN"
        f" {deltas} (NEW.counted_lane, NEW.country, NEW.operator, NEW.service, 1);"
        " END IF;"
        " RETURN NULL; END $$"
    )


# What migration 0011's WHEN clause on number_exclusions compared, now inside the function.
EXCLUSION_UNCHANGED = (
    f"IF TG_OP = 'UPDATE' AND ({counts.binding_lane('OLD')}, OLD.country, OLD.operator, OLD.service)"
    f" IS NOT DISTINCT FROM ({counts.binding_lane('NEW')}, NEW.country, NEW.operator, NEW.service)"
    " THEN RETURN NULL; END IF;"
)

CLOSE = """
    UPDATE operations SET finish_requests = finish_requests + 1, finished_at = p_now,
        finish_status = p_status, final_kopecks = p_final
    WHERE id = p_id AND marketplace = p_marketplace AND finished_at IS NULL
    RETURNING id, marketplace, kind, number_id, country, service INTO op;
    IF NOT FOUND THEN
        -- Finished already (count the request) or not this marketplace's (unknown here).
        UPDATE operations SET finish_requests = finish_requests + 1
        WHERE id = p_id AND marketplace = p_marketplace;
        IF FOUND THEN
            RETURN 'repeated';
        END IF;
        RETURN 'unknown';
    END IF;
"""

OLD_CLOSE = """
    SELECT id, marketplace, kind, number_id, country, service, finished_at INTO op
    FROM operations WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR op.marketplace <> p_marketplace THEN
        -- Another marketplace's activation is unknown here.
        RETURN 'unknown';
    END IF;
    UPDATE operations SET finish_requests = finish_requests + 1 WHERE id = p_id;
    IF op.finished_at IS NOT NULL THEN
        RETURN 'repeated';
    END IF;
    UPDATE operations SET finished_at = p_now, finish_status = p_status, final_kopecks = p_final
    WHERE id = p_id AND finished_at IS NULL;
"""


def _finish() -> str:
    finish = str(one_trip.FINISH)
    if OLD_CLOSE not in finish:
        raise RuntimeError("migration 0012's simgate_finish changed: rewrite 0017's FINISH from it")
    return finish.replace(OLD_CLOSE, CLOSE)


def _update_triggers(numbers_when: str, exclusions_when: str) -> None:
    op.execute("DROP TRIGGER number_counts_update ON numbers")
    op.execute(
        f"CREATE TRIGGER number_counts_update AFTER UPDATE OF {', '.join(counts.NUMBER_COLUMNS)} ON numbers"
        f" FOR EACH ROW {numbers_when} EXECUTE FUNCTION simgate_number_counts()"
    )
    op.execute("DROP TRIGGER exclusion_counts_update ON number_exclusions")
    op.execute(
        f"CREATE TRIGGER exclusion_counts_update AFTER UPDATE OF {', '.join(counts.EXCLUSION_COLUMNS)}"
        f" ON number_exclusions FOR EACH ROW {exclusions_when} EXECUTE FUNCTION simgate_exclusion_counts()"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NUMBER_COUNTS)
    op.execute(_exclusion_counts(EXCLUSION_UNCHANGED))
    _update_triggers("", "")
    op.execute(_finish())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(one_trip.FINISH)
    _update_triggers(f"WHEN ({counts._number_changed()})", f"WHEN ({counts._exclusion_changed()})")
    op.execute(_exclusion_counts(""))
    op.execute(
        "CREATE OR REPLACE FUNCTION simgate_number_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF TG_OP <> 'INSERT' THEN"
        f" INSERT INTO {counts.NUMBER_DELTAS} (lane, country, operator, numbers, rentable)"
        f" VALUES ({counts.lane_of('OLD')}, OLD.country, OLD.operator, -1, -({counts.rentable_of('OLD')}));"
        " END IF;"
        " IF TG_OP <> 'DELETE' THEN"
        f" INSERT INTO {counts.NUMBER_DELTAS} (lane, country, operator, numbers, rentable)"
        f" VALUES ({counts.lane_of('NEW')}, NEW.country, NEW.operator, 1, {counts.rentable_of('NEW')});"
        " END IF;"
        " RETURN NULL; END $$"
    )
