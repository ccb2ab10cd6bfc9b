"""Alert notices are found by alert and channel.

Each alert check asks, for every open alert and channel, whether that channel was told of the
current incident (an alert open before a channel was set is announced once when it is added).
The notices are kept for good, so without an index that question read the whole table once per
open alert, every check: months of gateways going silent and coming back would make it slow.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_alert_notices_key_channel", "alert_notices", ["key", "channel", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_notices_key_channel", table_name="alert_notices")
