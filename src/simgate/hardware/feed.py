"""One source's way into the Sink: it counts what it hands over and spares repeated states.

Every driver acknowledges (or deletes) an SMS on its device only after `Feed.accept` returned,
that is after the SMS and its pending push committed together. A crash in between makes the
device resend; accept_sms recognises the resend by (source, message_key) and queues nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from simgate.domain.messages import IncomingMessage
from simgate.domain.types import PhoneNumber, Timestamp
from simgate.hardware.base import Sink
from simgate.hardware.health import Health
from simgate.hardware.status import ClockReading

if TYPE_CHECKING:
    from simgate.services.intake import Accepted

ONLINE_REFRESH_SECONDS = 300.0
"""Re-assert a SIM's online state this often even when it did not change: another process (the
operator, a second instance after a restore) may have flipped it, and an online SIM shown
offline is a SIM that sells nothing."""


class Feed:
    """A Sink for one gateway, phone or modem pool, recording into its Health."""

    def __init__(self, sink: Sink, health: Health) -> None:
        self.sink, self.health = sink, health
        self.after_commit: Callable[[Accepted], Awaitable[None]] | None = None
        """Runs between the commit and the device's acknowledgement (tests cut the line here)."""
        self._online: dict[PhoneNumber, tuple[bool, Timestamp]] = {}

    async def accept(self, incoming: IncomingMessage) -> Accepted:
        """Store the SMS; DomainError means it can never be stored, anything else is transient."""
        now = self.health.clock()
        accepted = await self.sink.accept(incoming)
        self.health.contact()
        if incoming.received_at is not None and not accepted.duplicate:
            offset = incoming.received_at - now
            self.health.clocks[incoming.source] = ClockReading(incoming.source, offset, now)
        if accepted.duplicate:
            self.health.duplicates += 1
        else:
            self.health.received += 1
        if self.after_commit is not None:
            await self.after_commit(accepted)
        return accepted

    async def set_online(self, phone: PhoneNumber, online: bool) -> bool:
        """Record the SIM's state; False if the phone is not in the inventory."""
        now = self.health.clock()
        known = self._online.get(phone)
        if known is not None and known[0] == online and now - known[1] < ONLINE_REFRESH_SECONDS:
            return True
        found = await self.sink.set_online(phone, online)
        if found:
            self._online[phone] = (online, now)
        else:
            self._online.pop(phone, None)
        return found
