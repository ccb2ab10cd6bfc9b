"""The admin API (/api/) against odd query strings, bodies and credentials, on SQLite and
PostgreSQL: a 4xx naming what is wrong, and nothing changed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.edge.conftest import snapshot

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize(
    ("query", "words"),
    [
        # A repeated name kept its last value: an answer to another question than the one asked.
        pytest.param("limit=1&limit=2", "limit given more than once", id="limit-twice"),
        pytest.param("state=free&state=busy", "state given more than once", id="state-twice"),
        pytest.param("search=a&search=a", "search given more than once", id="same-value-twice"),
        pytest.param(
            "limit=1&offset=0&limit=1&offset=0", "limit, offset given more than once", id="two-names"
        ),
        # Undecodable escapes were searched for as U+FFFD.
        pytest.param("search=%C3%28", "percent-escapes are not UTF-8", id="bad-utf8"),
        pytest.param("search=%FF", "percent-escapes are not UTF-8", id="lone-ff"),
        pytest.param("country=%ED%A0%80", "percent-escapes are not UTF-8", id="surrogate"),
        # int() reads these; no caller means them.
        pytest.param("limit=1_0", "limit must be an integer", id="underscore"),
        pytest.param("limit=%EF%BC%91", "limit must be an integer", id="fullwidth-digit"),
        pytest.param("offset=%D9%A1", "offset must be an integer", id="arabic-indic-digit"),
        pytest.param("limit=" + "9" * 5000, "limit must be an integer", id="5000-digits"),
        pytest.param("limit=-1", "limit must be between 1 and 500", id="negative"),
        pytest.param("limit=1e2", "limit must be an integer", id="exponent"),
    ],
)
def test_an_odd_query_string_is_a_400(app_client: httpx.Client, query: str, words: str) -> None:
    answer = app_client.get(f"/api/numbers?{query}", headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]
    assert len(answer.text) < 300  # a 5,000-digit value is not sent back


@pytest.mark.parametrize(
    "path",
    ["/api/operations?since=1_0", "/api/operations?until=%EF%BC%91", "/api/sms?number_id=1&number_id=2"],
)
def test_every_listing_reads_its_query_the_same_way(app_client: httpx.Client, path: str) -> None:
    answer = app_client.get(path, headers=ADMIN)
    assert answer.status_code == 400, answer.text


def test_a_repeated_parameter_on_an_action_changes_nothing(
    server: LiveServer, app_client: httpx.Client
) -> None:
    before = snapshot(server) if server.settings.database_url.startswith("sqlite") else None
    answer = app_client.post("/api/numbers/1/disable?x=1&x=2", headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert app_client.get("/api/numbers/1", headers=ADMIN).json()["number"]["enabled"] is True
    assert before is None or snapshot(server) == before


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(b"null", "must be a JSON object, not null", id="null"),
        pytest.param(b"1", "must be a JSON object", id="number"),
        pytest.param(b'"vkcom"', "must be a JSON object", id="string"),
        pytest.param(b"[]", "must be a JSON object, not a list", id="list"),
        pytest.param(b"{}", "service is missing", id="empty"),
        pytest.param(b'{"service": null}', "service must be text, not null", id="service-null"),
        pytest.param(b'{"service": 5}', "service must be text", id="service-number"),
        pytest.param(b'{"service": {"a": 1}}', "service must be text", id="service-object"),
        pytest.param(b'{"service": "vkcom", "until": 1}', "until is not a field", id="unknown-field"),
        pytest.param(b'{"service": "vk\xc3\x28"}', "not UTF-8", id="bad-utf8"),
        pytest.param(b'{"service": "' + b"x" * 3000 + b'"}', "is not an Onlinesim service name", id="long"),
    ],
)
def test_a_malformed_blacklist_body_is_a_400_that_blocks_nothing(
    server: LiveServer, app_client: httpx.Client, body: bytes, words: str
) -> None:
    answer = app_client.post("/api/numbers/1/blacklist", content=body, headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]
    assert len(answer.text) < 300  # a 3,000-character name is not sent back
    assert app_client.get("/api/numbers/1", headers=ADMIN).json()["number"]["blocked_services"] == []


def test_a_long_service_in_the_path_is_quoted_in_part(app_client: httpx.Client) -> None:
    answer = app_client.delete("/api/numbers/1/blacklist/" + "x" * 30_000, headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert len(answer.text) < 300


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param(f"/api/numbers?token={ADMIN_TOKEN}", {}, id="query-token"),
        pytest.param(f"/api/numbers?apikey={ADMIN_TOKEN}", {}, id="query-apikey"),
        pytest.param("/api/numbers", {"Authorization": ADMIN_TOKEN}, id="no-scheme"),
        pytest.param("/api/numbers", {"Authorization": f"Basic {ADMIN_TOKEN}"}, id="basic"),
        pytest.param("/api/numbers", {"X-Admin-Token": ADMIN_TOKEN}, id="other-header"),
        pytest.param("/api/numbers", {"Cookie": f"simgate_session={ADMIN_TOKEN}"}, id="token-as-cookie"),
        pytest.param("/api/numbers", {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}, id="prefix"),
    ],
)
def test_the_admin_token_anywhere_but_the_bearer_header_is_a_401_that_says_where(
    app_client: httpx.Client, path: str, headers: dict[str, Any]
) -> None:
    answer = app_client.get(path, headers=headers)
    assert answer.status_code == 401, answer.text
    assert "Authorization: Bearer $SIMGATE_ADMIN_TOKEN" in answer.json()["error"]
    assert answer.headers["www-authenticate"].startswith("Bearer")
