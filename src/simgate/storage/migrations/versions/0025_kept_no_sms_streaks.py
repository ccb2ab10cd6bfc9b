"""Each SIM's no-SMS streaks, kept on its row: the losing filter reads its candidates only.

`numbers.rent_no_sms_streak` and `numbers.activation_no_sms_streak`: per kind, the SIM's
finished operations in a row, all time, that got no SMS since the last one that did
(domain.read_model.streaks over its whole history, in id order). FINISH keeps them, in the
UPDATE that frees the number (SqlNumbers.release; on PostgreSQL in `simgate_finish`, replaced
here from 0017's text). An SMS attaches only to an open operation (services/intake.py), so
whether one got an SMS is settled when it is finished.

Why: the alert check (every 30 s) and the dashboard overview asked for the losing SIMs with a
window function over every finished operation of the last week: 4 s of CPU per call at
100,000 SIMs and a million operations a week (docs/benchmarks.md). A streak over the last
week (STREAK_WINDOW) never exceeds the all-time one, so only a SIM whose kept streak reaches a
threshold can lose, and the exact windowed count now reads those SIMs' operations only
(sql_reports). The windowed count stays the answer: the kept streaks only choose candidates.

The backfill counts each SIM's whole history once, in one statement both dialects accept
(the window-function shape of sql_reports._trailing, copied: a migration must not change when
the application's SQL does). Adding a column with a constant default is immediate on both.

Revision ID: 0025
Revises: 0024
"""

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONS = "simgate.storage.migrations.versions"
cheaper = importlib.import_module(f"{VERSIONS}.0017_pg_cheaper_pair")

COLUMNS = ("rent_no_sms_streak", "activation_no_sms_streak")

BACKFILL = (
    "UPDATE numbers SET rent_no_sms_streak = s.rent, activation_no_sms_streak = s.activation"
    " FROM (SELECT t.number_id, SUM(CASE WHEN t.kind = 'rent' THEN 1 ELSE 0 END) AS rent,"
    " SUM(CASE WHEN t.kind = 'rent' THEN 0 ELSE 1 END) AS activation"
    " FROM (SELECT o.number_id, o.kind, o.id,"
    " MAX(CASE WHEN EXISTS (SELECT 1 FROM messages m WHERE m.operation_id = o.id)"
    " THEN o.id END) OVER (PARTITION BY o.number_id, o.kind) AS last_hit"
    " FROM operations o WHERE o.finished_at IS NOT NULL) t"
    " WHERE t.last_hit IS NULL OR t.id > t.last_hit GROUP BY t.number_id) s"
    " WHERE numbers.id = s.number_id"
)
"""Every SIM's streaks: per kind, its finished operations after the last one that got an SMS."""

OLD_RELEASE = (
    "    UPDATE numbers SET open_operation_id = NULL WHERE id = op.number_id AND open_operation_id = p_id;\n"
)


def _release(column: str) -> str:
    return (
        f"UPDATE numbers SET open_operation_id = NULL, {column} = CASE WHEN EXISTS"
        f" (SELECT 1 FROM messages m WHERE m.operation_id = p_id) THEN 0 ELSE {column} + 1 END"
        " WHERE id = op.number_id AND open_operation_id = p_id;"
    )


RELEASE = f"""    -- The streak of the operation's kind, in the update that frees the number (0025).
    IF op.kind = 'rent' THEN
        {_release("rent_no_sms_streak")}
    ELSE
        {_release("activation_no_sms_streak")}
    END IF;
"""


def _finish() -> str:
    finish = str(cheaper._finish())
    if finish.count(OLD_RELEASE) != 1:
        raise RuntimeError("migration 0017's simgate_finish changed: rewrite 0025's FINISH from it")
    return finish.replace(OLD_RELEASE, RELEASE)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("numbers", sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
    op.execute(BACKFILL)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_finish())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(cheaper._finish())
    # A plain DROP COLUMN (SQLite 3.35+), not a batch copy of the table: that would drop the
    # triggers of migration 0011 on `numbers` (as 0015's downgrade).
    for column in COLUMNS:
        op.drop_column("numbers", column)
