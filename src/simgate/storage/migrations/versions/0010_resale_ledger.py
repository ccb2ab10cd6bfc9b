"""Resale windows: an index over the sale ledger.

A resale window (domain/ledger.py) asks, for each SIM a marketplace would count or issue,
whether it was sold on a given marketplace (or anywhere but it) after a given time. The
ledger is the operations table; this partial index holds only its sales, so that probe is
one index lookup per SIM and GET_SERVICES stays in milliseconds.

Revision ID: 0010
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_operations_sales",
        "operations",
        ["number_id", "marketplace", "finished_at"],
        sqlite_where=sa.text("finish_status = 3"),
        postgresql_where=sa.text("finish_status = 3"),
    )


def downgrade() -> None:
    op.drop_index("ix_operations_sales", "operations")
