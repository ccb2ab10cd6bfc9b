"""Migration 0025 on a farm with history (SQLite and PostgreSQL): the backfilled streaks equal
domain.read_model.streaks over each SIM's whole history, FINISH keeps them after the upgrade,
and PostgreSQL's `simgate_finish` is 0017's again after a downgrade and the head's (0026, built
from 0025's) after the upgrade that follows."""

from __future__ import annotations

import importlib
import random

import psycopg
from alembic import command

from simgate.domain.messages import IncomingMessage
from simgate.domain.model import Operation, OperationKind
from simgate.domain.read_model import NumberQuery, streaks
from simgate.domain.types import NumberId, OperationId, ServiceName
from simgate.services.intake import accept_sms
from simgate.services.inventory import import_numbers
from simgate.services.operations import finish_operation, issue_number
from simgate.storage import schema
from simgate.storage.ports import Store
from tests.contract.test_migration_lanes import old_database, open_store  # noqa: F401 (fixture)
from tests.factories import make_order, make_spec

BEFORE = "0024"
"""The head before the kept streaks."""
NOW = 1_700_000_000.0
MARKET = "onlinesim"
kept_streaks = importlib.import_module("simgate.storage.migrations.versions.0025_kept_no_sms_streaks")
cheaper = importlib.import_module("simgate.storage.migrations.versions.0017_pg_cheaper_pair")
run_starts = importlib.import_module("simgate.storage.migrations.versions.0026_kept_no_sms_run_starts")


def history(store: Store, rounds: int) -> tuple[list[Operation], Operation, set[OperationId]]:
    """Activations and rents on six SIMs, about a third of them with an SMS; the last stays open."""
    rng = random.Random(250)
    finished: list[Operation] = []
    got_sms: set[OperationId] = set()
    for k in range(rounds):
        now = NOW + 100 * k
        rent = rng.random() < 0.4
        order = make_order(
            kind=OperationKind.RENT if rent else OperationKind.ACTIVATION,
            **({} if rent else {"service": ServiceName(f"service{k}")}),
        )
        operation = store.run(lambda uow, o=order, t=now: issue_number(uow, MARKET, o, t))  # type: ignore[misc]
        assert operation is not None
        if rng.random() < 0.3:
            sms = IncomingMessage(operation.phone, "Sender", f"code {k}", message_key=f"m{k}")
            store.run(lambda uow, m=sms, t=now: accept_sms(uow, m, t + 10))  # type: ignore[misc]
            got_sms.add(operation.id)
        if k == rounds - 1:
            return finished, operation, got_sms
        store.run(lambda uow, o=operation, t=now: finish_operation(uow, MARKET, o.id, 4, None, t + 50))  # type: ignore[misc]
        finished.append(operation)
    raise AssertionError("no rounds")


def expected(finished: list[Operation], got_sms: set[OperationId]) -> dict[NumberId, tuple[int, int]]:
    return streaks((o.number_id, o.kind, o.id in got_sms) for o in sorted(finished, key=lambda o: o.id))


def kept(store: Store) -> dict[NumberId, tuple[int, int]]:
    ids = [n.id for n in store.run(lambda uow: uow.numbers.search(NumberQuery()))]
    return store.run(lambda uow: uow.numbers.no_sms_streaks(ids))


def finish_body(url: str) -> str | None:
    """simgate_finish's body as PostgreSQL holds it; None on SQLite."""
    if url.startswith("sqlite"):
        return None
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'simgate_finish'").fetchone()
    assert row is not None
    return str(row[0]).strip()


def body(function: str) -> str:
    """The text between a CREATE FUNCTION's $$ quotes."""
    return function.split("$$")[1].strip()


def test_0025_backfills_the_streaks_of_all_history(old_database: str) -> None:  # noqa: F811
    # Written at the head (FINISH keeps the streaks), then taken back to 0024, which drops
    # them, and up again: only the backfill can bring them back.
    schema.upgrade(old_database)
    store = open_store(old_database)
    try:
        store.run(lambda uow: import_numbers(uow, [make_spec() for _ in range(6)], NOW - 100))
        finished, still_open, got_sms = history(store, 60)
        want = expected(finished, got_sms)
        assert any(rent >= 2 for rent, _ in want.values())  # both kinds past a threshold somewhere
        assert any(activation >= 3 for _, activation in want.values())
        assert kept(store) == {n: want.get(n, (0, 0)) for n in kept(store)}
    finally:
        store.close()
    command.downgrade(schema._config(old_database), BEFORE)
    if (old := finish_body(old_database)) is not None:
        assert old == body(cheaper._finish())
    schema.upgrade(old_database)
    if (new := finish_body(old_database)) is not None:
        assert new == body(run_starts._finish())  # the head's: 0025's with the run starts
    store = open_store(old_database)
    try:
        assert kept(store) == {n: want.get(n, (0, 0)) for n in kept(store)}
        # The one left open finishes after the upgrade: FINISH keeps its SIM's streak.
        store.run(lambda uow: finish_operation(uow, MARKET, still_open.id, 4, None, NOW + 10_000))
        want = expected([*finished, still_open], got_sms)
        assert kept(store) == {n: want.get(n, (0, 0)) for n in kept(store)}
    finally:
        store.close()
