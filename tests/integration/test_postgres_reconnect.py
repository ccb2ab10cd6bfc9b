"""PostgreSQL back after an outage: the store works again at the first probe, whatever the
outage's length and whatever its pool went through (storage/postgres.py). The outage is a
relay in front of the server cut and restored (tests/pg_proxy.py): the shared server is
never restarted, so these need not run alone. Each wait below is an event with a bound far
beyond what the fix needs (milliseconds) and far below what the fault costs (60 s)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from simgate.storage.ports import StoreUnavailable, UnitOfWork
from simgate.storage.postgres import PostgresStore
from tests.pg_proxy import PgRelay

pytestmark = pytest.mark.postgres

BOUND = 20.0
STUCK = 60.0
"""acquire_timeout: a probe or unit waiting on the pool for it would outlast BOUND."""


@pytest.fixture
def relay(postgres_url: str) -> Iterator[PgRelay]:
    relay = PgRelay(postgres_url)
    yield relay
    relay.close()


def count(uow: UnitOfWork) -> int:
    return len(uow.outbox.claimants())


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"waited {BOUND} s for {what}"
        time.sleep(0.01)


def probe_returns(store: PostgresStore) -> None:
    done = threading.Thread(target=store.probe, daemon=True)
    done.start()
    done.join(BOUND)
    assert not done.is_alive(), "the probe waits on the pool instead of asking the server"


def test_one_probe_after_the_outage_and_no_unit_fails_on_a_connection_from_before(relay: PgRelay) -> None:
    store = PostgresStore(relay.url, min_size=3, max_size=3, acquire_timeout=STUCK)
    try:
        store.pool.wait(BOUND)  # three idle connections, all about to die with the server
        relay.down()
        with pytest.raises(StoreUnavailable):
            store.run_read(count)
        probe_returns(store)
        assert store.write_error is not None

        relay.back()
        probe_returns(store)
        assert store.write_error is None, "one probe finds the server back"
        for _ in range(6):  # twice the pool: none of them gets a connection the outage killed
            assert store.run_read(count) == 0
    finally:
        store.close()


def test_units_waiting_on_an_empty_pool_get_a_connection_at_the_first_probe(relay: PgRelay) -> None:
    """A long outage: the pool has given up reconnecting, a unit waits for a connection that
    nobody is making. The probe that finds the server back gets it one, without waiting
    out the unit's `acquire_timeout`."""
    store = PostgresStore(relay.url, min_size=1, max_size=1, acquire_timeout=STUCK)
    side = ThreadPoolExecutor(1)
    try:
        store.pool.wait(BOUND)
        relay.down()
        with pytest.raises(StoreUnavailable):
            store.run_read(count)
        wait_for(lambda: store.pool.get_stats()["pool_size"] == 0, "the pool to give up reconnecting")
        waiting: Future[int] = side.submit(store.run_read, count)
        wait_for(lambda: store.pool.get_stats()["requests_waiting"] == 1, "the unit to wait on the pool")
        wait_for(lambda: store.pool.get_stats()["pool_size"] == 0, "its reconnection to be given up")
        probe_returns(store)
        assert store.write_error is not None

        relay.back()
        probe_returns(store)
        assert store.write_error is None
        assert waiting.result(BOUND) == 0, "the waiting unit ran as soon as the server was back"
    finally:
        side.shutdown(wait=False)
        store.close()
