"""A connection lost while a unit's commit is in flight: the outcome is unknown, and the 503
says so instead of "nothing was changed" (storage/pg_units.py `_committing`, OutcomeUnknown).

The relay (tests/pg_proxy.py) forwards the statement that commits, lets the server answer it,
swallows that answer and cuts the session: the server *has* committed, the client never hears.
A cut on an earlier statement of the unit leaves nothing committed, and still says so."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from simgate.bootstrap import build_app
from simgate.domain.types import Timestamp
from simgate.services.inventory import import_numbers
from simgate.storage import schema
from simgate.storage.ports import OutcomeUnknown, StoreUnavailable, UnitOfWork
from simgate.storage.postgres import PostgresStore
from tests import conftest
from tests.conftest import INTAKE_TOKEN, KEY
from tests.factories import make_spec
from tests.pg_proxy import PgRelay

pytestmark = pytest.mark.postgres

PATIENCE = 30.0
"""Longest the store may take to write again after a cut (its probe comes within a second)."""
NOTHING = "nothing was changed"
UNKNOWN = "may or may not"
FARM = "79281234567"
"""The one SIM of the HTTP test."""


class CuttingRelay(PgRelay):
    """A relay that, once armed with `marker`, forwards the client's message holding it, drops
    the server's answer to it and cuts that session."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        self.marker: bytes | None = None
        self._doomed: set[socket.socket] = set()
        self.cut = 0

    def cut_after(self, marker: bytes) -> None:
        self.marker = marker

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            from_client = source.getsockname()[1] == self.port
            while data := source.recv(65536):
                if from_client and self.marker is not None and self.marker in data:
                    self.marker = None
                    self._doomed.add(sink)  # the server's socket: its next answer is dropped
                elif not from_client and source in self._doomed:
                    self.cut += 1
                    break  # the server answered (it did the statement): the client never hears
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay(postgres_url: str) -> Iterator[CuttingRelay]:
    relay = CuttingRelay(postgres_url)
    yield relay
    relay.close()


@pytest.fixture
def store(relay: CuttingRelay) -> Iterator[PostgresStore]:
    store = PostgresStore(relay.url, min_size=1, max_size=2, acquire_timeout=3.0)
    yield store
    relay.close()
    store.close()


def upsert(phone: str) -> Callable[[UnitOfWork], object]:
    spec = make_spec(phone=phone, port="")
    return lambda uow: uow.numbers.upsert(spec, Timestamp(time.time()))


def stored(postgres_url: str, phone: str) -> bool:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute("SELECT 1 FROM numbers WHERE phone = %s", (phone,)).fetchone() is not None


def writes_again(store: PostgresStore) -> None:
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            store.run(upsert(FARM))  # unchanged: the farm keeps its one SIM
            if store.write_error is None:
                return
        except StoreUnavailable:
            pass
        assert time.monotonic() < deadline, "the store writes again after the cut"
        time.sleep(0.05)


def test_a_connection_lost_during_commit_leaves_the_outcome_unknown(
    relay: CuttingRelay, store: PostgresStore, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store.run(upsert("79280000001"))  # the pool's connection is up
    relay.cut_after(b"COMMIT\x00")
    with caplog.at_level(logging.WARNING, "simgate.postgres"), pytest.raises(OutcomeUnknown) as lost:
        store.run(upsert("79280000002"))
    assert relay.cut == 1
    assert "upsert" in lost.value.unit  # tests.integration...upsert: the unit's own function
    warned = [r.getMessage() for r in caplog.records if "during the commit of" in r.getMessage()]
    assert any("upsert" in message for message in warned)
    # And here it did commit: "nothing was changed" would have been a lie.
    assert stored(postgres_url, "79280000002")


def test_a_connection_lost_before_commit_changed_nothing_and_says_so(
    relay: CuttingRelay, store: PostgresStore, postgres_url: str
) -> None:
    store.run(upsert("79280000001"))
    relay.cut_after(b"INSERT INTO numbers")  # the unit's first write, before its COMMIT
    with pytest.raises(StoreUnavailable) as gone:
        store.run(upsert("79280000003"))
    assert relay.cut == 1
    assert not isinstance(gone.value, OutcomeUnknown)
    assert not stored(postgres_url, "79280000003")


async def test_each_call_lost_in_its_commit_answers_503_saying_the_outcome_is_unknown(
    relay: CuttingRelay, store: PostgresStore
) -> None:
    """GET_NUMBER and FINISH are one statement each, their own commit (autocommit); an SMS is
    a transaction with a COMMIT. Each still answers 503, with what a retry does."""
    settings = conftest.test_settings(relay.url)
    app = build_app(settings, store, revision=schema.head_revision(), worker=False)
    store.run(lambda uow: import_numbers(uow, [make_spec(phone=FARM)], time.time()))
    transport = httpx.ASGITransport(app=app)
    order = {"action": "GET_NUMBER", "country": "russia", "operator": "any", "service": "vkcom", "key": KEY}
    sms = {"phone": "79281234567", "sender": "VK", "text": "VK: 33708", "message_id": "port7-1"}
    intake = {"Authorization": f"Bearer {INTAKE_TOKEN}"}

    async def lost(marker: bytes, path: str, body: dict[str, Any], **kwargs: Any) -> str:
        relay.cut_after(marker)
        answer = await client.post(path, json=body, **kwargs)
        assert answer.status_code == 503
        assert relay.cut == cuts + 1
        writes_again(store)
        return str(answer.json()["error"])

    async with httpx.AsyncClient(transport=transport, base_url="http://simgate", timeout=PATIENCE) as client:
        services = await client.post("/onlinesim/getServices", json={"action": "GET_SERVICES", "key": KEY})
        assert services.status_code == 200
        cuts = 0
        text = await lost(b"WITH pick AS", "/onlinesim/getNumber", order)
        assert UNKNOWN in text
        assert "issued" in text
        assert NOTHING not in text
        # It did issue: the number is busy, and the retry finds none free (one SIM).
        retry = await client.post("/onlinesim/getNumber", json=order)
        assert retry.json() == {"status": "NO_NUMBERS"}
        cuts += 1

        operation = store.run(lambda uow: uow.operations.open_for_phone("79281234567"))
        assert operation is not None
        assert operation[1] is not None
        finish = {"action": "FINISH_ACTIVATION", "activationId": operation[1].id, "status": 4, "key": KEY}
        text = await lost(b"simgate_finish(", "/onlinesim/finishActivation", finish)
        assert UNKNOWN in text
        assert "FINISH" in text
        assert NOTHING not in text
        again = await client.post("/onlinesim/finishActivation", json=finish)
        assert again.json()["status"] == "SUCCESS"  # the resend settles it
        cuts += 1

        text = await lost(b"COMMIT\x00", "/intake/sms", sms, headers=intake)
        assert UNKNOWN in text
        assert "SMS" in text
        assert NOTHING not in text
        resent = await client.post("/intake/sms", json=sms, headers=intake)
        assert resent.status_code == 200
        assert resent.json()["duplicate"] is True  # it was stored
