"""The embedded default: SQLite in WAL mode, one writer thread, a few reader threads.

Readers (read snapshots, the console's read model) run on reader threads, each on its own
query_only connection: WAL lets them read the last commit while the writer writes, so a
console page or a /metrics scrape neither waits behind the writer's queue nor holds its lock.

Every unit of work runs whole on the writer thread, so claims are serialised without row
locks and a use case never sees a half-applied change. Measured on the target machine this
beats per-statement thread hops (aiosqlite) by ~5x.

Group commit: an fsync costs ~0.5 ms here, which alone would cap the farm at ~2,000
transactions a second. The writer therefore takes every unit already waiting, runs each in
its own SAVEPOINT (a unit that fails rolls back alone, exactly as if it had its own
transaction) and commits them together with one fsync. No caller hears of its result before
that commit, so an acknowledged SMS is on disk either way; an idle farm still commits each
unit at once.

Faults (a full disk, an I/O error): the writer thread never dies, whatever a unit, a COMMIT or
a ROLLBACK raises. A unit that meets one fails at once with StoreUnavailable (503 at the
edge, nothing changed); `write_error` says why until a write commits again, which a probe
(a 64 KiB block written and deleted in one transaction, once a second) finds out by itself
as soon as space returns, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.storage.database_url import DatabaseUrl
from simgate.storage.ports import Reports, StoreUnavailable, UnitOfWork
from simgate.storage.sql_base import Connection
from simgate.storage.sql_reports import SqlReports
from simgate.storage.sql_unit import SqlUnitOfWork

T = TypeVar("T")
V = TypeVar("V")
log = logging.getLogger("simgate.sqlite")


class LoopWaiter:
    """An awaiting coroutine's future, settled on its own loop after the group's commit.

    `asyncio.wrap_future` cost each unit a concurrent Future (a lock and a condition) and a
    thread-safe wake-up of the loop of its own (~6 % of a GET_NUMBER's samples): the writer
    now wakes each loop once per group, with every result of that group.
    """

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.loop, self.future = loop, future

    def set_running_or_notify_cancel(self) -> bool:
        # Read on the writer thread: a caller that gave up before its unit started is skipped;
        # one that gives up just after this check still has its unit committed, exactly as a
        # caller cancelled once its unit started always had.
        return not self.future.cancelled()


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """On the loop: hand each awaiting caller its unit's outcome (unless it gave up)."""
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


Job = tuple[Callable[[UnitOfWork], Any], "Future[Any] | LoopWaiter"]

WAL_CHECKPOINT_PAGES = 4000
"""WAL pages between automatic checkpoints (16 MB at 4 KB pages; SQLite's default is 1,000)."""
WAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes the WAL file is cut back to after a checkpoint, should a burst have grown it past that."""

MAX_GROUP = 256
"""Units committed together at most; bounds how long the first one waits for the fsync."""

PROBE_INTERVAL = 1.0
"""While writes fail, how often the writer checks whether they work again."""
PROBE_BYTES = 65_536
"""Big enough to need fresh pages (a full disk or max_page_count refuses it), small enough
that a probe costs nothing."""

# Primary result codes that mean "the database cannot take this write now" rather than "this
# statement is wrong": the unit answers 503 and may succeed later unchanged.
# BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
STORAGE_FAULTS = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})


def storage_fault(error: BaseException) -> str | None:
    """The SQLite message when `error` is a storage fault (disk full, I/O, ...), else None."""
    if not isinstance(error, sqlite3.Error) or isinstance(error, sqlite3.IntegrityError):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in STORAGE_FAULTS:
        return None
    return str(error)


def sqlite_path(database_url: str) -> str:
    try:
        url = DatabaseUrl.parse(database_url)
    except ValueError:
        raise ValueError("a SQLite URL looks like sqlite:///PATH") from None
    return url.sqlite_path()


def enable_wal(path: str, patience: float) -> None:
    """Put the file in WAL mode once, before any thread opens it.

    A new database (made by `migrate`) is in rollback-journal mode, and switching it to WAL
    takes an exclusive lock without waiting on SQLite's busy timeout: when the writer's and a
    reader's first connections both switched it, one failed at once with "database is
    locked". The mode is kept in the file, so later connections find WAL already on. Another
    process (a second instance starting) may hold a lock for a moment: wait it out, bounded.
    """
    deadline = time.monotonic() + patience
    conn = sqlite3.connect(path, isolation_level=None, timeout=patience)
    try:
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if getattr(error, "sqlite_errorcode", 0) & 0xFF != 5 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        conn.close()


class SQLiteStore:
    def __init__(
        self, path: str, *, readers: int = 2, busy_timeout_ms: int = 10_000, ledger: LedgerRules = NO_RULES
    ) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_ms = busy_timeout_ms
        enable_wal(path, busy_timeout_ms / 1000)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._write_error: str | None = None
        self._last_probe = 0.0
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._writer.start()
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")
        self._closed = False
        self.ledger = ledger
        """The resale windows and exclusion groups (bootstrap's, from the settings)."""

    @classmethod
    def from_url(cls, database_url: str, *, ledger: LedgerRules = NO_RULES) -> SQLiteStore:
        return cls(sqlite_path(database_url), ledger=ledger)

    def _connection(self, *, query_only: bool = False) -> sqlite3.Connection:
        """This thread's connection: the writer's, or a reader's (`query_only`: a read that
        tried to write would fail, never take the write lock)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread off only so close() may run on the closing thread; each
            # connection is otherwise used by the one thread that opened it.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an SMS acknowledged to the hardware must survive a power cut.
            conn.execute("PRAGMA synchronous=FULL")
            if not query_only:
                # A checkpoint every WAL_CHECKPOINT_PAGES, not SQLite's 1,000: a claim and its
                # FINISH write ~8 pages to the WAL, many of them pages the next pairs write
                # again (counts, index heads), and each checkpoint copies a page once however
                # often it changed. 12 % less writer CPU per pair (bench/claim.py, 15 s).
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
                conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            if query_only:
                conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @property
    def write_error(self) -> str | None:
        """Why writes fail now (disk full, ...), or None while they work."""
        return self._write_error

    def _write_loop(self) -> None:
        while True:
            job = self._next_job()
            if job is False:
                continue  # a probe ran
            if job is None:
                return
            group = [job]
            while len(group) < MAX_GROUP:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # finish this group, then stop
                    break
                group.append(more)
            self._commit_group(group)

    def _next_job(self) -> Job | Literal[False] | None:
        """The next job; while writes fail, a probe first whenever one is due (False)."""
        if self._write_error is None:
            return self._jobs.get()
        wait = self._last_probe + PROBE_INTERVAL - time.monotonic()
        if wait > 0:
            try:
                return self._jobs.get(timeout=wait)
            except queue.Empty:
                pass
        self._probe()
        return False

    def _probe(self) -> None:
        self._last_probe = time.monotonic()
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO write_probe (id, payload) VALUES (1, zeroblob(?))", (PROBE_BYTES,))
            conn.execute("DELETE FROM write_probe")
            conn.execute("COMMIT")
        except Exception as error:
            self._abandon()
            self._write_error = storage_fault(error) or f"SQLite: {error}"
        else:
            log.info("SQLite writes work again")
            self._write_error = None

    def _fail(self, reason: str) -> StoreUnavailable:
        if self._write_error is None:
            log.error("SQLite writes fail: %s", reason)
        self._write_error = reason
        self._last_probe = time.monotonic()
        return StoreUnavailable(f"SQLite: {reason}")

    def _abandon(self) -> None:
        """Leave whatever transaction is left, never raising: after a failed COMMIT SQLite may
        have rolled back already, and a ROLLBACK then raises "no transaction is active"; a
        connection that cannot even do that is replaced."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            self._local.conn = None
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()

    def _commit_group(self, group: list[Job]) -> None:
        # A caller that gave up before its unit started (cancelled) is skipped, as an
        # executor would: nothing of it is written.
        group = [(work, future) for work, future in group if future.set_running_or_notify_cancel()]
        if not group:
            return
        try:
            outcomes = self._run_group([work for work, _ in group])
        except BaseException as error:  # the writer must outlive anything: callers would hang
            log.exception("SQLite writer: unexpected failure")
            self._abandon()
            failure = self._fail(f"unexpected {type(error).__name__}: {error}")
            outcomes = [(False, failure)] * len(group)
        settle: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, waiter), (ok, value) in zip(group, outcomes, strict=True):
            if isinstance(waiter, LoopWaiter):
                settle.setdefault(waiter.loop, []).append((waiter.future, ok, value))
            elif ok:
                waiter.set_result(value)
            else:
                waiter.set_exception(value)
        for loop, results in settle.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody awaits these
                loop.call_soon_threadsafe(_settle, results)

    def _run_group(
        self, works: list[Callable[[UnitOfWork], Any]], *, careful: bool = False
    ) -> list[tuple[bool, Any]]:
        """The units of one group in one transaction, each one's outcome in order.

        First without savepoints (`careful` False): a savepoint per unit made SQLite copy every
        page a unit first touched into its statement journal (four fifths of the bytes the
        writer wrote per GET_NUMBER + FINISH; docs/benchmarks.md), though units almost never
        fail. A unit that fails without having changed a row needs nothing undone (a domain
        error raised before any write: an SMS for an unknown number). Only when a failed unit
        may have written something (or the database failed) is the transaction rolled back and
        the whole group run again, carefully: a savepoint per unit, each failure undone alone.
        Units are functions of the database and their arguments, so the second run does what
        the first would have; only the rows of the careful run are committed.
        """
        conn = self._connection()
        changes = conn.total_changes
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            failure = self._fail(str(error))
            return [(False, failure)] * len(works)
        outcomes: list[tuple[bool, Any]] = []
        faulted = False
        uow = SqlUnitOfWork(conn, ledger=self.ledger)
        # A unit alone in its group needs no savepoint: rolling the transaction back undoes
        # it just as well.
        alone = len(works) == 1
        for work in works:
            guarded = careful and not alone
            if guarded:
                conn.execute("SAVEPOINT unit")
            before = conn.total_changes
            try:
                result = work(uow)
            except BaseException as error:
                fault = storage_fault(error)
                if not alone and not careful:
                    if fault is None and conn.in_transaction and conn.total_changes == before:
                        outcomes.append((False, error))  # it changed nothing: nothing to undo
                        continue
                    self._abandon()
                    return self._run_group(works, careful=True)
                if not self._undo(conn, alone):
                    # SQLite rolled the whole transaction back (it does on a full disk): the
                    # units before this one went with it, so none of the group was written.
                    self._abandon()
                    failure = self._fail(fault or f"transaction lost: {error}")
                    return [(False, failure)] * len(works)
                if alone:
                    return [(False, error if fault is None else self._fail(fault))]
                if fault is not None:
                    faulted = True
                    outcomes.append((False, self._fail(fault)))
                else:
                    outcomes.append((False, error))
            else:
                if guarded:
                    conn.execute("RELEASE unit")
                outcomes.append((True, result))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            self._abandon()
            failure = self._fail(f"commit failed: {error}")
            return [(False, failure)] * len(works)
        if not faulted and conn.total_changes > changes:
            # Only a commit that wrote something proves writes work: an empty claim commits
            # on a full disk too.
            self._write_error = None
        return outcomes

    @staticmethod
    def _undo(conn: sqlite3.Connection, alone: bool) -> bool:
        """Roll back a failed unit: the whole transaction when it ran alone in it, else to its
        savepoint. False if the transaction is gone (SQLite rolled it back itself)."""
        if not conn.in_transaction:
            return False
        try:
            if alone:
                conn.execute("ROLLBACK")
            else:
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
        except sqlite3.Error:
            return False
        return True

    def _submit(self, work: Callable[[UnitOfWork], T]) -> Future[T]:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        future: Future[T] = Future()
        self._jobs.put((work, future))
        return future

    def _read(self, view: Callable[[Connection], V], work: Callable[[V], T]) -> T:
        """On a reader thread: `work` over `view` in one read transaction (one snapshot)."""
        try:
            conn = self._connection(query_only=True)
            conn.execute("BEGIN")
            try:
                return work(view(conn))
            finally:
                self._abandon()  # never left holding an old snapshot, never raising here
        except sqlite3.Error as error:
            fault = storage_fault(error)
            if fault is None:
                raise
            raise StoreUnavailable(f"SQLite: {fault}") from error

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        return self._submit(work).result()

    async def transact(self, work: Callable[[UnitOfWork], T], *, single: bool = False) -> T:
        # Once started, the work commits even if the awaiting request is cancelled: a number
        # claimed for a caller that hung up stays busy until FINISH, as the spec requires (8.1).
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((work, LoopWaiter(loop, future)))
        return await future

    def _unit(self, conn: Connection) -> UnitOfWork:
        return SqlUnitOfWork(conn, ledger=self.ledger)

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        return await asyncio.wrap_future(self._readers.submit(self._read, self._unit, work))

    def run_read(self, work: Callable[[UnitOfWork], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return self._readers.submit(self._read, self._unit, work).result()

    async def report(self, work: Callable[[Reports], T]) -> T:
        return await asyncio.wrap_future(self._readers.submit(self._read, SqlReports, work))

    def run_report(self, work: Callable[[Reports], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return self._readers.submit(self._read, SqlReports, work).result()

    async def schema_revision(self) -> str | None:
        def query() -> str | None:
            row = (
                self._connection(query_only=True)
                .execute("SELECT version_num FROM alembic_version")
                .fetchone()
            )
            return None if row is None else str(row[0])

        return await asyncio.wrap_future(self._readers.submit(query))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._writer.join()
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
