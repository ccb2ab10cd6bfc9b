"""Malformed, mistyped and unauthenticated pushes to the Ejoin driver (/intake/ejoin/DEVICE).

Each gets a 4xx naming what is wrong, in the gateway's envelope, never a 500, and leaves every
table as it was; what a gateway may really send is read as well as it can be.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.edge.conftest import EJOIN_TOKEN as EJOIN
from tests.edge.conftest import refused
from tests.hardware.conftest import stored


@pytest.fixture
def server(hardware_server: LiveServer) -> LiveServer:
    return hardware_server


@pytest.fixture
def client(hardware_client: httpx.Client) -> httpx.Client:
    return hardware_client


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


NOW = int(time.time())
GOOD_ROW = [0, "1.01", NOW, "VK", "", b64("VK: 12345")]


def row(**fields: Any) -> list[Any]:
    """GOOD_ROW with some fields replaced, by name."""
    names = ["report", "port", "time", "sender", "recipient", "text"]
    return [fields.get(name, value) for name, value in zip(names, GOOD_ROW, strict=True)]


def batch(*rows: Any) -> dict[str, Any]:
    return {"type": "recv-sms", "sms_num": len(rows), "sms": list(rows)}


def push(
    client: httpx.Client, payload: Any, query: str = f"?token={EJOIN}", **options: Any
) -> httpx.Response:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/intake/ejoin/box1" + query, content=content, **options)


EJOIN_MALFORMED = [
    pytest.param(b"[]", "expected a JSON object", id="list"),
    pytest.param(b"null", "expected a JSON object", id="null"),
    pytest.param(b"42", "expected a JSON object", id="number"),
    pytest.param(b'"recv-sms"', "expected a JSON object", id="string"),
    pytest.param(b"{", "not JSON", id="truncated"),
    pytest.param(
        b'{"type": "recv-sms", "sms": [[0, "1.01", 1e400, "VK", "", "eA=="]]}', "not JSON", id="1e400"
    ),
    pytest.param({}, "type must be text", id="no-type"),
    pytest.param({"type": ["recv-sms"]}, "type must be text", id="type-list"),
    pytest.param({"type": None}, "type must be text", id="type-null"),
    pytest.param({"type": "recv-sms"}, "sms must be a list", id="no-sms"),
    pytest.param({"type": "recv-sms", "sms": {"0": GOOD_ROW}}, "sms must be a list", id="sms-object"),
    pytest.param(batch(GOOD_ROW, "row"), "sms[1] must be an array of 6 fields", id="row-text"),
    pytest.param(batch(GOOD_ROW, GOOD_ROW[:5]), "sms[1] must be an array of 6 fields", id="row-short"),
    pytest.param(batch(row(text={"x": 1})), "sms[0][5] (text) must be text, not an object", id="text-object"),
    pytest.param(batch(row(text=None)), "sms[0][5] (text) must be text, not null", id="text-null"),
    pytest.param(batch(row(text=12345)), "sms[0][5] (text) must be text, not a number", id="text-number"),
    pytest.param(
        batch(row(sender={"a": 1})), "sms[0][3] (sender) must be text or a number", id="sender-object"
    ),
    pytest.param(batch(row(sender=None)), "sms[0][3] (sender)", id="sender-null"),
    pytest.param(batch(row(sender=True)), "not true or false", id="sender-bool"),
    pytest.param(batch(row(recipient=[1])), "sms[0][4] (recipient)", id="recipient-list"),
    pytest.param(batch(row(report={"a": 1})), "sms[0][0] (report)", id="report-object"),
    pytest.param(batch(row(port={"a": 1})), "sms[0][1] (port)", id="port-object"),
    pytest.param(batch(row(port="1" * 5000)), "sms[0][1] (port) must be a port", id="port-5000-digits"),
    pytest.param(batch(row(port="")), "sms[0][1] (port) must be a port", id="port-empty"),
    pytest.param(batch(row(time=1e300)), "sms[0][2] (time) must be a time between 1970", id="time-1e300"),
    pytest.param(batch(row(time="9" * 400)), "sms[0][2] (time) must be a time", id="time-400-digits"),
    pytest.param(batch(row(time=-5)), "sms[0][2] (time) must be a time", id="time-negative"),
    pytest.param(batch(row(time=2**64)), "sms[0][2] (time) must be a time", id="time-2**64"),
    # A JSON integer float() cannot take (OverflowError, a 500).
    pytest.param(batch(row(time=10**400)), "sms[0][2] (time) must be a time", id="time-10**400"),
    pytest.param(batch(row(time=True)), "sms[0][2] (time) must be Unix seconds", id="time-bool"),
    pytest.param(batch(row(time=[NOW])), "sms[0][2] (time) must be Unix seconds", id="time-list"),
    pytest.param({"type": "port-status", "st": "3"}, "the report.port is missing", id="status-no-port"),
    pytest.param({"type": "port-status", "port": {"a": 1}}, "the report.port", id="status-port-object"),
    pytest.param({"type": "port-status", "port": "9" * 5000}, "must be a port", id="status-port-5000-digits"),
    pytest.param({"type": "port-status", "port": "1.01", "st": [3]}, "the report.st", id="status-st-list"),
    pytest.param(
        {"type": "port-status", "port": "1.01", "sig": {}}, "the report.sig", id="status-sig-object"
    ),
    pytest.param(
        {"type": "port-status", "port": "1.01", "iccid": {"x": [1]}}, ".iccid", id="status-iccid-object"
    ),
    pytest.param(
        {"type": "port-status", "port": "1.01", "imsi": "1" * 1000}, ".imsi is longer", id="imsi-long"
    ),
    pytest.param({"type": "dev-status"}, "status must be a list", id="dev-no-status"),
    pytest.param({"type": "dev-status", "status": "3"}, "status must be a list", id="dev-status-text"),
    pytest.param(
        # The first entry would take 1.01 off sale: not applied, as the second is malformed.
        {"type": "dev-status", "status": [{"port": "1.01", "st": "0 No SIM"}, []]},
        "status[1] must be an object",
        id="dev-second-entry-list",
    ),
]


@pytest.mark.parametrize(("payload", "words"), EJOIN_MALFORMED)
def test_a_malformed_ejoin_push_is_a_400_and_stores_nothing(
    server: LiveServer, client: httpx.Client, payload: Any, words: str
) -> None:
    answer = refused(server, lambda: push(client, payload), 400, words)
    assert answer.json()["code"] == 400  # the gateway's envelope, as its OK answers


EJOIN_REFUSALS = [
    pytest.param("", {}, 401, "wrong or missing token", id="no-token"),
    pytest.param("?token=wrong", {}, 401, "wrong or missing token", id="wrong-token"),
    pytest.param(f"?token={EJOIN.upper()}", {}, 401, "wrong or missing token", id="token-case"),
    pytest.param(f"?token={EJOIN[:-1]}", {}, 401, "wrong or missing token", id="token-prefix"),
    pytest.param(f"?Token={EJOIN}", {}, 401, "wrong or missing token", id="param-case"),
    pytest.param(f"?token=%ZZ{EJOIN}", {}, 401, "wrong or missing token", id="percent-garbage"),
    pytest.param(f"?token=%FF{EJOIN}", {}, 401, "wrong or missing token", id="percent-not-utf8"),
    pytest.param("", {"Authorization": f"Basic {EJOIN}"}, 401, "wrong or missing token", id="basic-scheme"),
    pytest.param("", {"X-Token": EJOIN}, 401, "wrong or missing token", id="other-header"),
    pytest.param("", {"Cookie": f"token={EJOIN}"}, 401, "wrong or missing token", id="cookie"),
    pytest.param(f"?token=wrong&token={EJOIN}", {}, 400, "token given more than once", id="token-twice"),
    pytest.param(
        f"?token={EJOIN}&token={EJOIN}", {}, 400, "token given more than once", id="token-twice-same"
    ),
]


@pytest.mark.parametrize(("query", "headers", "status", "words"), EJOIN_REFUSALS)
def test_an_ejoin_push_without_its_token_is_refused(
    server: LiveServer, client: httpx.Client, query: str, headers: dict[str, str], status: int, words: str
) -> None:
    refused(server, lambda: push(client, batch(GOOD_ROW), query, headers=headers), status, words)


def test_the_ejoin_token_in_the_body_does_not_count(server: LiveServer, client: httpx.Client) -> None:
    refused(server, lambda: push(client, {**batch(GOOD_ROW), "token": EJOIN}, ""), 401, "wrong or missing")


@pytest.mark.parametrize(
    ("content", "headers", "status", "words"),
    [
        pytest.param(b"\xff\xfe{}", {}, 400, "not UTF-8", id="not-utf8"),
        pytest.param(b'{"type": "recv-sms", "sms": [[0, "1", 1, "\xc3\x28", "", ""]]}', {}, 400, "not UTF-8",
                     id="not-utf8-inside"),
        pytest.param(b"not gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip", id="bad-gzip"),
        pytest.param(b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding", id="brotli"),
        pytest.param(b"[" * 5000, {}, 400, "nested deeper", id="deep"),
        pytest.param(b" " * (4 * 1_048_576 + 1), {}, 413, "larger than", id="oversized"),
        pytest.param(gzip.compress(b" " * (5 * 1_048_576)), {"Content-Encoding": "gzip"}, 413, "decompressed",
                     id="gzip-bomb"),
    ],
)  # fmt: skip
def test_an_unreadable_ejoin_body_is_refused(
    server: LiveServer, client: httpx.Client, content: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    refused(server, lambda: push(client, content, headers=headers), status, words)


def test_odd_but_harmless_ejoin_input_is_answered_not_500(server: LiveServer, client: httpx.Client) -> None:
    """What a gateway might send and simgate reads as well as it can, never with a 500."""
    assert server.store is not None
    stamp = NOW - 7
    # Any Content-Type (the gateway's varies); an unknown type is acknowledged and ignored.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        answer = push(client, {"type": "call-record"}, headers={"Content-Type": content_type})
        assert answer.status_code == 200, answer.text
    # '²' is a digit to str.isdigit() and not to int(): it was a 500 in the time, st and sig.
    answer = push(client, batch(row(time="²", text=b64("code ²")), row(time=stamp, text=b64("code 7"))))
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 2
    for state in ({"st": "²"}, {"st": "3", "sig": "²"}, {"st": "3 Registered", "sig": 25, "iccid": 8970}):
        answer = push(client, {"type": "port-status", "port": "1.02", **state})
        assert answer.status_code == 200, answer.text
    # Duplicated keys: the last one wins, as in every JSON reader simgate uses (RFC 8259
    # leaves it open); the signed or tokened sender is the only one who wrote either.
    doubled = b'{"type": "recv-sms", "sms": [], "sms": [[0, "1.02", %d, "Bank", "", "%s"]]}' % (
        stamp,
        b64("code 8").encode(),
    )
    assert push(client, doubled).json()["stored"] == 1
    texts = {message.text: message for message, _ in stored(server.store)}
    assert {"code ²", "code 7", "code 8"} <= set(texts)
    assert texts["code ²"].received_at is None  # a time that is no number means no time
    assert texts["code 7"].received_at == stamp
