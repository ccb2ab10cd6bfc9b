"""PostgreSQL: several simgate processes on several hosts against one database.

Same repositories as SQLite (storage/sql.py, written in portable SQL), run on pooled
connections: each unit of work is one transaction on one connection, in a thread so the
event loop never blocks. Claims pick candidates with FOR UPDATE SKIP LOCKED so concurrent
GET_NUMBERs (and workers) pass over each other's rows instead of queueing on them.

A database that is gone (restarting, unreachable, disk full, read-only) fails each unit with
StoreUnavailable (503, nothing changed), or OutcomeUnknown when the connection was lost while
the unit was committing (its COMMIT, or a single unit's one statement, in flight: the server
may have committed it; 503 all the same, its text says so, and a warning names the unit).
`write_error` stays set until a write commits again or a probe (asked for at most once a
second while writes fail) finds the server back and writable. Once a probe has found the
server gone, units fail at once instead of each waiting for the pool's timeout.

The probe opens its own connection, never one of the pool's: a pool that lost its server
has nothing to lend (its attempts to reconnect have given up, or its idle connections died
with the server), and a probe queued behind it would wait out `acquire_timeout` although the
server is back. When the probe finds the server back it has the pool check its idle
connections (`ConnectionPool.check`: the dead ones replaced, the pool grown if empty), so
within about a second of the server's return units run on working connections, whatever
the outage's length, and no unit fails on a connection from before it.

A server that hangs instead (it stops answering, the connection stays open) is bounded by
storage/pg_hang.py: TCP keepalives and tcp_user_timeout on every connection, and a watch that
cuts any round trip that has waited longer than statement_timeout plus a second. A cut fails
its unit with StoreUnavailable and counts as a probe that found the server gone: units fail
at once, rather than each taking another connection that may be as silent, until a probe
finds the server answering again, so the units queued behind a hung one fail at once too. A
unit thus waits on the database for at most about that bound, or the pool's `acquire_timeout`
for a connection, and its thread comes back: no deadline on the asyncio side is needed (one
there would answer while the thread still held its connection, and could still commit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from simgate.domain.errors import ClaimConflict
from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.storage.pg_hang import ANSWER_GRACE, CHECK_BOUND, AnswerWatch, Unanswered, tcp_settings
from simgate.storage.pg_units import PgConnection, PgUnitOfWork
from simgate.storage.ports import OutcomeUnknown, Reports, StoreUnavailable, UnitOfWork
from simgate.storage.sql_reports import SqlReports

T = TypeVar("T")
V = TypeVar("V")
log = logging.getLogger("simgate.postgres")

RETRIES = 5
"""A unit of work that lost a race (claim conflict, deadlock, serialization) runs again."""

RACES = (ClaimConflict, errors.SerializationFailure, errors.DeadlockDetected, errors.UniqueViolation)
GONE = (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError, errors.ReadOnlySqlTransaction)
"""The database cannot take this unit now (down, restarting, disk full, a read-only standby)."""
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 3
"""Seconds a probe may take to connect (a host that does not answer, rather than refuses)."""
READ_ONLY = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"


class PostgresStore:
    def __init__(
        self,
        database_url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        acquire_timeout: float = 3.0,
        statement_timeout_ms: int = 5000,
        ledger: LedgerRules = NO_RULES,
    ) -> None:
        # Every bound is far below the marketplace's 10-second deadline, so a request that
        # cannot reach the database answers an ERROR in time instead of hanging.
        self._url = database_url
        self._connect_kwargs: dict[str, object] = {
            "connect_timeout": PROBE_TIMEOUT,
            "options": f"-c statement_timeout={int(statement_timeout_ms)}",
            "application_name": "simgate",
            # A unit of work begins its transaction with its first statement, in the same
            # round trip; GET_NUMBER and FINISH are one statement each and need none
            # (storage/pg_units.py).
            "autocommit": True,
            # Keepalives and tcp_user_timeout, unless the URL sets its own (storage/pg_hang.py).
            **tcp_settings(database_url),
        }
        self._watch = AnswerWatch(statement_timeout_ms / 1000 + ANSWER_GRACE)
        """Every round trip on our connections, held to the server's own deadline plus a second."""
        self.pool = WatchedPool(
            self._watch,
            database_url,
            min_size=min(min_size, max_size),
            max_size=max_size,
            timeout=acquire_timeout,
            kwargs=self._connect_kwargs,
            # no check=: it costs a round trip per unit of work; a connection the server
            # dropped fails its unit (503, nothing changed) and the pool replaces it, and the
            # probe has the pool check its idle ones once the server is back (`probe`).
            # 0: a failed reconnection is retried once, at once, then given up (the pool
            # grows again on demand). Any longer and psycopg_pool retries after 1, 2, 4, 8...
            # seconds, a delay that keeps doubling for as long as the server is gone, so
            # after a long outage the pool would stay empty long after the server is back.
            reconnect_timeout=0,
            open=False,
        )
        self.pool.open(wait=False)
        self._threads = ThreadPoolExecutor(max_size, thread_name_prefix="postgres")
        self._prober = ThreadPoolExecutor(1, thread_name_prefix="postgres-probe")
        """Probes run here, never queued behind units that wait for the pool."""
        self._write_error: str | None = None
        self._last_probe = 0.0
        self._probing = False
        self.ledger = ledger
        """The resale windows and exclusion groups (bootstrap's, from the settings)."""
        self._down = False
        """The probe found the server gone, or a round trip waited out the watch: units fail
        at once instead of each waiting for the pool's timeout (or the watch's), until a probe
        finds it back."""

    @property
    def write_error(self) -> str | None:
        due = time.monotonic() - self._last_probe >= PROBE_INTERVAL
        if self._write_error is not None and not self._probing and due:
            self._probing = True
            self._last_probe = time.monotonic()
            try:
                self._prober.submit(self.probe)
            except RuntimeError:  # closing: nothing left to probe for
                self._probing = False
        return self._write_error

    def probe(self) -> None:
        """Ask the server itself, on a connection of our own, whether it takes writes; if it
        answers, have the pool check its idle connections: those from before an outage are
        dead, and each would fail a unit of work."""
        try:
            conn = psycopg.connect(self._url, **self._connect_kwargs)  # type: ignore[arg-type]
            with conn, self._watch.round_trip(conn):
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            self.pool.check()
            if row is not None and row[0]:
                self._write_error = "PostgreSQL is a read-only standby"
            else:
                self._write_error = None
            self._down = False
        except Exception as error:
            self._write_error = f"PostgreSQL unavailable: {error}"
            self._down = True
        finally:
            self._probing = False

    def _unit(self, conn: PgConnection) -> UnitOfWork:
        return PgUnitOfWork(conn, ledger=self.ledger)

    def _run(
        self,
        view: Callable[[PgConnection], V],
        work: Callable[[V], T],
        *,
        read_only: bool = False,
        single: bool = False,
    ) -> T:
        """`work` over `view` (a unit of work, or the read model) in one transaction on a
        pooled connection; a read-only one is a REPEATABLE READ snapshot that cannot write."""
        gone = self.write_error  # asking is what starts a probe while the server is gone
        if self._down and gone is not None:
            raise StoreUnavailable(gone)
        for attempt in range(1, RETRIES + 1):
            db: PgConnection | None = None
            try:
                with self.pool.connection() as conn:
                    db = PgConnection(
                        conn, READ_ONLY if read_only else "BEGIN", single=single, watch=self._watch
                    )
                    try:
                        result = work(view(db))
                        db.commit()
                    except BaseException:
                        db.rollback()
                        raise
                if not read_only:
                    self._write_error = None
                return result
            except RACES as race:
                if attempt == RETRIES:
                    raise
                log.debug("unit of work lost a race (%s); running it again", type(race).__name__)
            except GONE as error:
                if self._write_error is None:
                    # The first failure is news enough: the probe comes a second later. Not
                    # every failure: a steady stream of them would put the probe off forever.
                    self._last_probe = time.monotonic()
                self._write_error = f"PostgreSQL unavailable: {error}"
                if isinstance(error, Unanswered):
                    self._down = True  # its other connections are likely as silent
                if db is not None and db.in_doubt and not read_only:
                    # Lost while committing: the server may have committed and only its
                    # answer been lost. Not "nothing changed"; the operator may need to look.
                    unit = unit_name(work)
                    log.warning(
                        "PostgreSQL connection lost during the commit of %s: it may or may not"
                        " have committed (%s)",
                        unit,
                        error,
                    )
                    raise OutcomeUnknown(self._write_error, unit) from error
                raise StoreUnavailable(self._write_error) from error
        raise AssertionError("unreachable")

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        return self._threads.submit(self._run, self._unit, work).result()

    async def transact(self, work: Callable[[UnitOfWork], T], *, single: bool = False) -> T:
        return await asyncio.wrap_future(self._threads.submit(self._run, self._unit, work, single=single))

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        return await asyncio.wrap_future(self._threads.submit(self._run, self._unit, work, read_only=True))

    def run_read(self, work: Callable[[UnitOfWork], T]) -> T:
        return self._threads.submit(self._run, self._unit, work, read_only=True).result()

    async def report(self, work: Callable[[Reports], T]) -> T:
        return await asyncio.wrap_future(self._threads.submit(self._run, SqlReports, work, read_only=True))

    def run_report(self, work: Callable[[Reports], T]) -> T:
        return self._threads.submit(self._run, SqlReports, work, read_only=True).result()

    async def schema_revision(self) -> str | None:
        def query() -> str | None:
            try:
                with self.pool.connection() as conn, self._watch.round_trip(conn):
                    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except GONE as error:
                raise StoreUnavailable(f"PostgreSQL unavailable: {error}") from error
            return None if row is None else str(row[0])

        return await asyncio.wrap_future(self._threads.submit(query))

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self._prober.shutdown(wait=True)
        self.pool.close()
        self._watch.close()


def unit_name(work: Callable[..., object]) -> str:
    """The function a unit of work runs, for the log: `simgate.marketplaces.dispatch.issue`
    for the lambda `issue` hands the store, the function itself for a partial."""
    func = getattr(work, "func", work)
    name = getattr(func, "__qualname__", type(func).__qualname__)
    return f"{getattr(func, '__module__', '?')}.{name}".replace(".<locals>.<lambda>", "")


class WatchedPool(ConnectionPool):
    """The pool, whose check of its idle connections (the probe's `pool.check()`) is held to
    the watch like any round trip: an idle connection to a peer that hangs would otherwise hold
    the probe, and with it every later probe, for ever."""

    def __init__(self, watch: AnswerWatch, *args: Any, **kwargs: Any) -> None:
        self.watch = watch
        super().__init__(*args, **kwargs)

    def check_connection(self, conn: psycopg.Connection[Any]) -> None:  # type: ignore[override]
        with self.watch.round_trip(conn, CHECK_BOUND):
            ConnectionPool.check_connection(conn)
