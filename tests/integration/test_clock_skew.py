"""POST /intake/sms from a gateway whose clock is a day behind: routed and pushed, not lost
(issue 12.6)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.conftest import INTAKE_TOKEN, LiveServer
from tests.conftest import test_settings as settings_for
from tests.integration.test_delivery import add_numbers, get_number


@pytest.fixture
def server(sqlite_url: str) -> Iterator[LiveServer]:
    live = LiveServer(settings_for(sqlite_url, clock_skew_seconds="120")).start()
    try:
        yield live
    finally:
        live.stop()


def post(server: LiveServer, phone: str, received_at: float, text: str) -> dict[str, object]:
    stamp = datetime.fromtimestamp(received_at, UTC).isoformat()
    with server.client() as client:
        answer = client.post(
            "/intake/sms",
            headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
            json={"phone": phone, "sender": "VK", "text": text, "received_at": stamp},
        )
    assert answer.status_code == 202, answer.text
    result: dict[str, object] = answer.json()
    return result


def test_a_gateway_a_day_behind_still_sells(server: LiveServer) -> None:
    add_numbers(server, 2)
    with server.client() as client:
        first, second = get_number(client), get_number(client)
    day_behind = post(server, first.phone, time.time() - 24 * 3600, "code 1")
    assert day_behind["operation_id"] == first.activation_id
    # Within the bound (SIMGATE_CLOCK_SKEW_SECONDS=120) the device is believed: 100 s before
    # the opening is the previous buyer's SMS.
    held_back = post(server, second.phone, time.time() - 100, "code 2")
    assert held_back["operation_id"] is None
