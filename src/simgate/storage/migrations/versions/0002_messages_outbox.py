"""SMS received from the hardware, their pending pushes (the outbox) and every push attempt.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", Id, primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        # The hardware's own id; with `source` it recognises a resent SMS (NULLs never clash).
        sa.Column("message_key", sa.String(200), nullable=True),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("number_id", Id, sa.ForeignKey("numbers.id"), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=True),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.Column("operation_id", Id, sa.ForeignKey("operations.id"), nullable=True),
        sa.UniqueConstraint("source", "message_key", name="ux_messages_source_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_messages_operation", "messages", ["operation_id"])
    op.create_index("ix_messages_number", "messages", ["number_id", "stored_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True),
        sa.Column("message_id", Id, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("operation_id", Id, sa.ForeignKey("operations.id"), nullable=False),
        sa.Column("marketplace", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claim_expires_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.UniqueConstraint("message_id", "marketplace", name="ux_deliveries_message"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_deliveries_state", "deliveries", ["state", "created_at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", Id, primary_key=True),
        sa.Column("delivery_id", Id, sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("worker", sa.String(100), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("response", sa.String(500), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_delivery_attempts_delivery", "delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_table("deliveries")
    op.drop_table("messages")
