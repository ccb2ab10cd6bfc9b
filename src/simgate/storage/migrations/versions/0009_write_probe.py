"""A scratch table the store writes to while writes fail, to notice when they work again.

With the disk full, nothing may depend on a real write happening to find out that space
returned: the store inserts (and deletes in the same transaction) a block here once a second
until it commits, and only then calls itself writable again (/readyz, marketplace calls).
The table is always empty between probes.

Revision ID: 0009
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "write_probe",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("write_probe")
