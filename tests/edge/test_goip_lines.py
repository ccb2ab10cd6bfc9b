"""GoIP: a line speaks only for its own number; password guessing is throttled (issue 12, 7-8)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from simgate.hardware.goip import NO_SENDER
from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.hardware.conftest import PHONES, online, open_operation, serve, store_url, stored, wait_for

__all__ = ["serve", "store_url"]  # fixtures shared with tests/hardware
from tests.hardware.test_goip import TOML, Gateway, free_udp_port, keepalive, receive


@pytest.fixture
def goip(serve: Callable[..., LiveServer]) -> Iterator[tuple[LiveServer, Gateway]]:
    port = free_udp_port()
    server = serve(TOML.format(port=port, phone=PHONES[0]))
    gateway = Gateway(port)
    yield server, gateway
    gateway.close()


def test_an_unmapped_line_cannot_take_a_mapped_number_offline_or_inject_sms(
    goip: tuple[LiveServer, Gateway],
) -> None:
    server, gateway = goip
    assert server.store is not None
    open_operation(server.store, PHONES[0])
    # goip9 is not mapped; it knows the shared password and names goip1's number.
    hijack = keepalive(1, line="goip9", num=f"+{PHONES[0]}", gsm_status="LOGOUT")
    assert gateway.ask(hijack) == "reg:1;status:200;"  # a real line: answered, but not believed
    assert gateway.ask(receive("66", "fake code 0000", line="goip9"), timeout=0.5) is None
    assert stored(server.store) == []
    assert online(server.store, PHONES[0])
    # The mapped line itself is still heard.
    assert gateway.ask(receive("67", "real code 1234")) == "RECEIVE 67 OK"
    assert [m.text for m, _ in stored(server.store)] == ["real code 1234"]


def test_two_unmapped_lines_cannot_share_a_number(goip: tuple[LiveServer, Gateway]) -> None:
    server, gateway = goip
    assert server.store is not None
    assert gateway.ask(keepalive(1, line="goip2", num=PHONES[1])) == "reg:1;status:200;"
    assert gateway.ask(keepalive(2, line="goip3", num=PHONES[1], gsm_status="LOGOUT")) is not None
    assert gateway.ask(receive("8", "from goip3", line="goip3"), timeout=0.5) is None
    assert gateway.ask(receive("9", "from goip2", line="goip2")) == "RECEIVE 9 OK"
    assert [(m.phone, m.text) for m, _ in stored(server.store)] == [(PHONES[1], "from goip2")]
    assert online(server.store, PHONES[1])


def test_a_receive_without_srcnum_is_stored_with_a_marker(goip: tuple[LiveServer, Gateway]) -> None:
    server, gateway = goip
    assert server.store is not None
    datagram = "RECEIVE:31;id:goip1;password:s3cret;msg:Balance 10.00"
    assert gateway.ask(datagram) == "RECEIVE 31 OK"
    [(message, _)] = stored(server.store)
    assert (message.sender, message.text) == (NO_SENDER, "Balance 10.00")


def test_password_guessing_is_throttled_even_for_the_right_password(goip: tuple[LiveServer, Gateway]) -> None:
    server, gateway = goip
    for attempt in range(12):
        gateway.send(keepalive(attempt, password=f"guess{attempt}"))
    # The eleventh wrong one earned a wait; the right password is now ignored too.
    wait_for(lambda: "ignoring 127.0.0.1" in hardware_page(server), what="the throttle")
    assert gateway.ask(keepalive(99), timeout=0.5) is None


def hardware_page(server: LiveServer) -> str:
    with server.client() as client:
        return client.get("/api/hardware", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text


ANDROID = """
[hardware.android.devices.pixel]
signing_key = "a-signing-key"
[hardware.android.devices.pixel.sims]
1 = "{phone}"
"""


def test_an_unmapped_line_cannot_claim_a_number_another_driver_holds(
    serve: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_udp_port()
    server = serve(TOML.format(port=port, phone=PHONES[0]) + ANDROID.format(phone=PHONES[3]))
    gateway = Gateway(port)
    try:
        assert server.store is not None
        assert gateway.ask(keepalive(1, line="goip7", num=PHONES[3], gsm_status="LOGOUT")) is not None
        assert gateway.ask(receive("5", "injected", line="goip7"), timeout=0.5) is None
        assert stored(server.store) == []
        assert online(server.store, PHONES[3])
        assert f"claims {PHONES[3]}, which another driver owns; ignored" in caplog.text
    finally:
        gateway.close()
