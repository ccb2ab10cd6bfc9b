"""The operator's own on/off switch beside the CSV's, so a re-import cannot undo a disable.

`enabled` stays the one flag every query reads (the free-number indexes of 0001 and 0004 are
built on it): it is now kept equal to `file_enabled AND operator_enabled`. `file_enabled` is
the CSV's `enabled` column, rewritten by every import; `operator_enabled` is the dashboard's
and `simgate numbers disable`'s, which no import touches. An existing disabled number is
recorded as disabled by both: which one did it is unknown, and selling a SIM the operator
had switched off costs more than asking them to enable it once.

Revision ID: 0006
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy on SQLite): the table and its partial indexes stay as they are.
    for name in ("file_enabled", "operator_enabled"):
        op.add_column("numbers", sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute("UPDATE numbers SET file_enabled = enabled, operator_enabled = enabled")


def downgrade() -> None:
    with op.batch_alter_table("numbers") as batch:
        batch.drop_column("operator_enabled")
        batch.drop_column("file_enabled")
