"""What a driver records about its hardware while it runs, for the Hardware page.

Plain counters and times the driver updates in place; `snapshot()` hands the dashboard a frozen
copy (status.py), so the page never reads a record mid-update.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from simgate.domain.types import Timestamp
from simgate.hardware.base import Clock
from simgate.hardware.status import ClockReading, DriverStatus, PortStatus

log = logging.getLogger("simgate.hardware")


@dataclass
class Health:
    name: str
    kind: str
    clock: Clock
    reports_on_its_own: bool = True
    last_contact: Timestamp | None = None
    last_error: str | None = None
    last_error_at: Timestamp | None = None
    received: int = 0
    duplicates: int = 0
    rejected: int = 0
    ports: dict[str, PortStatus] = field(default_factory=dict)
    clocks: dict[str, ClockReading] = field(default_factory=dict)

    def contact(self) -> None:
        self.last_contact = self.clock()

    def error(self, message: str) -> None:
        log.warning("%s: %s", self.name, message)
        self.last_error, self.last_error_at = message, self.clock()

    def port(self, port: str, **changes: Any) -> PortStatus:
        if "last_error" in changes:
            changes.setdefault("last_error_at", self.clock())
        current = self.ports.get(port) or PortStatus(port)
        self.ports[port] = updated = replace(current, **changes)
        return updated

    def snapshot(self) -> DriverStatus:
        return DriverStatus(
            name=self.name,
            kind=self.kind,
            last_contact=self.last_contact,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            received=self.received,
            duplicates=self.duplicates,
            rejected=self.rejected,
            ports=tuple(self.ports[key] for key in sorted(self.ports)),
            clocks=tuple(self.clocks[key] for key in sorted(self.clocks)),
            reports_on_its_own=self.reports_on_its_own,
        )
