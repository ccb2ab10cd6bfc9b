"""What every driver shares: handing SMS to accept_sms, SIM online state, and health.

Every driver acknowledges (or deletes) an SMS on its device only after `Sink.accept` returned,
that is after the SMS and its pending push committed together. A crash in between makes the
device resend; accept_sms recognises the resend by (source, message_key) and queues nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from simgate.domain.messages import MAX_CLOCK_SKEW_SECONDS, IncomingMessage
from simgate.domain.types import PhoneNumber, Timestamp
from simgate.hardware.status import ClockReading, DriverStatus, PortStatus
from simgate.services.intake import Accepted, accept_sms
from simgate.storage.ports import Store

log = logging.getLogger("simgate.hardware")

Clock = Callable[[], Timestamp]
Wake = Callable[[], None]

ONLINE_REFRESH_SECONDS = 300.0
"""Re-assert a SIM's online state this often even when it did not change: another process (the
operator, a second instance after a restore) may have flipped it, and an online SIM shown
offline is a SIM that sells nothing."""


@dataclass
class Health:
    name: str
    kind: str
    clock: Clock
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
        )


class Sink:
    """One driver's way into the database: accept_sms and set_online, off the event loop."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        wake: Wake,
        health: Health,
        max_skew: float = MAX_CLOCK_SKEW_SECONDS,
    ) -> None:
        self.store, self.clock, self.wake, self.health = store, clock, wake, health
        self.max_skew = max_skew
        self.after_commit: Callable[[Accepted], Awaitable[None]] | None = None
        """Runs between the commit and the device's acknowledgement (tests cut the line here)."""
        self._online: dict[PhoneNumber, tuple[bool, Timestamp]] = {}

    async def accept(self, incoming: IncomingMessage) -> Accepted:
        """Store the SMS; DomainError means it can never be stored, anything else is transient."""
        now = self.clock()
        accepted = await self.store.transact(lambda uow: accept_sms(uow, incoming, now, self.max_skew))
        self.health.contact()
        if incoming.received_at is not None and not accepted.duplicate:
            offset = incoming.received_at - now
            self.health.clocks[incoming.source] = ClockReading(incoming.source, offset, now)
        if accepted.duplicate:
            self.health.duplicates += 1
        else:
            self.health.received += 1
            if accepted.message.operation_id is not None:
                self.wake()
        if self.after_commit is not None:
            await self.after_commit(accepted)
        return accepted

    async def set_online(self, phone: PhoneNumber, online: bool) -> bool:
        """Record the SIM's state; False if the phone is not in the inventory."""
        now = self.clock()
        known = self._online.get(phone)
        if known is not None and known[0] == online and now - known[1] < ONLINE_REFRESH_SECONDS:
            return True
        found = await self.store.transact(lambda uow: uow.numbers.set_online(phone, online, now))
        if found:
            self._online[phone] = (online, now)
        else:
            self._online.pop(phone, None)
        return found
