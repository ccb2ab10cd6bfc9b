"""Alert notices remember when an instance claimed them.

Two instances checking the same database both read an unsent notice; the claim (a conditional
update of its attempt count) let only one send it, but an instance that read the notice after
the other had claimed it, and before that send was recorded, saw the new count and claimed it
again: two messages. The claim now also stamps `claimed_at`, and a notice claimed less than a
lease ago is nobody else's to claim; a failed send clears the stamp for the next check.

Revision ID: 0013
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_notices") as batch:
        batch.add_column(sa.Column("claimed_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_notices") as batch:
        batch.drop_column("claimed_at")
