"""The schema check reads the migration files and the revision table itself (schema.py): it
must say what Alembic says, and `simgate`'s commands must not import Alembic for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from simgate.storage import schema


def alembic_script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(schema.MIGRATIONS))
    return ScriptDirectory.from_config(config)


def alembic_current(url: str) -> str | None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_head_and_known_revisions_are_alembic_s() -> None:
    script = alembic_script()
    assert schema.head_revision() == script.get_current_head()
    assert schema.known_revisions() == {rev.revision for rev in script.walk_revisions()}


def test_the_stored_revision_is_alembic_s(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert schema.current_revision(url) is None  # an empty file: no revision table yet
    assert alembic_current(url) is None
    schema.upgrade(url)
    assert schema.current_revision(url) == alembic_current(url) == schema.head_revision()


def test_checking_the_schema_imports_neither_alembic_nor_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    schema.upgrade(url)
    probe = (
        "import sys\n"
        "from simgate.storage import schema\n"
        f"schema.check_current({url!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'sqlalchemy')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n", result.stderr


def test_the_stored_revision_on_postgresql_is_alembic_s(postgres_database: str) -> None:
    alembic = alembic_current(schema.sqlalchemy_url(postgres_database))
    assert schema.current_revision(postgres_database) == alembic == schema.head_revision()
