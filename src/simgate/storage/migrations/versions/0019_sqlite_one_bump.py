"""SQLite: the count version moves inside the count triggers, not by triggers of its own.

Migration 0016 put three triggers on each kept total (`number_counts`, `exclusion_counts`)
that add 1 to `count_version` on every row they change. A claim and its FINISH change four
such rows (a number leaves its lane's count and enters the uncounted one, and back), plus one
per exclusion row of the number: each change ran a second trigger program for one UPDATE.
Measured with the claim alone (no HTTP, 16 pairs per commit, bench/claim.py): about 10 % of
the SQLite writer's CPU per pair.

Now the count triggers of migration 0011 end with that UPDATE themselves, once per number
or exclusion row whose counts they change (an exclusion that binds no lane changes no count
and moves nothing). The version still moves in the very transaction that changes a count,
in the database, so 0016's promise stands: no kept GET_SERVICES answer outlives a change.
`rebuild_counts`, the one writer of the totals outside these triggers, moves it itself.

PostgreSQL is unchanged: its version moves by statement triggers on the totals (0016).

Revision ID: 0019
Revises: 0018
"""

import importlib
from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONS = "simgate.storage.migrations.versions"
counts = importlib.import_module(f"{VERSIONS}.0011_maintained_counts")
version = importlib.import_module(f"{VERSIONS}.0016_count_version")

COUNT_TRIGGERS = (
    ("number_counts_insert", "numbers"),
    ("number_counts_delete", "numbers"),
    ("number_counts_update", "numbers"),
    ("exclusion_counts_insert", "number_exclusions"),
    ("exclusion_counts_delete", "number_exclusions"),
    ("exclusion_counts_update", "number_exclusions"),
)


def _bump(condition: str = "") -> str:
    return f"{version.BUMP}{f' AND {condition}' if condition else ''};"


def _triggers() -> list[str]:
    numbers_of = ", ".join(counts.NUMBER_COLUMNS)
    exclusions_of = ", ".join(counts.EXCLUSION_COLUMNS)
    # SQLite compares row values with IS NOT; both spellings mean "null-safe differs".
    number_changed = counts._number_changed().replace("IS DISTINCT FROM", "IS NOT")
    exclusion_changed = counts._exclusion_changed().replace("IS DISTINCT FROM", "IS NOT")
    number, exclusion, binds = counts._upsert_number, counts._upsert_exclusion, counts.binds
    either = f"({binds('OLD')} OR {binds('NEW')})"
    return [
        f"CREATE TRIGGER number_counts_insert AFTER INSERT ON numbers"
        f" BEGIN {number('NEW', '+')} {_bump()} END",
        f"CREATE TRIGGER number_counts_delete AFTER DELETE ON numbers"
        f" BEGIN {number('OLD', '-')} {_bump()} END",
        f"CREATE TRIGGER number_counts_update AFTER UPDATE OF {numbers_of} ON numbers"
        f" WHEN {number_changed}"
        f" BEGIN {number('OLD', '-')} {number('NEW', '+')} {_bump()} END",
        "CREATE TRIGGER exclusion_counts_insert AFTER INSERT ON number_exclusions"
        f" BEGIN {exclusion('NEW', '+')} {_bump(binds('NEW'))} END",
        "CREATE TRIGGER exclusion_counts_delete AFTER DELETE ON number_exclusions"
        f" BEGIN {exclusion('OLD', '-')} {_bump(binds('OLD'))} END",
        f"CREATE TRIGGER exclusion_counts_update AFTER UPDATE OF {exclusions_of} ON number_exclusions"
        f" WHEN {exclusion_changed}"
        f" BEGIN {exclusion('OLD', '-')} {exclusion('NEW', '+')}"
        f" {_bump(either)} END",
    ]


def _drop_count_triggers() -> None:
    for name, _ in COUNT_TRIGGERS:
        op.execute(f"DROP TRIGGER {name}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    for table in version.TOTALS:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {table}_version_{event}")
    _drop_count_triggers()
    for trigger in _triggers():
        op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    _drop_count_triggers()
    counts._sqlite_triggers()
    version._sqlite_triggers()
