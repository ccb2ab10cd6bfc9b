"""GET_SERVICES without scanning the farm: exclusions carry their number's group and freeness.

Counting "free numbers excluded for a service" joined every exclusion to its number on each
GET_SERVICES (~100 ms at 100,000 numbers). The number's country, operator and whether it is
free are now copied onto its exclusion rows, kept in step by the same statements that change
the number (storage/sql.py), so the count is one index-only scan.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FREE = "open_operation_id IS NULL AND enabled AND online"


def upgrade() -> None:
    op.add_column("number_exclusions", sa.Column("country", sa.String(64), nullable=False, server_default=""))
    op.add_column(
        "number_exclusions", sa.Column("operator", sa.String(64), nullable=False, server_default="")
    )
    op.add_column(
        "number_exclusions", sa.Column("free", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.execute(
        "UPDATE number_exclusions SET"
        " country = (SELECT n.country FROM numbers n WHERE n.id = number_exclusions.number_id),"
        " operator = (SELECT n.operator FROM numbers n WHERE n.id = number_exclusions.number_id),"
        f" free = (SELECT {FREE} FROM numbers n WHERE n.id = number_exclusions.number_id)"
    )
    op.create_index(
        "ix_number_exclusions_free_group",
        "number_exclusions",
        ["country", "operator", "service"],
        sqlite_where=sa.text("free"),
        postgresql_where=sa.text("free"),
    )
    # GET_SERVICES: free numbers per group from the index alone, and every group for its zeros.
    op.create_index(
        "ix_numbers_free_group",
        "numbers",
        ["country", "operator", "rentable"],
        sqlite_where=sa.text(FREE),
        postgresql_where=sa.text(FREE),
    )
    op.create_index("ix_numbers_group", "numbers", ["country", "operator"])


def downgrade() -> None:
    op.drop_index("ix_numbers_group", "numbers")
    op.drop_index("ix_numbers_free_group", "numbers")
    op.drop_index("ix_number_exclusions_free_group", "number_exclusions")
    with op.batch_alter_table("number_exclusions") as batch:
        batch.drop_column("free")
        batch.drop_column("operator")
        batch.drop_column("country")
