"""The embedded default: SQLite in WAL mode, one writer thread, a few reader threads.

Every unit of work runs whole on the writer thread between BEGIN IMMEDIATE and COMMIT, so
claims are serialised without row locks and a use case never sees a half-applied change.
Measured on the target machine this beats per-statement thread hops (aiosqlite) by ~5x.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from simgate.storage.ports import UnitOfWork
from simgate.storage.sql import SqlUnitOfWork

T = TypeVar("T")


def sqlite_path(database_url: str) -> str:
    """`sqlite:///relative/or/./path.db` or `sqlite:////absolute/path.db`."""
    if not database_url.startswith("sqlite:///"):
        raise ValueError("a SQLite URL looks like sqlite:///PATH")
    path = database_url.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        raise ValueError("SQLite needs a file path: the writer and readers share it")
    return path


class SQLiteStore:
    def __init__(self, path: str, *, readers: int = 2, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")

    @classmethod
    def from_url(cls, database_url: str) -> SQLiteStore:
        return cls(sqlite_path(database_url))

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread off only so close() may run on the closing thread; each
            # connection is otherwise used by the one thread that opened it.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an SMS acknowledged to the hardware must survive a power cut.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _write(self, work: Callable[[UnitOfWork], T]) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(SqlUnitOfWork(conn))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _read(self, work: Callable[[UnitOfWork], T]) -> T:
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            return work(SqlUnitOfWork(conn))
        finally:
            conn.execute("ROLLBACK")

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        return self._writer.submit(self._write, work).result()

    async def transact(self, work: Callable[[UnitOfWork], T]) -> T:
        # The work commits even if the awaiting request is cancelled: a number claimed for a
        # caller that hung up stays busy until FINISH, as the spec requires (8.1).
        return await asyncio.wrap_future(self._writer.submit(self._write, work))

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        return await asyncio.wrap_future(self._readers.submit(self._read, work))

    async def schema_revision(self) -> str | None:
        def query() -> str | None:
            row = self._connection().execute("SELECT version_num FROM alembic_version").fetchone()
            return None if row is None else str(row[0])

        return await asyncio.wrap_future(self._readers.submit(query))

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
