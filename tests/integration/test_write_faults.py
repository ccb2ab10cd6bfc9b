"""Issue 12.1: a full disk must not freeze writes. SQLite made full on demand (max_page_count)
and for real (a small tmpfs): a failing unit answers 503 at once, the writer thread never
dies, /readyz and the marketplace say so, and writes work again as soon as space returns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from simgate.bootstrap import build_app
from simgate.domain.messages import IncomingMessage
from simgate.domain.types import PhoneNumber
from simgate.services.intake import accept_sms
from simgate.storage import schema
from simgate.storage.memory import MemoryStore
from simgate.storage.ports import OutcomeUnknown, StoreUnavailable, UnitOfWork
from simgate.storage.sqlite import SQLiteStore
from tests import conftest
from tests.conftest import INTAKE_TOKEN, KEY, LiveServer
from tests.disks import fill_disk, small_disk
from tests.factories import make_spec
from tests.pg_proxy import PgRelay

T = TypeVar("T")
BOUND = 15.0
"""Every wait is bounded: a frozen writer fails the test instead of hanging it."""


def run(store: SQLiteStore, work: Callable[[UnitOfWork], T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(store.transact(work), BOUND)

    return asyncio.run(bounded())


def sql(statement: str) -> Callable[[UnitOfWork], Any]:
    """A unit that runs one statement on the writer's own connection (PRAGMAs are per connection)."""
    return lambda uow: uow.messages.db.execute(statement).fetchall()  # type: ignore[attr-defined]


def big_sms(phone: PhoneNumber, i: int) -> Callable[[UnitOfWork], Any]:
    incoming = IncomingMessage(phone, "VK", f"{i} " + "x" * 30_000, message_key=f"big-{i}")
    return lambda uow: accept_sms(uow, incoming, time.time())


def fill(store: SQLiteStore, phone: PhoneNumber, start: int = 0) -> int:
    """Store large SMS until the database refuses one; the index of the refused one."""
    for i in range(start, start + 500):
        started = time.monotonic()
        try:
            run(store, big_sms(phone, i))
        except StoreUnavailable:
            assert time.monotonic() - started < 5, "a failing unit must answer at once"
            return i
    raise AssertionError("the database never filled up")


def wait_writable(store: SQLiteStore) -> None:
    deadline = time.monotonic() + BOUND
    while store.write_error is not None:
        assert time.monotonic() < deadline, f"still not writable: {store.write_error}"
        time.sleep(0.05)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[SQLiteStore]:
    sqlite = SQLiteStore.from_url(sqlite_url)
    yield sqlite
    sqlite.close()


def add_number(store: SQLiteStore) -> PhoneNumber:
    spec = make_spec()
    run(store, lambda uow: uow.numbers.upsert(spec, time.time()))
    return spec.phone


def test_a_full_database_fails_units_at_once_and_writes_resume_when_space_returns(
    store: SQLiteStore,
) -> None:
    phone = add_number(store)
    ((pages,),) = run(store, sql("PRAGMA page_count"))
    run(store, sql(f"PRAGMA max_page_count = {pages + 40}"))
    refused = fill(store, phone)
    assert store.write_error is not None
    assert "full" in store.write_error
    assert store._writer.is_alive()
    # Still full: the next unit fails at once too, and reads keep working.
    with pytest.raises(StoreUnavailable):
        run(store, big_sms(phone, refused))
    assert store.write_error is not None
    assert asyncio.run(store.read(lambda uow: uow.numbers.get_by_phone(phone))) is not None

    run(store, sql("PRAGMA max_page_count = 1073741823"))  # space returns
    wait_writable(store)  # by the probe, without any real write
    run(store, big_sms(phone, refused))
    assert run(store, lambda uow: uow.messages.find("http", f"big-{refused}")) is not None


@pytest.mark.parametrize(
    "statement",
    ["COMMIT", "ROLLBACK", "RELEASE unit", "ROLLBACK TO unit"],
)
def test_a_unit_that_breaks_the_transaction_fails_alone_and_the_writer_lives(
    store: SQLiteStore, statement: str
) -> None:
    phone = add_number(store)

    def rogue(uow: UnitOfWork) -> None:
        uow.messages.db.execute(statement)  # type: ignore[attr-defined]

    with contextlib.suppress(StoreUnavailable, sqlite3.Error):
        run(store, rogue)
    assert store._writer.is_alive()
    wait_writable(store)
    run(store, big_sms(phone, 1))
    assert run(store, lambda uow: uow.messages.find("http", "big-1")) is not None


def test_anything_a_unit_raises_reaches_its_caller_and_the_next_unit_runs(store: SQLiteStore) -> None:
    def boom(uow: UnitOfWork) -> None:
        raise KeyboardInterrupt  # a BaseException: the worst a unit can throw

    async def caller() -> BaseException | None:
        # Caught inside the task: a KeyboardInterrupt leaving an asyncio task takes the loop's
        # special path for Ctrl-C, which left CPython 3.11's state such that a later test's
        # ast.parse raised "SystemError: AST constructor recursion depth mismatch".
        try:
            async with asyncio.timeout(BOUND):  # in this task: wait_for would wrap it in another
                await store.transact(boom)
        except KeyboardInterrupt as reached:
            return reached
        return None

    assert isinstance(asyncio.run(caller()), KeyboardInterrupt)
    assert store._writer.is_alive()
    add_number(store)


def test_http_answers_503_at_once_and_readyz_and_get_services_follow_the_disk(sqlite_url: str) -> None:
    server = LiveServer(conftest.test_settings(sqlite_url, onlinesim_services="telegram")).start()
    try:
        assert isinstance(server.store, SQLiteStore)
        store = server.store
        phone = add_number(store)
        services = {"action": "GET_SERVICES", "key": KEY}
        headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
        with server.client() as client:
            assert client.get("/readyz").status_code == 200
            assert client.post("/onlinesim/getServices", json=services).status_code == 200
            ((pages,),) = run(store, sql("PRAGMA page_count"))
            run(store, sql(f"PRAGMA max_page_count = {pages + 40}"))
            fill(store, phone)

            started = time.monotonic()
            answer = client.post(
                "/intake/sms", headers=headers, json={"phone": phone, "sender": "VK", "text": "y" * 30_000}
            )
            assert answer.status_code == 503, answer.text
            assert time.monotonic() - started < 5
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert "full" in ready.json()["error"]
            offered = client.post("/onlinesim/getServices", json=services)
            assert offered.status_code == 503
            assert offered.json()["status"] == "ERROR"

            run(store, sql("PRAGMA max_page_count = 1073741823"))
            wait_writable(store)
            assert client.get("/readyz").status_code == 200
            assert client.post("/onlinesim/getServices", json=services).status_code == 200
            again = client.post(
                "/intake/sms", headers=headers, json={"phone": phone, "sender": "VK", "text": "back"}
            )
            assert again.status_code == 202, again.text
    finally:
        server.stop()


# --- a real full disk: a small tmpfs ----------------------------------------------------


def test_a_real_full_disk_fails_units_and_writes_resume_after_cleanup(tmp_path: Path) -> None:
    with small_disk(tmp_path / "small", "8m") as disk:
        url = f"sqlite:///{disk / 'simgate.db'}"
        schema.upgrade(url)
        store = SQLiteStore.from_url(url)
        try:
            phone = add_number(store)
            fill_disk(disk / "filler")
            refused = fill(store, phone)
            assert store.write_error is not None
            assert store._writer.is_alive()

            (disk / "filler").unlink()  # space returns
            wait_writable(store)
            run(store, big_sms(phone, refused))
            assert run(store, lambda uow: uow.messages.find("http", f"big-{refused}")) is not None
        finally:
            store.close()


# --- PostgreSQL: the same semantics -----------------------------------------------------


@pytest.mark.postgres
def test_postgresql_gone_fails_units_at_once_and_comes_back_by_itself(postgres_url: str) -> None:
    from simgate.storage.postgres import PostgresStore

    relay = PgRelay(postgres_url)  # the server as a client sees it: cut off, then back
    store = PostgresStore(relay.url, min_size=1, max_size=2, acquire_timeout=1.0)
    try:
        spec = make_spec()
        asyncio.run(store.transact(lambda uow: uow.numbers.upsert(spec, time.time())))
        assert store.write_error is None
        relay.down()  # the server vanished
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            asyncio.run(store.transact(lambda uow: uow.numbers.get_by_phone(spec.phone)))
        assert time.monotonic() - started < 5
        assert store.write_error is not None
        deadline = time.monotonic() + BOUND
        while store.write_error is None or not store._down:  # a probe confirms it is gone...
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # ...and from then on units fail at once: without asking the pool for a connection
        # (whose wait is what "at once" spares them), which a count shows on any machine; a
        # bound on the wall clock, which a loaded one stretches, only that nothing hangs.
        asked = store.pool.get_stats().get("requests_num", 0)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            asyncio.run(store.transact(lambda uow: uow.numbers.get_by_phone(spec.phone)))
        assert time.monotonic() - started < 5
        assert store.pool.get_stats().get("requests_num", 0) == asked, "the unit waited on the pool"
        relay.back()  # and is back
        deadline = time.monotonic() + BOUND
        while store.write_error is not None:  # asking is enough: the probe runs by itself
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert asyncio.run(store.transact(lambda uow: uow.numbers.get_by_phone(spec.phone))) is not None
    finally:
        store.close()
        relay.close()


async def test_readyz_is_not_ready_while_the_memory_fake_plays_a_failing_store() -> None:
    """The HTTP side only reads `write_error`: any store that sets it takes the app out."""
    store = MemoryStore(revision=schema.head_revision())
    settings = conftest.test_settings("sqlite:///unused.db")
    app = build_app(settings, store, revision=schema.head_revision(), worker=False)
    services = {"action": "GET_SERVICES", "key": KEY}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simgate") as client:
        assert (await client.get("/readyz")).status_code == 200
        store.write_error = "disk full"
        assert (await client.get("/readyz")).json() == {"status": "unavailable", "error": "disk full"}
        assert (await client.post("/onlinesim/getServices", json=services)).status_code == 503
        store.write_error = None
        assert (await client.post("/onlinesim/getServices", json=services)).status_code == 200


class LosingStore(MemoryStore):
    """A store whose GET_NUMBER and FINISH units (`single`) lose their commit, or whose every
    unit finds the database gone (`gone`) or fails on a bug (`broken`)."""

    gone = broken = False

    async def transact(self, work: Callable[[UnitOfWork], T], *, single: bool = False) -> T:
        if self.broken:
            raise RuntimeError("a bug with a secret detail")
        if self.gone:
            raise StoreUnavailable("database is locked")
        if single:
            raise OutcomeUnknown("connection lost", getattr(work, "__name__", "unit"))
        return await super().transact(work, single=single)


async def test_a_503_is_logged_and_counted_as_the_503_it_is_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Was: "-> 500 EXCEPTION" in the request log, and no count, for an answer that was a 503."""
    store = LosingStore(revision=schema.head_revision())
    store.run(lambda uow: uow.numbers.upsert(make_spec(), time.time()))
    settings = conftest.test_settings("sqlite:///unused.db", smshub_key="smshub-test-key")
    app = build_app(settings, store, revision=schema.head_revision(), worker=False)
    order = {"country": "russia", "operator": "any", "service": "vkcom"}
    transport = httpx.ASGITransport(app=app)
    caplog.set_level(logging.INFO, logger="simgate.requests")
    async with httpx.AsyncClient(transport=transport, base_url="http://simgate") as client:
        lost = await client.post("/onlinesim/getNumber", json={**order, "action": "GET_NUMBER", "key": KEY})
        assert lost.status_code == 503
        agent = {**order, "service": "vk", "sum": 10, "currency": 643, "key": "smshub-test-key"}
        finish = {"action": "FINISH_ACTIVATION", "activationId": 7, "status": 3, "key": "smshub-test-key"}
        assert (await client.post("/smshub", json=finish)).status_code == 503
        store.gone = True
        assert (await client.post("/smshub", json={**agent, "action": "GET_NUMBER"})).status_code == 503
        store.gone, store.write_error = False, "disk full"
        assert (await client.post("/onlinesim/getServices", json={"key": KEY})).status_code == 503
        store.broken, store.write_error = True, None
        broken = await client.post("/smshub", json=finish)
        assert (broken.status_code, broken.json()) == (500, {"status": "ERROR", "error": "internal error"})
        metrics = (await client.get("/metrics")).text
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "simgate.requests"]
    level, line = lines.pop()
    assert level == logging.ERROR
    assert line.startswith("smshub unknown -> 500 ERROR error='internal error' ("), line
    assert len(lines) == 4, lines
    assert all(level == logging.WARNING and " -> 503 ERROR error=" in line for level, line in lines), lines
    assert lines[0][1].startswith("onlinesim getNumber action=GET_NUMBER country=russia")
    assert "a number may or may not have been issued" in lines[0][1]
    assert lines[1][1].startswith("smshub FINISH_ACTIVATION action=FINISH_ACTIVATION operation=7")
    assert "this FINISH may or may not have been recorded" in lines[1][1]
    assert lines[2][1].startswith("smshub GET_NUMBER action=GET_NUMBER")
    assert "nothing was changed" in lines[2][1]
    assert lines[3][1].startswith("onlinesim getServices -> 503 ERROR error='database unavailable")
    for labels in (
        'call="getNumber",code="503",marketplace="onlinesim",status="ERROR"',
        'call="FINISH_ACTIVATION",code="503",marketplace="smshub",status="ERROR"',
        'call="GET_NUMBER",code="503",marketplace="smshub",status="ERROR"',
        # Refused before its body is read (nothing is offered while writes fail).
        'call="unknown",code="503",marketplace="onlinesim",status="ERROR"',
        'call="unknown",code="500",marketplace="smshub",status="ERROR"',
    ):
        assert f"simgate_marketplace_requests_total{{{labels}}} 1.0" in metrics, metrics
