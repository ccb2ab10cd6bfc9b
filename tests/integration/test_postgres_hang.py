"""PostgreSQL that hangs (rather than goes): answered as unavailable within a bound, and back
without a restart once it answers again (storage/pg_hang.py).

The hang is a relay in front of the shared server that freezes (tests/pg_proxy.py): sessions
stay open, new ones are accepted, no byte moves. On loopback the kernel acknowledges what the
client sends, so TCP's own timeouts never fire and only simgate's watch on round trips can end
the wait; measured before the watch existed, a query through the frozen relay still waited
after 25 s while a new connection failed at connect_timeout (3 s). The shared server is never
restarted, so these need not run alone.

Bounds are generous (HANG): the watch answers in about 2 s here, a hang waits for ever."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from simgate.bootstrap import build_app
from simgate.domain.types import Timestamp
from simgate.storage import schema
from simgate.storage.pg_hang import TCP_SETTINGS
from simgate.storage.ports import StoreUnavailable, UnitOfWork
from simgate.storage.postgres import PostgresStore
from tests import conftest
from tests.conftest import KEY
from tests.factories import make_spec
from tests.pg_proxy import PgRelay

pytestmark = pytest.mark.postgres

HANG = 30.0
"""Longest a call may take while the server hangs; far above the watch's 2 s, far below never."""
STATEMENT_MS = 1000
"""The store's statement_timeout: its watch cuts a round trip after 1 + 1 s."""


@pytest.fixture
def relay(postgres_url: str) -> Iterator[PgRelay]:
    relay = PgRelay(postgres_url)
    yield relay
    relay.close()  # first: it ends every wait a failing test left on the frozen relay


@pytest.fixture
def store(relay: PgRelay) -> Iterator[PostgresStore]:
    store = PostgresStore(
        relay.url, min_size=2, max_size=3, acquire_timeout=3.0, statement_timeout_ms=STATEMENT_MS
    )
    yield store
    relay.close()
    store.close()


def upsert(phone: str) -> Callable[[UnitOfWork], object]:
    spec = make_spec(phone=phone)
    return lambda uow: uow.numbers.upsert(spec, Timestamp(time.time()))


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, f"waited {HANG} s for {what}"
        time.sleep(0.05)


def writes(store: PostgresStore) -> bool:
    try:
        store.run(upsert("79280000001"))
    except StoreUnavailable:
        return False
    return True


def test_a_frozen_server_is_answered_unavailable_under_load_and_writes_come_back(
    relay: PgRelay, store: PostgresStore
) -> None:
    """Six callers on a pool of three (so some wait for a thread, some for a connection): every
    call made while the server hangs fails as unavailable in bounded time instead of waiting
    for ever, and once the server answers again writes work on the same store."""
    store.run(upsert("79280000001"))
    frozen = threading.Event()
    stop = threading.Event()
    outcomes: list[tuple[bool, float, str]] = []  # (started while frozen, seconds, outcome)

    def caller(phone: str) -> None:
        while not stop.is_set():
            during = frozen.is_set()
            started = time.monotonic()
            try:
                store.run(upsert(phone))
                outcome = "ok"
            except StoreUnavailable:
                outcome = "unavailable"
            outcomes.append((during, time.monotonic() - started, outcome))

    load = ThreadPoolExecutor(6)
    callers: list[Future[None]] = [load.submit(caller, f"7928000001{i}") for i in range(6)]
    try:
        wait_for(lambda: len(outcomes) >= 30, "the load to run")
        relay.freeze()
        frozen.set()
        wait_for(lambda: sum(during for during, _, _ in outcomes) >= 12, "calls made while frozen to end")
        assert store.write_error is not None
    finally:
        stop.set()
        load.shutdown(wait=False, cancel_futures=True)
    during = [(seconds, outcome) for was, seconds, outcome in outcomes if was]
    assert {outcome for _, outcome in during} == {"unavailable"}
    assert max(seconds for seconds, _ in during) < HANG
    assert store._watch.cuts >= 1, "the watch, not TCP, ended the wait on loopback"
    for future in callers:
        future.result(HANG)  # every caller came back: none is stuck on the frozen socket

    relay.thaw()
    wait_for(lambda: writes(store), "writes to work again")
    for i in range(6):  # more than the pool: none of its connections is one the hang killed
        store.run(upsert(f"7928000002{i}"))
    wait_for(lambda: store.write_error is None, "the store to say it is writable")


def test_the_probes_check_of_idle_connections_ends_when_the_server_hangs(
    relay: PgRelay, store: PostgresStore
) -> None:
    """The probe has the pool check its idle connections; a check stuck on a silent one would
    hold that probe, and every later one, for ever."""
    store.pool.wait(HANG)  # two idle connections
    relay.freeze()
    check = threading.Thread(target=store.pool.check, daemon=True)
    check.start()
    check.join(HANG)
    assert not check.is_alive(), "the pool's check waits on a silent connection"
    assert store._watch.cuts >= 1
    relay.thaw()
    wait_for(lambda: writes(store), "writes to work")


async def test_a_marketplace_call_during_a_hang_gets_the_usual_503(
    relay: PgRelay, store: PostgresStore
) -> None:
    settings = conftest.test_settings(relay.url)
    app = build_app(settings, store, revision=schema.head_revision(), worker=False)
    services = {"action": "GET_SERVICES", "key": KEY}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simgate", timeout=HANG) as client:
        assert (await client.post("/onlinesim/getServices", json=services)).status_code == 200
        relay.freeze()
        started = time.monotonic()
        hung = await client.post("/onlinesim/getServices", json=services)
        assert hung.status_code == 503
        assert time.monotonic() - started < HANG
        assert (await client.get("/readyz")).status_code == 503
        relay.thaw()
        deadline = time.monotonic() + HANG
        while (await client.post("/onlinesim/getServices", json=services)).status_code != 200:
            assert time.monotonic() < deadline, "getServices answers again once the server does"
            await asyncio.sleep(0.1)


def tcp_option(fd: int, option: int) -> int:
    with socket.socket(fileno=os.dup(fd)) as sock:
        return sock.getsockopt(socket.IPPROTO_TCP, option)


def test_every_pooled_connection_carries_the_tcp_settings_and_the_owners_win(postgres_url: str) -> None:
    """Read back from the sockets themselves: libpq applied them, an owner's own value won."""
    store = PostgresStore(postgres_url + "?keepalives_idle=7", min_size=1, max_size=1)
    try:
        with store.pool.connection() as conn:
            fd = conn.fileno()
            assert tcp_option(fd, socket.TCP_KEEPIDLE) == 7  # the owner's
            assert tcp_option(fd, socket.TCP_KEEPINTVL) == int(TCP_SETTINGS["keepalives_interval"])
            assert tcp_option(fd, socket.TCP_KEEPCNT) == int(TCP_SETTINGS["keepalives_count"])
            assert tcp_option(fd, socket.TCP_USER_TIMEOUT) == int(TCP_SETTINGS["tcp_user_timeout"])
            with socket.socket(fileno=os.dup(fd)) as sock:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    finally:
        store.close()


def test_a_connection_cut_just_as_its_answer_came_is_not_handed_out_again(postgres_url: str) -> None:
    """The watch may cut a round trip whose answer has just arrived (its bound passed while the
    thread had not yet left the block): no error then, but the socket is shut, so the
    connection must not go back to the pool for another unit to fail on."""
    import psycopg

    from simgate.storage.pg_hang import AnswerWatch

    watch = AnswerWatch(bound=0.0)
    try:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            with watch.round_trip(conn):
                conn.execute("SELECT 1").fetchone()  # answered
                watch.cut_silent()  # the watch's look lands now, past the (zero) bound
            assert watch.cuts == 1
            assert conn.closed, "a connection with its socket shut down stayed open"
    finally:
        watch.close()


def test_the_pools_check_of_an_idle_connection_has_its_own_short_bound(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    """After a hang the probe checks the idle connections one after another while the store is
    held down: each silent one may hold it CHECK_BOUND, not the statement bound."""
    import psycopg

    from simgate.storage.pg_hang import CHECK_BOUND, AnswerWatch

    assert store._watch.bound > CHECK_BOUND
    bounds: list[float | None] = []
    round_trip = store._watch.round_trip

    def recorded(conn: psycopg.Connection[object], bound: float | None = None) -> object:
        bounds.append(bound)
        return round_trip(conn, bound)  # type: ignore[arg-type]

    monkeypatch.setattr(store._watch, "round_trip", recorded)
    store.pool.wait(HANG)
    store.pool.check()
    assert bounds
    assert set(bounds) == {CHECK_BOUND}
    # And a round trip's own bound is the one the watch holds it to.
    watch = AnswerWatch(bound=3600.0)
    try:
        with psycopg.connect(postgres_url, autocommit=True) as conn, watch.round_trip(conn, 0.0):
            watch.cut_silent()
        assert watch.cuts == 1
    finally:
        watch.close()
