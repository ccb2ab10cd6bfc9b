"""What the use cases need from storage, as Protocols.

A use case is a plain synchronous function over a UnitOfWork; the Store runs the whole
function inside one transaction (on SQLite, on its single writer thread). That keeps the
domain and use cases free of async and of SQL, and makes every use case atomic: a number
claimed and its operation opened commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from typing import Literal, Protocol, TypeVar

from simgate.domain.alerts import OpenAlert
from simgate.domain.lanes import Demand, LaneGroup, Move
from simgate.domain.ledger import LedgerRules
from simgate.domain.messages import (
    Attempt,
    Delivery,
    DueDelivery,
    IncomingMessage,
    Message,
)
from simgate.domain.model import (
    ExcludedCount,
    ExclusionFact,
    GroupAvailability,
    GroupCount,
    Marketplace,
    Number,
    NumberSpec,
    Operation,
    OperationKind,
    Order,
)
from simgate.domain.read_model import (
    DeliveryQuery,
    DeliveryReport,
    Earnings,
    MarketplaceStats,
    MessageQuery,
    MessageReport,
    NumberQuery,
    NumberReport,
    OperationQuery,
    OperationReport,
    OutboxSummary,
    Page,
    RunStarts,
    Stats,
    StatusCount,
)
from simgate.domain.rules import FinishConsequence
from simgate.domain.types import (
    EVERYWHERE,
    Kopecks,
    NumberId,
    OperationId,
    PhoneNumber,
    ServiceName,
    Timestamp,
)
from simgate.storage.alert_ports import AlertRepository
from simgate.storage.history_ports import HistoryRepository

T = TypeVar("T")


class StoreUnavailable(RuntimeError):
    """The database cannot be reached now; the edge answers 503 and nothing is changed."""

    answer = "database unavailable, nothing was changed; try again"
    """What the edge tells the caller."""


class OutcomeUnknown(StoreUnavailable):
    """The connection was lost while the unit's commit was in flight (PostgreSQL: its COMMIT,
    or the one statement of a `single` unit): the server may have committed it or not, and
    nobody can tell from here. The edge still answers 503, but says so instead of "nothing
    was changed"; a retry is safe only where the unit is idempotent (FINISH, an SMS with its
    id), so the caller can pick a text that says what a retry does (`answer`)."""

    GENERIC = "database connection lost during commit: the outcome is unknown; try again"

    def __init__(self, reason: str, unit: str, answer: str = GENERIC) -> None:
        super().__init__(reason)
        self.unit = unit
        """The unit of work that was committing (its function's name), for the log."""
        self.answer = answer
        """What the edge tells the caller."""

    def telling(self, answer: str) -> OutcomeUnknown:
        """The same loss, with the caller's own text (what a retry of *this* call does)."""
        return OutcomeUnknown(str(self), self.unit, answer)


UpsertOutcome = Literal["added", "updated", "unchanged"]


class NumberRepository(Protocol):
    def upsert(self, spec: NumberSpec, now: Timestamp) -> UpsertOutcome: ...

    def get(self, number_id: NumberId) -> Number | None: ...

    def get_by_phone(self, phone: PhoneNumber) -> Number | None: ...

    def search(self, where: NumberQuery | None = None) -> list[Number]:
        """The console's number listing without its reports (None: the first 1,000); `losing`
        needs the operations and is refused: ask reports.numbers."""
        ...

    def find_free(self, order: Order, marketplace: str, now: Timestamp | None = None) -> Number | None:
        """The least recently issued number in `marketplace`'s lane (leaving or not) that
        `rules.matches_order` accepts, minus exclusions binding `marketplace` and numbers a
        resale window hides there at `now` (None: this instant), or None."""
        ...

    def mark_busy(self, number_id: NumberId, operation_id: OperationId, now: Timestamp) -> None:
        """Claim a free number for an operation; raises ClaimConflict if it was not free.

        Cancels a pending lane move: the SIM stays in the lane that issued it."""
        ...

    def release(self, number_id: NumberId, operation_id: OperationId, kind: OperationKind) -> None:
        """Free the number if `operation_id` (finished, of `kind`) still holds it; otherwise
        change nothing. In the same update, the number's no-SMS streak of that kind grows by
        one, or restarts at 0 if the operation got an SMS (`no_sms_streaks`); the run's start
        becomes the operation's opened_at if the streak was 0, or None if it got an SMS
        (`no_sms_since`)."""
        ...

    def no_sms_streaks(self, number_ids: Collection[NumberId]) -> dict[NumberId, tuple[int, int]]:
        """Each of these numbers' (rent, activation) no-SMS streaks over its whole history
        (read_model.streaks), as `release` keeps them on the number (migration 0025). A
        window's streaks never exceed them, so they pick the SIMs that may be losing money;
        reports count the window itself only where `no_sms_since` cannot settle it."""
        ...

    def no_sms_since(self, number_ids: Collection[NumberId]) -> dict[NumberId, RunStarts]:
        """When the first operation of each of those streaks opened (read_model.run_starts),
        None where a streak is 0, as `release` keeps them on the number (migration 0026). A
        run that began in a window is wholly in it: its streak is the window's."""
        ...

    def exclude(
        self,
        number_id: NumberId,
        service: ServiceName,
        reason: str,
        now: Timestamp,
        *,
        marketplace: str = EVERYWHERE,
        operation_id: OperationId | None = None,
    ) -> None:
        """Never offer this number for `service` again on `marketplace` (EVERYWHERE: on any).

        Idempotent: a row of the same (service, marketplace) stays as it is, its time and
        cause the first writer's, except that a marketplace's global fact (a sale, a refusal,
        a group) takes over the operator's block, which could be lifted. Scoped rows stay
        beside a global one of their service, subsumed, so counts subtract (number, service)
        once (migration 0021). Both hold when two units write one number's exclusions at once
        (PostgreSQL: the number's row is locked first, migration 0023); neither fails.
        """
        ...

    def exclusions(self, number_id: NumberId) -> list[ExclusionFact]:
        """Every exclusion of this number, with its scope, reason, time and cause."""
        ...

    def excluded_services(self, number_id: NumberId, marketplace: str | None = None) -> set[ServiceName]:
        """Services this number must not be offered for on `marketplace` (None: everywhere)."""
        ...

    def unexclude(self, number_id: NumberId, service: ServiceName, reason: str) -> bool:
        """Drop the exclusion if it has this reason (the operator's 'blocked', never 'sold')."""
        ...

    def group_counts(self, marketplace: str | None = None, now: Timestamp | None = None) -> list[GroupCount]:
        """Every (country, operator) group with its free numbers counted by `marketplace`
        (`lanes.counted_by`, and no resale window hiding them there at `now`); None: every
        free number of the farm."""
        ...

    def excluded_counts(
        self, marketplace: str | None = None, now: Timestamp | None = None
    ) -> list[ExcludedCount]:
        """Per group and service: the numbers group_counts(marketplace) counts that are
        excluded for that service on `marketplace` (None: excluded everywhere)."""
        ...

    def group_availability(self, marketplace: str, now: Timestamp | None = None) -> list[GroupAvailability]:
        """group_counts(marketplace, now), each group with its excluded_counts beside it, in one
        read: what GET_SERVICES tallies (rules.tally_groups)."""
        ...

    def availability_stamp(self, marketplace: str, now: Timestamp | None = None) -> Hashable | None:
        """A value that two snapshots share only if group_availability(marketplace, now) is the
        same in both: kept in the database, changed in the transaction that changes a count
        (migration 0016), so a process may give its last GET_SERVICES answer again while it
        stands. None: no such value here (the answer is always computed)."""
        ...

    def fold_counts(self) -> None:
        """Fold the count changes kept aside into the totals GET_SERVICES reads (PostgreSQL,
        migration 0011); nothing where the totals change directly. Never changes a count."""
        ...

    def count_drift(self) -> list[str]:
        """Where the counts GET_SERVICES reads differ from a recount of the numbers and
        their exclusions, one line per difference: always empty unless a bug drifted them."""
        ...

    def rebuild_counts(self) -> None:
        """Recount the kept counts from the numbers and their exclusions (`simgate check
        --recount`), holding off every change to them meanwhile."""
        ...

    def set_enabled(self, number_id: NumberId, enabled: bool, now: Timestamp) -> bool: ...

    def set_online(self, phone: PhoneNumber, online: bool, now: Timestamp) -> bool: ...


class OperationRepository(Protocol):
    def open(self, marketplace: str, order: Order, number: Number, now: Timestamp) -> Operation:
        """Record a new operation with a fresh id, never reused."""
        ...

    def get(self, operation_id: OperationId) -> Operation | None: ...

    def open_for_number(self, number_id: NumberId) -> Operation | None: ...

    def open_for_phone(self, phone: PhoneNumber) -> tuple[NumberId, Operation | None] | None:
        """The number with this phone and its open operation, in one read: what an incoming
        SMS is routed by. None when no number has this phone."""
        ...

    def finish(self, operation_id: OperationId, status: int, final: Kopecks | None, now: Timestamp) -> None:
        """Close an open operation and count the FINISH request that closed it; an operation
        already finished is left as it is, its count too."""
        ...

    def note_finish_request(self, operation_id: OperationId) -> None:
        """Count a FINISH request that closed nothing (a repeat), for the operator's view."""
        ...

    def of_number(self, number_id: NumberId) -> list[Operation]:
        """Every operation of this number, oldest first (the ledger `numbers why` reads)."""
        ...

    def count_finished(self, number_id: NumberId, service: ServiceName, marketplace: str, status: int) -> int:
        """Operations of this number for `service` on `marketplace` finished with `status`."""
        ...


class LaneRepository(Protocol):
    """Marketplaces and the lanes of free SIMs (domain/lanes.py)."""

    def marketplaces(self) -> list[Marketplace]: ...

    def save_marketplace(self, name: str, enabled: bool, weight: float | None, now: Timestamp) -> None:
        """Add or update one marketplace; weight None keeps the stored one (1.0 when new)."""
        ...

    def record_poll(self, marketplace: str, asked_at: Timestamp) -> int:
        """Note an answered GET_SERVICES; the leaving SIMs it did not count join their new
        lane (`lanes.joins_after_poll`). Returns how many joined."""
        ...

    def groups(self, idle_before: Timestamp | None = None) -> list[LaneGroup]:
        """The farm tallied by (country, lane, move, allowed); `idle` counts the movable SIMs
        idle since before `idle_before` (`lanes.is_idle`), none when it is None."""
        ...

    def demand(self, since: Timestamp) -> Demand:
        """GET_NUMBER orders that opened an operation since `since`, per marketplace and country."""
        ...

    def place(self, move: Move, now: Timestamp | None = None) -> int:
        """Put up to `move.count` unplaced SIMs of the group into `move.target` at once, none
        that a resale window keeps from it at `now` (None: this instant); their
        `lane_moved_at` becomes `now`."""
        ...

    def mark_leaving(self, move: Move, now: Timestamp | None = None) -> list[NumberId]:
        """Mark up to `move.count` free, not leaving SIMs of the group as leaving for
        `move.target` (unstamped), none that a resale window keeps from it at `now`; or
        unplace them when the target is None. The idlest first (`lanes.idle_since`, then
        id), and only idle ones when `move.idle_before` is set; `lane_moved_at` becomes `now`."""
        ...

    def unstamped(self) -> list[NumberId]:
        """Leaving SIMs whose leave is not stamped yet."""
        ...

    def stamp(self, number_ids: Sequence[NumberId], now: Timestamp) -> int:
        """Stamp these leaves with `now`, a clock read after their marks committed."""
        ...

    def join_stale(self, before: Timestamp) -> int:
        """Leaving SIMs stamped before `before` join their new lane."""
        ...

    def release_disabled(self, enabled: Sequence[str]) -> None:
        """Lanes of marketplaces not in `enabled` hold no count worth honouring: moves out of
        them complete, moves into them are cancelled, and their free SIMs become unplaced."""
        ...


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

    def search(self, where: MessageQuery) -> list[tuple[Message, Delivery | None]]:
        """The console's SMS listing without push attempts or a total."""
        ...


class OutboxRepository(Protocol):
    def enqueue(
        self, message_id: int, operation_id: OperationId, marketplace: str, now: Timestamp
    ) -> int: ...

    def claim_due(
        self, worker: str, now: Timestamp, lease: float, limit: int, skip: Collection[str] = ()
    ) -> list[DueDelivery]:
        """Take up to `limit` due, unclaimed (or lease-expired) pending deliveries, none for a
        marketplace in `skip` (the worker's push slots for it are all busy)."""
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


class Reports(Protocol):
    """The read model: the operator's listings and reports (storage/sql_reports.py,
    memory_reports.py). Never part of a write unit of work: the Store serves it from a
    read-only snapshot of its own (Store.report), so a console page or a /metrics scrape never
    waits for the writer nor holds a write transaction open."""

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

    def marketplace_stats(self, day_start: Timestamp, since: Timestamp) -> list[MarketplaceStats]:
        """Per marketplace and currency (domain/read_model.marketplace_stats)."""
        ...

    def free_by_lane(self) -> dict[str, int]:
        """Free SIMs per lane ('none': in no lane), a leaving SIM still in its old one."""
        ...

    def open_by_marketplace(self) -> dict[str, int]:
        """Open operations per marketplace."""
        ...

    def open_alerts(self) -> dict[str, str]:
        """Key -> rule of every open alert (AlertRepository.open_alerts, read side)."""
        ...

    def firing(self, limit: int) -> Page[OpenAlert]:
        """Open alerts, newest first: at most `limit`, and how many there are."""
        ...

    def last_calls(self) -> dict[str, Timestamp]:
        """When each marketplace last called (AlertRepository.last_calls, read side)."""
        ...

    def pruned_sales(self) -> list[MarketplaceStats]:
        """The sales pruned from history (SIMGATE_HISTORY_DAYS), per marketplace and currency
        (`sold`, `earnings`): /metrics adds them in, so its all-time counters never go down."""
        ...


class SessionRepository(Protocol):
    """Signed-in console sessions (storage/sessions.py): a cookie counts only while listed."""

    def add(self, session_id: str, now: Timestamp, expires_at: Timestamp) -> None: ...

    def alive(self, session_id: str, now: Timestamp) -> bool: ...

    def revoke(self, session_id: str) -> bool: ...

    def revoke_all(self) -> int: ...


class OneTripUnits(Protocol):
    """GET_NUMBER's claim and FINISH as one round trip to the database each (PostgreSQL:
    storage/pg_units.py). The same steps services/operations.py runs on the repositories,
    compiled into one statement or one server-side call; the contract tests run both."""

    def issue(self, marketplace: str, order: Order, now: Timestamp) -> Operation | None:
        """find_free, operations.open and mark_busy; raises ClaimConflict if the number was taken."""
        ...

    def finish(
        self,
        marketplace: str,
        operation_id: OperationId,
        status: int,
        final: Kopecks | None,
        now: Timestamp,
        consequence: FinishConsequence | None,
    ) -> str:
        """finish_operation's steps; 'unknown', 'repeated' or 'finished'."""
        ...


class UnitOfWork(Protocol):
    @property
    def one_trip(self) -> OneTripUnits | None:
        """The store's one-round-trip GET_NUMBER and FINISH, or None: run the steps."""
        ...

    @property
    def ledger(self) -> LedgerRules:
        """The resale windows and exclusion groups in force (the store's)."""
        ...

    @property
    def numbers(self) -> NumberRepository: ...

    @property
    def operations(self) -> OperationRepository: ...

    @property
    def messages(self) -> MessageRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def alerts(self) -> AlertRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def lanes(self) -> LaneRepository: ...

    @property
    def history(self) -> HistoryRepository: ...


class Store(Protocol):
    """Runs units of work. Every method commits on return and rolls back on exception."""

    @property
    def ledger(self) -> LedgerRules:
        """The resale windows and exclusion groups every unit of work enforces: given when the
        store is opened (bootstrap passes the settings' and the plug-ins'), none by default."""
        ...

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        """Synchronous: for the CLI and for tests."""
        ...

    def transact(self, work: Callable[[UnitOfWork], T], *, single: bool = False) -> Awaitable[T]:
        """From the event loop: runs `work` off the loop and awaits its commit.

        `single`: `work` is one call to `uow.one_trip` and nothing else, so a store that has
        them may run it as its own transaction (PostgreSQL: one round trip, no BEGIN and no
        COMMIT on the wire). Any further statement in such a unit raises."""
        ...

    def read(self, work: Callable[[UnitOfWork], T]) -> Awaitable[T]:
        """A read-only snapshot; may run beside writes (GET_SERVICES)."""
        ...

    def run_read(self, work: Callable[[UnitOfWork], T]) -> T:
        """The same, synchronous: for the CLI's listings, which must neither queue behind
        nor hold the write path of a running `serve` (SQLite: its write lock)."""
        ...

    def report(self, work: Callable[[Reports], T]) -> Awaitable[T]:
        """From the event loop: `work` over the read model in one read-only snapshot, off the
        loop and never on the write path (SQLite: a query_only connection on a reader thread,
        beside the writer; PostgreSQL: a pooled connection in a READ ONLY transaction)."""
        ...

    def run_report(self, work: Callable[[Reports], T]) -> T:
        """The same, synchronous: for the CLI, the /metrics scrape (off the loop) and tests."""
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
