"""PostgreSQL: a GET_NUMBER and a FINISH are one statement each on the wire (issue 14, target 5).

Counted from libpq's protocol trace of the store's one connection, through the dispatch the
HTTP handlers call: no BEGIN, no COMMIT, one Execute. The behaviour behind the statement is
the contract tests' business (they run it on every store).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import pq

from simgate.domain.model import FinishPolicy, Operation
from simgate.domain.types import OperationId
from simgate.marketplaces import dispatch
from simgate.services.lanes import register_marketplaces
from simgate.services.operations import FinishOutcome, issue_number
from simgate.storage.ports import UnitOfWork
from simgate.storage.postgres import PostgresStore
from tests.factories import make_order, make_spec

MARKET = "onlinesim"
NOW = 1_700_000_000.0


@pytest.fixture
def traced(postgres_url: str) -> Iterator[tuple[PostgresStore, Path]]:
    store = PostgresStore(postgres_url, min_size=1, max_size=1)
    store.run(lambda uow: register_marketplaces(uow, [MARKET], 0.0))
    store.run(lambda uow: [uow.numbers.upsert(make_spec(), NOW) for _ in range(3)])
    with tempfile.NamedTemporaryFile("w+", suffix=".trace") as trace:
        conn = store.pool.getconn()
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        store.pool.putconn(conn)
        try:
            yield store, Path(trace.name)
        finally:
            store.close()


def sent(trace: Path, start: int, end: int | None = None) -> list[str]:
    """The messages the client sent between two offsets of the trace, by type. Each unit
    must hold one Execute and no simple Query (BEGIN and COMMIT are sent as those): one
    statement, one round trip (plus, once, psycopg preparing the statement)."""
    lines = trace.read_text()[start:end].splitlines()
    return [line.split("\t")[2].split()[0] for line in lines if line.startswith("F\t")]


def test_get_number_and_finish_are_one_statement_without_begin_or_commit(
    traced: tuple[PostgresStore, Path],
) -> None:
    store, trace = traced
    policy = FinishPolicy()

    async def pair(status: int) -> tuple[int, int, FinishOutcome]:
        operation = await dispatch.issue(store, MARKET, make_order(), lambda: NOW)
        assert operation is not None
        middle = trace.stat().st_size
        outcome = await dispatch.finish(store, MARKET, operation.id, status, None, lambda: NOW, policy)
        return middle, trace.stat().st_size, outcome

    for status in (4, 3, 4):  # a sale runs the sale ledger's branch in the same call
        start = trace.stat().st_size
        middle, end, outcome = asyncio.run(pair(status))
        assert outcome is FinishOutcome.FINISHED
        for unit in (sent(trace, start, middle), sent(trace, middle, end)):
            assert "Query" not in unit
            assert unit.count("Execute") == 1


def test_a_repeated_and_an_unknown_finish_are_one_call_too(traced: tuple[PostgresStore, Path]) -> None:
    store, trace = traced
    policy = FinishPolicy()
    operation = asyncio.run(dispatch.issue(store, MARKET, make_order(), lambda: NOW))
    assert operation is not None
    answers = []
    for activation, market in ((operation.id, MARKET), (operation.id, MARKET), (operation.id, "smshub")):
        start = trace.stat().st_size
        answers.append(asyncio.run(dispatch.finish(store, market, activation, 4, None, lambda: NOW, policy)))
        assert sent(trace, start).count("Execute") == 1
    unknown = asyncio.run(dispatch.finish(store, MARKET, OperationId(10**9), 4, None, lambda: NOW, policy))
    assert answers == [FinishOutcome.FINISHED, FinishOutcome.REPEATED, FinishOutcome.UNKNOWN]
    assert unknown is FinishOutcome.UNKNOWN


def test_a_single_unit_refuses_a_second_statement_and_changes_nothing_more(
    traced: tuple[PostgresStore, Path],
) -> None:
    """`single` promises one statement: anything after it would not be atomic with it."""
    store, _ = traced

    def two(uow: UnitOfWork) -> Operation | None:
        issue_number(uow, MARKET, make_order(), NOW)
        return issue_number(uow, MARKET, make_order(), NOW)

    with pytest.raises(RuntimeError, match="nothing may follow"):
        store._run(store._unit, two, single=True)
    # Without `single`, the same unit is one transaction: both numbers or neither.
    issued = store.run(lambda uow: [issue_number(uow, MARKET, make_order(), NOW) for _ in range(2)])
    assert all(operation is not None for operation in issued)


def test_the_count_triggers_have_no_when_clause(traced: tuple[PostgresStore, Path]) -> None:
    """PostgreSQL reads a trigger's WHEN back from text for every statement that updates a
    row: up to four times per pair (migration 0017). The functions compare instead, and the
    contract and property tests hold the counts they keep."""
    store, _ = traced
    with store.pool.connection() as conn:
        rows = conn.execute(
            "SELECT tgname, tgqual IS NULL FROM pg_trigger WHERE NOT tgisinternal"
            " AND tgrelid IN ('numbers'::regclass, 'number_exclusions'::regclass) ORDER BY tgname"
        ).fetchall()
    assert rows == [
        ("exclusion_counts_insert_delete", True),
        ("exclusion_counts_update", True),
        ("number_counts_insert_delete", True),
        ("number_counts_update", True),
    ]


def test_a_finish_counts_every_request_in_the_row_it_closes(traced: tuple[PostgresStore, Path]) -> None:
    store, _ = traced
    policy = FinishPolicy()
    operation = asyncio.run(dispatch.issue(store, MARKET, make_order(), lambda: NOW))
    assert operation is not None
    for market in (MARKET, MARKET, "smshub", MARKET):
        asyncio.run(dispatch.finish(store, market, operation.id, 4, None, lambda: NOW + 1, policy))
    with store.pool.connection() as conn:
        row = conn.execute(
            "SELECT finish_requests, finish_status, finished_at FROM operations WHERE id = %s",
            (operation.id,),
        ).fetchone()
    assert row == (3, 4, NOW + 1)
