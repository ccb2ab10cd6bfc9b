"""Input that used to answer 500 (issue 12, item 3), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from simgate.http.body import MAX_JSON_DEPTH, json_depth
from tests.conftest import ADMIN_TOKEN, INTAKE_TOKEN, KEY
from tests.edge.conftest import PHONE

INTAKE = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DEEP = b"[" * 1000 + b"]" * 1000


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "' + b"[" * 500 + b'"}') == 1
    assert json_depth(b'{"a": "\\"' + b"[" * 500 + b'"}') == 1
    assert json_depth(DEEP) == 1000
    assert json_depth(b'{"a": [[1], {"b": [2]}]}' * 40) == 4


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/onlinesim/getNumber", {}),
        ("/onlinesim", {}),
        ("/intake/sms", INTAKE),
        ("/api/numbers/1/blacklist", ADMIN),
    ],
)
def test_deeply_nested_json_is_a_400(app_client: httpx.Client, path: str, headers: dict[str, str]) -> None:
    for body in (DEEP, b'{"key": ' + DEEP + b"}", gzip.compress(DEEP)):
        extra = {"Content-Encoding": "gzip"} if body[:2] == b"\x1f\x8b" else {}
        response = app_client.post(path, content=body, headers={**headers, **extra})
        assert response.status_code == 400, response.text
        assert f"deeper than {MAX_JSON_DEPTH}" in response.text


def test_a_nul_in_an_sms_is_stripped_and_the_sms_stored(app_client: httpx.Client) -> None:
    sms = {"phone": PHONE, "sender": "V\u0000K", "text": "code\u0000 1234", "message_id": "id\u00001"}
    first = app_client.post("/intake/sms", json=sms, headers=INTAKE)
    assert first.status_code == 202, first.text
    again = app_client.post("/intake/sms", json=sms, headers=INTAKE)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    listed = app_client.get("/api/sms", headers=ADMIN).json()["items"]
    assert [(m["sender"], m["text"]) for m in listed] == [("VK", "code 1234")]


@pytest.mark.parametrize("field", ["country", "operator", "service"])
def test_a_nul_in_a_marketplace_name_is_a_400(app_client: httpx.Client, field: str) -> None:
    order = {"key": KEY, "service": "vkcom", "country": "russia", "operator": "beeline"}
    order[field] = order[field] + "\u0000"
    response = app_client.post("/onlinesim/getNumber", json=order)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["status"] != "SUCCESS"


@pytest.mark.parametrize(
    "path",
    [
        "/api/numbers?country=rus%00sia",
        "/api/numbers?search=%00",
        "/api/operations?service=vk%00",
        "/api/sms?search=a%00b",
        "/api/deliveries?state=%00",
    ],
)
def test_a_nul_in_an_admin_filter_is_a_400(app_client: httpx.Client, path: str) -> None:
    response = app_client.get(path, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["error"] or "must be one of" in response.json()["error"]


def test_a_nul_in_an_admin_path_or_body_is_a_4xx(app_client: httpx.Client) -> None:
    assert app_client.delete("/api/numbers/1/blacklist/vk%00", headers=ADMIN).status_code in (400, 404)
    blocked = app_client.post(
        "/api/numbers/1/blacklist", content=json.dumps({"service": "vk\u0000"}), headers=ADMIN
    )
    assert 400 <= blocked.status_code < 500, blocked.text


def test_non_ascii_cookie_and_csrf_token_are_refused_not_500(app_client: httpx.Client) -> None:
    for cookie in ("1.2.é", "é", "1.\u00ff.abc", "1.2.\u20ac"):
        header = {"Cookie": f"simgate_session={cookie}".encode()}
        assert app_client.get("/api/numbers", headers=header).status_code == 401
        assert app_client.get("/", headers=header, follow_redirects=False).status_code == 303
    login = app_client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert login.status_code == 303
    for token in ("é", "\u00ff" * 40, "\u20ac" * 20):
        response = app_client.post("/api/numbers/1/disable", headers={"X-CSRF-Token": token.encode()})
        assert response.status_code == 403, response.text
    logout = app_client.post("/logout", data={"csrf": "é" * 40}, follow_redirects=False)
    assert logout.status_code == 403
    app_client.cookies.clear()


@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_login_and_logout_bodies_are_bounded(app_client: httpx.Client, path: str) -> None:
    response = app_client.post(
        path,
        content=b"token=" + b"a" * 5_000_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code in (400, 413, 303), response.text
    assert response.status_code != 303 or path == "/logout"  # logout without a session: no body read
