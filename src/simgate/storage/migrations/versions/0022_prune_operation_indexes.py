"""History pruning: whether an old operation keeps a message, in two index probes.

An operation goes once none of its messages stays (storage/sql_history.py). That was asked
of each of its messages (`goes`: a lookup in operations and one in deliveries per message),
through `ix_messages_operation`, in every batch of the operations' walk until its messages
were gone: a rent with 10,000 SMS cost 10,000 x 2 lookups per batch, the batch grew with
the rent (325 ms at 10,000 SMS per operation, bench/prune_stuck.py --postgres), and a long
enough rent would pass the 5 s statement timeout. Of a finished operation a message stays
only when it is newer than the horizon or a push of it is pending, and a push carries its
message's operation; so now:
- `messages (operation_id, stored_at)`: its newest message, one probe (replaces
  `ix_messages_operation (operation_id)`, migration 0002, which it serves as well);
- `deliveries (operation_id, state)`: a pending push of it, one probe (replaces
  `ix_deliveries_operation (operation_id)`, migration 0020, used by the foreign key checks
  of deleting an operation, which it serves as well).

Both dialects. The walks' own indexes (messages by stored_at, operations by finished_at,
notices by sent_at) were tried as (key, id) on PostgreSQL too, with no measurable gain:
their order is read from the key, and ties on a float timestamp are rare (docs/benchmarks.md).

Building an index holds writes to its table back while it is built: on a large history,
run `simgate migrate` in a quiet hour (about a second per million rows).

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = (
    # (table, old index, its column, new index, its columns)
    (
        "messages",
        "ix_messages_operation",
        "operation_id",
        "ix_messages_operation_stored",
        ("operation_id", "stored_at"),
    ),
    (
        "deliveries",
        "ix_deliveries_operation",
        "operation_id",
        "ix_deliveries_operation_state",
        ("operation_id", "state"),
    ),
)


def upgrade() -> None:
    for table, old, _, new, columns in REPLACED:
        op.create_index(new, table, list(columns))
        op.drop_index(old, table_name=table)


def downgrade() -> None:
    for table, old, column, new, _ in REPLACED:
        op.create_index(old, table, [column])
        op.drop_index(new, table_name=table)
