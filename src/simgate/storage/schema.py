"""Migrations, run through Alembic from code: `simgate migrate` and `serve` on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from simgate.storage.database_url import DatabaseUrl

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlalchemy_url(database_url: str) -> str:
    return DatabaseUrl.parse(database_url).sqlalchemy


def _config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("sqlite:///:memory:")).get_current_head()
    assert head is not None
    return head


def current_revision(database_url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


class SchemaMismatch(RuntimeError):
    pass


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(_config("sqlite:///:memory:"))
    return {rev.revision for rev in script.walk_revisions()}


def upgrade(database_url: str) -> tuple[str | None, str]:
    """Apply pending migrations; returns (revision before, revision after)."""
    before = current_revision(database_url)
    if before is not None and before not in known_revisions():
        raise SchemaMismatch(
            f"database schema is at revision {before}, newer than this simgate knows "
            f"(up to {head_revision()}); upgrade simgate"
        )
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
