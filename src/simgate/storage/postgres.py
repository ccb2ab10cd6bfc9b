"""PostgreSQL: several simgate processes on several hosts against one database.

Same repositories as SQLite (storage/sql.py, written in portable SQL), run on pooled
connections: each unit of work is one transaction on one connection, in a thread so the
event loop never blocks. Claims pick candidates with FOR UPDATE SKIP LOCKED so concurrent
GET_NUMBERs (and workers) pass over each other's rows instead of queueing on them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from simgate.domain.errors import ClaimConflict
from simgate.storage.ports import StoreUnavailable, UnitOfWork
from simgate.storage.sql import Cursor, SqlUnitOfWork

T = TypeVar("T")
log = logging.getLogger("simgate.postgres")

RETRIES = 5
"""A unit of work that lost a race (claim conflict, deadlock, serialization) runs again."""

RACES = (ClaimConflict, errors.SerializationFailure, errors.DeadlockDetected, errors.UniqueViolation)


@cache
def translate(sql: str) -> str:
    """Our SQL uses `?` placeholders (sqlite3's); psycopg wants `%s`, and a literal % doubled."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


class PgConnection:
    IntegrityError: type[Exception] = psycopg.IntegrityError

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.conn.execute(translate(sql), params)


class PostgresStore:
    def __init__(
        self,
        database_url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        acquire_timeout: float = 3.0,
        statement_timeout_ms: int = 5000,
    ) -> None:
        # Every bound is far below the marketplace's 10-second deadline, so a request that
        # cannot reach the database answers an ERROR in time instead of hanging.
        self.pool = ConnectionPool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            timeout=acquire_timeout,
            kwargs={
                "connect_timeout": 3,
                "options": f"-c statement_timeout={int(statement_timeout_ms)}",
                "application_name": "simgate",
            },
            # no check=: it costs a round trip per unit of work; a connection the server
            # dropped fails its unit (503, nothing changed) and the pool replaces it.
            reconnect_timeout=0,  # keep trying to reconnect for as long as the process lives
            open=False,
        )
        self.pool.open(wait=False)
        self._threads = ThreadPoolExecutor(max_size, thread_name_prefix="postgres")

    def _run(self, work: Callable[[UnitOfWork], T], *, read_only: bool = False) -> T:
        for attempt in range(1, RETRIES + 1):
            try:
                with self.pool.connection() as conn, conn.transaction():
                    if read_only:
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    return work(SqlUnitOfWork(PgConnection(conn), skip_locked=True))
            except RACES as race:
                if attempt == RETRIES:
                    raise
                log.debug("unit of work lost a race (%s); running it again", type(race).__name__)
            except (PoolTimeout, psycopg.OperationalError) as error:
                raise StoreUnavailable(f"PostgreSQL unavailable: {error}") from error
        raise AssertionError("unreachable")

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        return self._threads.submit(self._run, work).result()

    async def transact(self, work: Callable[[UnitOfWork], T]) -> T:
        return await asyncio.wrap_future(self._threads.submit(self._run, work))

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        return await asyncio.wrap_future(self._threads.submit(self._run, work, read_only=True))

    async def schema_revision(self) -> str | None:
        def query() -> str | None:
            try:
                with self.pool.connection() as conn:
                    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except (PoolTimeout, psycopg.OperationalError) as error:
                raise StoreUnavailable(f"PostgreSQL unavailable: {error}") from error
            return None if row is None else str(row[0])

        return await asyncio.wrap_future(self._threads.submit(query))

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self.pool.close()
