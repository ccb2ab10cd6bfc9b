"""Alerts: which are open, the notices still to send, and each marketplace's last call.

Stored so a restart neither re-sends an alert that already went out nor forgets to send
one that resolved while the server was down.

Revision ID: 0008
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
    )
    op.create_table(
        "alert_notices",
        sa.Column("id", Id, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_alert_notices_unsent",
        "alert_notices",
        ["id"],
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "marketplace_calls",
        sa.Column("marketplace", sa.String(64), primary_key=True),
        sa.Column("last_call_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("marketplace_calls")
    op.drop_index("ix_alert_notices_unsent", table_name="alert_notices")
    op.drop_table("alert_notices")
    op.drop_table("alerts")
