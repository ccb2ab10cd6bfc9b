"""How the console judges a driver's snapshot: silence, recent errors, unwatched tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from simgate.dashboard.hardware import RECENT_ERROR, SILENT_AFTER, HardwareReport, driver_out
from simgate.domain.types import PhoneNumber
from simgate.hardware.status import DriverStatus, PortStatus, Unwatched

START = 1_700_000_000.0


def status(kind: str = "goip", **changes: object) -> DriverStatus:
    values: dict[str, object] = {
        "name": kind, "kind": kind, "last_contact": None, "last_error": None,
        "last_error_at": None, "received": 0, "duplicates": 0, "rejected": 0,
        "reports_on_its_own": kind != "android",
    }  # fmt: skip
    values.update(changes)
    return DriverStatus(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["goip", "ejoin", "modem"])
def test_a_reporting_driver_is_silent_after_a_few_quiet_minutes(kind: str) -> None:
    heard = status(kind, last_contact=START + 10)
    assert driver_out(heard, START + 10 + SILENT_AFTER, START).silent is False
    assert driver_out(heard, START + 11 + SILENT_AFTER, START).silent is True


def test_never_heard_counts_from_the_start_not_from_the_epoch() -> None:
    never = status("goip")
    assert driver_out(never, START + SILENT_AFTER - 1, START).silent is False
    assert driver_out(never, START + SILENT_AFTER + 1, START).silent is True


def test_an_android_phone_is_never_silent_it_speaks_only_with_an_sms() -> None:
    phone = driver_out(status("android"), START + 86400, START)
    assert phone.silent is False
    assert phone.reports_on_its_own is False


def test_errors_ages_and_port_counts() -> None:
    ports = (
        PortStatus("1", phone=PhoneNumber("79281234560"), online=True, last_contact=START + 50),
        PortStatus("2", online=False, last_error="no SIM"),
        PortStatus("3"),
    )
    now = START + 100
    fresh = driver_out(status(last_error="UDP error", last_error_at=now - 60, ports=ports), now, START)
    assert fresh.recent_error is True
    assert fresh.last_error_age_seconds == 60
    assert (fresh.ports_total, fresh.ports_online, fresh.ports_with_errors) == (3, 1, 1)
    assert fresh.ports[0].last_contact_age_seconds == 50
    assert fresh.ports[2].last_contact_age_seconds is None
    old = driver_out(status(last_error="x", last_error_at=now - RECENT_ERROR - 1), now, START)
    assert old.recent_error is False
    assert driver_out(status(), now, START).recent_error is False


@dataclass
class Source:
    snapshots: list[list[DriverStatus]]
    quiet: list[Unwatched] = field(default_factory=list)

    def status(self) -> Sequence[DriverStatus]:
        return self.snapshots.pop(0)

    def unwatched(self) -> Sequence[Unwatched]:
        return self.quiet


def test_the_report_reads_the_source_it_was_given_each_time() -> None:
    source = Source([[status("goip", last_contact=START)], []], [Unwatched("gammu", True, "why")])
    report = HardwareReport(source, lambda: START + 1, started=START)
    first = report()
    assert [d.name for d in first.drivers] == ["goip"]
    assert [(u.name, u.enabled, u.note) for u in first.unwatched] == [("gammu", True, "why")]
    assert first.now == START + 1
    assert report().drivers == []


def test_a_port_error_is_an_alarm_only_until_the_line_speaks_again() -> None:
    from simgate.hardware.health import Health

    now = [1000.0]
    health = Health("goip", "goip", clock=lambda: now[0])
    health.port("goip1", online=False, last_error="keep-alives stopped")
    assert health.snapshot().ports[0].failing
    assert health.snapshot().ports[0].last_error_at == 1000.0
    now[0] = 1060.0
    health.port("goip1", online=True, last_contact=now[0])
    line = health.snapshot().ports[0]
    assert not line.failing, "a recovered line is not red"
    assert line.last_error == "keep-alives stopped", "the last error is still shown as history"
    now[0] = 1120.0
    health.port("goip1", last_error="79990000000 is not in the inventory")
    assert health.snapshot().ports[0].failing, "a new error after the contact is an alarm again"


def test_a_port_error_with_no_contact_ever_is_failing() -> None:
    from simgate.hardware.status import PortStatus

    assert PortStatus("p", last_error="no phone").failing
    assert not PortStatus("p").failing
