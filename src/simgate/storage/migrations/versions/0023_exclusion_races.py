"""PostgreSQL: an exclusion written while another unit writes one of the same number.

`simgate_exclude` (0021's; SqlNumbers.exclude on the server, run by FINISH) read the number's
exclusions, then inserted. Under READ COMMITTED two units (an operator's block and a sale's
FINISH, two blocks) could both read before either committed:
- on the same (number, service, marketplace) the second insert waited for the first and then
  failed with a unique violation (the store ran the unit again; the raw unit failed);
- a global row and a scoped row of one (number, service) were written side by side, neither
  seeing the other, so the scoped row was not marked `subsumed` and both lowered the counts
  once the number's copies were synced;
- the copies of the number (free, counted_lane, 0004/0005) were read from before the other
  unit's change (a FINISH freeing the number, a block beside it), so the row counted a busy
  number or did not count a free one.

Now it locks the number's row first (FOR NO KEY UPDATE: what an UPDATE of the number takes,
so it queues with FINISH and the lane moves, and a claim skips the number meanwhile), as
SqlNumbers.exclude and unexclude do: every writer of a number's exclusions holds its number,
and each statement after the lock sees what the unit before it committed. The insert is an
upsert besides, that applies exclude()'s one takeover rule to the row that is there, so a
writer that did not hold the number cannot fail the unit either.

Revision ID: 0023
Revises: 0022
"""

import importlib
from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

subsumed = importlib.import_module("simgate.storage.migrations.versions.0021_subsumed_exclusions")

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
    -- Every writer of a number's exclusions holds the number: the statements below see what
    -- a concurrent block, unblock or FINISH of it committed, and copy the number as it is.
    PERFORM 1 FROM numbers WHERE id = p_number FOR NO KEY UPDATE;
    SELECT reason INTO held FROM number_exclusions
    WHERE number_id = p_number AND service = p_service AND marketplace = p_marketplace;
    IF held IS NOT NULL AND NOT (p_marketplace = '*' AND held = 'blocked' AND p_reason <> 'blocked') THEN
        RETURN;
    END IF;
    IF p_marketplace = '*' AND held IS NULL THEN
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
    FROM numbers n WHERE n.id = p_number
    -- A marketplace's fact (a sale, a refusal, a group) takes the operator's block over: it
    -- binds for good, the block could be lifted and the fact lost with it. Otherwise the row
    -- there stays as it is, its time and cause the first writer's: exclude() is idempotent.
    -- The update copies the number as this call sees it, the call that holds it.
    ON CONFLICT (number_id, service, marketplace) DO UPDATE SET reason = excluded.reason,
        created_at = excluded.created_at, operation_id = excluded.operation_id,
        origin = excluded.origin, country = excluded.country, operator = excluded.operator,
        free = excluded.free, counted_lane = excluded.counted_lane
    WHERE number_exclusions.marketplace = '*' AND number_exclusions.reason = 'blocked'
        AND excluded.reason <> 'blocked';
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EXCLUDE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(subsumed.EXCLUDE)
