"""What the use cases need from storage, as Protocols.

A use case is a plain synchronous function over a UnitOfWork; the Store runs the whole
function inside one transaction (on SQLite, on its single writer thread). That keeps the
domain and use cases free of async and of SQL, and makes every use case atomic: a number
claimed and its operation opened commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from simgate.domain.messages import (
    Attempt,
    Delivery,
    DueDelivery,
    IncomingMessage,
    Message,
)
from simgate.domain.model import (
    ExcludedCount,
    GroupCount,
    Number,
    NumberSpec,
    Operation,
    Order,
)
from simgate.domain.reports import (
    DeliveryQuery,
    DeliveryReport,
    Earnings,
    MessageQuery,
    MessageReport,
    NumberQuery,
    NumberReport,
    OperationQuery,
    OperationReport,
    OutboxSummary,
    Page,
    Stats,
    StatusCount,
)
from simgate.domain.types import (
    Kopecks,
    NumberId,
    OperationId,
    PhoneNumber,
    ServiceName,
    Timestamp,
)
from simgate.storage.alert_ports import AlertRepository

T = TypeVar("T")


class StoreUnavailable(RuntimeError):
    """The database cannot be reached now; the edge answers 503 and nothing is changed."""


UpsertOutcome = Literal["added", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class NumberFilter:
    state: str | None = None
    """free, busy, offline or disabled."""
    country: str | None = None
    search: str | None = None
    """Substring of the phone or the port."""
    limit: int = 1000
    offset: int = 0


class NumberRepository(Protocol):
    def upsert(self, spec: NumberSpec, now: Timestamp) -> UpsertOutcome: ...

    def get(self, number_id: NumberId) -> Number | None: ...

    def get_by_phone(self, phone: PhoneNumber) -> Number | None: ...

    def search(self, where: NumberFilter | None = None) -> list[Number]: ...

    def find_free(self, order: Order) -> Number | None:
        """The least recently issued number that `rules.matches_order` accepts, or None."""
        ...

    def mark_busy(self, number_id: NumberId, operation_id: OperationId, now: Timestamp) -> None:
        """Claim a free number for an operation; raises ClaimConflict if it was not free."""
        ...

    def release(self, number_id: NumberId, operation_id: OperationId) -> None:
        """Free the number if `operation_id` still holds it; otherwise change nothing."""
        ...

    def exclude(self, number_id: NumberId, service: ServiceName, reason: str, now: Timestamp) -> None:
        """Never offer this number for `service` again (idempotent)."""
        ...

    def excluded_services(self, number_id: NumberId) -> set[ServiceName]: ...

    def unexclude(self, number_id: NumberId, service: ServiceName, reason: str) -> bool:
        """Drop the exclusion if it has this reason (the operator's 'blocked', never 'sold')."""
        ...

    def group_counts(self) -> list[GroupCount]: ...

    def excluded_counts(self) -> list[ExcludedCount]:
        """Per group and service: free numbers that are excluded for that service."""
        ...

    def set_enabled(self, number_id: NumberId, enabled: bool, now: Timestamp) -> bool: ...

    def set_online(self, phone: PhoneNumber, online: bool, now: Timestamp) -> bool: ...


class OperationRepository(Protocol):
    def open(self, marketplace: str, order: Order, number: Number, now: Timestamp) -> Operation:
        """Record a new operation with a fresh id, never reused."""
        ...

    def get(self, operation_id: OperationId) -> Operation | None: ...

    def open_for_number(self, number_id: NumberId) -> Operation | None: ...

    def finish(
        self, operation_id: OperationId, status: int, final: Kopecks | None, now: Timestamp
    ) -> None: ...

    def note_finish_request(self, operation_id: OperationId) -> None:
        """Count a FINISH request (repeats included), for the operator's view."""
        ...


@dataclass(frozen=True, slots=True)
class MessageFilter:
    unrouted: bool = False
    """Only SMS that reached a number with no open operation."""
    delivery_state: str | None = None
    """pending, delivered, rejected or given_up; 'failed' means rejected or given_up."""
    operation_id: OperationId | None = None
    limit: int = 100
    offset: int = 0


class MessageRepository(Protocol):
    def find(self, source: str, message_key: str) -> Message | None: ...

    def add(
        self,
        incoming: IncomingMessage,
        number_id: NumberId,
        operation_id: OperationId | None,
        now: Timestamp,
    ) -> Message | None:
        """Store it; None if (source, message_key) is already stored (a concurrent resend)."""
        ...

    def get(self, message_id: int) -> Message | None: ...

    def search(self, where: MessageFilter) -> list[tuple[Message, Delivery | None]]: ...


class OutboxRepository(Protocol):
    def enqueue(
        self, message_id: int, operation_id: OperationId, marketplace: str, now: Timestamp
    ) -> int: ...

    def claim_due(self, worker: str, now: Timestamp, lease: float, limit: int) -> list[DueDelivery]:
        """Take up to `limit` due, unclaimed (or lease-expired) pending deliveries."""
        ...

    def record(
        self,
        delivery_id: int,
        worker: str,
        attempt: Attempt,
        state: str,
        next_attempt_at: Timestamp,
        reason: str | None,
    ) -> None:
        """Log the attempt and move a still-pending delivery to `state`, dropping the claim."""
        ...

    def claimants(self) -> list[str]:
        """The workers holding claims on pending deliveries (a restarted worker looks for dead ones)."""
        ...

    def release(self, worker: str) -> int:
        """Drop this worker's claims so another takes them at once (graceful shutdown)."""
        ...

    def get(self, delivery_id: int) -> Delivery | None: ...

    def attempts(self, delivery_id: int) -> list[Attempt]: ...

    def retry(self, delivery_id: int, now: Timestamp) -> None:
        """Make a rejected or given-up delivery pending again (the operator's decision)."""
        ...


class ReportRepository(Protocol):
    """Read-only queries for the operator's console (storage/reports.py, memory_reports.py)."""

    def numbers(self, query: NumberQuery) -> Page[NumberReport]: ...

    def number(self, number_id: NumberId, streak_since: Timestamp | None = None) -> NumberReport | None: ...

    def operations(self, query: OperationQuery) -> Page[OperationReport]: ...

    def operation(self, operation_id: OperationId) -> OperationReport | None: ...

    def messages(self, query: MessageQuery) -> Page[MessageReport]:
        """SMS with their delivery and every push attempt, newest first."""
        ...

    def deliveries(self, query: DeliveryQuery) -> Page[DeliveryReport]: ...

    def delivery(self, delivery_id: int) -> DeliveryReport | None: ...

    def number_states(self) -> dict[str, int]:
        """free, busy, offline, disabled: each present, 0 when none."""
        ...

    def operation_statuses(self, since: Timestamp | None = None) -> list[StatusCount]:
        """Operations opened since `since` (all when None) by kind and status name."""
        ...

    def outbox(self) -> OutboxSummary: ...

    def earnings(self, since: Timestamp | None = None) -> Earnings:
        """Sales finished since `since` (all when None)."""
        ...

    def stats(self, day_starts: Sequence[Timestamp], top: int = 20, *, groups: bool = True) -> Stats:
        """Per day of `day_starts` (ascending, 86400 s apart) and, with `groups`, per service,
        country and number (the `top` earners) since the first day."""
        ...


class SessionRepository(Protocol):
    """Signed-in console sessions (storage/sessions.py): a cookie counts only while listed."""

    def add(self, session_id: str, now: Timestamp, expires_at: Timestamp) -> None: ...

    def alive(self, session_id: str, now: Timestamp) -> bool: ...

    def revoke(self, session_id: str) -> bool: ...

    def revoke_all(self) -> int: ...


class UnitOfWork(Protocol):
    @property
    def numbers(self) -> NumberRepository: ...

    @property
    def operations(self) -> OperationRepository: ...

    @property
    def messages(self) -> MessageRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def reports(self) -> ReportRepository: ...

    @property
    def alerts(self) -> AlertRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...


class Store(Protocol):
    """Runs units of work. Every method commits on return and rolls back on exception."""

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        """Synchronous: for the CLI and for tests."""
        ...

    def transact(self, work: Callable[[UnitOfWork], T]) -> Awaitable[T]:
        """From the event loop: runs `work` off the loop and awaits its commit."""
        ...

    def read(self, work: Callable[[UnitOfWork], T]) -> Awaitable[T]:
        """A read-only snapshot; may run beside writes (GET_SERVICES)."""
        ...

    def schema_revision(self) -> Awaitable[str | None]:
        """The applied migration revision; raises if the database cannot be reached."""
        ...

    @property
    def write_error(self) -> str | None:
        """Why writes fail now (disk full, database gone), or None while they work.

        Cheap to ask on every request; the store notices recovery by itself. While it is set,
        /readyz answers 503 and the marketplaces are told nothing is for sale.
        """
        ...

    def close(self) -> None: ...
