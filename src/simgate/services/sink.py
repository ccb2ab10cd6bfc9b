"""The Sink every SMS source feeds: accept_sms and set_online over the store, off the event loop.

Bootstrap makes one and hands it to the hardware drivers and to POST /intake/sms; they never
see the store. `wake` tells the delivery worker a routed SMS waits, so its push leaves at once
instead of at the worker's next poll.
"""

from __future__ import annotations

from collections.abc import Callable

from simgate.domain.messages import MAX_CLOCK_SKEW_SECONDS, IncomingMessage
from simgate.domain.types import PhoneNumber, Timestamp
from simgate.services.intake import Accepted, accept_sms
from simgate.storage.ports import Store


class StoreSink:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], Timestamp],
        wake: Callable[[], None],
        max_skew: float = MAX_CLOCK_SKEW_SECONDS,
    ) -> None:
        self.store, self.clock, self.wake, self.max_skew = store, clock, wake, max_skew

    async def accept(self, incoming: IncomingMessage) -> Accepted:
        now = self.clock()
        skew = self.max_skew
        accepted = await self.store.transact(lambda uow: accept_sms(uow, incoming, now, skew))
        if not accepted.duplicate and accepted.message.operation_id is not None:
            self.wake()
        return accepted

    async def set_online(self, phone: PhoneNumber, online: bool) -> bool:
        now = self.clock()
        return await self.store.transact(lambda uow: uow.numbers.set_online(phone, online, now))
