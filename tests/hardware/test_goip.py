"""GoIP SMS-server protocol: a UDP client speaking it over loopback against the driver."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from simgate.hardware.goip import GoipConfig, GoipDriver
from simgate.services.intake import Accepted
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import LiveServer
from tests.hardware.conftest import PHONES, online, open_operation, sink, stored, until, wait_for


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """The GoIP side: one UDP socket per line, as the firmware uses."""

    def __init__(self, port: int) -> None:
        self.address = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(3)

    def send(self, text: str) -> None:
        self.sock.sendto(text.encode(), self.address)

    def ask(self, text: str, timeout: float = 10.0) -> str | None:
        """The answer, or None after `timeout`: generous, since an answer expected must come on
        a loaded machine too; callers that expect none pass a short one."""
        self.sock.settimeout(timeout)
        self.send(text)
        try:
            return self.sock.recv(4096).decode()
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


def keepalive(count: int, line: str = "goip1", password: str = "s3cret", **extra: str) -> str:
    values = {
        "num": "",
        "signal": "23",
        "gsm_status": "LOGIN",
        "voip_status": "LOGOUT",
        "imei": "861234567890123",
        "imsi": "250011234567890",
        "iccid": "89701011234567890123",
        **extra,
    }
    return f"req:{count};id:{line};pass:{password};" + "".join(f"{k}:{v};" for k, v in values.items())


def receive(recvid: str, text: str, line: str = "goip1", password: str = "s3cret") -> str:
    return f"RECEIVE:{recvid};id:{line};password:{password};srcnum:+79001112233;msg:{text}"


TOML = """
[hardware.goip]
host = "127.0.0.1"
port = {port}
password = "s3cret"
[hardware.goip.lines]
goip1 = "{phone}"
"""


@pytest.fixture
def goip_server(serve: Callable[..., LiveServer]) -> Iterator[tuple[LiveServer, Gateway]]:
    port = free_udp_port()
    server = serve(TOML.format(port=port, phone=PHONES[0]))
    gateway = Gateway(port)
    yield server, gateway
    gateway.close()


def test_keepalives_are_answered_and_drive_the_sim_online_state(
    goip_server: tuple[LiveServer, Gateway],
) -> None:
    server, gateway = goip_server
    assert server.store is not None
    assert gateway.ask(keepalive(10)) == "reg:10;status:200;"
    assert gateway.ask(keepalive(11, gsm_status="LOGOUT")) == "reg:11;status:200;"
    store = server.store
    wait_for(lambda: not online(store, PHONES[0]), what="the SIM going offline")
    with server.client() as client:
        answer = client.post(
            "/onlinesim/getServices", json={"action": "GET_SERVICES", "key": "test-partner-key"}
        ).json()
    counts = {entry["country"]: entry["operatorMap"] for entry in answer["countryList"]}
    assert counts["russia"]["any"]["telegram"] == len(PHONES) - 1  # the offline SIM is not offered
    assert gateway.ask(keepalive(12)) == "reg:12;status:200;"
    wait_for(lambda: online(store, PHONES[0]), what="the SIM coming back online")


def test_a_wrong_password_is_not_answered_and_nothing_is_stored(
    goip_server: tuple[LiveServer, Gateway],
) -> None:
    server, gateway = goip_server
    assert gateway.ask(keepalive(1, password="guess"), timeout=0.3) is None
    assert gateway.ask(receive("77", "code 1", password="guess"), timeout=0.3) is None
    assert server.store is not None
    assert stored(server.store) == []


def test_an_sms_is_acknowledged_once_stored_and_a_resend_is_recognised(
    goip_server: tuple[LiveServer, Gateway],
) -> None:
    server, gateway = goip_server
    assert server.store is not None
    operation = open_operation(server.store, PHONES[0])
    text = "Ваш код 4321; не сообщайте его: никому"  # noqa: RUF001
    assert gateway.ask(receive("1717171717", text)) == "RECEIVE 1717171717 OK"
    [(message, delivery)] = stored(server.store)
    assert (message.phone, message.sender, message.text) == (PHONES[0], "+79001112233", text)
    assert message.operation_id == operation
    assert delivery is not None
    # The gateway did not hear the OK (lost datagram) and sends again: same answer, one SMS.
    assert gateway.ask(receive("1717171717", text)) == "RECEIVE 1717171717 OK"
    assert len(stored(server.store)) == 1
    # Other push kinds are acknowledged so the gateway stops repeating them.
    answer = gateway.ask("STATE:1717171800;id:goip1;password:s3cret;gsm_remain_state:IDLE")
    assert answer == "STATE 1717171800 OK"


def test_an_unmapped_line_takes_its_number_from_the_keepalive(
    goip_server: tuple[LiveServer, Gateway],
) -> None:
    server, gateway = goip_server
    assert server.store is not None
    # Before any keep-alive names the line's number the SMS is held back (not acknowledged).
    assert gateway.ask(receive("5", "code 5", line="goip2"), timeout=0.3) is None
    assert gateway.ask(keepalive(1, line="goip2", num=f"+{PHONES[1]}")) == "reg:1;status:200;"
    assert gateway.ask(receive("5", "code 5", line="goip2")) == "RECEIVE 5 OK"
    [(message, _)] = stored(server.store)
    assert message.phone == PHONES[1]


async def test_silent_lines_go_offline(sqlite_store: SQLiteStore) -> None:
    # goip9 is configured but its gateway never speaks (switched off before we started).
    config = GoipConfig("127.0.0.1", 0, "s3cret", {"goip1": PHONES[2], "goip9": PHONES[6]}, {}, 0.3, 200)
    driver = GoipDriver(config, sink(sqlite_store), time.time)
    async with driver.running():
        gateway = Gateway(driver.address[1])
        try:
            assert await asyncio.to_thread(gateway.ask, keepalive(1)) == "reg:1;status:200;"
            await until(lambda: driver.health.ports["goip1"].online is True)
            await until(lambda: driver.health.ports["goip1"].online is False, what="offline")
            await until(lambda: not online(sqlite_store, PHONES[6]), what="the silent line offline")
            assert not online(sqlite_store, PHONES[2])
            assert driver.health.snapshot().last_contact is not None
        finally:
            gateway.close()


async def test_killed_between_commit_and_ack_the_resend_is_stored_once(
    sqlite_store: SQLiteStore,
) -> None:
    """The process dies after the commit, before "RECEIVE n OK": the gateway resends to the
    restarted server, which acknowledges it without a second SMS or a second push."""
    open_operation(sqlite_store, PHONES[3])
    config = GoipConfig("127.0.0.1", 0, "s3cret", {"goip1": PHONES[3]}, {}, 60.0, 200)
    first = GoipDriver(config, sink(sqlite_store), time.time)

    async def die(accepted: Accepted) -> None:
        raise asyncio.CancelledError  # the task is gone before it could answer

    first.sink.after_commit = die
    async with first.running():
        gateway = Gateway(first.address[1])
        assert await asyncio.to_thread(gateway.ask, receive("42", "code 42"), 0.5) is None
        assert len(stored(sqlite_store)) == 1
    restarted = replace(config, port=gateway.address[1])
    second = GoipDriver(restarted, sink(sqlite_store), time.time)
    async with second.running():
        assert await asyncio.to_thread(gateway.ask, receive("42", "code 42")) == "RECEIVE 42 OK"
    gateway.close()
    [(message, delivery)] = stored(sqlite_store)
    assert message.text == "code 42"
    assert delivery is not None
    assert second.health.duplicates == 1
    assert second.health.received == 0
