"""Malformed, mistyped and unsigned webhooks to the Android driver (/intake/android/DEVICE).

Each gets a 4xx naming the field (never echoing its value), never a 500, and leaves every
table as it was: an object where the text should be was stored as its Python text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.edge.conftest import SIGNING_KEY, refused
from tests.hardware.conftest import PHONES, stored


@pytest.fixture
def server(hardware_server: LiveServer) -> LiveServer:
    return hardware_server


@pytest.fixture
def client(hardware_client: httpx.Client) -> httpx.Client:
    return hardware_client


NOW = int(time.time())


def signed(body: bytes, stamp: str | bytes | None = None, key: str = SIGNING_KEY) -> dict[str, Any]:
    sent = str(int(time.time())).encode() if stamp is None else stamp
    sent = sent.encode("latin-1") if isinstance(sent, str) else sent
    signature = hmac.new(key.encode(), body + sent, hashlib.sha256).hexdigest()
    return {"X-Timestamp": sent, "X-Signature": signature.encode()}


def event(envelope: dict[str, Any] | None = None, **payload: Any) -> dict[str, Any]:
    fields = {"messageId": "m1", "message": "code 1", "sender": "+79001112233", "simNumber": 1, **payload}
    return {"deviceId": "d1", "event": "sms:received", "id": f"ev-{time.time()}", "payload": fields,
            **(envelope or {})}  # fmt: skip


def webhook(client: httpx.Client, payload: Any, **sign: Any) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/intake/android/pixel", content=body, headers=signed(body, **sign))


ANDROID_MALFORMED = [
    pytest.param(b"[]", "expected a JSON object", id="list"),
    pytest.param(b"null", "expected a JSON object", id="null"),
    pytest.param(b"1", "expected a JSON object", id="number"),
    pytest.param(b'{"event":', "not JSON", id="truncated"),
    pytest.param(event({"event": {"x": 1}}), "event must be text", id="event-object"),
    pytest.param(event({"payload": []}), "payload must be an object, not a list", id="payload-list"),
    pytest.param(event({"payload": None}), "payload must be an object, not null", id="payload-null"),
    pytest.param(event({"id": {"x": 1}}), "id must be text, not an object", id="id-object"),
    pytest.param(event({"id": True}), "id must be text, not true or false", id="id-bool"),
    pytest.param(event(message={"a": 1}), "payload.message must be text, not an object", id="message-object"),
    pytest.param(event(message=12345), "payload.message must be text, not a number", id="message-number"),
    pytest.param(event(message=["a"]), "payload.message must be text, not a list", id="message-list"),
    pytest.param(event(message=None, textMessage={"text": 5}), "payload.textMessage.text", id="text-number"),
    pytest.param(event(sender={"a": 1}), "payload.sender must be text", id="sender-object"),
    pytest.param(event(sender=79001112233), "payload.sender must be text", id="sender-number"),
    pytest.param(
        event(sender=None, phoneNumber=7900), "payload.phoneNumber must be text", id="old-sender-number"
    ),
    pytest.param(event(recipient=["+79"]), "payload.recipient must be text", id="recipient-list"),
    pytest.param(event(messageId={"a": 1}), "payload.messageId must be text", id="message-id-object"),
    pytest.param(event(receivedAt=1717171717), "payload.receivedAt must be text", id="received-at-number"),
    pytest.param(event(simNumber=[1]), "payload.simNumber must be a SIM slot", id="slot-list"),
    pytest.param(event(simNumber=1e300), "payload.simNumber must be a SIM slot", id="slot-1e300"),
    pytest.param(event(simNumber=-1), "payload.simNumber must be a SIM slot", id="slot-negative"),
    pytest.param(event(simNumber=True), "payload.simNumber must be a SIM slot", id="slot-bool"),
    pytest.param(event(simNumber="x" * 1000), "payload.simNumber must be a SIM slot", id="slot-long-text"),
    pytest.param(event(simNumber="¹"), "payload.simNumber must be a SIM slot", id="slot-superscript"),
]


@pytest.mark.parametrize(("payload", "words"), ANDROID_MALFORMED)
def test_a_malformed_android_webhook_is_a_400_and_stores_nothing(
    server: LiveServer, client: httpx.Client, payload: Any, words: str
) -> None:
    answer = refused(server, lambda: webhook(client, payload), 400, words)
    assert len(answer.text) < 300  # names the field, never echoes the value


ANDROID_UNSIGNED = [
    # latin-1 header bytes: '²' passes str.isdigit() and int() raises (it was a 500).
    pytest.param({"stamp": b"\xb2"}, "X-Timestamp must be Unix seconds", id="stamp-superscript"),
    pytest.param({"stamp": "1" * 5000}, "X-Timestamp must be Unix seconds", id="stamp-5000-digits"),
    pytest.param({"stamp": "-5"}, "X-Timestamp must be Unix seconds", id="stamp-negative"),
    pytest.param({"stamp": "1e9"}, "X-Timestamp must be Unix seconds", id="stamp-exponent"),
    pytest.param({"stamp": "1717171717.5"}, "X-Timestamp must be Unix seconds", id="stamp-fraction"),
    pytest.param({"stamp": "1717171717"}, "away from our clock", id="stamp-stale"),
    pytest.param({"key": "wrong"}, "signature does not match", id="wrong-key"),
    pytest.param({"key": SIGNING_KEY + " "}, "signature does not match", id="near-key"),
]


@pytest.mark.parametrize(("sign", "words"), ANDROID_UNSIGNED)
def test_an_unsigned_android_webhook_is_a_401(
    server: LiveServer, client: httpx.Client, sign: dict[str, Any], words: str
) -> None:
    refused(server, lambda: webhook(client, event(), **sign), 401, words)


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        pytest.param({}, "X-Signature and X-Timestamp are required", id="none"),
        pytest.param({"X-Signature": "00"}, "X-Signature and X-Timestamp are required", id="no-timestamp"),
        pytest.param({"X-Timestamp": str(NOW)}, "are required", id="no-signature"),
        pytest.param({"Authorization": f"Bearer {SIGNING_KEY}"}, "are required", id="key-as-bearer"),
        pytest.param({"X-Signature": "é".encode("latin-1"), "X-Timestamp": str(NOW)}, "does not match",
                     id="latin-1-signature"),
    ],
)  # fmt: skip
def test_an_android_webhook_without_a_signature_is_a_401(
    server: LiveServer, client: httpx.Client, headers: dict[str, Any], words: str
) -> None:
    body = json.dumps(event()).encode()
    refused(server, lambda: client.post("/intake/android/pixel", content=body, headers=headers), 401, words)


def test_odd_but_harmless_android_input_is_answered_not_500(server: LiveServer, client: httpx.Client) -> None:
    assert server.store is not None
    # The slot as text or a number; a number id; any Content-Type; a time without an offset
    # or in year 1 means no time (the SMS is stored with simgate's).
    stamp = "0001-01-01T00:00:00+23:59"
    answer = webhook(client, event({"id": 987654321}, simNumber="1", message="code 9", receivedAt=stamp))
    assert answer.status_code == 202, answer.text
    texts = {message.text: message for message, _ in stored(server.store)}
    assert texts["code 9"].received_at is None
    assert texts["code 9"].phone == PHONES[2]
    # Another event is acknowledged and ignored; so is one without an event name.
    for other in ({"event": "sms:sent"}, {"event": None}):
        answer = webhook(client, event(other))
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "ignored"
