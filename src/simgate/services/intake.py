"""accept_sms: store an SMS, route it to its operation and queue its push, all in one commit."""

from __future__ import annotations

from dataclasses import dataclass, replace

from simgate.domain.errors import DomainError
from simgate.domain.messages import (
    MAX_CLOCK_SKEW_SECONDS,
    IncomingMessage,
    Message,
    dedup_key,
    received_at_problem,
    route,
    routing_time,
)
from simgate.domain.types import Timestamp
from simgate.storage.ports import UnitOfWork

MAX_TEXT = 40_000
"""255 concatenated parts of 153 characters; anything longer is not an SMS."""
MAX_SENDER = 64


class UnknownNumber(DomainError):
    """The receiving phone is not in the inventory: the SMS cannot be ours to sell."""


class InvalidMessage(DomainError):
    pass


@dataclass(frozen=True, slots=True)
class Accepted:
    message: Message
    duplicate: bool


def check(incoming: IncomingMessage) -> None:
    if not incoming.text.strip():
        raise InvalidMessage("text is empty")
    if len(incoming.text) > MAX_TEXT:
        raise InvalidMessage(f"text is longer than {MAX_TEXT} characters")
    if not incoming.sender.strip():
        raise InvalidMessage("sender is empty")
    if len(incoming.sender) > MAX_SENDER:
        raise InvalidMessage(f"sender is longer than {MAX_SENDER} characters")
    if incoming.message_key is not None and not 0 < len(incoming.message_key) <= 200:
        raise InvalidMessage("message_id must be 1 to 200 characters")
    if incoming.received_at is not None and (problem := received_at_problem(incoming.received_at)):
        raise InvalidMessage(f"received_at {problem}")


def accept_sms(
    uow: UnitOfWork,
    incoming: IncomingMessage,
    now: Timestamp,
    max_skew: float = MAX_CLOCK_SKEW_SECONDS,
) -> Accepted:
    """Store first, then the caller may acknowledge: the outbox row commits with the SMS.

    A resend (same source and message id) returns the first message and queues nothing,
    so the hardware may retry as often as it likes without a second push. Routing goes by
    our clock unless the device's stamp is within `max_skew` of it (domain/messages.py).
    """
    check(incoming)
    incoming = replace(incoming, message_key=dedup_key(incoming))
    # A resend is found by the insert itself (ON CONFLICT DO NOTHING), not by a lookup first:
    # one statement fewer for every new SMS, the common case by far.
    found = uow.operations.open_for_phone(incoming.phone)
    if found is None:
        first = _first(uow, incoming)  # its SIM may have left the inventory since
        if first is not None:
            return Accepted(first, duplicate=True)
        raise UnknownNumber(f"phone {incoming.phone} is not in the inventory")
    number_id, open_operation = found
    when = routing_time(incoming.received_at, now, max_skew)
    operation = route(open_operation, when)
    message = uow.messages.add(incoming, number_id, None if operation is None else operation.id, now)
    if message is None:  # a resend, or a concurrent one committed first (PostgreSQL)
        first = _first(uow, incoming)
        assert first is not None
        return Accepted(first, duplicate=True)
    if operation is not None:
        uow.outbox.enqueue(message.id, operation.id, operation.marketplace, now)
    return Accepted(message, duplicate=False)


def _first(uow: UnitOfWork, incoming: IncomingMessage) -> Message | None:
    """The message stored first under the same source and id, if any."""
    if incoming.message_key is None:
        return None
    return uow.messages.find(incoming.source, incoming.message_key)
