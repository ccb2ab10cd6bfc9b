"""A new database is switched to WAL once, before the writer and readers open it.

SQLite's switch to WAL takes an exclusive lock without waiting on the busy timeout: when the
writer's first connection and a reader's first connection both switched a database that
`migrate` had just made, one of them failed at once with "database is locked" (seen on CI as
a false "database writes fail" alert between two alert monitors on one store). Two threads
switching one new file at the same moment failed 14 times in 300 on this machine.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from simgate.storage import schema
from simgate.storage.sqlite import SQLiteStore, enable_wal


def journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_a_migrated_database_is_in_wal_mode_as_soon_as_the_store_is_made(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    schema.upgrade(f"sqlite:///{path}")
    assert journal_mode(path) == "delete"  # what migrate leaves
    store = SQLiteStore(str(path))
    try:
        # Before any unit or read: no thread's first connection has to switch it any more.
        assert journal_mode(path) == "wal"
    finally:
        store.close()


def test_the_switch_waits_for_another_connection_s_lock_to_go(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    schema.upgrade(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN")
    holder.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a shared lock
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    try:
        enable_wal(str(path), patience=10)  # would raise "database is locked" at once
    finally:
        holder.close()
    assert journal_mode(path) == "wal"


def test_the_switch_gives_up_after_its_patience(tmp_path: Path) -> None:
    path = tmp_path / "stuck.db"
    schema.upgrade(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN")
    holder.execute("SELECT count(*) FROM sqlite_master").fetchone()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            enable_wal(str(path), patience=0.2)
    finally:
        holder.close()


def test_the_writer_checkpoints_every_4000_pages_and_readers_keep_the_defaults(tmp_path: Path) -> None:
    """A claim and its FINISH write ~8 WAL pages, many rewritten by the next pairs: a longer
    interval between checkpoints copies each page fewer times (storage/sqlite.py)."""
    from simgate.storage.sqlite import WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT, SQLiteStore

    store = SQLiteStore(str(tmp_path / "w.db"))
    try:

        def pragmas(uow: object) -> tuple[int, int]:
            db = uow.messages.db  # type: ignore[attr-defined]
            return db.execute("PRAGMA wal_autocheckpoint").fetchone()[0], db.execute(
                "PRAGMA journal_size_limit"
            ).fetchone()[0]

        assert store.run(pragmas) == (WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT) == (4000, 64 * 1024 * 1024)
        assert store.run_read(pragmas)[0] == 1000  # a reader never writes, so never checkpoints
    finally:
        store.close()
