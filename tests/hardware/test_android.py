"""capcom6 SMS Gateway for Android: signed webhooks through the real app."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from simgate.hardware.android import AndroidDevice, AndroidDriver
from simgate.services.intake import Accepted
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import LiveServer
from tests.hardware.conftest import PHONES, open_operation, sink, stored

KEY = "signing-key-from-the-app"
TOML = f"""
[hardware.android.devices.pixel]
signing_key = "{KEY}"
device_id = "ffffffffceb0b1db0000018e937c815b"
[hardware.android.devices.pixel.sims]
1 = "{PHONES[0]}"
2 = "+{PHONES[1]}"
"""


@pytest.fixture
def android_server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve(TOML)


def envelope(event_id: str, text: str, sim: int = 1, event: str = "sms:received") -> bytes:
    body = {
        "deviceId": "ffffffffceb0b1db0000018e937c815b",
        "event": event,
        "id": event_id,
        "payload": {
            "messageId": "abc123",
            "message": text,
            "sender": "+79001112233",
            "recipient": None,
            "simNumber": sim,
            "receivedAt": datetime.now(timezone(timedelta(hours=7))).isoformat(timespec="milliseconds"),
        },
        "webhookId": "wh-1",
    }
    return json.dumps(body, ensure_ascii=False).encode()


def signed(body: bytes, key: str = KEY, stamp: int | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()) if stamp is None else stamp)
    signature = hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()
    return {"X-Signature": signature, "X-Timestamp": timestamp, "Content-Type": "application/json"}


def post(server: LiveServer, body: bytes, headers: dict[str, str]) -> Any:
    with server.client() as client:
        return client.post("/intake/android/pixel", content=body, headers=headers)


def test_a_signed_webhook_is_stored_and_its_retry_recognised(android_server: LiveServer) -> None:
    assert android_server.store is not None
    operation = open_operation(android_server.store, PHONES[1])
    body = envelope("Ey6ECgOkVVFjz3CL48B8C", "Your code is 987654", sim=2)
    answer = post(android_server, body, signed(body))
    assert answer.status_code == 202
    assert answer.json()["duplicate"] is False
    [(message, delivery)] = stored(android_server.store)
    assert (message.phone, message.sender, message.text) == (PHONES[1], "+79001112233", "Your code is 987654")
    assert message.operation_id == operation
    assert delivery is not None
    # The app did not get our answer and retries later: a fresh signature, the same event id.
    retry = post(android_server, body, signed(body, stamp=int(time.time()) + 2))
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is True
    assert len(stored(android_server.store)) == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed(body, key="another key"), id="wrong-key"),
        pytest.param(lambda body: signed(body + b" "), id="other-body"),
        pytest.param(lambda body: signed(body, stamp=int(time.time()) - 3600), id="stale"),
        pytest.param(
            lambda body: {**signed(body), "X-Timestamp": str(int(time.time()) + 1)}, id="moved-stamp"
        ),
        pytest.param(lambda body: {"Content-Type": "application/json"}, id="unsigned"),
    ],
)
def test_bad_or_stale_signatures_get_401_and_store_nothing(
    android_server: LiveServer, headers: Callable[[bytes], dict[str, str]]
) -> None:
    body = envelope("evt-bad", "Your code is 111111")
    answer = post(android_server, body, headers(body))
    assert answer.status_code == 401
    assert android_server.store is not None
    assert stored(android_server.store) == []


def test_other_events_are_acknowledged_and_ignored(android_server: LiveServer) -> None:
    body = envelope("evt-ping", "", event="system:ping")
    answer = post(android_server, body, signed(body))
    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored"
    assert android_server.store is not None
    assert stored(android_server.store) == []


async def test_an_answer_lost_after_the_commit_is_made_good_by_the_apps_retry(
    sqlite_store: SQLiteStore,
) -> None:
    """The server fails between commit and answer: the app retries, the SMS stays single."""
    device = AndroidDevice(name="pixel", signing_key=KEY, sims={}, phone=PHONES[5])
    driver = AndroidDriver({"pixel": device}, sink(sqlite_store), time.time)
    open_operation(sqlite_store, PHONES[5])

    async def crash(accepted: Accepted) -> None:
        raise ConnectionResetError("the process died before answering")

    driver.sinks["pixel"].after_commit = crash
    transport = httpx.ASGITransport(app=Starlette(routes=driver.routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://simgate") as client:
        body = envelope("evt-lost-answer", "Your code is 246810")
        first = await client.post("/intake/android/pixel", content=body, headers=signed(body))
        assert first.status_code == 503  # the app will retry
        driver.sinks["pixel"].after_commit = None
        retry = await client.post("/intake/android/pixel", content=body, headers=signed(body))
        assert retry.status_code == 200
        assert retry.json()["duplicate"] is True
    [(message, delivery)] = stored(sqlite_store)
    assert message.text == "Your code is 246810"
    assert delivery is not None
