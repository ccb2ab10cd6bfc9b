"""Operator actions on the outbox."""

from __future__ import annotations

from simgate.domain.errors import DomainError
from simgate.domain.messages import DeliveryState, Message
from simgate.domain.types import Timestamp
from simgate.storage.ports import UnitOfWork


class RetryRefused(DomainError):
    pass


def retry_delivery(uow: UnitOfWork, delivery_id: int, now: Timestamp) -> Message:
    """Only a rejected or given-up push may be tried again: a second push of an
    acknowledged SMS is exactly the duplicate the marketplace fines."""
    delivery = uow.outbox.get(delivery_id)
    if delivery is None:
        raise RetryRefused(f"no push {delivery_id}")
    if delivery.state not in (DeliveryState.REJECTED, DeliveryState.GIVEN_UP):
        raise RetryRefused(
            f"push {delivery_id} is {delivery.state.value}; only rejected or given_up can be retried"
        )
    message = uow.messages.get(delivery.message_id)
    assert message is not None  # a delivery's message is its foreign key
    uow.outbox.retry(delivery_id, now)
    return message
