"""SMS and their deliveries to the marketplace: records and the routing rule."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from simgate.domain.model import Operation, OperationKind
from simgate.domain.types import NumberId, OperationId, PhoneNumber, Timestamp

ROUTING_GRACE_SECONDS = 60.0
"""How much older than its operation an SMS may be and still belong to it.

Gateways stamp `received_at` with their own clock, which may run behind ours; an SMS older
than this was meant for the number's previous operation and must not reach the new buyer.
"""

MAX_CLOCK_SKEW_SECONDS = 300.0
"""How far a device's `received_at` may be from our clock and still be believed
(SIMGATE_CLOCK_SKEW_SECONDS). Beyond it the device's clock is wrong, not its SMS late: a
gateway a day off would otherwise have every SMS judged older than its operation, and lost.
"""

LATEST_RECEIVED_AT = 253402300800.0
"""10000-01-01 UTC. A device whose clock is wrong still sends a time some calendar shows (1970
after a reset, 2080 after a bad sync) and its SMS is stored with it; a time past the year 9999,
before 1970, infinite or NaN is not a clock speaking but a broken sender, and no page or
script could show it."""


def received_at_problem(stamp: float) -> str | None:
    """Why `stamp` cannot be an SMS's received_at, or None if it can."""
    if not 0.0 <= stamp < LATEST_RECEIVED_AT:  # False for NaN too
        return "must be a time between 1970 and 9999 (Unix seconds)"
    return None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """An SMS as a hardware driver or the intake API hands it over."""

    phone: PhoneNumber
    sender: str
    text: str
    source: str = "http"
    """Which intake it came through; scopes `message_key` (two gateways may reuse ids)."""
    message_key: str | None = None
    received_at: Timestamp | None = None

    def __post_init__(self) -> None:
        # PostgreSQL text cannot hold NUL (SQLite can): refusing the SMS would make the
        # gateway resend it forever, so the NUL goes and the SMS is stored, on both databases.
        for name in ("sender", "text", "source", "message_key"):
            value = getattr(self, name)
            if value is not None and "\x00" in value:
                object.__setattr__(self, name, value.replace("\x00", ""))


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    source: str
    message_key: str | None
    phone: PhoneNumber
    number_id: NumberId
    sender: str
    text: str
    received_at: Timestamp | None
    stored_at: Timestamp
    operation_id: OperationId | None


def dedup_key(incoming: IncomingMessage) -> str | None:
    """The key that recognises a resent SMS.

    The hardware's own id when it sends one. Without it, an SMS stamped with its reception
    time is the same SMS when phone, sender, text and time all match; without either there
    is nothing to recognise it by, and a resend is stored twice.
    """
    if incoming.message_key:
        return incoming.message_key
    if incoming.received_at is None:
        return None
    fingerprint = "\x1f".join((incoming.phone, incoming.sender, incoming.text, repr(incoming.received_at)))
    return "auto:" + hashlib.sha256(fingerprint.encode()).hexdigest()[:40]


def routing_time(
    received_at: Timestamp | None, now: Timestamp, max_skew: float = MAX_CLOCK_SKEW_SECONDS
) -> Timestamp:
    """When an SMS counts as received: the device's stamp where plausible, else our own time.

    The device's stamp matters for an SMS it held back (a reconnect): it may belong to the
    number's previous operation. A stamp further from our clock than `max_skew` says more
    about the device's clock than about the SMS, and is not believed.
    """
    if received_at is None or abs(received_at - now) > max_skew:
        return now
    return received_at


def route(operation: Operation | None, received_at: Timestamp | None) -> Operation | None:
    """The operation an SMS belongs to: the number's open one, unless the SMS predates it.

    `received_at` is `routing_time(...)`, never a device's stamp taken on trust.
    """
    if operation is None or not operation.is_open:
        return None
    if received_at is not None and received_at < operation.opened_at - ROUTING_GRACE_SECONDS:
        return None
    return operation


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    """The marketplace acknowledged it: never send again."""
    REJECTED = "rejected"
    """A final refusal (NO_OPERATION, BAD_SERVICE, ...): resending cannot help."""
    GIVEN_UP = "given_up"
    """Retried until the operation could no longer be open (delivery/retry.py)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    message_id: int
    operation_id: OperationId
    marketplace: str
    state: DeliveryState
    attempts: int
    next_attempt_at: Timestamp
    created_at: Timestamp
    finished_at: Timestamp | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Horizon:
    """How long a failing push is worth retrying, for one marketplace."""

    activation_window: float = 20 * 60.0
    """An activation lasts 15 minutes; past 20 the marketplace has closed it on its side."""
    rent_window: float = 7 * 24 * 3600.0
    """A rent can last months, but an SMS undelivered for a week has lost its buyer."""
    finished_grace: float = 120.0
    """After our FINISH arrives, keep trying briefly: the push may have crossed it."""


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with everything needed to build its push."""

    id: int
    attempts: int
    created_at: Timestamp
    marketplace: str
    operation_id: OperationId
    kind: OperationKind
    operation_finished_at: Timestamp | None
    message_id: int
    phone: PhoneNumber
    sender: str
    text: str


class Verdict(StrEnum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One push attempt as it happened: what the operator sees per delivery."""

    started_at: Timestamp
    latency_ms: float
    http_status: int | None
    response: str | None
    error: str | None
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class PushRequest:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class PushReply:
    """What came back: an HTTP status and body, or an error (timeout, refused, ...)."""

    status: int | None
    body: bytes
    latency_ms: float
    error: str | None = None
