"""How long history is kept, and which old rows a rule or a delivery still needs. Pure.

A farm doing 20,000 operations and SMS a day adds tens of MB a day; kept forever, backups
slow down and the disk fills. History older than the horizon goes, except what something
still reads:
- an open operation (its SMS still arrive and are pushed), and the messages of one;
- a message whose push is not finished (pending: the worker still sends it);
- a sale inside a resale window (domain/ledger.py reads sales from the operations): the
  horizon is never shorter than the longest window, so none is older than it;
- a finished operation a rule still counts: the agent protocol's status 4 allows a number
  at most 3 more offers of a service on that marketplace, counted from the operations
  (services/operations._remember_outcome), until its exclusion is written; forgetting one
  would grant an extra offer;
- an alert notice of an alert still open (otherwise it would be announced again).
The sale ledger's lasting consequences are exclusion rows (number_exclusions), never pruned:
a number sold for a service stays off that service everywhere, whatever the horizon.

Storage deletes in the order rows refer to each other (TABLES), in batches, so no prune
holds the SQLite writer or a PostgreSQL lock for long; the in-memory store asks the
predicates below, the SQL stores say the same in SQL, and the contract tests hold them together.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from simgate.domain.alerts import Notice
from simgate.domain.messages import Delivery, DeliveryState, Message
from simgate.domain.model import Operation, OperationKind
from simgate.domain.types import Timestamp

DAY = 86_400.0
DEFAULT_DAYS = 180
"""Six months: an owner's accounting quarter with room, three times the longest resale window."""
MIN_DAYS = 30
"""Below this the dashboard's 30-day earnings and the lanes' demand (up to 30 days) would read
pruned history."""
BATCH = 1000
"""Rows per transaction: a few milliseconds of the SQLite writer or a PostgreSQL lock."""

TABLES = ("delivery_attempts", "deliveries", "messages", "operations", "alert_notices")
"""In the order they are deleted: each refers only to tables after it."""

WALK = {
    "delivery_attempts": "messages",
    "deliveries": "messages",
    "messages": "messages",
    "operations": "operations",
    "alert_notices": "alert_notices",
}
"""The walk each table's batch follows: a message's attempts and pushes go with it, so the
three follow the messages (by stored_at), whose batch, the last of them, moves that walk on."""

SCAN = 5
"""A batch examines at most SCAN x its limit old rows of its walk. Old rows that stay (an SMS
pushed to a marketplace with no push URL, a counted status 4) would otherwise be read again
by every batch, each one walking past all of them to find its `limit` rows that go."""

Counted = frozenset[tuple[str, int]]
"""(marketplace, FINISH status) pairs whose finished operations a rule counts."""


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """SIMGATE_HISTORY_DAYS and what bounds it from below."""

    days: float = DEFAULT_DAYS
    """0: keep everything forever."""
    longest_window: float = 0.0
    """Seconds: the longest resale window in force (LedgerRules.resale)."""
    counted: Counted = frozenset()

    @property
    def horizon(self) -> float | None:
        """Seconds of history kept, or None (forever): never shorter than a resale window."""
        if self.days <= 0:
            return None
        return max(self.days * DAY, self.longest_window)

    def plan(self, now: Timestamp) -> PrunePlan | None:
        """What may go now, or None when nothing ever does."""
        horizon = self.horizon
        return None if horizon is None else PrunePlan(now - horizon, self.counted)


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a walk got to: the ordering key (stored_at, finished_at, sent_at) and id of the
    last row it is done with for this prune; its next batch starts after it."""

    at: float
    id: int


START = Position(float("-inf"), 0)
"""Each prune starts from the oldest row: one that stayed last time may go now (its push
delivered once the marketplace got a push URL)."""


@dataclass(frozen=True, slots=True)
class Batch:
    removed: int
    reached: Position | None
    """Where the walk's next batch of this prune starts (after it), or None: the walk has
    reached the horizon, nothing more goes in this prune."""


def reached(going: Iterable[Position], end: Position | None, gone: Collection[int] = ()) -> Position | None:
    """Where a walk goes on after a batch. The batch examined the old rows after where it
    started up to `end`, the SCAN x limit-th (None: fewer, it met the horizon); `going` are
    rows of them that go, the oldest one still there among them, `gone` ids it deleted. A
    row that goes and is still there (beyond the batch's limit, its pushes not all gone yet,
    locked by another instance) holds the walk just before it: skipped, it would stay until
    the next prune. Else the walk goes past every row examined, or ends with them."""
    held = min((p for p in going if p.id not in gone), default=None)
    if held is not None:
        return Position(held.at, held.id - 1)  # ids are integers: nothing lies between
    return end


@dataclass(frozen=True, slots=True)
class PrunePlan:
    before: Timestamp
    """Rows finished (stored, sent) before this may go."""
    counted: Counted = frozenset()


def message_goes(
    message: Message, operation: Operation | None, deliveries: Iterable[Delivery], plan: PrunePlan
) -> bool:
    """Old, its operation (if any) finished, and every push of it finished."""
    if message.stored_at >= plan.before:
        return False
    if operation is not None and operation.is_open:
        return False
    return all(d.state is not DeliveryState.PENDING for d in deliveries)


def still_counted(operation: Operation, plan: PrunePlan, excluded: bool) -> bool:
    """A rule counts this finished operation, and the exclusion it leads to (`excluded`: the
    number's service is excluded on the operation's marketplace or everywhere, by a row no
    owner can lift: a block is not one) is not written yet."""
    if operation.kind is not OperationKind.ACTIVATION or operation.service is None:
        return False
    if operation.finish_status is None or excluded:
        return False
    return (operation.marketplace, operation.finish_status) in plan.counted


def operation_goes(operation: Operation, plan: PrunePlan, *, excluded: bool, referenced: bool) -> bool:
    """Finished before the horizon, counted by no rule, and no message or push refers to it
    any more (`referenced`: storage deletes those first)."""
    if operation.finished_at is None or operation.finished_at >= plan.before:
        return False
    return not referenced and not still_counted(operation, plan, excluded)


def notice_goes(notice: Notice, plan: PrunePlan, open_alerts: Mapping[str, str]) -> bool:
    """Sent before the horizon, for an alert no longer open (an unsent one is still owed)."""
    if notice.sent_at is None or notice.sent_at >= plan.before:
        return False
    return notice.key not in open_alerts
