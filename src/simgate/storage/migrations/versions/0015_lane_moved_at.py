"""Lanes rotate idle SIMs: when each SIM last changed lane.

`numbers.lane_moved_at` is stamped when a SIM is placed in a lane or marked leaving it. With
`last_issued_at` it says how long a free SIM has sat in its lane unsold; SIMs idle that long
(SIMGATE_LANE_IDLE_SECONDS) are the first to leave a lane and are swapped between lanes, so a
lane whose SIMs are spent for its marketplace gets others (README, "Several marketplaces on
one farm"). NULL (every SIM before this revision) reads as long ago: such a SIM is idle as soon
as its last issue is old enough.

Revision ID: 0015
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("numbers", sa.Column("lane_moved_at", sa.Float(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+), not a batch copy of the table: that would drop the
    # triggers of migration 0011 on `numbers`.
    op.drop_column("numbers", "lane_moved_at")
