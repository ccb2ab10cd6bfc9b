"""POST /intake/sms with mistyped fields, impossible times and the token in the wrong place,
on SQLite and PostgreSQL: a 400 or 401 naming what is wrong, and no SMS stored."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import INTAKE_TOKEN, LiveServer
from tests.edge.conftest import PHONE
from tests.hardware.conftest import stored

BEARER = {"Authorization": f"Bearer {INTAKE_TOKEN}"}


def sms(**fields: Any) -> dict[str, Any]:
    return {"phone": PHONE, "sender": "VK", "text": "VK: 33708", **fields}


def count(server: LiveServer) -> int:
    assert server.store is not None
    return len(stored(server.store))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        # Each was stored, with a received_at no page or script can show.
        pytest.param(sms(received_at=1e300), "received_at must be a time between 1970 and 9999", id="1e300"),
        pytest.param(sms(received_at=-1e300), "received_at must be a time between 1970", id="-1e300"),
        pytest.param(sms(received_at=-1), "received_at must be a time between 1970", id="before-1970"),
        pytest.param(sms(received_at=2**63), "received_at must be a time between 1970", id="2**63"),
        pytest.param(sms(received_at="0001-01-01T00:00:00+23:59"), "between 1970 and 9999", id="year-1"),
        pytest.param(sms(received_at="9999-12-31T23:59:59-23:59"), "between 1970 and 9999", id="year-10000"),
        # A negative number was stored as the phone: its '-' reads as a separator.
        pytest.param(sms(phone=-int(PHONE)), "phone must be a whole number >= 0", id="negative-phone"),
        pytest.param(sms(phone=10**400), "phone '1000000000000000000000000000000", id="huge-phone"),
        pytest.param(sms(phone="7" * 100_000), "must have 8 to 15 digits", id="long-phone"),
        pytest.param(sms(received_at="x" * 100_000), "is not an ISO 8601 time", id="long-time"),
        pytest.param(sms(phone={"a": 1}), "phone must be a whole number or text", id="phone-object"),
        pytest.param(sms(text=["a"]), "text must be text, not a list", id="text-list"),
        pytest.param(sms(sender=None), "sender must be text, not null", id="sender-null"),
        pytest.param(sms(message_id=1.5), "message_id must be", id="message-id-float"),
        pytest.param({"sender": "VK", "text": "x"}, "phone is missing", id="no-phone"),
    ],
)
def test_an_impossible_sms_is_a_400_that_stores_nothing(
    server: LiveServer, app_client: httpx.Client, body: dict[str, Any], words: str
) -> None:
    before = count(server)
    answer = app_client.post("/intake/sms", json=body, headers=BEARER)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]
    assert len(answer.text) < 300  # the value is quoted at most in part, never a megabyte back
    assert count(server) == before


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        pytest.param(f"/intake/sms?token={INTAKE_TOKEN}", {}, sms(), id="query"),
        pytest.param("/intake/sms", {}, sms(token=INTAKE_TOKEN), id="body"),
        pytest.param("/intake/sms", {"Authorization": INTAKE_TOKEN}, sms(), id="no-scheme"),
        pytest.param("/intake/sms", {"Authorization": f"Basic {INTAKE_TOKEN}"}, sms(), id="basic"),
        pytest.param("/intake/sms", {"X-Intake-Token": INTAKE_TOKEN}, sms(), id="other-header"),
        pytest.param("/intake/sms", {"Authorization": f"Bearer {INTAKE_TOKEN}x"}, sms(), id="longer"),
        pytest.param("/intake/sms", {"Authorization": "Bearer é".encode("latin-1")}, sms(), id="latin-1"),
    ],
)
def test_the_token_anywhere_but_the_bearer_header_is_a_401_that_says_where(
    server: LiveServer, app_client: httpx.Client, path: str, headers: dict[str, Any], body: dict[str, Any]
) -> None:
    before = count(server)
    answer = app_client.post(path, json=body, headers=headers)
    assert answer.status_code == 401, answer.text
    assert "Authorization: Bearer $SIMGATE_INTAKE_TOKEN" in answer.json()["error"]
    assert count(server) == before


def test_content_type_is_not_asked_and_a_duplicated_key_keeps_its_last_value(
    server: LiveServer, app_client: httpx.Client
) -> None:
    """`curl -d` (README) sends a form Content-Type with its JSON: the body is read as JSON
    whatever the header says. RFC 8259 leaves duplicated names open; simgate's readers
    (msgspec, like Python's json) keep the last, and the answer says which SMS was stored."""
    for n, content_type in enumerate(("application/x-www-form-urlencoded", "text/plain", "")):
        body = json.dumps(sms(text=f"code {n}")).encode()
        answer = app_client.post(
            "/intake/sms", content=body, headers={**BEARER, "Content-Type": content_type}
        )
        assert answer.status_code == 202, answer.text
    doubled = b'{"phone": "%s", "sender": "VK", "text": "first", "text": "last"}' % PHONE.encode()
    answer = app_client.post("/intake/sms", content=doubled, headers=BEARER)
    assert answer.status_code == 202, answer.text
    assert server.store is not None
    texts = {message.id: message.text for message, _ in stored(server.store)}
    assert texts[answer.json()["id"]] == "last"
    assert "first" not in texts.values()


def test_a_time_a_wrong_clock_may_show_is_stored(server: LiveServer, app_client: httpx.Client) -> None:
    """The bound refuses broken senders, not wrong clocks: 1970 after a reset, 2099 after a
    bad sync are stored as sent (and routed by simgate's own clock, README "Clock skew")."""
    for n, stamp in enumerate((0, 4070908800, "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z")):
        answer = app_client.post(
            "/intake/sms", json=sms(text=f"clock {n}", received_at=stamp), headers=BEARER
        )
        assert answer.status_code == 202, answer.text
