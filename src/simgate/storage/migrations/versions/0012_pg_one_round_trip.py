"""PostgreSQL: GET_NUMBER and FINISH in one round trip each, and a claim that stops early.

`simgate_finish` runs the steps of services/operations.finish_operation on the server (read
the operation, count the request, close it, free its number, copy the number's freeness onto
its exclusion rows, and the sale ledger's consequence that rules.finish_consequence decided
from the status before the call); `simgate_exclude` is SqlNumbers.exclude. Each statement in
them sees the commits before it (READ COMMITTED, as the steps do), and the operation's row is
locked first, so two FINISHes of one activation queue: the second answers "repeated".
(GET_NUMBER needs no function: storage/pg_units.py sends it as one statement.)

The contract tests run FINISH through this function on PostgreSQL and through the steps on
SQLite and in memory, so the two cannot drift; a later change to FREE or to exclude() needs a
new revision replacing these functions.

The claim's indexes gain `id`, the claim's second sort key (ORDER BY last_issued_at, id): a
never-issued SIM has last_issued_at 0, so on a fresh farm every free SIM of a country tied
and PostgreSQL read and sorted them all (~3,000 buffers at 5,000 SIMs) to lock the first; in
index order it reads a handful. SQLite needs neither: its index entries end with the rowid,
which is `id`, and it has no server-side functions.

Revision ID: 0012
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FREE = "n.open_operation_id IS NULL AND n.enabled AND n.online"
COUNTED = f"{FREE} AND n.lane_target IS NULL"

EXCLUDE = f"""
CREATE OR REPLACE FUNCTION simgate_exclude(
    p_number bigint, p_service text, p_reason text, p_now double precision,
    p_marketplace text, p_operation bigint
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    scopes text[];
BEGIN
    SELECT array_agg(marketplace) INTO scopes FROM number_exclusions
    WHERE number_id = p_number AND service = p_service;
    IF '*' = ANY(scopes) OR p_marketplace = ANY(scopes) THEN
        RETURN;
    END IF;
    IF p_marketplace = '*' AND scopes IS NOT NULL THEN
        -- The global row subsumes them: counts must subtract (number, service) once.
        DELETE FROM number_exclusions WHERE number_id = p_number AND service = p_service;
    END IF;
    INSERT INTO number_exclusions (number_id, service, marketplace, reason, created_at,
        country, operator, free, counted_lane, operation_id, origin)
    SELECT n.id, p_service, p_marketplace, p_reason, p_now, n.country, n.operator, ({FREE}),
        CASE WHEN {COUNTED} THEN n.lane END, p_operation,
        COALESCE((SELECT o.marketplace FROM operations o WHERE o.id = p_operation), '')
    FROM numbers n WHERE n.id = p_number;
END
$$
"""

FINISH = f"""
CREATE OR REPLACE FUNCTION simgate_finish(
    p_id bigint, p_marketplace text, p_status integer, p_final bigint, p_now double precision,
    p_reason text, p_scope text, p_retry_limit integer, p_groups jsonb
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    op record;
    other text;
BEGIN
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
    UPDATE numbers SET open_operation_id = NULL WHERE id = op.number_id AND open_operation_id = p_id;
    UPDATE number_exclusions SET country = n.country, operator = n.operator, free = ({FREE}),
        counted_lane = CASE WHEN {COUNTED} THEN n.lane END
    FROM numbers n WHERE n.id = number_exclusions.number_id AND n.id = op.number_id;
    -- A rent receives every sender: it uses up no service.
    IF p_reason IS NULL OR op.kind <> 'activation' OR op.service IS NULL THEN
        RETURN 'finished';
    END IF;
    IF p_retry_limit IS NOT NULL AND (
        SELECT COUNT(*) FROM operations WHERE number_id = op.number_id AND service = op.service
        AND marketplace = op.marketplace AND finish_status = p_status
    ) < p_retry_limit THEN
        RETURN 'finished';
    END IF;
    PERFORM simgate_exclude(op.number_id, op.service, p_reason, p_now,
        COALESCE(p_scope, op.marketplace), op.id);
    -- ledger.conflicting: the other services of every group holding the sold one that binds
    -- the number's country (a group without countries binds every country).
    FOR other IN
        SELECT DISTINCT s.service FROM jsonb_array_elements(COALESCE(p_groups, '[]')) AS g,
            jsonb_array_elements_text(g -> 'services') AS s(service)
        WHERE (g -> 'services') ? op.service AND s.service <> op.service
            AND (jsonb_array_length(g -> 'countries') = 0 OR (g -> 'countries') ? op.country)
        ORDER BY s.service
    LOOP
        PERFORM simgate_exclude(op.number_id, other, 'group', p_now, '*', op.id);
    END LOOP;
    RETURN 'finished';
END
$$
"""


CLAIM_INDEXES = {
    "ix_numbers_lane_free_country": ["lane", "country", "last_issued_at"],
    "ix_numbers_lane_free_operator": ["lane", "country", "operator", "last_issued_at"],
}
FREE_ROW = "open_operation_id IS NULL AND enabled AND online"


def _claim_indexes(tail: list[str]) -> None:
    for name, columns in CLAIM_INDEXES.items():
        op.drop_index(name, "numbers")
        op.create_index(name, "numbers", [*columns, *tail], postgresql_where=sa.text(FREE_ROW))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(EXCLUDE)
    op.execute(FINISH)
    _claim_indexes(["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _claim_indexes([])
    op.execute(
        "DROP FUNCTION IF EXISTS simgate_finish(bigint, text, integer, bigint, double precision,"
        " text, text, integer, jsonb)"
    )
    op.execute("DROP FUNCTION IF EXISTS simgate_exclude(bigint, text, text, double precision, text, bigint)")
