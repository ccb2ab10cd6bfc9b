"""The admin API, the dashboard's sign-in, /metrics and the logs, over real HTTP.

The farm is made as production makes it (tests/console.py): GET_NUMBER, SMS intake and
FINISH over HTTP, then read back and acted on through /api/.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simgate import logs
from simgate.logsecrets import MASK, SecretRedactor, install
from tests.conftest import ADMIN_TOKEN, INTAKE_TOKEN, KEY, LiveServer
from tests.conftest import test_settings as settings_for
from tests.console import ADMIN, A, B, C, D, Farm, marketplace, seed_farm, services


@pytest.fixture
def farm(live_server: LiveServer) -> Farm:
    return seed_farm(live_server)


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as c:
        yield c


def get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def phones(body: dict[str, Any]) -> set[str]:
    return {item["phone"] for item in body["items"]}


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/numbers", "/api/overview", "/api/operations/1", "/api/stats", "/api/hardware"]
)
def test_api_refuses_a_missing_or_wrong_token(client: httpx.Client, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert "admin token" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_actions_refuse_a_missing_token(client: httpx.Client, farm: Farm) -> None:
    number_id = farm.ids[A]
    assert client.post(f"/api/numbers/{number_id}/disable").status_code == 401
    assert client.post(f"/api/deliveries/{farm.rejected}/retry").status_code == 401
    assert client.delete(f"/api/numbers/{number_id}/blacklist/vk").status_code == 401
    assert get(client, f"/api/numbers/{number_id}")["number"]["enabled"] is True


def test_without_an_admin_token_the_console_says_it_is_disabled(sqlite_url: str) -> None:
    settings = settings_for(sqlite_url).model_copy(update={"admin_token": None})
    server = LiveServer(settings).start()
    try:
        with server.client() as client:
            for path in ("/api/numbers", "/api/overview", "/api/hardware"):
                response = client.get(path, headers=ADMIN)
                assert response.status_code == 503
                assert "SIMGATE_ADMIN_TOKEN is not set" in response.json()["error"]
            for path in ("/", "/login", "/sims", "/hardware"):
                page = client.get(path, follow_redirects=False)
                assert page.status_code == 503
                assert "SIMGATE_ADMIN_TOKEN is not set" in page.text
            assert client.get("/api/openapi.json").status_code == 200
    finally:
        server.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf" content="([0-9a-f]+)">', html)
    assert found is not None
    return found.group(1)


def test_sign_in_session_cookie_csrf_and_sign_out(client: httpx.Client, farm: Farm) -> None:
    first = client.get("/sims?state=free", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=%2Fsims%3Fstate%3Dfree"
    wrong = client.post("/login", data={"token": "nope", "next": "/sims"})
    assert wrong.status_code == 401
    assert "Wrong admin token" in wrong.text
    assert "simgate_session" not in client.cookies
    signed = client.post(
        "/login", data={"token": ADMIN_TOKEN, "next": "/sims?state=free"}, follow_redirects=False
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/sims?state=free"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http on loopback; https gets Secure
    page = client.get("/sims")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    # The session reads the API; a change also needs the page's CSRF token.
    assert client.get("/api/numbers").status_code == 200
    number_id = farm.ids[B]
    refused = client.post(f"/api/numbers/{number_id}/disable")
    assert refused.status_code == 403
    done = client.post(f"/api/numbers/{number_id}/disable", headers={"X-CSRF-Token": csrf_of(page.text)})
    assert done.status_code == 200
    assert done.json()["number"]["state"] == "disabled"
    # Sign out needs the token too, then the cookie is gone.
    assert client.post("/logout", data={"csrf": "x"}).status_code == 403
    out = client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/api/numbers").status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_forged_session_and_an_open_redirect_are_refused(client: httpx.Client) -> None:
    client.cookies.set("simgate_session", "1999999999.abcd.0123456789abcdef")
    assert client.get("/api/numbers").status_code == 401
    client.cookies.clear()
    signed = client.post(
        "/login", data={"token": ADMIN_TOKEN, "next": "//evil.example/"}, follow_redirects=False
    )
    assert signed.headers["location"] == "/"


def test_only_http_intake_is_listed_when_no_hardware_is_configured(client: httpx.Client) -> None:
    body = get(client, "/api/hardware")
    assert [(d["name"], d["kind"], d["reports_on_its_own"]) for d in body["drivers"]] == [
        ("http", "http", False)
    ]
    assert body["unwatched"] == []
    assert body["silent_after_seconds"] > 0
    assert body["now"] > 0


def test_static_assets_ship_with_the_package(client: httpx.Client) -> None:
    for name in ("console.js", "console.css", "uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"):
        assert client.get(f"/static/{name}").status_code == 200, name


# -- numbers -------------------------------------------------------------------------------------


def test_numbers_listing(client: httpx.Client, farm: Farm) -> None:
    body = get(client, "/api/numbers")
    assert (body["total"], body["limit"], body["offset"]) == (4, 50, 0)
    rows = {n["phone"]: n for n in body["items"]}
    a, b = rows[A], rows[B]
    assert (a["state"], a["operations"], a["finished"], a["sold"], a["earnings_kopecks"]) == (
        "busy",
        2,
        1,
        1,
        1250,
    )
    assert (a["sms"], a["success_rate"], a["sold_services"], a["blocked_services"]) == (
        2,
        1.0,
        ["telegram"],
        [],
    )
    assert a["last_sms_at"] is not None
    assert a["port"] == "goip1/1"
    assert (b["state"], b["rent_no_sms_streak"], b["success_rate"]) == ("free", 3, 0.0)
    assert (a["lane"], a["lane_target"], a["marketplaces"]) == ("onlinesim", None, [])
    assert (a["open_operation_marketplace"], b["open_operation_marketplace"]) == ("onlinesim", None)
    assert "3 rents in a row got no SMS" in b["losing"][0]
    assert rows[D]["state"] == "disabled"
    assert rows[C]["last_sms_at"] is not None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "busy"}, {A}),
        ({"state": "free"}, {B, C}),
        ({"state": "disabled"}, {D}),
        ({"country": "germany"}, {C}),
        ({"operator": "beeline"}, {A, D}),
        ({"port": "goip2"}, {C, D}),
        ({"search": "0002"}, {B}),
        ({"losing": "true"}, {B}),
        ({"losing": "1", "state": "busy"}, set()),
    ],
)
def test_numbers_filters(
    client: httpx.Client, farm: Farm, params: dict[str, str], expected: set[str]
) -> None:
    body = get(client, "/api/numbers", **params)
    assert phones(body) == expected
    assert body["total"] == len(expected)


def test_numbers_pagination_and_bad_parameters(client: httpx.Client, farm: Farm) -> None:
    page = get(client, "/api/numbers", limit=2, offset=1)
    assert (page["total"], len(page["items"]), page["offset"]) == (4, 2, 1)
    for params in (
        {"state": "sleepy"},
        {"limit": "0"},
        {"limit": "x"},
        {"offset": "-1"},
        {"losing": "maybe"},
    ):
        response = client.get("/api/numbers", params=params, headers=ADMIN)
        assert response.status_code == 400, params
        assert response.json()["error"]


def test_one_number_and_unknown_ones(client: httpx.Client, farm: Farm) -> None:
    assert get(client, f"/api/numbers/{farm.ids[A]}")["number"]["phone"] == A
    assert client.get("/api/numbers/9999", headers=ADMIN).status_code == 404
    for action in ("enable", "disable"):
        assert client.post(f"/api/numbers/9999/{action}", headers=ADMIN).status_code == 404


def test_disable_and_enable_move_get_services(client: httpx.Client, farm: Farm) -> None:
    before = services(client)
    assert before["telegram"] == 1  # B: A is busy, D disabled, A was sold for telegram anyway
    assert before["rent"] == 1
    response = client.post(f"/api/numbers/{farm.ids[B]}/disable", headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["number"]["state"] == "disabled"
    assert services(client)["telegram"] == 0
    assert services(client)["rent"] == 0
    assert (
        client.post(f"/api/numbers/{farm.ids[B]}/enable", headers=ADMIN).json()["number"]["state"] == "free"
    )
    assert services(client) == before


def test_disabling_a_busy_number_keeps_its_operation_open(client: httpx.Client, farm: Farm) -> None:
    client.post(f"/api/numbers/{farm.ids[A]}/disable", headers=ADMIN)
    operation = get(client, f"/api/operations/{farm.open_vk}")["operation"]
    assert operation["state"] == "open"
    marketplace(client, "finishActivation", action="FINISH_ACTIVATION", activationId=farm.open_vk, status=4)
    assert get(client, f"/api/numbers/{farm.ids[A]}")["number"]["state"] == "disabled"


def test_a_disable_shows_whose_switch_is_off(client: httpx.Client, farm: Farm) -> None:
    off = client.post(f"/api/numbers/{farm.ids[B]}/disable", headers=ADMIN).json()["number"]
    assert (off["enabled"], off["file_enabled"], off["operator_enabled"]) == (False, True, False)


def test_blacklist_binds_activations_and_not_rent(client: httpx.Client, farm: Farm) -> None:
    """Spec 6.2 and 8.4: the partner's blacklist applies to activations, never to rent."""
    number_id = farm.ids[B]
    before = services(client, operator="mts")
    assert (before["whatsapp"], before["rent"]) == (1, 1)
    blocked = client.post(f"/api/numbers/{number_id}/blacklist", json={"service": "WhatsApp"}, headers=ADMIN)
    assert blocked.status_code == 200
    assert blocked.json()["number"]["blocked_services"] == ["whatsapp"]
    after = services(client, operator="mts")
    assert (after["whatsapp"], after["telegram"], after["rent"]) == (0, 1, 1)
    assert marketplace(
        client, "getNumber", action="GET_NUMBER", country="russia", operator="mts", service="whatsapp", sum=5
    ) == {"status": "NO_NUMBERS"}
    rent = marketplace(client, "getNumberRent", action="GET_NUMBER", country="russia", operator="mts", sum=50)
    assert rent["number"] == int(B)
    marketplace(client, "finishActivationRent", action="FINISH_ACTIVATION", activationId=rent["activationId"],
                status=3, service="rent", sum=100)  # fmt: skip
    # Lifting the block brings the activation count back.
    lifted = client.delete(f"/api/numbers/{number_id}/blacklist/whatsapp", headers=ADMIN)
    assert lifted.status_code == 200
    assert lifted.json()["number"]["blocked_services"] == []
    assert services(client, operator="mts")["whatsapp"] == 1


def test_blacklist_refusals(client: httpx.Client, farm: Farm) -> None:
    a = farm.ids[A]
    sold = client.delete(f"/api/numbers/{a}/blacklist/telegram", headers=ADMIN)
    assert sold.status_code == 409
    assert "sold" in sold.json()["error"]
    assert client.delete(f"/api/numbers/{a}/blacklist/vkcom", headers=ADMIN).status_code == 404
    rent = client.post(f"/api/numbers/{a}/blacklist", json={"service": "rent"}, headers=ADMIN)
    assert rent.status_code == 400
    assert "activations only" in rent.json()["error"]
    for body in ({}, {"service": 5}, {"service": "two words"}, {"service": "vk", "extra": 1}):
        assert client.post(f"/api/numbers/{a}/blacklist", json=body, headers=ADMIN).status_code == 400, body
    assert (
        client.post("/api/numbers/9999/blacklist", json={"service": "vk"}, headers=ADMIN).status_code == 404
    )


def test_a_misspelt_service_is_refused_naming_the_closest(client: httpx.Client, farm: Farm) -> None:
    a = farm.ids[A]
    typo = client.post(f"/api/numbers/{a}/blacklist", json={"service": "telegramm"}, headers=ADMIN)
    assert typo.status_code == 400
    assert typo.json()["error"] == "unknown service 'telegramm'; did you mean telegram?"
    nonsense = client.post(f"/api/numbers/{a}/blacklist", json={"service": "zzzqqq"}, headers=ADMIN)
    assert nonsense.status_code == 400
    assert "unknown service 'zzzqqq'" in nonsense.json()["error"]
    assert get(client, f"/api/numbers/{a}")["number"]["blocked_services"] == []


# -- operations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({}, 5),
        ({"kind": "rent"}, 3),
        ({"kind": "activation"}, 2),
        ({"state": "open"}, 1),
        ({"state": "finished"}, 4),
        ({"service": "telegram"}, 1),
        ({"service": "rent"}, 3),
        ({"status": "sold"}, 1),
        ({"status": "cancelled"}, 3),
        ({"status": "open"}, 1),
        ({"search": A}, 2),
        ({"since": "0", "until": "1"}, 0),
        ({"marketplace": "onlinesim"}, 5),
        ({"marketplace": "smshub"}, 0),
    ],
)
def test_operations_filters(client: httpx.Client, farm: Farm, params: dict[str, str], count: int) -> None:
    body = get(client, "/api/operations", **params)
    assert body["total"] == count
    assert len(body["items"]) == count


def test_operations_listing_fields_and_refusals(client: httpx.Client, farm: Farm) -> None:
    body = get(client, "/api/operations", number_id=farm.ids[A])
    assert [o["id"] for o in body["items"]] == [farm.open_vk, farm.sold]
    sold = body["items"][1]
    assert (sold["kind"], sold["service"], sold["state"], sold["status"]) == (
        "activation",
        "telegram",
        "finished",
        "sold",
    )
    money = (sold["finish_status"], sold["offered_kopecks"], sold["final_kopecks"], sold["earned_kopecks"])
    assert money == (3, 1000, 1250, 1250)
    assert (sold["sms"], sold["finish_requests"], sold["marketplace"], sold["currency"]) == (
        1,
        1,
        "onlinesim",
        "RUB",
    )
    for params in ({"kind": "lease"}, {"status": "won"}, {"since": "yesterday"}, {"number_id": "0"}):
        assert client.get("/api/operations", params=params, headers=ADMIN).status_code == 400, params


def test_operation_detail_has_its_sms_attempts_and_timeline(client: httpx.Client, farm: Farm) -> None:
    detail = get(client, f"/api/operations/{farm.sold}")
    assert detail["operation"]["status"] == "sold"
    assert detail["number"]["phone"] == A
    [message] = detail["messages"]
    assert (message["sender"], message["text"], message["routed"]) == (
        "Telegram",
        "Telegram code 11111",
        True,
    )
    assert message["delivery"]["state"] == "delivered"
    assert [(a["number"], a["http_status"], a["outcome"]) for a in message["attempts"]] == [
        (1, 200, "delivered")
    ]
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "sms", "push", "finished"]
    assert "FINISH status 3 (sold), 12.50 RUB" in detail["timeline"][-1]["text"]
    rejected = get(client, f"/api/operations/{farm.open_vk}")["messages"][0]
    assert rejected["delivery"]["reason"] == "NO_OPERATION"
    assert rejected["attempts"][0]["outcome"] == "rejected"
    assert client.get("/api/operations/9999", headers=ADMIN).status_code == 404


# -- SMS and deliveries --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "texts"),
    [
        ({}, {"Telegram code 11111", "VK code 22222", "stray 33333"}),
        ({"routed": "false"}, {"stray 33333"}),
        ({"routed": "true"}, {"Telegram code 11111", "VK code 22222"}),
        ({"delivery": "delivered"}, {"Telegram code 11111"}),
        ({"delivery": "failed"}, {"VK code 22222"}),
        ({"delivery": "pending"}, set()),
        ({"search": "stray"}, {"stray 33333"}),
    ],
)
def test_sms_filters(client: httpx.Client, farm: Farm, params: dict[str, str], texts: set[str]) -> None:
    body = get(client, "/api/sms", **params)
    assert {m["text"] for m in body["items"]} == texts
    assert body["total"] == len(texts)


def test_sms_routing_and_attempts(client: httpx.Client, farm: Farm) -> None:
    stray = get(client, "/api/sms", number_id=farm.ids[C])["items"][0]
    assert (stray["operation_id"], stray["routed"], stray["delivery"], stray["attempts"]) == (
        None,
        False,
        None,
        [],
    )
    assert "no open operation" in stray["routing"]
    routed = get(client, "/api/sms", operation_id=farm.sold)["items"][0]
    assert routed["routing"] == f"operation {farm.sold}"
    assert routed["attempts"][0]["response"] == '{"status":"SUCCESS"}'
    assert client.get("/api/sms", params={"delivery": "lost"}, headers=ADMIN).status_code == 400


@pytest.mark.parametrize(
    ("state", "count"),
    [(None, 2), ("pending", 0), ("delivered", 1), ("rejected", 1), ("failed", 1), ("given_up", 0)],
)
def test_deliveries_filters(client: httpx.Client, farm: Farm, state: str | None, count: int) -> None:
    body = get(client, "/api/deliveries", **({"state": state} if state else {}))
    assert body["total"] == count


def test_delivery_fields(client: httpx.Client, farm: Farm) -> None:
    d = get(client, f"/api/deliveries/{farm.rejected}")["delivery"]
    assert (d["state"], d["reason"], d["retryable"], d["attempt_count"], d["age_seconds"]) == (
        "rejected", "NO_OPERATION", True, 1, None,
    )  # fmt: skip
    assert (d["kind"], d["service"], d["phone"], d["text"]) == ("activation", "vkcom", A, "VK code 22222")
    assert get(client, "/api/deliveries", operation_id=farm.sold)["items"][0]["id"] == farm.delivered
    assert client.get("/api/deliveries/9999", headers=ADMIN).status_code == 404


def test_retry_a_rejected_push_but_never_an_acknowledged_one(client: httpx.Client, farm: Farm) -> None:
    acknowledged = client.post(f"/api/deliveries/{farm.delivered}/retry", headers=ADMIN)
    assert acknowledged.status_code == 409
    assert "delivered" in acknowledged.json()["error"]
    assert client.post("/api/deliveries/9999/retry", headers=ADMIN).status_code == 404
    retried = client.post(f"/api/deliveries/{farm.rejected}/retry", headers=ADMIN)
    assert retried.status_code == 200
    delivery = retried.json()["delivery"]
    assert (delivery["state"], delivery["retryable"]) == ("pending", False)
    assert delivery["age_seconds"] is not None
    assert client.post(f"/api/deliveries/{farm.rejected}/retry", headers=ADMIN).status_code == 409
    assert get(client, "/api/deliveries", state="pending")["total"] == 1


# -- stats and overview --------------------------------------------------------------------------


def test_stats(client: httpx.Client, farm: Farm) -> None:
    stats = get(client, "/api/stats", days=7, tz=180)
    assert len(stats["days"]) == 7
    assert stats["tz_offset_minutes"] == 180
    today = stats["days"][-1]
    assert (today["opened"], today["finished"], today["sold"], today["earnings_kopecks"]) == (5, 4, 1, 1250)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", today["date"])
    totals = stats["totals"]
    assert (totals["opened"], totals["sold"], totals["earnings_kopecks"], totals["success_rate"]) == (
        5,
        1,
        1250,
        0.25,
    )
    assert [(g["key"], g["earnings_kopecks"]) for g in stats["by_service"]] == [
        ("telegram", 1250), ("rent", 0), ("vkcom", 0),
    ]  # fmt: skip
    assert [g["key"] for g in stats["by_country"]] == ["russia"]
    assert stats["by_number"][0]["key"] == A
    assert stats["outbox"] == {
        "pending": 0, "oldest_pending_age_seconds": None,
        "delivered": 1, "rejected": 1, "given_up": 0, "failed": 1,
    }  # fmt: skip
    for params in ({"days": "0"}, {"days": "400"}, {"tz": "5000"}, {"top": "x"}):
        assert client.get("/api/stats", params=params, headers=ADMIN).status_code == 400, params


def test_stats_show_the_pending_push_age(client: httpx.Client, live_server: LiveServer, farm: Farm) -> None:
    client.post(f"/api/deliveries/{farm.rejected}/retry", headers=ADMIN)
    outbox = get(client, "/api/stats", days=1)["outbox"]
    assert outbox["pending"] == 1
    assert 0 <= outbox["oldest_pending_age_seconds"] < 60


def test_overview(client: httpx.Client, farm: Farm) -> None:
    o = get(client, "/api/overview", tz=0)
    assert o["numbers"] == {"free": 2, "busy": 1, "offline": 0, "disabled": 1, "total": 4}
    assert o["operations_24h"] == {
        "open": 1,
        "sold": 1,
        "cancelled": 3,
        "refunded": 0,
        "not_taken": 0,
        "other": 0,
    }
    assert {(c["kind"], c["status"], c["count"]) for c in o["operations_24h_by_kind"]} == {
        ("activation", "open", 1), ("activation", "sold", 1), ("rent", "cancelled", 3),
    }  # fmt: skip
    assert (o["pushes"]["pending"], o["pushes"]["failed"]) == (0, 1)
    assert (o["earnings_today_kopecks"], o["sold_today"]) == (1250, 1)
    assert len(o["earnings_30d"]) == 30
    assert o["earnings_30d"][-1]["earnings_kopecks"] == 1250
    assert o["losing_total"] == 1
    assert o["losing"][0]["phone"] == B
    assert o["by_marketplace"] == [
        {
            "marketplace": "onlinesim", "free_sims": 2, "open": 1, "opened_24h": 5,
            "money": [{"currency": "RUB", "sold_today": 1, "earnings_today": 1250,
                       "sold_30d": 1, "earnings_30d": 1250}],
        }
    ]  # fmt: skip


# -- OpenAPI ---------------------------------------------------------------------------------------


def test_openapi_document_is_generated_from_the_response_schemas(client: httpx.Client) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    for name in (
        "NumberOut",
        "MarketplaceOut",
        "MoneyOut",
        "NumberPage",
        "OperationDetail",
        "DeliveryOut",
        "MessageOut",
        "StatsOut",
        "HardwareOut",
        "DriverOut",
        "PortOut",
        "Error",
    ):
        assert name in schemas, name
    assert set(schemas["NumberOut"]["required"]) >= {"phone", "state", "earnings_kopecks", "losing"}
    assert {"lane", "lane_target", "marketplaces", "open_operation_marketplace"} <= set(
        schemas["NumberOut"]["properties"]
    )
    assert "by_marketplace" in schemas["OverviewOut"]["properties"]
    assert "currency" in schemas["OperationOut"]["properties"]
    listing = doc["paths"]["/api/operations"]["get"]["parameters"]
    assert "marketplace" in {p["name"] for p in listing}
    expected = {
        "/api/numbers", "/api/numbers/{id}/disable", "/api/numbers/{id}/blacklist",
        "/api/numbers/{id}/blacklist/{service}", "/api/operations/{id}", "/api/sms",
        "/api/deliveries/{id}/retry", "/api/stats", "/api/overview", "/api/hardware",
    }  # fmt: skip
    assert expected <= set(doc["paths"])
    refs = re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', json.dumps(doc))
    assert refs
    assert set(refs) <= set(schemas)
    retry = doc["paths"]["/api/deliveries/{id}/retry"]["post"]
    assert retry["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "DeliveryAction"
    )
    assert doc["paths"]["/api/numbers/{id}/blacklist"]["post"]["requestBody"]["required"] is True
    hardware = doc["paths"]["/api/hardware"]["get"]["responses"]["200"]["content"]["application/json"]
    assert hardware["schema"]["$ref"].endswith("HardwareOut")
    assert set(schemas["DriverOut"]["required"]) >= {"last_contact", "last_error", "silent", "ports"}
    assert set(schemas["PortOut"]["required"]) >= {"port", "phone", "online", "signal", "iccid", "last_error"}


# -- metrics ----------------------------------------------------------------------------------------


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found is not None, name
    return float(found.group(1))


def test_metrics_read_the_farm_from_the_database(client: httpx.Client, farm: Farm) -> None:
    text = client.get("/metrics").text
    assert metric(text, 'simgate_numbers{state="free"}') == 2
    assert metric(text, 'simgate_numbers{state="busy"}') == 1
    assert metric(text, 'simgate_numbers{state="disabled"}') == 1
    assert metric(text, 'simgate_operations{kind="rent",status="cancelled"}') == 3
    assert metric(text, 'simgate_operations{kind="activation",status="open"}') == 1
    assert metric(text, "simgate_earnings_rub_total") == 12.5
    assert metric(text, "simgate_outbox_pending") == 0
    assert metric(text, 'simgate_outbox_deliveries{state="rejected"}') == 1
    assert metric(text, "simgate_farm_scrape_ok") == 1
    # By marketplace: free SIMs per lane, open operations, money per currency.
    assert metric(text, 'simgate_lane_free_numbers{lane="onlinesim"}') == 2
    assert metric(text, 'simgate_open_operations{marketplace="onlinesim"}') == 1
    assert metric(text, 'simgate_marketplace_earnings_total{currency="RUB",marketplace="onlinesim"}') == 12.5
    assert metric(text, 'simgate_marketplace_sales_total{marketplace="onlinesim"}') == 1
    assert (
        'simgate_marketplace_requests_total{call="getNumber",code="200",marketplace="onlinesim",status="SUCCESS"}'
        in text
    )
    # Always true: an action shows at the next scrape, with no counter to keep in step.
    client.post(f"/api/numbers/{farm.ids[B]}/disable", headers=ADMIN)
    client.post(f"/api/deliveries/{farm.rejected}/retry", headers=ADMIN)
    text = client.get("/metrics").text
    assert metric(text, 'simgate_numbers{state="disabled"}') == 2
    assert metric(text, "simgate_outbox_pending") == 1
    assert metric(text, "simgate_outbox_oldest_pending_seconds") >= 0


# -- logs -------------------------------------------------------------------------------------------


def test_one_log_line_per_marketplace_call_without_the_key(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    farm_caplog = caplog
    farm_caplog.set_level(logging.INFO, logger="simgate.requests")
    seeded = marketplace(client, "getServices", action="GET_SERVICES")
    assert seeded["status"] == "SUCCESS"
    order = {"key": KEY, "action": "GET_NUMBER", "country": "russia", "service": "telegram", "sum": 1}
    answer = client.post("/onlinesim/getNumber", json=order)
    assert answer.json() == {"status": "NO_NUMBERS"}
    finish = {"key": KEY, "action": "FINISH_ACTIVATION", "activationId": 42, "status": 3}
    client.post("/onlinesim/finishActivation", json=finish)
    client.post(f"/onlinesim/getServices?apikey={KEY}", json={"key": "wrong"})
    lines = [r.getMessage() for r in caplog.records if r.name == "simgate.requests"]
    assert len(lines) == 4
    assert lines[0].startswith("onlinesim getServices action=GET_SERVICES -> 200 SUCCESS")
    assert "action=GET_NUMBER country=russia service=telegram sum=1 -> 200 NO_NUMBERS" in lines[1]
    assert "operation=42 status=3 -> 404 ERROR" in lines[2]
    assert KEY not in caplog.text
    assert "wrong" not in lines[3] or "key" not in lines[3]


def test_the_issued_operation_id_is_logged(live_server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simgate.requests")
    farm = seed_farm(live_server)
    lines = [r.getMessage() for r in caplog.records if r.name == "simgate.requests"]
    assert any(f"-> 200 SUCCESS operation={farm.sold} number={A}" in line for line in lines)
    assert any(f"operation={farm.sold} status=3" in line and "-> 200 SUCCESS" in line for line in lines)


def test_secrets_are_redacted_from_every_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json")
    try:
        install([KEY, INTAKE_TOKEN, ADMIN_TOKEN, "ab"])
        log = logging.getLogger("simgate.test")
        log.warning("key=%s token=%s", KEY, ADMIN_TOKEN)
        log.warning(f"intake {INTAKE_TOKEN} in an f-string")
        try:
            raise RuntimeError(f"push failed with {KEY}")
        except RuntimeError:
            log.exception("push")
        log.warning("nothing secret: abc, tab stay")
        err = capsys.readouterr().err
    finally:
        logs.configure("text")
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert len(lines) == 4
    assert lines[0]["message"] == f"key={MASK} token={MASK}"
    assert lines[1]["message"] == f"intake {MASK} in an f-string"
    assert "RuntimeError: push failed with [redacted]" in lines[2]["message"]
    assert lines[3]["message"] == "nothing secret: abc, tab stay"  # a short secret: whole words only
    for secret in (KEY, INTAKE_TOKEN, ADMIN_TOKEN):
        assert secret not in err


def test_redactor_leaves_clean_records_alone() -> None:
    redactor = SecretRedactor(["s3cr3t-value"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    assert redactor.filter(record)
    assert (record.msg, record.args) == ("hello %s", ("world",))
    secret = logging.LogRecord("x", logging.INFO, __file__, 1, "v=%s", ("s3cr3t-value",), None)
    redactor.filter(secret)
    assert secret.getMessage() == f"v={MASK}"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/numbers/99999999999999999999999"),
        ("POST", "/api/numbers/99999999999999999999999/disable"),
        ("GET", "/api/operations/99999999999999999999999"),
        ("GET", "/api/deliveries/99999999999999999999999"),
        ("POST", "/api/deliveries/9223372036854775808/retry"),
    ],
)
def test_an_id_too_large_for_the_database_is_a_404_not_a_500(
    client: httpx.Client, method: str, path: str
) -> None:
    from simgate.domain.types import MAX_ID

    assert int(path.split("/")[3]) > MAX_ID
    answer = client.request(method, path, headers=ADMIN)
    assert answer.status_code == 404, answer.text
    assert "no such id" in answer.json()["error"]
