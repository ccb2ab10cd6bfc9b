"""Random datagrams at the GoIP driver (the hardware endpoint that is not HTTP).

Whatever arrives, the driver never raises; without the password nothing reaches the store;
with it, nothing reaches a number the line does not own.
"""

from __future__ import annotations

import asyncio
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from simgate.domain.messages import IncomingMessage
from simgate.domain.types import PhoneNumber
from simgate.hardware.goip import GoipConfig, GoipDriver
from simgate.services.intake import Accepted

MINE, OTHER = PhoneNumber("79281234560"), PhoneNumber("79281234569")


class RecordingSink:
    def __init__(self) -> None:
        self.accepted: list[IncomingMessage] = []
        self.states: list[tuple[PhoneNumber, bool]] = []

    async def accept(self, incoming: IncomingMessage) -> Accepted:
        self.accepted.append(incoming)
        raise RuntimeError("not stored: the test only records")  # transient: left unanswered

    async def set_online(self, phone: PhoneNumber, online: bool) -> bool:
        self.states.append((phone, online))
        return True


KINDS = ["req:", "RECEIVE:", "STATE:", "DELIVER:", "", "req:1;id:", "RECEIVE:1;id:goip1;"]
FIELD = st.sampled_from(["id", "pass", "password", "num", "gsm_status", "srcnum", "msg", "signal", "receive"])
VALUE = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["goip1", "goip2", "s3cret", "LOGOUT", MINE, OTHER, f"+{OTHER}", "\x00", ";", ":"]),
)
datagrams = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(KINDS), st.lists(st.tuples(FIELD, VALUE), max_size=8)).map(
        lambda parts: (parts[0] + ";".join(f"{k}:{v}" for k, v in parts[1])).encode("utf-8", "surrogatepass")
    ),
)


def deliver(packets: list[bytes]) -> RecordingSink:
    sink = RecordingSink()

    async def run() -> None:
        config = GoipConfig("127.0.0.1", 0, "s3cret", {"goip1": MINE}, {}, 60.0, 200)
        driver = GoipDriver(config, sink, time.time)
        driver.set_owned_elsewhere(lambda: [OTHER])
        for packet in packets:
            driver.datagram(packet, ("192.0.2.1", 5000))
        await asyncio.gather(*driver.tasks, return_exceptions=False)

    asyncio.run(run())
    return sink


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(packets=st.lists(datagrams, min_size=1, max_size=5))
def test_random_datagrams_never_raise_nor_reach_a_number_the_line_does_not_own(packets: list[bytes]) -> None:
    sink = deliver(packets)
    assert all(message.phone != OTHER for message in sink.accepted)
    assert all(phone != OTHER for phone, _ in sink.states)
    if not any(b"s3cret" in packet for packet in packets):
        assert sink.accepted == []
        assert sink.states == []
