"""What the Hardware page and GET /api/hardware show: each driver's last contact, errors, SIMs.

The snapshots come from the drivers through a callable bootstrap hands in; this module only
judges them. Ages are computed here with the server's clock, so a phone with a wrong clock
still reads "silent for 12 min" correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from simgate.dashboard import schemas as s
from simgate.domain.messages import ROUTING_GRACE_SECONDS
from simgate.domain.types import Timestamp
from simgate.hardware.status import DriverStatus, PortStatus, Unwatched
from simgate.marketplaces.base import Health


class HardwareSource(Protocol):
    """What bootstrap hands in (hardware.Drivers): the live snapshots and the quiet tables."""

    def status(self) -> Sequence[DriverStatus]: ...

    def unwatched(self) -> Sequence[Unwatched]: ...


SILENT_AFTER = 300.0
"""GoIP sends a keep-alive every 30 s and takes a line offline after 120 s of silence; modems
are checked every minute. Five quiet minutes mean a cable, a power supply or a crashed
gateway: every SIM behind it sells nothing."""

RECENT_ERROR = 3600.0


def _age(now: Timestamp, at: Timestamp | None) -> float | None:
    return None if at is None else max(0.0, now - at)


def port_out(p: PortStatus, now: Timestamp) -> s.PortOut:
    return s.PortOut(
        port=p.port, phone=p.phone, online=p.online, signal=p.signal,
        registration=p.registration, iccid=p.iccid, imsi=p.imsi, last_contact=p.last_contact,
        last_contact_age_seconds=_age(now, p.last_contact), last_error=p.last_error,
        last_error_at=p.last_error_at, failing=p.failing,
    )  # fmt: skip


def is_silent(d: DriverStatus, now: Timestamp, started: Timestamp, silent_after: float) -> bool:
    """A driver that should report on its own and has not, within `silent_after` seconds.

    Never heard since start counts from the start, so a gateway left unplugged is flagged a
    few minutes after simgate starts, not at once.
    """
    if not d.reports_on_its_own:
        return False
    heard = started if d.last_contact is None else max(d.last_contact, started)
    return now - heard > silent_after


def driver_out(
    d: DriverStatus, now: Timestamp, started: Timestamp, silent_after: float = SILENT_AFTER
) -> s.DriverOut:
    error_age = _age(now, d.last_error_at)
    return s.DriverOut(
        name=d.name,
        kind=d.kind,
        reports_on_its_own=d.reports_on_its_own,
        last_contact=d.last_contact,
        last_contact_age_seconds=_age(now, d.last_contact),
        silent=is_silent(d, now, started, silent_after),
        last_error=d.last_error,
        last_error_at=d.last_error_at,
        last_error_age_seconds=error_age,
        recent_error=d.last_error is not None and (error_age is None or error_age < RECENT_ERROR),
        received=d.received,
        duplicates=d.duplicates,
        rejected=d.rejected,
        ports_total=len(d.ports),
        ports_online=sum(1 for p in d.ports if p.online),
        ports_with_errors=sum(1 for p in d.ports if p.failing),
        ports=[port_out(p, now) for p in d.ports],
        clock_skew=[
            s.ClockSkewOut(source=c.source, offset_seconds=round(c.offset_seconds, 1), at=c.at)
            for c in d.clocks
            if abs(c.offset_seconds) > ROUTING_GRACE_SECONDS
        ],
    )


def health_out(marketplace: str, h: Health, now: Timestamp) -> s.MarketplaceHealthOut:
    return s.MarketplaceHealthOut(
        marketplace=marketplace, check=h.check, url=h.url, every_seconds=h.every_seconds, ok=h.ok,
        at=h.at, age_seconds=_age(now, h.at), latency_ms=h.latency_ms, error=h.error,
        failures=h.failures,
    )  # fmt: skip


@dataclass
class HardwareReport:
    source: HardwareSource
    clock: Callable[[], Timestamp]
    started: Timestamp
    silent_after: float = SILENT_AFTER
    health: Mapping[str, Callable[[], Health]] = field(default_factory=dict)
    """Marketplace name -> its health check's last result (bootstrap hands them in)."""

    def __call__(self) -> s.HardwareOut:
        now = self.clock()
        return s.HardwareOut(
            now=now,
            silent_after_seconds=self.silent_after,
            drivers=[driver_out(d, now, self.started, self.silent_after) for d in self.source.status()],
            unwatched=[
                s.UnwatchedOut(name=u.name, enabled=u.enabled, note=u.note) for u in self.source.unwatched()
            ],
            marketplaces=[health_out(name, last(), now) for name, last in self.health.items()],
        )
