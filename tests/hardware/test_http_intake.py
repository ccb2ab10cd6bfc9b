"""POST /intake/sms is one more source on the Hardware page (`http`), fed like the drivers."""

from __future__ import annotations

import time
from collections.abc import Callable

from simgate.http.intake import Intake
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import INTAKE_TOKEN, LiveServer
from tests.hardware.conftest import PHONES, sink, stored
from tests.hardware.test_console_status import driver, hardware

BEARER = {"authorization": f"Bearer {INTAKE_TOKEN}"}


def test_intake_sms_shows_what_it_received_rejected_and_refused(serve: Callable[..., LiveServer]) -> None:
    server = serve("")
    before = driver(hardware(server), "http")
    assert (before["kind"], before["reports_on_its_own"], before["silent"]) == ("http", False, False)
    assert (before["received"], before["last_contact"]) == (0, None)

    sms = {"phone": PHONES[0], "sender": "VK", "text": "code 1", "message_id": "m1"}
    with server.client() as client:
        assert client.post("/intake/sms", json=sms, headers=BEARER).status_code == 202
        assert client.post("/intake/sms", json=sms, headers=BEARER).status_code == 200
        unknown = {**sms, "phone": "79990000000", "message_id": "m2"}
        assert client.post("/intake/sms", json=unknown, headers=BEARER).status_code == 422
        wrong = {"authorization": "Bearer nope"}
        assert client.post("/intake/sms", json=sms, headers=wrong).status_code == 401

    after = driver(hardware(server), "http")
    assert (after["received"], after["duplicates"], after["rejected"]) == (1, 1, 1)
    assert after["last_contact"] is not None
    assert after["last_error"] == "wrong or missing bearer token"
    assert after["recent_error"] is True


def test_without_a_token_the_source_is_not_shown(sqlite_store: SQLiteStore) -> None:
    assert Intake(sink(sqlite_store), None, time.time).status() == []


async def test_the_intake_feeds_the_shared_sink(sqlite_store: SQLiteStore) -> None:
    intake = Intake(sink(sqlite_store), INTAKE_TOKEN, time.time)
    body = b'{"phone": "%s", "sender": "VK", "text": "code 2"}' % PHONES[1].encode()
    status, answer = await intake.handle(body, INTAKE_TOKEN)
    assert status == 202, answer
    assert [message.text for message, _ in stored(sqlite_store)] == ["code 2"]
    assert intake.status()[0].received == 1
