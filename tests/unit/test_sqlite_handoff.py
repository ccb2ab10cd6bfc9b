"""The SQLite writer hands each group's results back to the loop at once (storage/sqlite.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from simgate.storage.ports import UnitOfWork
from simgate.storage.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    opened = SQLiteStore(str(tmp_path / "handoff.db"))
    yield opened  # type: ignore[misc]
    opened.close()


def test_every_caller_of_a_group_gets_its_own_outcome(store: SQLiteStore) -> None:
    def unit(index: int) -> object:
        def work(uow: UnitOfWork) -> int:
            if index % 7 == 0:
                raise ValueError(f"unit {index}")
            return index

        return work

    async def main() -> list[object]:
        return await asyncio.gather(*(store.transact(unit(i)) for i in range(300)), return_exceptions=True)

    outcomes = asyncio.run(main())
    for index, outcome in enumerate(outcomes):
        if index % 7 == 0:
            assert isinstance(outcome, ValueError)
            assert str(outcome) == f"unit {index}"
        else:
            assert outcome == index


def test_a_caller_that_gives_up_before_its_unit_starts_changes_nothing(store: SQLiteStore) -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocker(uow: UnitOfWork) -> None:
        started.set()
        release.wait(10)

    def abandoned(uow: UnitOfWork) -> None:
        ran.append("abandoned")

    async def main() -> None:
        first = asyncio.ensure_future(store.transact(blocker))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        second = asyncio.ensure_future(store.transact(abandoned))
        await asyncio.sleep(0)  # queued behind the blocker
        second.cancel()
        release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second
        await store.transact(lambda uow: None)  # the writer has passed the abandoned unit

    asyncio.run(main())
    assert ran == []


def test_a_unit_alone_in_its_group_that_fails_leaves_nothing_and_the_next_one_commits(
    store: SQLiteStore,
) -> None:
    # Alone in its group, a unit runs without a savepoint: its failure rolls the whole
    # transaction back, and the writer goes on with a fresh one.
    def sql(statement: str) -> Callable[[UnitOfWork], list[tuple[object, ...]]]:
        return lambda uow: uow.messages.db.execute(statement).fetchall()  # type: ignore[attr-defined]

    store.run(sql("CREATE TABLE t (x INTEGER)"))

    def insert_then_fail(uow: UnitOfWork) -> None:
        sql("INSERT INTO t VALUES (1)")(uow)
        raise ValueError("boom")

    for _ in range(3):
        with pytest.raises(ValueError, match="boom"):
            store.run(insert_then_fail)
        assert store.run(sql("SELECT x FROM t")) == []
    store.run(sql("INSERT INTO t VALUES (2)"))
    assert store.run(sql("SELECT x FROM t")) == [(2,)]
    assert store.write_error is None


def _group(store: SQLiteStore, works: list[Callable[[UnitOfWork], object]]) -> list[object]:
    """`works` committed as one group: queued while a first unit holds the writer."""
    started, release = threading.Event(), threading.Event()

    def blocker(uow: UnitOfWork) -> None:
        started.set()
        release.wait(10)

    async def main() -> list[object]:
        first = asyncio.ensure_future(store.transact(blocker))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        rest = [asyncio.ensure_future(store.transact(work)) for work in works]
        await asyncio.sleep(0)  # all queued behind the blocker: the next group
        release.set()
        await first
        return await asyncio.gather(*rest, return_exceptions=True)

    return asyncio.run(main())


def _db(uow: UnitOfWork) -> sqlite3.Connection:
    return uow.messages.db  # type: ignore[attr-defined,no-any-return]


def _insert(value: str, ran: list[str], fail: str = "") -> Callable[[UnitOfWork], object]:
    """A unit writing `value` into t; `fail` "before" or "after" that write."""

    def work(uow: UnitOfWork) -> object:
        ran.append(value)
        if fail == "before":
            raise ValueError(value)
        _db(uow).execute("INSERT INTO t (x) VALUES (?)", (value,))
        if fail == "after":
            raise ValueError(value)
        return value

    return work


def _rows(store: SQLiteStore) -> list[str]:
    return [
        row[0] for row in store.run(lambda uow: _db(uow).execute("SELECT x FROM t ORDER BY x").fetchall())
    ]


def test_a_unit_that_fails_after_writing_is_undone_alone_and_the_rest_of_its_group_commits(
    store: SQLiteStore,
) -> None:
    store.run(lambda uow: _db(uow).execute("CREATE TABLE t (x TEXT)"))
    ran: list[str] = []
    outcomes = _group(store, [_insert("a", ran), _insert("b", ran, fail="after"), _insert("c", ran)])
    assert outcomes[0] == "a"
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] == "c"
    assert _rows(store) == ["a", "c"]
    # No savepoints at first; b's write made the group run again, a savepoint per unit.
    assert ran == ["a", "b", "a", "b", "c"]


def test_a_unit_that_fails_before_writing_costs_its_group_no_second_run(store: SQLiteStore) -> None:
    store.run(lambda uow: _db(uow).execute("CREATE TABLE t (x TEXT)"))
    ran: list[str] = []
    outcomes = _group(store, [_insert("a", ran), _insert("b", ran, fail="before"), _insert("c", ran)])
    assert isinstance(outcomes[1], ValueError)
    assert _rows(store) == ["a", "c"]
    assert ran == ["a", "b", "c"]
