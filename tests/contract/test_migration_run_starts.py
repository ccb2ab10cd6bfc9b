"""Migration 0026 on a farm with history (SQLite and PostgreSQL): the backfilled run starts
equal domain.read_model.run_starts over each SIM's whole history, FINISH keeps them after the
upgrade, and PostgreSQL's `simgate_finish` is 0025's again after a downgrade and 0026's after
the upgrade that follows."""

from __future__ import annotations

import importlib

from alembic import command

from simgate.domain.model import Operation
from simgate.domain.read_model import NumberQuery, RunStarts, run_starts
from simgate.domain.types import NumberId, OperationId
from simgate.services.inventory import import_numbers
from simgate.services.operations import finish_operation
from simgate.storage import schema
from simgate.storage.ports import Store
from tests.contract.test_migration_lanes import old_database, open_store  # noqa: F401 (fixture)
from tests.contract.test_migration_streaks import MARKET, NOW, body, finish_body, history
from tests.factories import make_spec

BEFORE = "0025"
"""The head before the kept run starts."""
kept_streaks = importlib.import_module("simgate.storage.migrations.versions.0025_kept_no_sms_streaks")
kept_starts = importlib.import_module("simgate.storage.migrations.versions.0026_kept_no_sms_run_starts")


def expected(finished: list[Operation], got_sms: set[OperationId]) -> dict[NumberId, RunStarts]:
    ordered = sorted(finished, key=lambda o: o.id)
    return run_starts((o.number_id, o.kind, o.id in got_sms, o.opened_at) for o in ordered)


def kept(store: Store) -> dict[NumberId, RunStarts]:
    ids = [n.id for n in store.run(lambda uow: uow.numbers.search(NumberQuery()))]
    return store.run(lambda uow: uow.numbers.no_sms_since(ids))


def test_0026_backfills_the_run_starts_of_all_history(old_database: str) -> None:  # noqa: F811
    # Written at the head (FINISH keeps the starts), then taken back to 0025, which drops
    # them, and up again: only the backfill can bring them back.
    schema.upgrade(old_database)
    store = open_store(old_database)
    try:
        store.run(lambda uow: import_numbers(uow, [make_spec() for _ in range(6)], NOW - 100))
        finished, still_open, got_sms = history(store, 60)
        want = expected(finished, got_sms)
        assert any(rent is not None for rent, _ in want.values())  # runs of both kinds somewhere
        assert any(activation is not None for _, activation in want.values())
        assert any(None in starts for starts in want.values())  # and a kind with no run
        assert kept(store) == {n: want.get(n, (None, None)) for n in kept(store)}
    finally:
        store.close()
    command.downgrade(schema._config(old_database), BEFORE)
    if (old := finish_body(old_database)) is not None:
        assert old == body(kept_streaks._finish())
    schema.upgrade(old_database)
    if (new := finish_body(old_database)) is not None:
        assert new == body(kept_starts._finish())
    store = open_store(old_database)
    try:
        assert kept(store) == {n: want.get(n, (None, None)) for n in kept(store)}
        # The one left open finishes after the upgrade: FINISH keeps its SIM's run start.
        store.run(lambda uow: finish_operation(uow, MARKET, still_open.id, 4, None, NOW + 10_000))
        want = expected([*finished, still_open], got_sms)
        assert kept(store) == {n: want.get(n, (None, None)) for n in kept(store)}
    finally:
        store.close()
