"""Several marketplaces on one farm: marketplaces, lanes, scoped exclusions, currency.

- `marketplaces`: which sell now (bootstrap registers the enabled ones at every start), their
  lane weight and the time of their last answered GET_SERVICES. Onlinesim, the only seller
  before this revision, is registered here so an upgraded farm sells exactly as before.
- `numbers` gain their lane (the one marketplace that counts and issues them while free), a
  pending move (`lane_target`, `lane_leaving_at`) and the marketplaces allowed to sell them
  (CSV `marketplaces`, '' = every enabled one). Every existing number goes into the lane of
  the marketplace holding its open operation, or else Onlinesim's.
- `number_exclusions` gain a marketplace scope ('*' everywhere: a sale, a refusal; a name:
  that marketplace's status-4 budget used up), the operation and marketplace that caused them,
  an expiry (unused yet: resale windows) and a copy of the lane that counts their number.
  The primary key grows to (number, service, marketplace), so the table is rebuilt; every
  existing exclusion is kept, as global.
- `operations.currency`: what `offered` and `final` are hundredths of (RUB before this).

Revision ID: 0005
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FREE = "open_operation_id IS NULL AND enabled AND online"
COUNTED = f"{FREE} AND lane_target IS NULL"
N_FREE = "n.open_operation_id IS NULL AND n.enabled AND n.online"


def upgrade() -> None:
    op.create_table(
        "marketplaces",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("weight", sa.Float(), nullable=False, server_default="1"),
        sa.Column("last_services_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO marketplaces (name, enabled, weight, updated_at) VALUES ('onlinesim', TRUE, 1, 0)"
    )

    op.add_column("numbers", sa.Column("lane", sa.String(32), nullable=True))
    op.add_column("numbers", sa.Column("lane_target", sa.String(32), nullable=True))
    op.add_column("numbers", sa.Column("lane_leaving_at", sa.Float(), nullable=True))
    op.add_column("numbers", sa.Column("marketplaces", sa.String(200), nullable=False, server_default=""))
    op.execute(
        "UPDATE numbers SET lane = COALESCE((SELECT o.marketplace FROM operations o"
        " WHERE o.number_id = numbers.id AND o.finished_at IS NULL), 'onlinesim')"
    )
    # GET_NUMBER walks a lane's free SIMs in last-issued order (leaving ones included).
    op.drop_index("ix_numbers_free_country", "numbers")
    op.drop_index("ix_numbers_free_operator", "numbers")
    op.create_index(
        "ix_numbers_lane_free_country",
        "numbers",
        ["lane", "country", "last_issued_at"],
        sqlite_where=sa.text(FREE),
        postgresql_where=sa.text(FREE),
    )
    op.create_index(
        "ix_numbers_lane_free_operator",
        "numbers",
        ["lane", "country", "operator", "last_issued_at"],
        sqlite_where=sa.text(FREE),
        postgresql_where=sa.text(FREE),
    )
    # GET_SERVICES: one lane's counted SIMs per group, from the index alone.
    op.create_index(
        "ix_numbers_lane_counted",
        "numbers",
        ["lane", "country", "operator", "rentable"],
        sqlite_where=sa.text(COUNTED),
        postgresql_where=sa.text(COUNTED),
    )
    # record_poll after every GET_SERVICES looks for leaving SIMs: almost always none.
    op.create_index(
        "ix_numbers_leaving",
        "numbers",
        ["lane", "lane_leaving_at"],
        sqlite_where=sa.text("lane_target IS NOT NULL"),
        postgresql_where=sa.text("lane_target IS NOT NULL"),
    )

    op.add_column("operations", sa.Column("currency", sa.String(3), nullable=False, server_default="RUB"))

    op.create_table(
        "number_exclusions_new",
        sa.Column("number_id", Id, sa.ForeignKey("numbers.id"), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("marketplace", sa.String(32), primary_key=True, server_default="*"),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("country", sa.String(64), nullable=False, server_default=""),
        sa.Column("operator", sa.String(64), nullable=False, server_default=""),
        sa.Column("free", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("counted_lane", sa.String(32), nullable=True),
        sa.Column("operation_id", sa.BigInteger(), nullable=True),
        sa.Column("origin", sa.String(32), nullable=False, server_default=""),
        sa.Column("expires_at", sa.Float(), nullable=True),
    )
    op.execute(
        "INSERT INTO number_exclusions_new (number_id, service, marketplace, reason, created_at,"
        " country, operator, free, counted_lane, origin)"
        " SELECT x.number_id, x.service, '*', x.reason, x.created_at, n.country, n.operator,"
        f" ({N_FREE}), CASE WHEN {N_FREE} AND n.lane_target IS NULL THEN n.lane END,"
        " CASE WHEN x.reason = 'sold' THEN 'onlinesim' ELSE '' END"
        " FROM number_exclusions x JOIN numbers n ON n.id = x.number_id"
    )
    op.drop_table("number_exclusions")
    op.rename_table("number_exclusions_new", "number_exclusions")
    op.create_index(
        "ix_number_exclusions_free_group",
        "number_exclusions",
        ["country", "operator", "service", "marketplace"],
        sqlite_where=sa.text("free"),
        postgresql_where=sa.text("free"),
    )
    op.create_index(
        "ix_number_exclusions_lane",
        "number_exclusions",
        ["counted_lane", "country", "operator", "service", "marketplace"],
        sqlite_where=sa.text("counted_lane IS NOT NULL"),
        postgresql_where=sa.text("counted_lane IS NOT NULL"),
    )


def downgrade() -> None:
    op.create_table(
        "number_exclusions_old",
        sa.Column("number_id", Id, sa.ForeignKey("numbers.id"), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("country", sa.String(64), nullable=False, server_default=""),
        sa.Column("operator", sa.String(64), nullable=False, server_default=""),
        sa.Column("free", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # Only the global exclusions had a meaning before: a marketplace's spent retry budget
    # would otherwise bind every marketplace.
    op.execute(
        "INSERT INTO number_exclusions_old (number_id, service, reason, created_at, country, operator, free)"
        " SELECT number_id, service, reason, created_at, country, operator, free FROM number_exclusions"
        " WHERE marketplace = '*'"
    )
    op.drop_table("number_exclusions")
    op.rename_table("number_exclusions_old", "number_exclusions")
    op.create_index(
        "ix_number_exclusions_free_group",
        "number_exclusions",
        ["country", "operator", "service"],
        sqlite_where=sa.text("free"),
        postgresql_where=sa.text("free"),
    )
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("currency")
    op.drop_index("ix_numbers_leaving", "numbers")
    op.drop_index("ix_numbers_lane_counted", "numbers")
    op.drop_index("ix_numbers_lane_free_operator", "numbers")
    op.drop_index("ix_numbers_lane_free_country", "numbers")
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
    with op.batch_alter_table("numbers") as batch:
        batch.drop_column("marketplaces")
        batch.drop_column("lane_leaving_at")
        batch.drop_column("lane_target")
        batch.drop_column("lane")
    op.drop_table("marketplaces")
