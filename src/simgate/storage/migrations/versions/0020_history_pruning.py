"""History is pruned after SIMGATE_HISTORY_DAYS: the indexes each batch walks, and its log.

Pruning (domain/history.py, storage/sql_history.py) deletes at most 1,000 rows per
transaction, oldest first. Each batch must find its rows without reading the table, or a
prune every few minutes would scan months of messages each time:
- `messages` by `stored_at`: the oldest messages first (the other indexes lead with a number
  or an operation);
- `deliveries` by `operation_id`: whether an old operation still has a push, and the foreign
  key check deleting an operation makes on both databases (PostgreSQL never indexes the
  referring side by itself: without it every deleted operation read the whole outbox);
- `alert_notices` by `sent_at`: notices sent long ago.
Operations are found by `finished_at` (migration 0003), a message's pushes and a push's
attempts by the keys of migration 0002.

`history_prunes` keeps, per table, when a prune last removed rows, how many, and how many
in all: what `simgate status` shows. `pruned_sales` keeps the count and the money of the
sales pruned, per marketplace and currency, in the transaction that prunes them: /metrics
adds them to the sales in the table, so its all-time counters never go down (Prometheus
would read a drop as a restart, and a graph of sales per hour would spike).

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_stored", "messages", ["stored_at"])
    op.create_index("ix_deliveries_operation", "deliveries", ["operation_id"])
    op.create_index("ix_alert_notices_sent", "alert_notices", ["sent_at"])
    op.create_table(
        "history_prunes",
        sa.Column("table_name", sa.String(32), primary_key=True),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("last_rows", sa.BigInteger(), nullable=False),
        sa.Column("total_rows", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "pruned_sales",
        sa.Column("marketplace", sa.String(32), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("sold", sa.BigInteger(), nullable=False),
        sa.Column("earnings", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pruned_sales")
    op.drop_table("history_prunes")
    op.drop_index("ix_alert_notices_sent", table_name="alert_notices")
    op.drop_index("ix_deliveries_operation", table_name="deliveries")
    op.drop_index("ix_messages_stored", table_name="messages")
