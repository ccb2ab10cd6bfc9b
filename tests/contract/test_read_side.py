"""The read model lives outside the write unit of work, on a read connection of its own.

A console page, `simgate status` or a /metrics scrape reads the last commit beside the writer:
it neither queues behind the SQLite writer thread nor holds a write transaction open.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simgate.domain.read_model import NumberQuery
from simgate.storage import schema
from simgate.storage.ports import Reports, Store, StoreUnavailable, UnitOfWork
from simgate.storage.sql_reports import SqlReports
from simgate.storage.sqlite import SQLiteStore
from tests.factories import make_spec

GUARD = 10.0
"""How long the held unit waits at most: only a guard against a hung test, never a timing."""


def _free(reports: Reports) -> int:
    return reports.number_states()["free"]


@contextlib.contextmanager
def write_unit_held_open(store: Store) -> Iterator[None]:
    """One free number committed, a second one written by a unit that stays open meanwhile;
    after the block the unit commits (a reader that waited for it would have failed inside)."""
    store.run(lambda uow: uow.numbers.upsert(make_spec(), 1.0))
    entered, release = threading.Event(), threading.Event()

    def hold(uow: UnitOfWork) -> None:
        uow.numbers.upsert(make_spec(), 2.0)
        entered.set()
        release.wait(GUARD)

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(store.run, hold)
        try:
            assert entered.wait(GUARD)
            yield
            assert not held.done(), "the read waited for the write unit to end"
        finally:
            release.set()
        held.result()


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_a_report_is_read_while_a_write_unit_is_held_open(store: Store) -> None:
    """Were the reports read through a unit of work, the SQLite one would wait behind the held
    unit and then see its number: they read the last commit at once instead."""
    with write_unit_held_open(store):
        assert store.run_report(_free) == 1
        assert asyncio.run(store.report(_free)) == 1
    assert store.run_report(_free) == 2  # and the next report sees the commit


def test_sqlite_reports_run_on_a_reader_that_cannot_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'read.db'}"
    schema.upgrade(url)
    store = SQLiteStore.from_url(url)
    try:
        writer = store.run(lambda uow: threading.current_thread().name)

        def where(reports: Reports) -> str:
            assert isinstance(reports, SqlReports)
            return threading.current_thread().name

        assert writer == "sqlite-writer"
        assert store.run_report(where).startswith("sqlite-reader")
        assert asyncio.run(store.report(where)).startswith("sqlite-reader")

        def write(reports: Reports) -> None:
            assert isinstance(reports, SqlReports)
            reports.db.execute("DELETE FROM numbers")

        with pytest.raises(StoreUnavailable, match="readonly"):
            store.run_report(write)
    finally:
        store.close()


def test_a_unit_of_work_has_no_read_model(store: Store) -> None:
    assert store.run(lambda uow: hasattr(uow, "reports")) is False
    assert store.run_report(lambda r: r.numbers(NumberQuery()).total) == 0


def _free_numbers(uow: UnitOfWork) -> int:
    return len(uow.numbers.search(NumberQuery(state="free")))


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_a_cli_listing_reads_while_a_write_unit_is_held_open(store: Store) -> None:
    """`simgate numbers list` beside a running `serve`: through a write unit it would wait for
    the held unit (and, on SQLite, take the write lock itself); `run_read` reads the last commit."""
    with write_unit_held_open(store):
        assert store.run_read(_free_numbers) == 1
    assert store.run_read(_free_numbers) == 2


def test_a_write_in_a_read_snapshot_changes_nothing(store: Store) -> None:
    store.run(lambda uow: uow.numbers.upsert(make_spec(), 1.0))

    def write(uow: UnitOfWork) -> None:
        uow.numbers.upsert(make_spec(), 2.0)

    # Refused (SQLite's reader is query_only, PostgreSQL's transaction READ ONLY) or thrown
    # away with the fake's copy: either way the store is as it was.
    with contextlib.suppress(Exception):
        store.run_read(write)
    assert store.run_read(_free_numbers) == 1
