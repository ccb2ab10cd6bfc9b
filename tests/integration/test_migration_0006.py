"""Migration 0006: a number disabled before it is disabled by both switches (the safe guess)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from simgate.storage import schema


def test_existing_numbers_keep_their_state_under_both_switches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = schema._config(url)
    before = ScriptDirectory.from_config(config).get_revision("0006").down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    with sqlite3.connect(tmp_path / "old.db") as db:
        for phone, enabled in (("79281234567", 1), ("79281234568", 0)):
            db.execute(
                "INSERT INTO numbers (phone, country, operator, port, rentable, enabled, online,"
                " last_issued_at, created_at, updated_at) VALUES (?, 'russia', 'mts', '', 1, ?, 1, 0, 0, 0)",
                (phone, enabled),
            )
    schema.upgrade(url)
    with sqlite3.connect(tmp_path / "old.db") as db:
        rows = db.execute("SELECT phone, enabled, file_enabled, operator_enabled FROM numbers ORDER BY phone")
        assert rows.fetchall() == [("79281234567", 1, 1, 1), ("79281234568", 0, 0, 0)]
