"""What the operator's console reads: report records, their queries and the rules behind them.

Read models only: nothing here changes the farm. The rules (what a status is called, which
SIMs lose money, what an operation's timeline is) are pure, so the SQL and in-memory report
stores and the dashboard all agree on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from simgate.domain.messages import Attempt, Delivery, Message
from simgate.domain.model import FinishStatus, Number, Operation, OperationKind
from simgate.domain.types import (
    Kopecks,
    NumberId,
    OperationId,
    ServiceName,
    Timestamp,
)

T = TypeVar("T")

NO_MONEY = Kopecks(0)

BLOCKED = "blocked"
"""number_exclusions.reason for a service the operator blocked on a number (activations only)."""
SOLD = "sold"
"""number_exclusions.reason for a service the number was sold for (FINISH status 3)."""

RENT_BAN_STREAK = 3
"""Onlinesim bans a number after three rents in a row got no SMS within 20 minutes (spec 6.2)."""
RENT_WARN_STREAK = 2
"""Flag a SIM one failed rent before the ban, while disabling it still helps."""
ACTIVATION_WARN_STREAK = 3
"""Activations in a row with no SMS: the SIM is probably dead or blocked by the services."""
STREAK_WINDOW = 7 * 86400.0
"""Streaks count the operations opened in the last week. Onlinesim lifts its bans every 24
hours, so older failures say little, and the window bounds what the SIM table reads on a farm
with years of history."""

NUMBER_STATES = ("free", "busy", "offline", "disabled")
OPERATION_STATUSES = ("open", "sold", "cancelled", "refunded", "not_taken", "other")
DELIVERY_STATES = ("pending", "delivered", "rejected", "given_up", "failed")
"""'failed' selects rejected and given_up together: the ones an operator may retry."""

_STATUS_NAMES = {
    FinishStatus.SOLD: "sold",
    FinishStatus.CANCELLED: "cancelled",
    FinishStatus.REFUNDED: "refunded",
    FinishStatus.NOT_TAKEN: "not_taken",
}


def status_name(finished_at: Timestamp | None, finish_status: int | None) -> str:
    """One word per operation for tables, filters and metrics (spec 5.3 statuses)."""
    if finished_at is None:
        return "open"
    if finish_status is None:
        return "other"
    for status, name in _STATUS_NAMES.items():
        if finish_status == status:
            return name
    return "other"


def status_code(name: str) -> int | None:
    """The FINISH status a name filters on; None for 'open' and 'other'."""
    return next((int(s) for s, n in _STATUS_NAMES.items() if n == name), None)


def earned(operation: Operation) -> Kopecks:
    """What an operation paid: only a sale (status 3) pays, the FINISH sum or else the offer."""
    if operation.finished_at is None or operation.finish_status != FinishStatus.SOLD:
        return Kopecks(0)
    return Kopecks(operation.final if operation.final is not None else operation.offered or 0)


RUB = "RUB"
"""The currency of the console's kopeck figures (a SIM's, a day's, a service's earnings): a
sale paid in another currency is left out of them, never added as if it were roubles, and
shown per currency by marketplace instead (MarketplaceStats)."""


def earned_rub(operation: Operation) -> Kopecks:
    """`earned`, for the figures kept in roubles: 0 for a sale paid in another currency."""
    return earned(operation) if operation.currency == RUB else Kopecks(0)


def loss_reasons(rent_streak: int, activation_streak: int) -> tuple[str, ...]:
    """Why a SIM is losing money, from its latest finished operations that got no SMS."""
    reasons: list[str] = []
    if rent_streak >= RENT_WARN_STREAK:
        reasons.append(
            f"{rent_streak} rents in a row got no SMS (Onlinesim bans the number at {RENT_BAN_STREAK})"
        )
    if activation_streak >= ACTIVATION_WARN_STREAK:
        reasons.append(f"{activation_streak} activations in a row got no SMS")
    return tuple(reasons)


def streak_after(streaks: tuple[int, int], kind: OperationKind, got_sms: bool) -> tuple[int, int]:
    """A SIM's (rent, activation) no-SMS streaks after one more finished operation."""
    rent, activation = streaks
    if kind is OperationKind.RENT:
        return (0 if got_sms else rent + 1, activation)
    return (rent, 0 if got_sms else activation + 1)


def streaks(finished: Iterable[tuple[NumberId, OperationKind, bool]]) -> dict[NumberId, tuple[int, int]]:
    """Each SIM's (rent, activation) no-SMS streaks, from its finished operations in id order
    as (number, kind, got an SMS)."""
    found: dict[NumberId, tuple[int, int]] = {}
    for number_id, kind, got_sms in finished:
        found[number_id] = streak_after(found.get(number_id, (0, 0)), kind, got_sms)
    return found


RunStarts = tuple[Timestamp | None, Timestamp | None]
"""A SIM's (rent, activation) no-SMS runs: when the first operation of each opened (None: no run)."""


def run_starts_after(
    starts: RunStarts, streaks: tuple[int, int], kind: OperationKind, got_sms: bool, opened_at: Timestamp
) -> RunStarts:
    """A SIM's run starts after one more finished operation, given its streaks before it: an SMS
    ends the run; a miss with no run open starts one at the operation's `opened_at`."""
    rent, activation = starts
    if kind is OperationKind.RENT:
        return (None if got_sms else opened_at if streaks[0] == 0 else rent, activation)
    return (rent, None if got_sms else opened_at if streaks[1] == 0 else activation)


def run_starts(
    finished: Iterable[tuple[NumberId, OperationKind, bool, Timestamp]],
) -> dict[NumberId, RunStarts]:
    """Each SIM's run starts, from its finished operations in id order as (number, kind, got an
    SMS, opened at): the `opened_at` of the first operation each streak counts."""
    held: dict[NumberId, tuple[tuple[int, int], RunStarts]] = {}
    for number_id, kind, got_sms, opened_at in finished:
        streak, starts = held.get(number_id, ((0, 0), (None, None)))
        starts = run_starts_after(starts, streak, kind, got_sms, opened_at)
        held[number_id] = (streak_after(streak, kind, got_sms), starts)
    return {number_id: starts for number_id, (_, starts) in held.items()}


def losing_from_kept(streaks: tuple[int, int], starts: RunStarts, since: Timestamp | None) -> bool | None:
    """Whether a SIM loses money over the operations opened since `since`, from its kept
    all-time streaks and run starts: True or False when they settle it, None when only the
    window's own count can (a run reaching a threshold began before the window).

    A SIM's operations follow one another, so a window's streak never exceeds the all-time
    one, and a run that began at or after `since` lies wholly in the window: its streak is the
    window's. A run that began before it is cut by the window, to a count only it can give."""
    thresholds = (RENT_WARN_STREAK, ACTIVATION_WARN_STREAK)
    reaching = [
        start
        for streak, threshold, start in zip(streaks, thresholds, starts, strict=True)
        if streak >= threshold
    ]
    if not reaching:
        return False
    if since is None or any(start is not None and start >= since for start in reaching):
        return True
    return None


def success_rate(sold: int, finished: int) -> float | None:
    return None if finished == 0 else round(sold / finished, 4)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    """Rows matching the query, ignoring limit and offset."""


class Paged(Protocol):
    """A listing's query: which slice of its rows one page shows."""

    @property
    def limit(self) -> int: ...

    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Exclusion:
    service: ServiceName
    reason: str
    """'sold' (the marketplace's) or 'blocked' (the operator's)."""
    marketplace: str = "*"
    """Where it binds: '*' on every marketplace, else that one (a spent status-4 budget)."""


@dataclass(frozen=True, slots=True)
class NumberQuery:
    state: str | None = None
    """free, busy, offline or disabled."""
    country: str | None = None
    operator: str | None = None
    port: str | None = None
    """Substring of the port."""
    search: str | None = None
    """Substring of the phone or the port."""
    losing: bool = False
    """Only SIMs that `loss_reasons` flags."""
    streak_since: Timestamp | None = None
    """Streaks count operations opened since then (see STREAK_WINDOW); None: all."""
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class NumberReport:
    number: Number
    exclusions: tuple[Exclusion, ...] = ()
    operations: int = 0
    finished: int = 0
    sold: int = 0
    earnings: Kopecks = NO_MONEY
    sms: int = 0
    last_sms_at: Timestamp | None = None
    rent_no_sms_streak: int = 0
    activation_no_sms_streak: int = 0
    open_marketplace: str | None = None
    """The marketplace of its open operation (it was issued from that lane)."""

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.sold, self.finished)

    @property
    def loss_reasons(self) -> tuple[str, ...]:
        return loss_reasons(self.rent_no_sms_streak, self.activation_no_sms_streak)


@dataclass(frozen=True, slots=True)
class OperationQuery:
    kind: str | None = None
    """activation or rent."""
    state: str | None = None
    """open or finished."""
    service: str | None = None
    status: str | None = None
    """A `status_name`: open, sold, cancelled, refunded, not_taken, other."""
    marketplace: str | None = None
    number_id: NumberId | None = None
    search: str | None = None
    """Substring of the phone."""
    since: Timestamp | None = None
    """Opened at or after."""
    until: Timestamp | None = None
    """Opened before."""
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class OperationReport:
    operation: Operation
    sms: int = 0
    last_sms_at: Timestamp | None = None
    finish_requests: int = 0

    @property
    def status(self) -> str:
        return status_name(self.operation.finished_at, self.operation.finish_status)

    @property
    def earned(self) -> Kopecks:
        return earned(self.operation)


@dataclass(frozen=True, slots=True)
class MessageQuery:
    number_id: NumberId | None = None
    operation_id: OperationId | None = None
    routed: bool | None = None
    """True: reached an open operation; False: had none to go to."""
    delivery_state: str | None = None
    """One of DELIVERY_STATES."""
    search: str | None = None
    """Substring of the phone, the sender or the text."""
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class MessageReport:
    message: Message
    delivery: Delivery | None = None
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    state: str | None = None
    """One of DELIVERY_STATES."""
    operation_id: OperationId | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivery: Delivery
    message: Message
    kind: OperationKind
    service: ServiceName | None
    claimed_by: str | None = None
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    pending: int
    oldest_pending_at: Timestamp | None
    """created_at of the oldest pending delivery (when it was queued or retried)."""
    rejected: int
    given_up: int
    delivered: int

    def oldest_age(self, now: Timestamp) -> float | None:
        return None if self.oldest_pending_at is None else max(0.0, now - self.oldest_pending_at)


@dataclass(frozen=True, slots=True)
class StatusCount:
    kind: OperationKind
    status: str
    """A `status_name`."""
    count: int


@dataclass(frozen=True, slots=True)
class Earnings:
    sold: int
    finished: int
    earnings: Kopecks


@dataclass(frozen=True, slots=True)
class MarketplaceStats:
    """One marketplace's operations and money in one currency: money is never added up across
    currencies (an SMSHUB sale may be paid in another currency than an Onlinesim one)."""

    marketplace: str
    currency: str
    open: int = 0
    """Operations open now."""
    opened: int = 0
    """Opened since the window's start."""
    sold_today: int = 0
    earnings_today: int = 0
    """Hundredths of `currency`, paid by sales finished since the day's start."""
    sold: int = 0
    earnings: int = 0
    """Hundredths of `currency`, paid by sales finished since the window's start."""


def marketplace_stats(
    operations: Iterable[Operation], day_start: Timestamp, since: Timestamp
) -> list[MarketplaceStats]:
    """Per (marketplace, currency): open now, opened and sold since `since`, sold today. The
    in-memory reference for the SQL; sorted by marketplace, then currency."""
    tallies: dict[tuple[str, str], list[int]] = {}
    for o in operations:
        tally = tallies.setdefault((o.marketplace, o.currency), [0] * 6)
        tally[0] += o.finished_at is None
        tally[1] += o.opened_at >= since
        paid = earned(o)
        sold = o.finished_at is not None and o.finish_status == FinishStatus.SOLD
        if sold and o.finished_at is not None and o.finished_at >= day_start:
            tally[2] += 1
            tally[3] += paid
        if sold and o.finished_at is not None and o.finished_at >= since:
            tally[4] += 1
            tally[5] += paid
    return [MarketplaceStats(m, c, *t) for (m, c), t in sorted(tallies.items()) if any(t)]


@dataclass(frozen=True, slots=True)
class DayStats:
    start: Timestamp
    """The day's first second, in the caller's time zone."""
    opened: int = 0
    """Operations opened that day."""
    finished: int = 0
    sold: int = 0
    earnings: Kopecks = NO_MONEY
    """Paid by sales finished that day: the marketplace pays at FINISH."""


@dataclass(frozen=True, slots=True)
class GroupStats:
    key: str
    """A service ('rent' for rents), a country, or a phone number."""
    opened: int = 0
    finished: int = 0
    sold: int = 0
    earnings: Kopecks = NO_MONEY

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.sold, self.finished)


@dataclass(frozen=True, slots=True)
class Stats:
    days: list[DayStats]
    by_service: list[GroupStats] = field(default_factory=list)
    by_country: list[GroupStats] = field(default_factory=list)
    by_number: list[GroupStats] = field(default_factory=list)


def group_stats(
    operations: Iterable[Operation], since: Timestamp, key: str, limit: int | None = None
) -> list[GroupStats]:
    """Per group since `since`: opened counts by opening time, sales and money by FINISH time.

    The in-memory reference for the SQL GROUP BY; sorted by earnings, then opened, then key.
    """
    tallies: dict[str, list[int]] = {}
    for o in operations:
        opened = o.opened_at >= since
        finished = o.finished_at is not None and o.finished_at >= since
        if not opened and not finished:
            continue
        name = _group_key(o, key)
        tally = tallies.setdefault(name, [0, 0, 0, 0])
        tally[0] += opened
        if finished:
            tally[1] += 1
            tally[2] += o.finish_status == FinishStatus.SOLD
            tally[3] += earned_rub(o)
    rows = [GroupStats(k, t[0], t[1], t[2], Kopecks(t[3])) for k, t in tallies.items()]
    return sort_groups(rows, limit)


def sort_groups(rows: list[GroupStats], limit: int | None = None) -> list[GroupStats]:
    rows.sort(key=lambda g: (-g.earnings, -g.opened, g.key))
    return rows if limit is None else rows[:limit]


def _group_key(operation: Operation, key: str) -> str:
    if key == "service":
        return operation.service or "rent"
    if key == "country":
        return operation.country
    if key == "marketplace":
        return operation.marketplace
    return operation.phone


def day_index(moment: Timestamp, day_starts: Sequence[Timestamp]) -> int | None:
    """Which day of `day_starts` (ascending, one day apart) `moment` falls in, or None."""
    if not day_starts or moment < day_starts[0] or moment >= day_starts[-1] + 86400:
        return None
    index = 0
    for i, start in enumerate(day_starts):
        if moment >= start:
            index = i
    return index


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    at: Timestamp
    kind: str
    """opened, sms, push or finished."""
    text: str
    message_id: int | None = None
    delivery_id: int | None = None


def timeline(operation: Operation, messages: Sequence[MessageReport]) -> list[TimelineEvent]:
    """An operation's life in order: GET_NUMBER, each SMS, each push attempt, FINISH."""
    what = operation.service or "rent"
    events = [
        TimelineEvent(
            operation.opened_at,
            "opened",
            f"GET_NUMBER {operation.kind.value} for {what}, {operation.phone}"
            + (f", offered {rub(operation.offered)} RUB" if operation.offered is not None else ""),
        )
    ]
    for report in messages:
        m = report.message
        events.append(TimelineEvent(m.stored_at, "sms", f"SMS from {m.sender}: {m.text}", message_id=m.id))
        delivery_id = report.delivery.id if report.delivery else None
        for number, attempt in enumerate(report.attempts, start=1):
            answer = attempt.http_status if attempt.http_status is not None else attempt.error or "no answer"
            events.append(
                TimelineEvent(
                    attempt.started_at,
                    "push",
                    f"push #{number} of SMS {m.id}: {answer} -> {attempt.verdict.value}"
                    f" ({attempt.latency_ms:.0f} ms)",
                    message_id=m.id,
                    delivery_id=delivery_id,
                )
            )
    if operation.finished_at is not None:
        status = status_name(operation.finished_at, operation.finish_status)
        paid = f", {rub(operation.final)} RUB" if operation.final is not None else ""
        events.append(
            TimelineEvent(
                operation.finished_at,
                "finished",
                f"FINISH status {operation.finish_status} ({status}){paid}",
            )
        )
    order = {"opened": 0, "sms": 1, "push": 2, "finished": 3}
    return sorted(events, key=lambda e: (e.at, order[e.kind]))


def rub(amount: int | None) -> str:
    if amount is None:
        return "-"
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    return f"{sign}{whole}.{cents:02d}"
