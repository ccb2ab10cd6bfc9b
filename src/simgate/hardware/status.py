"""What the dashboard shows of each driver: plain frozen records, cheap to import."""

from __future__ import annotations

from dataclasses import dataclass

from simgate.domain.types import PhoneNumber, Timestamp


@dataclass(frozen=True, slots=True)
class PortStatus:
    """One SIM line as its driver last saw it."""

    port: str
    phone: PhoneNumber | None = None
    online: bool | None = None
    signal: int | None = None
    """As the device reports it: GoIP and AT modems 0-31 (99 unknown), Ejoin its own scale."""
    registration: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    last_contact: Timestamp | None = None
    last_error: str | None = None
    last_error_at: Timestamp | None = None

    @property
    def failing(self) -> bool:
        """An error newer than the line's last good contact: once the line speaks again the
        old error is history, shown but no longer an alarm."""
        if self.last_error is None:
            return False
        if self.last_error_at is None or self.last_contact is None:
            return True
        return self.last_error_at >= self.last_contact


@dataclass(frozen=True, slots=True)
class ClockReading:
    """How far a source's clock was from ours on its last SMS (its received_at minus our time)."""

    source: str
    offset_seconds: float
    at: Timestamp


@dataclass(frozen=True, slots=True)
class Unwatched:
    """A [hardware.*] table with no live status to show, and why."""

    name: str
    enabled: bool
    note: str


@dataclass(frozen=True, slots=True)
class DriverStatus:
    """A snapshot for the dashboard: when the hardware last spoke, and what went wrong."""

    name: str
    kind: str
    last_contact: Timestamp | None
    last_error: str | None
    last_error_at: Timestamp | None
    received: int
    """New SMS stored."""
    duplicates: int
    """Resends recognised and acknowledged again."""
    rejected: int
    """SMS that could not be stored (unknown number, bad content, ...)."""
    ports: tuple[PortStatus, ...] = ()
    clocks: tuple[ClockReading, ...] = ()
    reports_on_its_own: bool = True
    """It speaks without an SMS (keep-alives, status reports, polling), so its silence means
    trouble. False for an Android phone or POST /intake/sms: quiet until an SMS arrives."""
