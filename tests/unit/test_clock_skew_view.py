"""A device whose clock is off shows a warning on the Hardware page (issue 12.6)."""

from __future__ import annotations

import asyncio

from simgate.dashboard.hardware import driver_out
from simgate.domain.messages import IncomingMessage
from simgate.domain.model import Operation
from simgate.domain.types import PhoneNumber
from simgate.hardware.feed import Feed
from simgate.hardware.health import Health
from simgate.hardware.status import ClockReading, DriverStatus
from simgate.services.operations import issue_number
from simgate.services.sink import StoreSink
from simgate.storage.memory import MemoryStore
from simgate.storage.ports import UnitOfWork
from tests.factories import make_order, make_spec

NOW = 1_700_000_000.0
DAY = 24 * 3600.0


def test_only_clocks_off_by_more_than_the_routing_grace_are_warned_about() -> None:
    clocks = (
        ClockReading("goip:1", -DAY, NOW),
        ClockReading("goip:2", 5.0, NOW),
        ClockReading("goip:3", 61.0, NOW),
    )
    status = DriverStatus("goip", "goip", NOW, None, None, 3, 0, 0, clocks=clocks)
    warned = driver_out(status, NOW, NOW - 100).clock_skew
    assert [(w.source, w.offset_seconds) for w in warned] == [("goip:1", -DAY), ("goip:3", 61.0)]


def test_a_sink_routes_a_day_behind_sms_to_the_open_operation_and_records_the_skew() -> None:
    store = MemoryStore()
    spec = make_spec()

    def seed(uow: UnitOfWork) -> Operation | None:
        uow.numbers.upsert(spec, NOW - 100)
        return issue_number(uow, "onlinesim", make_order(), NOW - 50)

    operation = store.run(seed)
    health = Health("android:hall", "android", clock=lambda: NOW)
    sink = Feed(StoreSink(store, lambda: NOW, lambda: None), health)
    sms = IncomingMessage(PhoneNumber(spec.phone), "VK", "code 1", "android:hall", "m1", NOW - DAY)
    accepted = asyncio.run(sink.accept(sms))
    assert operation is not None
    assert accepted.message.operation_id == operation.id
    (reading,) = health.snapshot().clocks
    assert reading == ClockReading("android:hall", -DAY, NOW)
    assert driver_out(health.snapshot(), NOW, NOW).clock_skew[0].offset_seconds == -DAY
