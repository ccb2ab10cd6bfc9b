"""GET /api/hardware over real HTTP, with real drivers spoken to in their own wire formats."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simgate.dashboard.hardware import SILENT_AFTER
from simgate.hardware import DISABLED_NOTE
from simgate.hardware.gammu import GammuDriver
from tests.conftest import LiveServer
from tests.console import ADMIN
from tests.hardware.conftest import PHONES, online, wait_for
from tests.hardware.farm import STRANGER, HardwareFarm, start_farm
from tests.hardware.test_goip import TOML, Gateway, free_udp_port, keepalive


def hardware(server: LiveServer) -> dict[str, Any]:
    with server.client() as client:
        response = client.get("/api/hardware", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def driver(body: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [d for d in body["drivers"] if d["name"] == name]
    assert len(found) == 1, [d["name"] for d in body["drivers"]]
    return found[0]


def port(entry: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in entry["ports"] if p["port"] == name]
    assert len(found) == 1, [p["port"] for p in entry["ports"]]
    return found[0]


@pytest.fixture
def goip(serve: Callable[..., LiveServer]) -> Iterator[tuple[LiveServer, Gateway]]:
    udp = free_udp_port()
    server = serve(TOML.format(port=udp, phone=PHONES[0]))
    gateway = Gateway(udp)
    yield server, gateway
    gateway.close()


def test_a_goip_keepalive_shows_as_last_contact_and_an_online_port(goip: tuple[LiveServer, Gateway]) -> None:
    server, gateway = goip
    before = driver(hardware(server), "goip")
    assert before["kind"] == "goip"
    assert before["last_contact"] is None
    assert before["last_contact_age_seconds"] is None
    assert before["silent"] is False  # just started: not silent yet
    idle = port(before, "goip1")
    assert idle["phone"] == PHONES[0]
    assert idle["online"] is None
    assert idle["last_contact"] is None

    sent = time.time()
    assert gateway.ask(keepalive(7, signal="19")) == "reg:7;status:200;"
    store = server.store
    assert store is not None
    wait_for(lambda: online(store, PHONES[0]), what="the keep-alive recorded")
    after = driver(hardware(server), "goip")
    assert after["last_contact"] == pytest.approx(sent, abs=5)
    assert 0 <= after["last_contact_age_seconds"] < 5
    assert after["silent"] is False
    assert after["reports_on_its_own"] is True
    assert (after["ports_total"], after["ports_online"], after["ports_with_errors"]) == (1, 1, 0)
    line = port(after, "goip1")
    assert line["online"] is True
    assert line["signal"] == 19
    assert line["registration"] == "LOGIN"
    assert line["iccid"] == "89701011234567890123"
    assert line["imsi"] == "250011234567890"
    assert line["last_contact"] == pytest.approx(sent, abs=5)
    assert line["last_error"] is None
    assert (after["received"], after["duplicates"], after["rejected"]) == (0, 0, 0)

    assert gateway.ask(keepalive(8, gsm_status="LOGOUT")) == "reg:8;status:200;"
    wait_for(lambda: not online(store, PHONES[0]), what="the SIM going offline")
    assert port(driver(hardware(server), "goip"), "goip1")["online"] is False


def test_an_sms_over_udp_is_counted(goip: tuple[LiveServer, Gateway]) -> None:
    server, gateway = goip
    assert gateway.ask(keepalive(1)) == "reg:1;status:200;"
    message = "RECEIVE:555;id:goip1;password:s3cret;srcnum:+79001112233;msg:code 4242"
    assert gateway.ask(message) == "RECEIVE 555 OK"
    assert gateway.ask(message) == "RECEIVE 555 OK"
    status = driver(hardware(server), "goip")
    assert (status["received"], status["duplicates"]) == (1, 1)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[HardwareFarm]:
    farm = start_farm(tmp_path)
    yield farm
    farm.close()


def test_errors_silence_and_unwatched_tables(farm: HardwareFarm) -> None:
    server = farm.server
    body = hardware(server)
    assert body["silent_after_seconds"] == SILENT_AFTER
    assert [d["name"] for d in body["drivers"]] == ["goip", "ejoin:box1", "android:pixel", "http"]
    assert {u["name"]: (u["enabled"], u["note"]) for u in body["unwatched"]} == {
        "gammu": (True, GammuDriver.idle_note),
        "modem": (False, DISABLED_NOTE),
    }

    farm.goip_keepalives(1)
    farm.ejoin_status()
    goip = wait_for(
        lambda: (d := driver(hardware(server), "goip"))["ports_with_errors"] == 1 and d,
        what="goip2's unknown number reported",
    )
    assert "wrong id or password" in goip["last_error"]
    assert goip["recent_error"] is True
    assert goip["last_error_at"] == pytest.approx(body["now"], abs=10)
    assert goip["silent"] is False
    assert port(goip, "goip2")["last_error"] == f"{STRANGER} is not in the inventory"
    assert port(goip, "goip1")["last_error"] is None
    ejoin = driver(hardware(server), "ejoin:box1")
    box_port = port(ejoin, "1.01")
    assert (box_port["phone"], box_port["online"], box_port["signal"]) == (PHONES[1], True, 25)
    assert ejoin["silent"] is False

    # The gateway goes quiet for ten minutes (the clock moves instead of the test waiting).
    server.clock.offset = 600
    quiet = hardware(server)
    goip = driver(quiet, "goip")
    assert goip["silent"] is True
    assert goip["last_contact_age_seconds"] == pytest.approx(600, abs=10)
    assert driver(quiet, "ejoin:box1")["silent"] is True
    android = driver(quiet, "android:pixel")
    assert android["reports_on_its_own"] is False
    assert android["last_contact"] is None
    assert android["silent"] is False  # a phone speaks only when an SMS arrives
    goip = wait_for(
        lambda: port(d := driver(hardware(server), "goip"), "goip1")["online"] is False and d,
        what="the watchdog taking goip1 offline",
    )
    assert port(goip, "goip1")["last_error"] == "keep-alives stopped"
    assert goip["ports_online"] == 0

    # The gateway is back: no longer silent, the line online again.
    farm.goip_keepalives(2)
    back = driver(hardware(server), "goip")
    assert back["silent"] is False
    assert back["last_contact_age_seconds"] < 5
    assert port(back, "goip1")["online"] is True


def test_the_status_source_is_the_one_bootstrap_hands_in(farm: HardwareFarm) -> None:
    # Two apps in one process (as here: the farm and the plain live server) each show their own
    # drivers, which a module-level "last built" global could not do.
    other = LiveServer(farm.server.settings.model_copy(update={"hardware": {}})).start()
    try:
        assert [d["name"] for d in hardware(other)["drivers"]] == ["http"]
        assert len(hardware(farm.server)["drivers"]) == 4
    finally:
        other.stop()
