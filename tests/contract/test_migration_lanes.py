"""Migration 0005 on a populated farm (SQLite and PostgreSQL): every exclusion and open
operation survives, every number lands in a lane, and the farm sells exactly as before."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from simgate.domain.types import EVERYWHERE, OperationId, PhoneNumber, ServiceName
from simgate.services.operations import finish_operation, issue_number, list_available
from simgate.storage import schema
from simgate.storage.ports import Store
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import with_database
from tests.factories import make_order

BEFORE = "0007"
"""The head before lanes."""
NOW = 1_700_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"simgate_migrate_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield with_database(server, name)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def populate(url: str) -> None:
    """A farm as simgate left it before 0005: three SIMs, one busy, two exclusions."""
    engine = sa.create_engine(schema.sqlalchemy_url(url))
    rows: list[tuple[str, dict[str, Any]]] = [
        (
            "INSERT INTO numbers (id, phone, country, operator, port, rentable, enabled, online,"
            " open_operation_id, last_issued_at, created_at, updated_at) VALUES"
            " (:id, :phone, 'russia', 'beeline', '', TRUE, TRUE, TRUE, :op, 0, 0, 0)",
            {"id": i, "phone": f"7928000000{i}", "op": 7 if i == 1 else None},
        )
        for i in (1, 2, 3)
    ]
    rows += [
        (
            "INSERT INTO operations (id, marketplace, kind, number_id, phone, country, operator,"
            " service, offered_kopecks, opened_at) VALUES"
            " (7, 'onlinesim', 'activation', 1, '79280000001', 'russia', 'beeline', 'vkcom', 1000, 1)",
            {},
        ),
        (
            "INSERT INTO number_exclusions (number_id, service, reason, created_at, country, operator, free)"
            " VALUES (:id, :service, :reason, 0, 'russia', 'beeline', :free)",
            {"id": 2, "service": "telegram", "reason": "sold", "free": True},
        ),
        (
            "INSERT INTO number_exclusions (number_id, service, reason, created_at, country, operator, free)"
            " VALUES (:id, :service, :reason, 0, 'russia', 'beeline', :free)",
            {"id": 1, "service": "telegram", "reason": "blocked", "free": False},
        ),
    ]
    with engine.begin() as conn:
        for sql, params in rows:
            conn.execute(sa.text(sql), params)
    engine.dispose()


def open_store(url: str) -> Store:
    if url.startswith("sqlite"):
        return SQLiteStore.from_url(url)
    from simgate.storage.postgres import PostgresStore

    return PostgresStore(url, min_size=1, max_size=2)


def test_0005_keeps_exclusions_and_open_operations(old_database: str) -> None:
    command.upgrade(schema._config(old_database), BEFORE)
    populate(old_database)
    schema.upgrade(old_database)
    store = open_store(old_database)
    try:
        numbers = store.run(lambda uow: uow.numbers.search())
        assert {n.phone: n.lane for n in numbers} == {
            "79280000001": "onlinesim",
            "79280000002": "onlinesim",
            "79280000003": "onlinesim",
        }
        assert {m.name: m.enabled for m in store.run(lambda uow: uow.lanes.marketplaces())} == {
            "onlinesim": True
        }
        reports = {
            n.phone: [(e.service, e.reason, e.marketplace) for e in r.exclusions]
            for n in numbers
            if (r := store.run_report(lambda r, i=n.id: r.number(i))) is not None  # type: ignore[misc]
        }
        assert reports["79280000002"] == [("telegram", "sold", EVERYWHERE)]
        assert reports["79280000001"] == [("telegram", "blocked", EVERYWHERE)]
        # Counted as before: two free SIMs, one of them sold for telegram.
        answer = store.run(lambda uow: list_available(uow, "onlinesim", [ServiceName("telegram")]))
        assert answer[0].operator_map["any"] == {"telegram": 1}
        operation = store.run(lambda uow: uow.operations.get(OperationId(7)))
        assert operation is not None
        assert operation.is_open
        assert operation.currency == "RUB"
        # The open operation still holds its SIM, and finishing it frees it into the lane.
        store.run(lambda uow: finish_operation(uow, "onlinesim", OperationId(7), 3, None, NOW))
        answer = store.run(lambda uow: list_available(uow, "onlinesim", [ServiceName("vkcom")]))
        assert answer[0].operator_map["any"] == {"vkcom": 2}  # sold for vkcom now
        issued = store.run(lambda uow: issue_number(uow, "onlinesim", make_order(), NOW))
        assert issued is not None
        assert issued.phone == PhoneNumber("79280000003")
    finally:
        store.close()
