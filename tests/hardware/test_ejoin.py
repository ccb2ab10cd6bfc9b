"""Ejoin / Skyline gateways: HTTP pushes in their format through the real app, and the pull."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from starlette.applications import Starlette

from simgate.hardware.ejoin import EjoinDevice, EjoinDriver, port_name
from simgate.services.intake import Accepted
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import LiveServer
from tests.hardware.conftest import PHONES, online, open_operation, sink, stored, wait_for

TOKEN = "ej-token-1"
TOML = f"""
[hardware.ejoin.devices.box1]
token = "{TOKEN}"
[hardware.ejoin.devices.box1.ports]
"1.01" = "{PHONES[0]}"
"2B" = "{PHONES[1]}"
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def sms(port: str, stamp: int, sender: str, text: str, recipient: str = "", report: int = 0) -> list[Any]:
    return [report, port, stamp, sender, recipient, b64(text) if not report else text]


@pytest.fixture
def ejoin_server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve(TOML)


def push(server: LiveServer, payload: dict[str, Any], token: str = TOKEN) -> Any:
    with server.client() as client:
        return client.post(f"/intake/ejoin/box1?token={token}", json=payload)


def test_a_recv_sms_batch_is_stored_and_a_resent_batch_is_recognised(ejoin_server: LiveServer) -> None:
    assert ejoin_server.store is not None
    operation = open_operation(ejoin_server.store, PHONES[1])
    stamp = int(time.time())
    batch = {
        "type": "recv-sms",
        "sms_num": 3,
        "sms": [
            sms("1.01", stamp, "VK", "VK: 33708 — код подтверждения"),
            sms("2.02", stamp, "+79001112233", "Telegram code 55555"),
            sms("1.01", stamp, "10086", "0 26011512000000", report=1),  # a delivery report
        ],
    }
    answer = push(ejoin_server, batch)
    assert answer.status_code == 200
    assert answer.json()["stored"] == 2
    by_phone = {message.phone: (message, delivery) for message, delivery in stored(ejoin_server.store)}
    assert set(by_phone) == {PHONES[0], PHONES[1]}
    assert by_phone[PHONES[0]][0].text == "VK: 33708 — код подтверждения"
    assert by_phone[PHONES[0]][1] is None  # no open operation: stored, not pushed
    assert by_phone[PHONES[1]][0].operation_id == operation
    assert by_phone[PHONES[1]][1] is not None
    again = push(ejoin_server, batch)
    assert again.status_code == 200
    assert again.json()["duplicates"] == 2
    assert len(stored(ejoin_server.store)) == 2


def test_texts_with_the_firmware_header_block_are_unwrapped(ejoin_server: LiveServer) -> None:
    assert ejoin_server.store is not None
    framed = (
        'Sender: Google\r\nReceiver: "3.01" 79281234562\r\nSMSC: 34607008077\r\n'
        'SCTS: 25110914563088\r\nSlot: "01"\r\n\r\nG-666266 is your Google verification code.'
    )
    answer = push(ejoin_server, {"type": "recv-sms", "sms_num": 1, "sms": [sms("3.01", 1, "Google", framed)]})
    assert answer.status_code == 200
    [(message, _)] = stored(ejoin_server.store)
    # Port 3 is not in the config: the number comes from the header's Receiver line.
    assert message.phone == PHONES[2]
    assert message.text == "G-666266 is your Google verification code."


def test_a_wrong_token_is_refused_and_nothing_is_stored(ejoin_server: LiveServer) -> None:
    assert ejoin_server.store is not None
    batch = {"type": "recv-sms", "sms_num": 1, "sms": [sms("1.01", 1, "VK", "code 1")]}
    assert push(ejoin_server, batch, token="nope").status_code == 401
    with ejoin_server.client() as client:
        assert client.post("/intake/ejoin/box1", json=batch).status_code == 401
        assert client.post(f"/intake/ejoin/other?token={TOKEN}", json=batch).status_code == 404
    assert stored(ejoin_server.store) == []


def test_port_status_pushes_take_sims_off_sale_and_back(ejoin_server: LiveServer) -> None:
    store = ejoin_server.store
    assert store is not None
    assert push(ejoin_server, {"type": "port-status", "port": "1.01", "seq": 4, "st": "0 No SIM"}).is_success
    wait_for(lambda: not online(store, PHONES[0]), what="port 1.01 offline")
    device = {
        "type": "dev-status",
        "seq": 1,
        "expires": 180,
        "max-ports": 32,
        "max-slots": 4,
        "status": [
            {"port": "1.01", "st": 3, "sig": 25, "iccid": "8970", "active": 1},
            {"port": "2.02", "st": "6 Registration failed"},
        ],
    }
    assert push(ejoin_server, device).is_success
    wait_for(lambda: online(store, PHONES[0]) and not online(store, PHONES[1]), what="dev-status applied")


def test_port_names_are_normalised() -> None:
    assert port_name("1A") == port_name("1.1") == port_name("1.01") == port_name(1) == "1.01"
    assert port_name("12D") == "12.04"


class FakeGateway:
    """The gateway's GET /goip_get_sms.html, numbering its inbox from 1 per `ssrc`."""

    def __init__(self) -> None:
        self.inbox: list[list[Any]] = []
        self.ssrc = "a1"
        self.queries: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.queries.append(query)
        if query.get("password") != "pw":
            return web.json_response({"code": 1, "reason": "Invalid User"})
        start, count = int(query["sms_id"]), int(query["sms_num"])
        page = self.inbox[start - 1 : start - 1 + count]
        return web.json_response(
            {
                "code": 0,
                "reason": "OK",
                "ssrc": self.ssrc,
                "sms_num": len(page),
                "next_sms": start + len(page),
                "data": page,
            }
        )


async def test_the_pull_cursor_catches_up_on_missed_pushes(sqlite_store: SQLiteStore) -> None:
    gateway = FakeGateway()
    app = web.Application()
    app.router.add_get("/goip_get_sms.html", gateway.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    now = int(time.time())
    gateway.inbox = [
        sms("1.01", now - 10 * 86400, "Old", "from last week"),  # older than pull_max_age
        sms("1.01", now - 60, "VK", "code 1"),
        sms("2B", now - 30, "VK", "code 2"),
        sms("1.01", now - 5, "VK", "code 3"),
    ]
    device = EjoinDevice(
        name="box1",
        token=TOKEN,
        ports={"1.01": PHONES[0], "2.02": PHONES[1]},
        url=f"http://127.0.0.1:{port}",
        username="root",
        password="pw",
        pull_seconds=3600,
        pull_batch=2,
        pull_max_age=86400,
    )
    driver = EjoinDriver({"box1": device}, sink(sqlite_store), time.time)
    try:
        # "code 2" arrived by push first; the pull must not store it again.
        await driver.store_rows(device, [gateway.inbox[2]], max_age=None)
        async with aiohttp.ClientSession() as session:
            assert await driver.poll(session, device) == 2
            assert sorted(m.text for m, _ in stored(sqlite_store)) == ["code 1", "code 2", "code 3"]
            assert driver.cursors["box1"].next_id == 5
            gateway.inbox.append(sms("2.02", now, "VK", "code 4"))
            assert await driver.poll(session, device) == 1
            # A reboot renumbers the inbox (new ssrc): the cursor restarts, nothing is doubled.
            gateway.ssrc = "b2"
            assert await driver.poll(session, device) == 0
            assert driver.cursors["box1"].ssrc == "b2"
        assert len(stored(sqlite_store)) == 4
        assert all(q["sms_del"] == "0" for q in gateway.queries)  # never deleted before stored
    finally:
        await runner.cleanup()


async def test_a_batch_whose_answer_was_lost_is_stored_once_when_resent(sqlite_store: SQLiteStore) -> None:
    device = EjoinDevice(name="box1", token=TOKEN, ports={"1.01": PHONES[6]})
    driver = EjoinDriver({"box1": device}, sink(sqlite_store), time.time)
    open_operation(sqlite_store, PHONES[6])
    calls = 0

    async def crash_once(accepted: Accepted) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("died between the commit and the answer")

    driver.sinks["box1"].after_commit = crash_once
    batch = {"type": "recv-sms", "sms_num": 1, "sms": [sms("1.01", int(time.time()), "VK", "code 8")]}
    transport = httpx.ASGITransport(app=Starlette(routes=driver.routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://simgate") as client:
        first = await client.post(f"/intake/ejoin/box1?token={TOKEN}", json=batch)
        assert first.status_code == 503  # the gateway keeps the batch and sends it again
        again = await client.post(f"/intake/ejoin/box1?token={TOKEN}", json=batch)
        assert again.status_code == 200
        assert again.json()["duplicates"] == 1
    [(message, delivery)] = stored(sqlite_store)
    assert message.text == "code 8"
    assert delivery is not None
