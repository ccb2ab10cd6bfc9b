"""Numbers, their per-service exclusions, and marketplace operations.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only makes INTEGER PRIMARY KEY a rowid alias; PostgreSQL wants 64-bit ids.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

FREE = "open_operation_id IS NULL AND enabled AND online"


def upgrade() -> None:
    op.create_table(
        "numbers",
        sa.Column("id", Id, primary_key=True),
        sa.Column("phone", sa.String(20), nullable=False, unique=True),
        sa.Column("country", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False, server_default=""),
        sa.Column("port", sa.String(200), nullable=False, server_default=""),
        sa.Column("rentable", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("online", sa.Boolean(), nullable=False, server_default=sa.true()),
        # Denormalised from operations so GET_SERVICES and GET_NUMBER read one table; kept
        # in step by the same transaction that opens or finishes the operation.
        sa.Column("open_operation_id", sa.BigInteger(), nullable=True),
        sa.Column("last_issued_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    # GET_NUMBER walks these in last-issued order and stops at the first match.
    op.create_index(
        "ix_numbers_free_country",
        "numbers",
        ["country", "last_issued_at"],
        sqlite_where=sa.text(FREE),
        postgresql_where=sa.text(FREE),
    )
    op.create_index(
        "ix_numbers_free_operator",
        "numbers",
        ["country", "operator", "last_issued_at"],
        sqlite_where=sa.text(FREE),
        postgresql_where=sa.text(FREE),
    )
    op.create_table(
        "number_exclusions",
        sa.Column("number_id", Id, sa.ForeignKey("numbers.id"), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "operations",
        sa.Column("id", Id, primary_key=True),
        sa.Column("marketplace", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("number_id", Id, sa.ForeignKey("numbers.id"), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("country", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=True),
        sa.Column("offered_kopecks", sa.BigInteger(), nullable=True),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("finish_status", sa.Integer(), nullable=True),
        sa.Column("final_kopecks", sa.BigInteger(), nullable=True),
        sa.Column("finish_requests", sa.Integer(), nullable=False, server_default="0"),
        # AUTOINCREMENT: SQLite must never hand out an activationId twice, even after the
        # highest row is deleted; Onlinesim matches FINISH on it.
        sqlite_autoincrement=True,
    )
    # The last line of defence against issuing one SIM twice: at most one open operation
    # per number, whatever the code above it does.
    op.create_index(
        "ux_operations_open_number",
        "operations",
        ["number_id"],
        unique=True,
        sqlite_where=sa.text("finished_at IS NULL"),
        postgresql_where=sa.text("finished_at IS NULL"),
    )
    op.create_index("ix_operations_opened_at", "operations", ["opened_at"])


def downgrade() -> None:
    op.drop_table("operations")
    op.drop_table("number_exclusions")
    op.drop_table("numbers")
