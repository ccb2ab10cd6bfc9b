"""Migrations, run through Alembic from code: `simgate migrate` and `serve` on start.

Checking the schema (every other CLI command, `worker`, the tests) reads the revision table and
the migration files without Alembic and SQLAlchemy: importing them costs each `simgate` run
about 0.4 s of CPU. Only `upgrade` loads them; tests/unit/test_schema_revisions.py holds the
light reading to Alembic's own.
"""

from __future__ import annotations

import ast
import sqlite3
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simgate.storage.database_url import DatabaseUrl

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSIONS = MIGRATIONS / "versions"


def sqlalchemy_url(database_url: str) -> str:
    return DatabaseUrl.parse(database_url).sqlalchemy


def _config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url))
    return config


@cache
def _revisions() -> dict[str, tuple[str, ...]]:
    """Each migration's revision and the revisions it follows, as its file assigns them."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        values = dict(_assignments(ast.parse(path.read_text(encoding="utf-8"))))
        if "revision" not in values:
            continue  # __init__.py
        down = values.get("down_revision")
        parents = () if down is None else (down,) if isinstance(down, str) else tuple(down)
        found[str(values["revision"])] = tuple(str(parent) for parent in parents)
    return found


def _assignments(module: ast.Module) -> Iterator[tuple[str, Any]]:
    for node in module.body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            yield target.id, ast.literal_eval(value)


def head_revision() -> str:
    revisions = _revisions()
    followed = {parent for parents in revisions.values() for parent in parents}
    (head,) = (revision for revision in revisions if revision not in followed)
    return head


def current_revision(database_url: str) -> str | None:
    """The revision the database is at (None before the first migration), as Alembic stores it."""
    url = DatabaseUrl.parse(database_url)
    if url.is_sqlite:
        connection = sqlite3.connect(url.sqlite_path())
        try:
            exists = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall() if exists else []
        finally:
            connection.close()
    else:
        import psycopg

        from simgate.storage.pg_hang import with_tcp_settings

        # Keepalives and tcp_user_timeout (storage/pg_hang.py): a peer that goes silent fails
        # this read instead of holding a command or `serve`'s start for ever.
        with psycopg.connect(with_tcp_settings(database_url), autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
            present = exists is not None and exists[0] is not None
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall() if present else []
    if len(rows) > 1:
        raise SchemaMismatch(f"database schema has several heads: {sorted(str(r[0]) for r in rows)}")
    return str(rows[0][0]) if rows else None


class SchemaMismatch(RuntimeError):
    pass


def known_revisions() -> set[str]:
    return set(_revisions())


def upgrade(database_url: str) -> tuple[str | None, str]:
    """Apply pending migrations; returns (revision before, revision after)."""
    before = current_revision(database_url)
    if before is not None and before not in known_revisions():
        raise SchemaMismatch(
            f"database schema is at revision {before}, newer than this simgate knows "
            f"(up to {head_revision()}); upgrade simgate"
        )
    from alembic import command

    command.upgrade(_config(database_url), "head")
    return before, head_revision()


def check_current(database_url: str) -> None:
    """Refuse to run on a schema older or newer than this code (migrate first)."""
    current, head = current_revision(database_url), head_revision()
    if current == head:
        return
    if current is not None and current not in known_revisions():
        raise SchemaMismatch(
            f"database schema is at revision {current}, newer than this simgate knows "
            f"(up to {head}); upgrade simgate"
        )
    raise SchemaMismatch(
        f"database schema is at revision {current or 'none'}, this simgate needs {head}; "
        "run `simgate migrate` first"
    )
