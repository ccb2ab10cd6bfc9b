"""Each SIM's no-SMS runs keep when they began: the losing filter counts a window only for the
SIMs whose run began before it.

`numbers.rent_no_sms_since` and `numbers.activation_no_sms_since`: per kind, the `opened_at` of
the first operation the kept streak (migration 0025) counts, NULL when that streak is 0
(domain.read_model.run_starts). FINISH keeps them in the UPDATE that frees the number, as it
keeps the streaks (SqlNumbers.release; on PostgreSQL in `simgate_finish`, replaced here from
0025's text): a miss with no run open starts one at the operation's opened_at, an SMS ends it.

Why: where every SIM loses (`make bench`'s load cancels every operation without an SMS), every
SIM was a candidate of 0025's filter and the alert check still counted a week of the farm's
operations, 4 s of CPU every 30 s at 100,000 SIMs (docs/benchmarks.md). A SIM's operations
follow one another, so a run that began at or after the window's start lies wholly in the
window and the kept streak is the window's (read_model.losing_from_kept).

The backfill reads each SIM's whole history once, in 0025's statement shape (copied: a
migration must not change when the application's SQL does), the start being the opened_at of
the run's first operation by id. Adding a nullable column is immediate on both dialects.

Revision ID: 0026
Revises: 0025
"""

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONS = "simgate.storage.migrations.versions"
kept = importlib.import_module(f"{VERSIONS}.0025_kept_no_sms_streaks")

COLUMNS = ("rent_no_sms_since", "activation_no_sms_since")

BACKFILL = (
    "UPDATE numbers SET"
    " rent_no_sms_since = (SELECT f.opened_at FROM operations f WHERE f.id = s.rent),"
    " activation_no_sms_since = (SELECT f.opened_at FROM operations f WHERE f.id = s.activation)"
    " FROM (SELECT t.number_id, MIN(CASE WHEN t.kind = 'rent' THEN t.id END) AS rent,"
    " MIN(CASE WHEN t.kind = 'rent' THEN NULL ELSE t.id END) AS activation"
    " FROM (SELECT o.number_id, o.kind, o.id,"
    " MAX(CASE WHEN EXISTS (SELECT 1 FROM messages m WHERE m.operation_id = o.id)"
    " THEN o.id END) OVER (PARTITION BY o.number_id, o.kind) AS last_hit"
    " FROM operations o WHERE o.finished_at IS NOT NULL) t"
    " WHERE t.last_hit IS NULL OR t.id > t.last_hit GROUP BY t.number_id) s"
    " WHERE numbers.id = s.number_id"
)
"""Every SIM's run starts: per kind, the opened_at of its first finished operation after the
last one that got an SMS."""


def _release(streak: str, since: str) -> str:
    return (
        f"UPDATE numbers SET open_operation_id = NULL, {since} = CASE WHEN EXISTS"
        " (SELECT 1 FROM messages m WHERE m.operation_id = p_id) THEN NULL"
        f" WHEN {streak} = 0 THEN (SELECT o.opened_at FROM operations o WHERE o.id = p_id)"
        f" ELSE {since} END, {streak} = CASE WHEN EXISTS"
        f" (SELECT 1 FROM messages m WHERE m.operation_id = p_id) THEN 0 ELSE {streak} + 1 END"
        " WHERE id = op.number_id AND open_operation_id = p_id;"
    )


RELEASE = f"""    -- The streak of the operation's kind and its run's start, in the update that frees
    -- the number (0025, 0026); SET reads the row as it was.
    IF op.kind = 'rent' THEN
        {_release("rent_no_sms_streak", "rent_no_sms_since")}
    ELSE
        {_release("activation_no_sms_streak", "activation_no_sms_since")}
    END IF;
"""


def _finish() -> str:
    finish = str(kept._finish())
    if finish.count(kept.RELEASE) != 1:
        raise RuntimeError("migration 0025's simgate_finish changed: rewrite 0026's FINISH from it")
    return finish.replace(kept.RELEASE, RELEASE)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("numbers", sa.Column(column, sa.Float(), nullable=True))
    op.execute(BACKFILL)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_finish())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(kept._finish())
    # A plain DROP COLUMN (SQLite 3.35+), not a batch copy of the table: that would drop the
    # triggers of migration 0011 on `numbers` (as 0015's and 0025's downgrades).
    for column in COLUMNS:
        op.drop_column("numbers", column)
