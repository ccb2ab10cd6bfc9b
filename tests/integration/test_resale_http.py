"""Resale windows and exclusion groups over real HTTP, as the marketplaces see them: a sale on
HeroSMS hides the number on SMSHUB and the reverse; a group sale hides the other services on
every marketplace; `GET /api/numbers/{id}/why` names the rule (CONTRACT.md, "Marketplace rules
beyond one operation")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simgate.config import load_settings
from simgate.domain.lanes import Move
from simgate.domain.model import Number
from simgate.storage.ports import UnitOfWork
from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.factories import make_spec

KEY = "agent-protocol-key"
MARKETS = ("smshub", "grizzly", "herosms")
NAMES = {"whatsapp": "wa", "vkcom": "vk", "ok": "ok", "telegram": "tg"}


def start(sqlite_url: str, tmp_path: Path, toml: str = "", **extra: str) -> LiveServer:
    environ = {"SIMGATE_DATABASE_URL": sqlite_url, "SIMGATE_ADMIN_TOKEN": ADMIN_TOKEN,
               "SIMGATE_HEROSMS_PING_SECONDS": "0", "SIMGATE_LANE_MOVES": "0"}  # fmt: skip
    environ |= {f"SIMGATE_{m.upper()}_KEY": f"{KEY}-{m}" for m in MARKETS}
    environ |= {f"SIMGATE_{k.upper()}": v for k, v in extra.items()}
    config = tmp_path / "simgate.toml"
    config.write_text(toml)
    return LiveServer(load_settings(environ, config)).start()


@pytest.fixture
def paths(tmp_path: Path) -> Path:
    return tmp_path


def call(http: httpx.Client, market: str, action: str, **fields: Any) -> dict[str, Any]:
    answer = http.post(f"/{market}", json={"action": action, "key": f"{KEY}-{market}", **fields})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def counted(http: httpx.Client, market: str, service: str) -> int:
    listed = call(http, market, "GET_SERVICES")["countryList"]
    return sum(ops.get(NAMES[service], 0) for c in listed for ops in c["operatorMap"].values())


def order(http: httpx.Client, market: str, service: str) -> dict[str, Any]:
    fields = {"country": "russia", "operator": "any", "service": NAMES[service], "sum": 10, "currency": 840}
    return call(http, market, "GET_NUMBER", **fields)


def sell(http: httpx.Client, market: str, service: str) -> None:
    issued = order(http, market, service)
    assert issued["status"] == "SUCCESS", issued
    assert call(http, market, "FINISH_ACTIVATION", activationId=issued["activationId"], status=3) == {
        "status": "SUCCESS"
    }


def pinned(server: LiveServer, market: str) -> Number:
    """One SIM the CSV lets only `market` sell: it sits in that lane."""
    spec = make_spec(marketplaces=frozenset({market}))
    assert server.store is not None
    server.store.run(lambda uow: uow.numbers.upsert(spec, time.time()))
    found = server.store.run(lambda uow: uow.numbers.get_by_phone(spec.phone))
    assert found is not None
    assert found.lane == market
    return found


def move(server: LiveServer, number: Number, target: str) -> None:
    """The owner lets `target` sell it too and it moves there (two steps), even where a window
    forbids it (the balancer would not: told a time past every window), as on a farm upgraded
    with SIMs already there: the count and the claim must still hold it back."""
    assert server.store is not None
    spec = make_spec(phone=number.phone, marketplaces=frozenset({number.lane or "", target}))

    def work(uow: UnitOfWork) -> None:
        uow.numbers.upsert(spec, time.time())
        current = uow.numbers.get(number.id)
        assert current is not None
        assert current.lane is not None
        step = Move(current.country, current.marketplaces, current.lane, target, 1)
        marked = uow.lanes.mark_leaving(step, time.time() + 1000 * 86400)
        uow.lanes.stamp(marked, time.time() - 3600)
        assert uow.lanes.join_stale(time.time()) == 1

    server.store.run(work)


def why(http: httpx.Client, number: Number, **query: str) -> dict[str, Any]:
    answer = http.get(
        f"/api/numbers/{number.id}/why", params=query, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture
def server(sqlite_url: str, paths: Path) -> Iterator[LiveServer]:
    live = start(sqlite_url, paths)
    try:
        yield live
    finally:
        live.stop()


def test_a_sale_on_herosms_hides_the_number_on_the_other_marketplaces(server: LiveServer) -> None:
    sim = pinned(server, "herosms")
    with server.client() as http:
        sell(http, "herosms", "whatsapp")
        assert counted(http, "herosms", "telegram") == 1  # HeroSMS itself may sell it again
        move(server, sim, "smshub")
        assert counted(http, "smshub", "vkcom") == 0
        assert order(http, "smshub", "vkcom") == {"status": "NO_NUMBERS"}
        (answer,) = why(http, sim, marketplace="smshub", service="vkcom")["marketplaces"]
        assert answer["offered"] is False
        (reason,) = answer["reasons"]
        assert reason["rule"] == "resale"
        assert reason["text"].startswith("resale window of herosms's terms until ")
        assert reason["until"] > time.time() + 59 * 86400


def test_a_sale_elsewhere_hides_the_number_from_herosms(server: LiveServer) -> None:
    sim = pinned(server, "smshub")
    with server.client() as http:
        sell(http, "smshub", "vkcom")
        move(server, sim, "herosms")
        assert counted(http, "herosms", "telegram") == 0
        assert order(http, "herosms", "telegram") == {"status": "NO_NUMBERS"}
        reasons = why(http, sim, marketplace="herosms")["marketplaces"][0]["reasons"]
        assert [r["rule"] for r in reasons] == ["resale", "sold"]
        assert "sold for vkcom on smshub" in reasons[0]["text"]


def test_a_group_sale_hides_the_other_services_everywhere(sqlite_url: str, paths: Path) -> None:
    toml = '[[exclusion_groups]]\nname = "wa-ok"\nservices = ["whatsapp", "ok"]\n'
    live = start(sqlite_url, paths, toml, herosms_resale_days="0")
    try:
        sim = pinned(live, "smshub")
        with live.client() as http:
            assert counted(http, "smshub", "ok") == 1
            sell(http, "smshub", "whatsapp")
            assert counted(http, "smshub", "ok") == 0
            assert counted(http, "smshub", "vkcom") == 1
            assert order(http, "smshub", "ok") == {"status": "NO_NUMBERS"}
            move(live, sim, "grizzly")
            assert counted(http, "grizzly", "ok") == 0
            assert order(http, "grizzly", "ok") == {"status": "NO_NUMBERS"}
            assert order(http, "grizzly", "vkcom")["status"] == "SUCCESS"
            (answer,) = why(http, sim, marketplace="grizzly", service="ok")["marketplaces"]
            assert [r["rule"] for r in answer["reasons"]] == ["busy", "group"]
            assert answer["reasons"][1]["text"].startswith(
                "excluded from ok by group wa-ok: sold for whatsapp on smshub"
            )
    finally:
        live.stop()


def test_why_refuses_an_unknown_marketplace_and_number(server: LiveServer) -> None:
    sim = pinned(server, "smshub")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with server.client() as http:
        every = why(http, sim)["marketplaces"]
        assert {m["marketplace"]: m["offered"] for m in every} == {
            "grizzly": False,
            "herosms": False,
            "smshub": True,
        }
        bad = http.get(f"/api/numbers/{sim.id}/why", params={"marketplace": "nowhere"}, headers=headers)
        assert bad.status_code == 400
        assert "nowhere" in bad.json()["error"]
        assert http.get("/api/numbers/999999/why", headers=headers).status_code == 404
        assert http.get(f"/api/numbers/{sim.id}/why").status_code == 401
