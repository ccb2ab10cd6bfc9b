"""Operator actions on the outbox."""

from __future__ import annotations

from simgate.domain.errors import DomainError
from simgate.domain.messages import DeliveryState
from simgate.domain.types import Timestamp
from simgate.storage.ports import UnitOfWork


class RetryRefused(DomainError):
    pass


def retry_delivery(uow: UnitOfWork, delivery_id: int, now: Timestamp) -> None:
    """Only a rejected or given-up push may be tried again: a second push of an
    acknowledged SMS is exactly the duplicate the marketplace fines."""
    delivery = uow.outbox.get(delivery_id)
    if delivery is None:
        raise RetryRefused(f"no delivery {delivery_id}")
    if delivery.state not in (DeliveryState.REJECTED, DeliveryState.GIVEN_UP):
        raise RetryRefused(
            f"delivery {delivery_id} is {delivery.state.value}; only rejected or given_up can be retried"
        )
    uow.outbox.retry(delivery_id, now)
